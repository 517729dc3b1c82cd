//! What the benchmark takes from the server's shipped configuration (conf/config.toml), read
//! into the server crate's own typed [`Settings`], so that the batch sizes, queue lengths and
//! cookie name it works with never drift from the server's.
//!
//! Only the file is read (no `CHAT__*` environment, no validation: the shipped file has no
//! session secret, which the servers get from the harness).

use std::sync::LazyLock;

use anyhow::{Result, anyhow};
use chat_server::config::Settings;

/// The server's shipped configuration file.
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/config.toml");

/// The shipped settings, read once.
static SETTINGS: LazyLock<Result<Settings, String>> = LazyLock::new(|| {
    config::Config::builder()
        .add_source(config::File::with_name(SHIPPED).format(config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| format!("reading {SHIPPED}: {e}"))
});

/// The server's shipped settings.
pub fn shipped() -> Result<&'static Settings> {
    SETTINGS.as_ref().map_err(|e| anyhow!("{e}"))
}

/// `messages.batch_max`: the largest batch the server's writer stores at once.
pub fn batch_max() -> Result<usize> {
    Ok(shipped()?.messages.batch_max.get())
}

/// `ws.outbound_queue`: the events queued per connection.
pub fn outbound_queue() -> Result<usize> {
    Ok(shipped()?.ws.outbound_queue.get())
}

/// `session.cookie_name`: the session cookie a login sets.
pub fn cookie_name() -> Result<&'static str> {
    Ok(&shipped()?.session.cookie_name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_settings_are_read() {
        assert!(super::batch_max().expect("messages.batch_max") >= 1);
        assert!(super::outbound_queue().expect("ws.outbound_queue") >= 1);
        assert!(
            !super::cookie_name()
                .expect("session.cookie_name")
                .is_empty()
        );
    }
}
