-- Member mutes move out of the membership row, so leaving (or being kicked) and re-joining does
-- not lift a mute: it ends when due or on unmute. Rows of ended mutes are harmless and are
-- overwritten by the next mute of the same member.
CREATE TABLE group_mutes (
    group_id    BIGINT UNSIGNED NOT NULL,
    user_id     BIGINT UNSIGNED NOT NULL,
    muted_until DATETIME(3)     NOT NULL,
    PRIMARY KEY (group_id, user_id),
    CONSTRAINT fk_group_mutes_group FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE,
    CONSTRAINT fk_group_mutes_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT INTO group_mutes (group_id, user_id, muted_until)
    SELECT group_id, user_id, muted_until FROM group_members WHERE muted_until IS NOT NULL;

ALTER TABLE group_members DROP COLUMN muted_until;
