-- GET /users?q= is a prefix match on user_name (served by uq_users_user_name) or on nick_name,
-- each a range scan of an index that stops after people.search_max_results entries.
ALTER TABLE users ADD KEY ix_users_nick_name (nick_name);
