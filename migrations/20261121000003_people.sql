-- Friend requests. At most one pending request per direction: pending_pair is only set while
-- pending, and the unique index ignores NULLs.
CREATE TABLE friend_requests (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    from_id       BIGINT UNSIGNED NOT NULL,
    to_id         BIGINT UNSIGNED NOT NULL,
    message       VARCHAR(800)    NULL,
    status        VARCHAR(16)     NOT NULL DEFAULT 'pending',
    created_at    DATETIME(3)     NOT NULL,
    decided_at    DATETIME(3)     NULL,
    pending_pair  VARCHAR(48) AS (IF(status = 'pending', CONCAT(from_id, ':', to_id), NULL)) PERSISTENT,
    PRIMARY KEY (id),
    UNIQUE KEY uq_friend_requests_pending (pending_pair),
    KEY ix_friend_requests_to (to_id, status),
    KEY ix_friend_requests_from (from_id, status),
    CONSTRAINT fk_friend_requests_from FOREIGN KEY (from_id) REFERENCES users (id),
    CONSTRAINT fk_friend_requests_to FOREIGN KEY (to_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A friendship is two rows, one per side, each with that side's private remark.
CREATE TABLE friendships (
    user_id     BIGINT UNSIGNED NOT NULL,
    friend_id   BIGINT UNSIGNED NOT NULL,
    remark      VARCHAR(256)    NULL,
    created_at  DATETIME(3)     NOT NULL,
    PRIMARY KEY (user_id, friend_id),
    CONSTRAINT fk_friendships_user FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT fk_friendships_friend FOREIGN KEY (friend_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- user_id blocks blocked_id.
CREATE TABLE blocks (
    user_id     BIGINT UNSIGNED NOT NULL,
    blocked_id  BIGINT UNSIGNED NOT NULL,
    created_at  DATETIME(3)     NOT NULL,
    PRIMARY KEY (user_id, blocked_id),
    KEY ix_blocks_blocked (blocked_id),
    CONSTRAINT fk_blocks_user FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT fk_blocks_blocked FOREIGN KEY (blocked_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
