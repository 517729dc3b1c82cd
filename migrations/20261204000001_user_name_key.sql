-- The canonical login key of each account: its user_name lowercased (names are ASCII), compared
-- byte for byte. Logins look accounts up by it and count failures per account, so spellings the
-- case- and accent-insensitive user_name collation would also match (`Álice`, `ALİCE`, an
-- invisible character appended) reach no account. Registration writes it; this fills it in for
-- the accounts that exist.
ALTER TABLE users
    ADD COLUMN user_name_key VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL AFTER user_name;

UPDATE users SET user_name_key = LOWER(user_name);

ALTER TABLE users
    MODIFY COLUMN user_name_key VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    ADD UNIQUE KEY uq_users_user_name_key (user_name_key);
