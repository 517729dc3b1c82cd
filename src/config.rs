//! Typed settings: `conf/config.toml`, then `CHAT__SECTION__KEY` environment overrides,
//! validated once at startup. A bad value stops startup with an error that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The configuration file read when `CHAT_CONFIG` does not name another one.
pub const DEFAULT_CONFIG_FILE: &str = "conf/config.toml";

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "server.allowed_origins",
    "antispam.exempt_user_ids",
    "antispam.mute_steps_secs",
];

/// Smallest session secret accepted: the cookie key derivation needs 64 bytes.
pub const MIN_SESSION_SECRET_BYTES: usize = 64;

/// The work factors bcrypt accepts.
const BCRYPT_MIN_COST: u32 = 4;
const BCRYPT_MAX_COST: u32 = 31;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub mysql: MysqlSettings,
    pub redis: RedisSettings,
    pub mongodb: MongoSettings,
    pub session: SessionSettings,
    pub auth: AuthSettings,
    pub ws: WsSettings,
    pub messages: MessageSettings,
    pub antispam: AntispamSettings,
    pub messaging: MessagingSettings,
    pub cache: CacheSettings,
    pub mail: MailSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Production,
    Dev,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub addr: String,
    pub mode: Mode,
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub secure_cookies: bool,
    pub trust_forwarded_for: bool,
    pub workers: usize,
    pub health_timeout_ms: u64,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MysqlSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: SecretString,
    pub key_prefix: String,
    pub pool_size: usize,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MongoSettings {
    pub uri: SecretString,
    pub database: String,
    pub server_selection_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    pub secret: SecretString,
    /// Set when dev mode generated the secret because none was configured.
    #[serde(skip)]
    pub secret_generated: bool,
    pub ttl_secs: u64,
    pub cookie_name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub bcrypt_cost: u32,
    pub login_per_ip_per_minute: u32,
    pub register_per_ip_per_minute: u32,
    pub login_failures_per_account: u32,
    pub login_failure_window_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WsSettings {
    pub max_frame_bytes: usize,
    pub heartbeat_secs: u64,
    pub client_timeout_secs: u64,
    pub outbound_queue: usize,
    pub pipeline_depth: usize,
    pub presence_ttl_secs: u64,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessageSettings {
    pub max_content_chars: usize,
    pub recall_window_secs: u64,
    pub history_default_limit: u32,
    pub history_max_limit: u32,
    pub unread_max: u32,
    pub resume_max: u32,
    pub batch_max: usize,
    pub write_queue: usize,
    pub write_concurrency: usize,
    pub write_overlap_min: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AntispamSettings {
    pub unanswered_limit: u64,
    pub unanswered_window_secs: u64,
    pub unanswered_block_secs: u64,
    pub rate_limit: u64,
    pub rate_window_secs: u64,
    pub duplicate_limit: u64,
    pub duplicate_window_secs: u64,
    pub group_rate_limit: u64,
    pub group_rate_window_secs: u64,
    pub mute_steps_secs: Vec<u64>,
    pub strike_window_secs: u64,
    pub local_per_sec: u32,
    pub local_burst: u32,
    pub local_close_after: u32,
    pub exempt_user_ids: Vec<u64>,
    pub retry_memory_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MessagingSettings {
    pub require_friendship: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CacheSettings {
    pub ttl_secs: u64,
    pub serve_stale_secs: u64,
    pub max_entries: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    pub smtp_url: SecretString,
    pub from: String,
    pub require_email_verification: bool,
    pub code_ttl_secs: u64,
    pub code_max_attempts: u32,
    pub code_resend_secs: u64,
    pub code_max_failures_per_day: u32,
}

impl Settings {
    /// Reads the file named by `CHAT_CONFIG` (default `conf/config.toml`) and the environment.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("CHAT_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE));
        Self::load_from(&[file.as_path()])
    }

    /// Reads the given files in order (later ones override earlier ones), then the environment,
    /// then validates.
    pub fn load_from(files: &[&Path]) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        for file in files {
            builder = builder.add_source(config::File::from(*file).required(true));
        }
        let env = config::Environment::with_prefix("CHAT")
            .prefix_separator("__")
            .separator("__");
        builder = builder.add_source(env);
        // Lists come from the environment comma-separated. Split them here: the config crate
        // only splits when it also guesses types, which would turn a numeric secret into a float.
        for key in LIST_KEYS {
            let var = format!("CHAT__{}", key.replace('.', "__").to_uppercase());
            if let Ok(raw) = std::env::var(&var) {
                let items: Vec<String> = raw
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect();
                builder = builder.set_override(*key, items)?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()
    }

    /// Checks what the types alone cannot; fills in a generated secret in dev mode.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        self.server
            .addr
            .parse::<SocketAddr>()
            .map_err(|e| invalid("server.addr", format!("not a socket address: {e}")))?;
        for origin in &self.server.allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "server.allowed_origins",
                    format!("`{origin}` must start with http:// or https://"),
                ));
            }
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        if self.server.health_timeout_ms == 0 {
            return Err(invalid("server.health_timeout_ms", "must be positive"));
        }
        if !self.mysql.url.expose_secret().starts_with("mysql://") {
            return Err(invalid("mysql.url", "must start with mysql://"));
        }
        if self.mysql.max_connections == 0 {
            return Err(invalid("mysql.max_connections", "must be positive"));
        }
        let redis_url = self.redis.url.expose_secret();
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            return Err(invalid(
                "redis.url",
                "must start with redis:// or rediss://",
            ));
        }
        if self.redis.pool_size == 0 {
            return Err(invalid("redis.pool_size", "must be positive"));
        }
        let mongo_uri = self.mongodb.uri.expose_secret();
        if !(mongo_uri.starts_with("mongodb://") || mongo_uri.starts_with("mongodb+srv://")) {
            return Err(invalid(
                "mongodb.uri",
                "must start with mongodb:// or mongodb+srv://",
            ));
        }
        if self.mongodb.database.is_empty() {
            return Err(invalid("mongodb.database", "must not be empty"));
        }
        if self.session.ttl_secs < 60 {
            return Err(invalid("session.ttl_secs", "must be at least 60"));
        }
        if self.session.cookie_name.is_empty() {
            return Err(invalid("session.cookie_name", "must not be empty"));
        }
        if self.session.secret.expose_secret().len() < MIN_SESSION_SECRET_BYTES {
            match self.server.mode {
                Mode::Dev => {
                    self.session.secret = random_secret();
                    self.session.secret_generated = true;
                }
                Mode::Production => {
                    return Err(invalid(
                        "session.secret",
                        format!(
                            "must be at least {MIN_SESSION_SECRET_BYTES} bytes (set \
                             CHAT__SESSION__SECRET, or server.mode = \"dev\" for a throwaway one)"
                        ),
                    ));
                }
            }
        }
        if self.auth.login_failures_per_account == 0 || self.auth.login_failure_window_secs == 0 {
            return Err(invalid(
                "auth.login_failures_per_account",
                "it and auth.login_failure_window_secs must be positive",
            ));
        }
        if !(BCRYPT_MIN_COST..=BCRYPT_MAX_COST).contains(&self.auth.bcrypt_cost) {
            return Err(invalid(
                "auth.bcrypt_cost",
                format!("must be between {BCRYPT_MIN_COST} and {BCRYPT_MAX_COST}"),
            ));
        }
        if self.auth.login_per_ip_per_minute == 0 {
            return Err(invalid("auth.login_per_ip_per_minute", "must be positive"));
        }
        if self.auth.register_per_ip_per_minute == 0 {
            return Err(invalid(
                "auth.register_per_ip_per_minute",
                "must be positive",
            ));
        }
        self.validate_ws()?;
        self.validate_messages()?;
        self.validate_antispam()?;
        self.validate_mail()?;
        if self.cache.max_entries == 0 {
            return Err(invalid("cache.max_entries", "must be positive"));
        }
        Ok(self)
    }

    fn validate_ws(&self) -> Result<(), ConfigError> {
        let ws = &self.ws;
        if ws.max_frame_bytes < 1024 {
            return Err(invalid("ws.max_frame_bytes", "must be at least 1024"));
        }
        if ws.heartbeat_secs == 0 {
            return Err(invalid("ws.heartbeat_secs", "must be positive"));
        }
        if ws.client_timeout_secs <= ws.heartbeat_secs {
            return Err(invalid(
                "ws.client_timeout_secs",
                "must be longer than ws.heartbeat_secs",
            ));
        }
        if ws.max_connections_per_ip == 0 {
            return Err(invalid("ws.max_connections_per_ip", "must be positive"));
        }
        if ws.max_connections < ws.max_connections_per_ip {
            return Err(invalid(
                "ws.max_connections",
                "must be at least ws.max_connections_per_ip",
            ));
        }
        if ws.outbound_queue == 0 {
            return Err(invalid("ws.outbound_queue", "must be positive"));
        }
        if ws.pipeline_depth == 0 {
            return Err(invalid("ws.pipeline_depth", "must be positive"));
        }
        if ws.presence_ttl_secs <= ws.heartbeat_secs {
            return Err(invalid(
                "ws.presence_ttl_secs",
                "must be longer than ws.heartbeat_secs (presence is refreshed every heartbeat)",
            ));
        }
        Ok(())
    }

    fn validate_messages(&self) -> Result<(), ConfigError> {
        let m = &self.messages;
        if m.max_content_chars == 0 {
            return Err(invalid("messages.max_content_chars", "must be positive"));
        }
        if m.history_max_limit == 0 {
            return Err(invalid("messages.history_max_limit", "must be positive"));
        }
        if m.history_default_limit == 0 || m.history_default_limit > m.history_max_limit {
            return Err(invalid(
                "messages.history_default_limit",
                "must be between 1 and messages.history_max_limit",
            ));
        }
        if m.unread_max == 0 {
            return Err(invalid("messages.unread_max", "must be positive"));
        }
        if m.resume_max == 0 {
            return Err(invalid("messages.resume_max", "must be positive"));
        }
        if m.batch_max == 0 {
            return Err(invalid("messages.batch_max", "must be positive"));
        }
        if m.write_concurrency == 0 {
            return Err(invalid("messages.write_concurrency", "must be positive"));
        }
        if m.write_overlap_min == 0 {
            return Err(invalid("messages.write_overlap_min", "must be positive"));
        }
        if m.write_queue == 0 {
            return Err(invalid("messages.write_queue", "must be positive"));
        }
        Ok(())
    }

    fn validate_antispam(&self) -> Result<(), ConfigError> {
        let a = &self.antispam;
        let positive: [(&'static str, u64); 12] = [
            ("antispam.unanswered_limit", a.unanswered_limit),
            ("antispam.unanswered_window_secs", a.unanswered_window_secs),
            ("antispam.unanswered_block_secs", a.unanswered_block_secs),
            ("antispam.rate_limit", a.rate_limit),
            ("antispam.rate_window_secs", a.rate_window_secs),
            ("antispam.duplicate_limit", a.duplicate_limit),
            ("antispam.duplicate_window_secs", a.duplicate_window_secs),
            ("antispam.group_rate_limit", a.group_rate_limit),
            ("antispam.group_rate_window_secs", a.group_rate_window_secs),
            ("antispam.strike_window_secs", a.strike_window_secs),
            ("antispam.local_close_after", u64::from(a.local_close_after)),
            ("antispam.retry_memory_secs", a.retry_memory_secs),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be positive"));
            }
        }
        if a.mute_steps_secs.is_empty() || a.mute_steps_secs.contains(&0) {
            return Err(invalid(
                "antispam.mute_steps_secs",
                "must be a non-empty list of positive durations",
            ));
        }
        if a.local_per_sec == 0 {
            return Err(invalid("antispam.local_per_sec", "must be positive"));
        }
        if a.local_burst == 0 {
            return Err(invalid("antispam.local_burst", "must be positive"));
        }
        Ok(())
    }

    fn validate_mail(&self) -> Result<(), ConfigError> {
        let m = &self.mail;
        let url = m.smtp_url.expose_secret();
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            return Err(invalid(
                "mail.smtp_url",
                "must start with smtp:// or smtps://",
            ));
        }
        if m.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid("mail.from", "is not a valid sender address"));
        }
        if m.code_ttl_secs == 0 {
            return Err(invalid("mail.code_ttl_secs", "must be positive"));
        }
        if m.code_max_attempts == 0 {
            return Err(invalid("mail.code_max_attempts", "must be positive"));
        }
        if m.code_max_failures_per_day == 0 {
            return Err(invalid(
                "mail.code_max_failures_per_day",
                "must be positive",
            ));
        }
        if m.code_resend_secs == 0 {
            return Err(invalid("mail.code_resend_secs", "must be positive"));
        }
        Ok(())
    }

    /// The validated listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .addr
            .parse()
            .map_err(|e| invalid("server.addr", format!("not a socket address: {e}")))
    }
}

/// 64 random bytes, hex-encoded (128 characters).
pub fn random_secret() -> SecretString {
    use rand::RngCore;
    let mut bytes = [0u8; 64];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    SecretString::from(hex)
}
