-- Users banned from a group: they cannot join, be added or be invited until the ban ends
-- (`until` NULL: for good) or is lifted. Rows of ended bans are harmless and are overwritten by
-- the next ban of the same user.
CREATE TABLE group_bans (
    group_id    BIGINT UNSIGNED NOT NULL,
    user_id     BIGINT UNSIGNED NOT NULL,
    banned_by   BIGINT UNSIGNED NOT NULL,
    until       DATETIME(3)     NULL,
    created_at  DATETIME(3)     NOT NULL,
    PRIMARY KEY (group_id, user_id),
    KEY ix_group_bans_user (user_id),
    CONSTRAINT fk_group_bans_group FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE,
    CONSTRAINT fk_group_bans_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
