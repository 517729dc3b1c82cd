-- Invitations of users to groups by a member who is not their friend: the invitee decides.
-- At most one pending invitation per group and invitee: pending_pair is only set while pending,
-- and the unique index ignores NULLs.
CREATE TABLE group_invitations (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    group_id      BIGINT UNSIGNED NOT NULL,
    invitee_id    BIGINT UNSIGNED NOT NULL,
    inviter_id    BIGINT UNSIGNED NOT NULL,
    status        VARCHAR(16)     NOT NULL DEFAULT 'pending',
    created_at    DATETIME(3)     NOT NULL,
    decided_at    DATETIME(3)     NULL,
    pending_pair  VARCHAR(48) AS (IF(status = 'pending', CONCAT(group_id, ':', invitee_id), NULL)) PERSISTENT,
    PRIMARY KEY (id),
    UNIQUE KEY uq_group_invitations_pending (pending_pair),
    KEY ix_group_invitations_invitee (invitee_id, status, id),
    CONSTRAINT fk_group_invitations_group FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE,
    CONSTRAINT fk_group_invitations_invitee FOREIGN KEY (invitee_id) REFERENCES users (id),
    CONSTRAINT fk_group_invitations_inviter FOREIGN KEY (inviter_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
