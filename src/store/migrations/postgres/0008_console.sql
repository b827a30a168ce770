-- Indexes for the admin console's user list, which pages by email (keyset) under a
-- filter: members of a role, disabled accounts, unconfirmed addresses. Each filter walks
-- its own index in email order, so a page costs the same at 100,000 accounts as at 100.
-- Emails are compared byte-wise (COLLATE "C"): a prefix is then a range, whatever the
-- database's collation.
CREATE INDEX user_roles_by_role ON user_roles(role, user_id);
CREATE INDEX users_by_email_bytes ON users(email COLLATE "C");
CREATE INDEX users_by_disabled ON users(disabled, email COLLATE "C");
CREATE INDEX users_by_verified ON users(email_verified, email COLLATE "C");
