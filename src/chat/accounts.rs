//! Accounts: registering (the verified-email rule, bcrypt), checking a login, changing a
//! password. A password tried against an account is a guess, counted in the account's (or the
//! device's) failure bucket, whether it comes from a login or a password change: a stolen
//! session must not become an unlimited password oracle.

use crate::chat::Chat;
use crate::chat::password;
use crate::domain::{Email, NickName, Password, UserId, UserName};
use crate::error::{AppError, AppResult};
use crate::store::mysql::users::{self, User};
use crate::store::redis::login_failures::{self, Bucket};
use crate::store::redis::logins;

/// A registration, parsed.
pub(crate) struct NewAccount {
    pub(crate) user_name: UserName,
    pub(crate) password: Password,
    pub(crate) nick_name: NickName,
    pub(crate) email: Option<Email>,
    pub(crate) email_code: Option<String>,
}

impl Chat {
    /// Creates the account. With an email, the email code sent to it when
    /// `mail.require_email_verification` is on; without one, no code, and only when
    /// verification is off.
    pub(crate) async fn register(&self, new: NewAccount) -> AppResult<User> {
        match &new.email {
            Some(email) => {
                self.require_verified_email(email, new.email_code.as_deref())
                    .await?;
            }
            None if new
                .email_code
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty()) =>
            {
                return Err(AppError::validation("email", "is required with email_code"));
            }
            None if self.settings.mail.require_email_verification => {
                return Err(AppError::validation("email", "is required"));
            }
            None => {}
        }
        let password_hash = password::hash(
            new.password.expose().to_owned(),
            self.settings.auth.bcrypt_cost,
        )
        .await?;
        users::insert(
            &self.mysql,
            users::NewUser {
                user_name: &new.user_name,
                nick_name: &new.nick_name,
                email: new.email.as_ref(),
                password_hash: &password_hash,
            },
        )
        .await
    }

    /// The account `user_name` names, when `password` is its password. Failures count in
    /// `bucket_of(user)` for a known account, in the unknown name's bucket otherwise; an
    /// unknown name costs a bcrypt like a wrong password, and both answer the same 401.
    pub(crate) async fn check_login(
        &self,
        user_name: &UserName,
        password: String,
        bucket_of: impl FnOnce(UserId) -> Bucket,
    ) -> AppResult<User> {
        let found = users::find_credentials_by_name(&self.mysql, user_name).await?;
        let (user, hash, bucket) = match found {
            Some((user, hash)) => {
                let bucket = bucket_of(user.id);
                (Some(user), hash, bucket)
            }
            None => (
                None,
                self.dummy_password_hash.to_string(),
                Bucket::UnknownName(user_name.key()),
            ),
        };
        let known = user.is_some();
        match (user, self.guess(&bucket, password, hash, known).await?) {
            (Some(user), true) => Ok(user),
            _ => Err(AppError::InvalidCredentials),
        }
    }

    /// Changes the password of `user` (on login `login_id`) when `old` is the current one, and
    /// ends every other session of theirs on every process; returns how many.
    pub(crate) async fn change_password(
        &self,
        user: UserId,
        login_id: &str,
        old: String,
        new: Password,
        bucket: Bucket,
    ) -> AppResult<usize> {
        let current = users::password_hash(&self.mysql, user)
            .await?
            .ok_or(AppError::Unauthorized)?;
        if !self.guess(&bucket, old, current, true).await? {
            return Err(AppError::forbidden(
                "wrong_password",
                "old_password is not the current password",
            ));
        }
        let new_hash =
            password::hash(new.expose().to_owned(), self.settings.auth.bcrypt_cost).await?;
        users::set_password_hash(&self.mysql, user, &new_hash).await?;
        let revoked = logins::revoke_all_except(&self.redis, &self.keys, user, login_id).await?;
        self.hub.revoke_logins(&revoked).await?;
        Ok(revoked.len())
    }

    /// One password guess against `hash`, within `bucket`'s budget of failures (refused once it
    /// is spent): a failure is counted, a success clears the bucket. A guess against the dummy
    /// hash of an unknown name (`may_succeed` false) always fails.
    async fn guess(
        &self,
        bucket: &Bucket,
        password: String,
        hash: String,
        may_succeed: bool,
    ) -> AppResult<bool> {
        let auth = &self.settings.auth;
        login_failures::check(
            &self.redis,
            &self.keys,
            bucket,
            auth.login_failures_per_account.get(),
        )
        .await?;
        if password::verify(password, hash).await? && may_succeed {
            login_failures::clear(&self.redis, &self.keys, bucket).await?;
            Ok(true)
        } else {
            login_failures::record(
                &self.redis,
                &self.keys,
                bucket,
                auth.login_failure_window_secs.get(),
            )
            .await?;
            Ok(false)
        }
    }
}
