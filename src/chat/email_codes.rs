//! Email codes: issuing one (mailed in the background, never revealing whether an address is
//! registered), checking one, the rule for an address a user gives us, and resetting a
//! password with a code.

use rand::Rng;

use crate::chat::Chat;
use crate::chat::password;
use crate::domain::{Email, Password, UserId};
use crate::error::{AppError, AppResult};
use crate::store::mysql::users;
use crate::store::redis::{email_codes, logins};

/// What a code is for; a code of one purpose never serves the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodePurpose {
    Register,
    ResetPassword,
}

impl CodePurpose {
    pub(crate) fn parse(raw: &str, field: &'static str) -> AppResult<Self> {
        match raw {
            "register" => Ok(Self::Register),
            "reset_password" => Ok(Self::ResetPassword),
            _ => Err(AppError::validation(
                field,
                "must be register or reset_password",
            )),
        }
    }

    /// The wire name, also the part of the Redis keys that keeps purposes apart.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::ResetPassword => "reset_password",
        }
    }
}

fn limits(state: &Chat) -> email_codes::Limits {
    let mail = &state.settings.mail;
    email_codes::Limits {
        ttl_secs: mail.code_ttl_secs.get(),
        resend_secs: mail.code_resend_secs.get(),
        max_attempts: mail.code_max_attempts.get(),
        max_failures_per_day: mail.code_max_failures_per_day.get(),
    }
}

fn invalid_code() -> AppError {
    AppError::InvalidEmailCode(
        AppError::Validation {
            field: "email_code".into(),
            message: "is wrong, expired or used up".into(),
        }
        .to_string(),
    )
}

impl Chat {
    /// Makes a code and mails it: a reset code only to a registered address, but the answer is the
    /// same either way, and the mail leaves in the background so the timing says nothing either.
    /// Within the resend window → 429 with the seconds to wait.
    pub(crate) async fn issue_code(&self, purpose: CodePurpose, email: &Email) -> AppResult<()> {
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000));
        if let Err(retry_after_secs) = email_codes::issue(
            &self.redis,
            &self.keys,
            purpose.as_str(),
            email.as_str(),
            &code,
            &limits(self),
        )
        .await?
        {
            return Err(AppError::RateLimited { retry_after_secs });
        }
        let registered = users::find_by_email(&self.mysql, email.as_str())
            .await?
            .is_some();
        if purpose == CodePurpose::Register || registered {
            let mailer = self.mailer.clone();
            let to = email.as_str().to_owned();
            tokio::spawn(async move {
                if let Err(err) = mailer.send_code(&to, &code, purpose.as_str()).await {
                    tracing::error!(error = ?err, "an email code could not be sent");
                }
            });
        }
        Ok(())
    }

    /// Checks (and uses up) a code; an invalid one is a 400 `invalid_email_code`.
    pub(crate) async fn check_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        code: &str,
    ) -> AppResult<()> {
        let plausible = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        if plausible
            && email_codes::verify(
                &self.redis,
                &self.keys,
                purpose.as_str(),
                email.as_str(),
                code,
                &limits(self),
            )
            .await?
        {
            Ok(())
        } else {
            Err(invalid_code())
        }
    }

    /// The rule for an address a user gives (at registration, or as a new email of their
    /// profile): a code, when given, is always checked; with `mail.require_email_verification`
    /// one must be given. A blank code counts as none.
    pub(crate) async fn require_verified_email(
        &self,
        email: &Email,
        code: Option<&str>,
    ) -> AppResult<()> {
        match code.map(str::trim).filter(|c| !c.is_empty()) {
            Some(code) => self.check_code(CodePurpose::Register, email, code).await,
            None if self.settings.mail.require_email_verification => Err(
                AppError::InvalidEmailCode("email_code is required for this email".into()),
            ),
            None => Ok(()),
        }
    }

    /// Sets a new password for the owner of `email` when the code is right, and signs every
    /// session of theirs out (every process closes their sockets).
    pub(crate) async fn reset_password(
        &self,
        email: &Email,
        code: &str,
        new_password: Password,
    ) -> AppResult<UserId> {
        self.check_code(CodePurpose::ResetPassword, email, code.trim())
            .await?;
        let user = users::find_by_email(&self.mysql, email.as_str())
            .await?
            .ok_or_else(invalid_code)?;
        let hash = password::hash(
            new_password.expose().to_owned(),
            self.settings.auth.bcrypt_cost,
        )
        .await?;
        users::set_password_hash(&self.mysql, user.id, &hash).await?;
        // No login has an empty id, so keeping "" keeps none.
        let revoked = logins::revoke_all_except(&self.redis, &self.keys, user.id, "").await?;
        self.hub.revoke_logins(&revoked).await?;
        tracing::info!(user_id = %user.id, "password reset by email code");
        Ok(user.id)
    }
}
