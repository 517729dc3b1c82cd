-- Accounts. user_name and email are unique case-insensitively (utf8mb4_unicode_ci), and the
-- unique indexes, not application checks, are what make registration race-free.
CREATE TABLE users (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_name      VARCHAR(32)  NOT NULL,
    nick_name      VARCHAR(64)  NOT NULL,
    email          VARCHAR(254) NULL,
    password_hash  VARCHAR(80)  NOT NULL,
    avatar         VARCHAR(512) NOT NULL DEFAULT '',
    sex            TINYINT UNSIGNED NOT NULL DEFAULT 0,
    created_at     DATETIME(3)  NOT NULL,
    updated_at     DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_users_user_name (user_name),
    UNIQUE KEY uq_users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
