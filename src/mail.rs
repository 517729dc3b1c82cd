//! Outgoing mail over SMTP (lettre): the email codes.

use anyhow::Context;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::MailSettings;

#[derive(Clone)]
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub(crate) fn new(settings: &MailSettings) -> anyhow::Result<Self> {
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.smtp_url.expose_secret())
                .context("mail.smtp_url is not a valid SMTP URL")?
                .build();
        let from = settings
            .from
            .parse()
            .context("mail.from is not a valid sender address")?;
        Ok(Self { transport, from })
    }

    #[tracing::instrument(skip_all)]
    pub(crate) async fn send_code(
        &self,
        to: &str,
        code: &str,
        purpose: &str,
    ) -> anyhow::Result<()> {
        let what = match purpose {
            "reset_password" => "to reset your password",
            _ => "to confirm your email address",
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.parse().context("recipient address")?)
            .subject("Your chat-server code")
            .header(ContentType::TEXT_PLAIN)
            .body(format!(
                "Your code {what}:\n\n{code}\n\nIt is valid for a few minutes. \
                 If you did not ask for it, ignore this mail.\n"
            ))
            .context("building the mail")?;
        self.transport
            .send(message)
            .await
            .context("sending the mail over SMTP")?;
        Ok(())
    }
}
