-- Uploads (POST /files): what is known of each file; the bytes are in the file store
-- (GridFS or files.dir) under the same id. `referenced` turns 1 when a message carries the
-- file; an unreferenced file is deleted by the sweep once `orphan_since` is older than
-- files.orphan_ttl_hours. A user's quota is the sum of `size` over their rows.
CREATE TABLE files (
    id             CHAR(24)        NOT NULL,
    owner_id       BIGINT UNSIGNED NOT NULL,
    mime           VARCHAR(127)    NOT NULL,
    size           BIGINT UNSIGNED NOT NULL,
    name           VARCHAR(255)    NOT NULL,
    sha256         CHAR(64)        NOT NULL,
    width          INT UNSIGNED    NULL,
    height         INT UNSIGNED    NULL,
    thumbnail_size INT UNSIGNED    NULL,
    referenced     TINYINT(1)      NOT NULL DEFAULT 0,
    orphan_since   DATETIME(3)     NOT NULL,
    created_at     DATETIME(3)     NOT NULL,
    PRIMARY KEY (id),
    KEY ix_files_owner (owner_id),
    KEY ix_files_orphans (referenced, orphan_since),
    CONSTRAINT fk_files_owner FOREIGN KEY (owner_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
