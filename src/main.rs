//! The `chat-server` binary: load config, init tracing, build the application, serve.

use chat_server::config::Settings;
use chat_server::startup::Application;
use chat_server::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(&settings.log);
    if settings.session.secret_generated {
        tracing::warn!(
            "session.secret is not set; dev mode generated a random one, \
             so sessions will not survive a restart"
        );
    }
    let app = Application::build(settings).await?;
    app.run_until_signalled().await?;
    Ok(())
}
