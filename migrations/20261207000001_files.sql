-- Uploads (POST /files): what is known of each file; the bytes are in the file store
-- (GridFS or files.dir) under the same id (the thumbnail of an image as `<id>.thumb`,
-- `thumbnail_size` bytes). `state`: 1 uploading (from the start of an upload), 0 complete
-- (when its bytes are all stored), 2 being deleted (claimed, its bytes go, then the row): the
-- sweep removes the bytes of uploads that never completed (a crash, a client that went away)
-- and of deletions cut off half way. `referenced` turns 1 (at `referenced_at`, epoch ms; -1
-- once the sweep confirmed a stored message carries the file) when a message is about to carry
-- the file; an unreferenced file is deleted by the sweep once `orphan_since` is older than
-- files.orphan_ttl_hours. A user's quota is the sum of `size` over their complete rows.
CREATE TABLE files (
    id             CHAR(24)        NOT NULL,
    owner_id       BIGINT UNSIGNED NOT NULL,
    state          TINYINT         NOT NULL DEFAULT 1,
    mime           VARCHAR(127)    NOT NULL DEFAULT '',
    size           BIGINT UNSIGNED NOT NULL DEFAULT 0,
    name           VARCHAR(255)    NOT NULL DEFAULT '',
    sha256         CHAR(64)        NOT NULL DEFAULT '',
    width          INT UNSIGNED    NULL,
    height         INT UNSIGNED    NULL,
    thumbnail_size INT UNSIGNED    NULL,
    referenced     TINYINT(1)      NOT NULL DEFAULT 0,
    referenced_at  BIGINT          NOT NULL DEFAULT 0,
    orphan_since   DATETIME(3)     NOT NULL,
    created_at     DATETIME(3)     NOT NULL,
    PRIMARY KEY (id),
    KEY ix_files_owner (owner_id, created_at),
    KEY ix_files_orphans (referenced, orphan_since),
    KEY ix_files_state (state, created_at),
    KEY ix_files_marks (referenced, referenced_at),
    CONSTRAINT fk_files_owner FOREIGN KEY (owner_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
