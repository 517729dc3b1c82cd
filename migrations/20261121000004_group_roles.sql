-- Groups grow a notice, an avatar, a join mode, a whole-group mute and dissolution.
ALTER TABLE chat_groups
    ADD COLUMN notice       VARCHAR(4000) NOT NULL DEFAULT '',
    ADD COLUMN avatar       VARCHAR(512)  NOT NULL DEFAULT '',
    ADD COLUMN join_mode    VARCHAR(16)   NOT NULL DEFAULT 'open',
    ADD COLUMN muted        TINYINT       NOT NULL DEFAULT 0,
    ADD COLUMN dissolved_at DATETIME(3)   NULL;

-- Per-member settings (private but for nickname) and member mutes.
ALTER TABLE group_members
    ADD COLUMN nickname          VARCHAR(256) NULL,
    ADD COLUMN remark            VARCHAR(256) NULL,
    ADD COLUMN dnd               TINYINT      NOT NULL DEFAULT 0,
    ADD COLUMN folded            TINYINT      NOT NULL DEFAULT 0,
    ADD COLUMN show_in_contacts  TINYINT      NOT NULL DEFAULT 0,
    ADD COLUMN muted_until       DATETIME(3)  NULL;

-- Join requests and invitations waiting for a manager. At most one pending per user and group.
CREATE TABLE group_join_requests (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    group_id     BIGINT UNSIGNED NOT NULL,
    user_id      BIGINT UNSIGNED NOT NULL,
    inviter_id   BIGINT UNSIGNED NULL,
    message      VARCHAR(800)    NULL,
    status       VARCHAR(16)     NOT NULL DEFAULT 'pending',
    created_at   DATETIME(3)     NOT NULL,
    decided_at   DATETIME(3)     NULL,
    pending_pair VARCHAR(48) AS (IF(status = 'pending', CONCAT(group_id, ':', user_id), NULL)) PERSISTENT,
    PRIMARY KEY (id),
    UNIQUE KEY uq_group_join_requests_pending (pending_pair),
    KEY ix_group_join_requests_group (group_id, status),
    CONSTRAINT fk_group_join_requests_group FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE,
    CONSTRAINT fk_group_join_requests_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
