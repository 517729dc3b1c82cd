//! Typed settings: `conf/config.toml`, then `CHAT__SECTION__KEY` environment overrides,
//! validated once at startup. A bad value stops startup with an error that names the key.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The configuration file read when `CHAT_CONFIG` does not name another one.
pub const DEFAULT_CONFIG_FILE: &str = "conf/config.toml";

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "server.allowed_origins",
    "antispam.exempt_user_ids",
    "antispam.mute_steps_secs",
    "server.trusted_proxies",
    "redis.urls",
];

/// Smallest session secret accepted: the cookie key derivation needs 64 bytes.
pub const MIN_SESSION_SECRET_BYTES: usize = 64;

/// The work factors bcrypt accepts.
const BCRYPT_MIN_COST: u32 = 4;
const BCRYPT_MAX_COST: u32 = 31;

/// Why the configuration was refused; each names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file that does not read, or a value of the wrong type (a zero where a positive number
    /// is wanted, text where a number is).
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value of the right type that breaks a rule.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// The key, as in conf/config.toml (`section.key`).
        key: &'static str,
        /// What is wrong with its value.
        message: String,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Every setting of the server: conf/config.toml, then `CHAT__SECTION__KEY` variables.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `[server]`.
    pub server: ServerSettings,
    /// `[log]`.
    pub log: LogSettings,
    /// `[mysql]`.
    pub mysql: MysqlSettings,
    /// `[redis]`.
    pub redis: RedisSettings,
    /// `[mongodb]`.
    pub mongodb: MongoSettings,
    /// `[session]`.
    pub session: SessionSettings,
    /// `[auth]`.
    pub auth: AuthSettings,
    /// `[ws]`.
    pub ws: WsSettings,
    /// `[messages]`.
    pub messages: MessageSettings,
    /// `[antispam]`.
    pub antispam: AntispamSettings,
    /// `[messaging]`.
    pub messaging: MessagingSettings,
    /// `[cache]`.
    pub cache: CacheSettings,
    /// `[mail]`.
    pub mail: MailSettings,
    /// `[groups]`.
    pub groups: GroupSettings,
    /// `[conversations]`.
    pub conversations: ConversationSettings,
    /// `[people]`.
    pub people: PeopleSettings,
    /// `[privacy]`.
    pub privacy: PrivacySettings,
    /// `[metrics]`.
    pub metrics: MetricsSettings,
    /// `[files]`.
    pub files: FileSettings,
}

/// `server.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuses to start without a real `session.secret`.
    Production,
    /// Generates a throwaway secret when none is set.
    Dev,
}

/// `[server]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    /// Address the HTTP/WebSocket listener binds to. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// "production" or "dev". In dev mode a missing session secret is generated at startup (with a
    /// warning), so sessions do not survive a restart.
    pub mode: Mode,
    /// Origins allowed to open a WebSocket / send credentialed requests, e.g.
    /// ["https://chat.example.com"]. Any other Origin (or Sec-Fetch-Site: cross-site without an
    /// allowed one) gets 403 forbidden_origin on a WebSocket upgrade and on every POST, PUT, PATCH
    /// and DELETE. Empty: only the request's own origin (same scheme and host; the scheme is
    /// X-Forwarded-Proto only with trust_forwarded_for, so behind a TLS-terminating proxy list the
    /// public https:// origin).
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body, in bytes (larger bodies get 413).
    pub max_body_bytes: usize,
    /// Mark the session cookie `Secure` (set to true behind HTTPS).
    pub secure_cookies: bool,
    /// Believe X-Forwarded-For from any peer (the older form of trusted_proxies). Only enable
    /// behind a reverse proxy that sets it and that every request passes through.
    pub trust_forwarded_for: bool,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// How long /health waits for each backend before calling it down, in milliseconds.
    pub health_timeout_ms: NonZeroU64,
    /// How long a graceful stop (SIGTERM / Ctrl-C) waits for in-flight requests, in seconds.
    pub shutdown_timeout_secs: u64,
}

impl ServerSettings {
    /// `server.trusted_proxies` as networks (checked at startup, so every entry is here).
    pub fn trusted_proxy_nets(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| parse_proxy(p))
            .collect()
    }
}

/// A `server.trusted_proxies` entry: an address (a network of one) or a CIDR block.
fn parse_proxy(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .map(|net| net.trunc())
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people reading a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[log]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// tracing filter directives (RUST_LOG, when set, takes precedence).
    pub filter: String,
    /// "text" for people, "json" for log collectors.
    pub format: LogFormat,
}

/// `[mysql]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct MysqlSettings {
    /// MySQL / MariaDB
    pub url: SecretString,
    /// pool size
    pub max_connections: NonZeroU32,
    /// Seconds to wait for a connection from the pool before answering 503.
    pub acquire_timeout_secs: u64,
}

/// `redis.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One Redis server at `redis.url`.
    Standalone,
    /// A Redis Cluster, found through the seed nodes `redis.urls`.
    Cluster,
}

/// `[redis]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// "standalone" (`url`) or "cluster" (`urls`).
    pub mode: RedisMode,
    /// Redis (standalone mode)
    pub url: SecretString,
    /// Seed nodes of the Redis Cluster (cluster mode); any reachable one is enough to find
    /// the others.
    #[serde(default)]
    pub urls: Vec<SecretString>,
    /// How many delivery shards conversations are spread over in cluster mode (each process
    /// subscribes to two sharded channels per shard). Standalone mode uses one.
    pub delivery_shards: std::num::NonZeroU16,
    /// Prefix of every key the server writes, so several deployments can share one Redis.
    pub key_prefix: String,
    /// pool size (shared by sessions and the app)
    pub pool_size: NonZeroUsize,
    /// Milliseconds to wait for a pooled connection (or to open one) before failing.
    pub timeout_ms: u64,
}

/// `[mongodb]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct MongoSettings {
    /// Any MongoDB 6+ deployment works; locally this is the wire-compatible server from
    /// services.sh.
    pub uri: SecretString,
    /// database name
    pub database: String,
    /// Milliseconds to wait for a usable server before an operation fails.
    pub server_selection_timeout_ms: u64,
}

/// `[session]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    /// Key that signs and encrypts the session cookie: at least 64 bytes. Required in production
    /// mode; scripts/run.sh generates one into var/session_secret and passes it as
    /// CHAT__SESSION__SECRET.
    pub secret: SecretString,
    /// Set when dev mode generated the secret because none was configured.
    #[serde(skip)]
    pub secret_generated: bool,
    /// Lifetime of a login, in seconds (14 days).
    pub ttl_secs: u64,
    /// session cookie name
    pub cookie_name: String,
}

/// `[auth]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// bcrypt work factor for password hashes (4..=31). Each step doubles the cost of a login.
    pub bcrypt_cost: u32,
    /// Per client IP (an IPv6 client by its /64), across all user names.
    pub login_per_ip_per_minute: NonZeroU32,
    /// registrations and email-code requests per client IP (IPv6: per /64)
    pub register_per_ip_per_minute: NonZeroU32,
    /// Per account, across all IPs and processes: after this many wrong passwords within the window
    /// (failed logins and wrong old_password at /user/set_password alike) the account is refused
    /// (429) until the window ends, right password or not. Failures are counted per account
    /// (whatever spelling of the name was typed) and, for unknown names, per canonical name, so the
    /// answers do not reveal which accounts exist. A successful check clears the count.
    pub login_failures_per_account: NonZeroU32,
    /// the window of that count, from the first failure; a successful check clears it
    pub login_failure_window_secs: NonZeroU64,
    /// The signed cookie that marks a browser which logged into an account before.
    pub device_cookie_name: String,
    /// how long a device cookie entry is valid after the login that issued it (one year)
    pub device_cookie_ttl_secs: NonZeroU64,
}

/// `[ws]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct WsSettings {
    /// Largest accepted WebSocket frame, in bytes; a larger one closes the connection with 1009.
    pub max_frame_bytes: usize,
    /// The server pings every connection this often, and refreshes its presence records.
    pub heartbeat_secs: NonZeroU64,
    /// A connection silent (no pong, no frame) for this long is closed.
    pub client_timeout_secs: u64,
    /// Frames (replies, events, pongs) queued for one connection; a client too slow to drain them
    /// is disconnected (1013).
    pub outbound_queue: NonZeroUsize,
    /// Sends (op 1 and 6) of one connection that may be in flight at once: they are checked and
    /// queued for storage one after another, in the order they arrived, and their storage overlaps.
    /// Replies come in request order. Any other op waits for the ops before it and runs alone.
    pub pipeline_depth: NonZeroUsize,
    /// Lifetime of a connection's presence record without a refresh (a crashed process's
    /// connections stop counting as online after this). Must exceed heartbeat_secs.
    pub presence_ttl_secs: u64,
    /// Open WebSockets per client IP (see server.trust_forwarded_for) and in all, per server
    /// process. Over the first: 429 {"code":"too_many_connections"}; over the second: 503
    /// {"code":"server_busy"}.
    pub max_connections_per_ip: NonZeroUsize,
    /// open WebSockets per process; over it the upgrade gets 503 `server_busy`
    pub max_connections: usize,
    /// Largest op 2 / op 7 reply, in bytes of JSON: a longer page stops early with "has_more": true
    /// and the cursor to continue from.
    pub max_reply_bytes: usize,
    /// Bytes of replies and events queued for one connection; a client that lets more pile up is
    /// disconnected (1013), so a socket that never reads cannot pin server memory.
    pub max_outbound_bytes: usize,
    /// Most conversations in one op 7 `since` (more: 40000).
    pub max_resume_conversations: NonZeroUsize,
}

/// `[messages]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct MessageSettings {
    /// Longest message content, in characters (longer: reply 40013).
    pub max_content_chars: NonZeroUsize,
    /// How long a message waits to be delivered live while a lower seq of its conversation
    /// has been drawn but not published (its process is slow or died); after that it goes,
    /// and connections are told about the gap (`event: gap`).
    pub order_hold_ms: NonZeroU64,
    /// How long after sending a sender may recall a message for everyone.
    pub recall_window_secs: u64,
    /// History page size when the client gives none, and the most it may ask for.
    pub history_default_limit: u32,
    /// history page sizes
    pub history_max_limit: NonZeroU32,
    /// Most messages returned by one unread (op 3) and one resume (op 7) request.
    pub unread_max: NonZeroU32,
    /// most messages per op 3 / op 7 reply
    pub resume_max: NonZeroU32,
    /// Group commit: at most this many messages per MongoDB insert, and this many waiting sends.
    pub batch_max: NonZeroUsize,
    /// group commit: messages per insert, waiting sends
    pub write_queue: NonZeroUsize,
    /// Batches being written to MongoDB at once (seqs are drawn and events published in order).
    pub write_concurrency: NonZeroUsize,
    /// While a batch is being stored, the next one starts only once this many sends wait; fewer
    /// wait for the batch in flight (many small batches at once cost MongoDB more than they save).
    pub write_overlap_min: NonZeroUsize,
    /// Largest skip of op 2's "<skip>-<limit>" page form (more: 40000, page with before_seq
    /// instead).
    pub max_history_skip: u64,
    /// How long after sending a sender may edit a message (op 9; later: 40003).
    pub edit_window_secs: u64,
    /// Most edits of one message (then 40003).
    pub max_edits: u32,
    /// Most distinct emoji one user may react to one message with.
    pub max_reactions_per_user: NonZeroU64,
    /// Most distinct emoji on one message.
    pub max_reaction_emoji: NonZeroUsize,
    /// Most pinned messages per conversation (then 409 `limit_reached`).
    pub max_pins: NonZeroU64,
    /// Most entries of op 6's `mentions` (more: 40000).
    pub max_mentions: NonZeroUsize,
    /// Longest time MongoDB may spend on one message search, in milliseconds (over: 400
    /// `validation_failed` on `q`, asking for more words or one conversation).
    pub search_timeout_ms: NonZeroU64,
    /// Longest time MongoDB may spend on op 7's `changed_since` query, in milliseconds (over:
    /// 40000 on `changed_since`: the client loads the conversations again).
    pub changes_timeout_ms: NonZeroU64,
}

/// `[antispam]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct AntispamSettings {
    /// Rule 1, unanswered first contact: at most this many 1:1 messages to someone who never wrote
    /// back (counted over the window); the next one is refused and blocks the pair for block_secs.
    /// One reply from the recipient lifts it.
    pub unanswered_limit: NonZeroU64,
    /// The window of `unanswered_limit`, in seconds.
    pub unanswered_window_secs: NonZeroU64,
    /// How long the pair stays blocked once `unanswered_limit` is passed, in seconds.
    pub unanswered_block_secs: NonZeroU64,
    /// Rule 2, sender rate: messages (1:1 and group together) per sender per window, cluster-wide.
    pub rate_limit: NonZeroU64,
    /// The window of `rate_limit`, in seconds.
    pub rate_window_secs: NonZeroU64,
    /// Rule 3, duplicate flood: the same content (trimmed, case-folded, whitespace collapsed) at
    /// most this many times per window, to anyone.
    pub duplicate_limit: NonZeroU64,
    /// The window of `duplicate_limit`, in seconds.
    pub duplicate_window_secs: NonZeroU64,
    /// Rule 4, group flood: messages per sender per group per window.
    pub group_rate_limit: NonZeroU64,
    /// The window of `group_rate_limit`, in seconds.
    pub group_rate_window_secs: NonZeroU64,
    /// Rule 5, escalation: refused by rules 2-4 again within strike_window_secs of a refusal mutes
    /// the sender for the next step's duration (the last step repeats).
    pub mute_steps_secs: Vec<u64>,
    /// The window of `strike_limit`, in seconds.
    /// How long after a refusal another one counts as a strike, in seconds.
    pub strike_window_secs: NonZeroU64,
    /// Rule 6, local first line: per WebSocket connection, on every op, before any backend work.
    pub local_per_sec: NonZeroU32,
    /// Ops a connection may make at once above `local_per_sec`.
    pub local_burst: NonZeroU32,
    /// Refused frames in a row after which the socket is closed (1008).
    pub local_close_after: NonZeroU32,
    /// Users never throttled (bots, admins), e.g. [1, 2].
    pub exempt_user_ids: Vec<u64>,
    /// How long a passed send's client_msg_id is remembered, so a retry is not counted twice.
    pub retry_memory_secs: NonZeroU64,
    /// Named rules for everything else that pushes to another user, counted per window,
    /// cluster-wide. A refusal is 429 {"code":"rate_limited","rule","retry_after"} over HTTP, 50006
    /// on the socket. friend_requests: per sender (the request's message also counts towards the
    /// duplicate rule).
    pub friend_requests_limit: NonZeroU64,
    /// The window of `friend_requests_limit`, in seconds.
    pub friend_requests_window_secs: NonZeroU64,
    /// group_edits: notice and settings edits, per group.
    pub group_edits_limit: NonZeroU64,
    /// The window of `group_edits_limit`, in seconds.
    pub group_edits_window_secs: NonZeroU64,
    /// moderation: mutes, unmutes, kicks, bans, role changes, per acting user.
    pub moderation_limit: NonZeroU64,
    /// The window of `moderation_limit`, in seconds.
    pub moderation_window_secs: NonZeroU64,
    /// invites: invitations and additions of other users to groups, per inviter.
    pub invites_limit: NonZeroU64,
    /// The window of `invites_limit`, in seconds.
    pub invites_window_secs: NonZeroU64,
    /// receipts: read marks (op 4, POST /conversations/{c}/read), per user.
    pub receipts_limit: NonZeroU64,
    /// The window of `receipts_limit`, in seconds.
    pub receipts_window_secs: NonZeroU64,
    /// uploads: `POST /files`, per user.
    pub uploads_limit: NonZeroU64,
    /// The window of `uploads_limit`, in seconds.
    pub uploads_window_secs: NonZeroU64,
    /// edits: message edits (op 9), per user (the new text also counts towards the duplicate rule).
    pub edits_limit: NonZeroU64,
    /// The window of `edits_limit`, in seconds.
    pub edits_window_secs: NonZeroU64,
    /// reactions: reactions added or removed (op 10), per user.
    pub reactions_limit: NonZeroU64,
    /// The window of `reactions_limit`, in seconds.
    pub reactions_window_secs: NonZeroU64,
    /// pins: pins and unpins, per user.
    pub pins_limit: NonZeroU64,
    /// The window of `pins_limit`, in seconds.
    pub pins_window_secs: NonZeroU64,
    /// search: `GET /search/messages` per user per minute.
    pub search_per_minute: NonZeroU64,
    /// typing: at most one typing push per user and conversation this often; more are answered and
    /// not pushed.
    pub typing_interval_secs: NonZeroU64,
    /// read events (receipts) of one user in one conversation: at most one pushed this often (ms);
    /// marks in between are coalesced into the next one, which carries the newest position.
    pub read_event_interval_ms: u64,
}

/// `[messaging]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct MessagingSettings {
    /// When true, a 1:1 message (op 1) to anyone but a friend or yourself is refused (40003).
    pub require_friendship: bool,
}

/// `[cache]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct CacheSettings {
    /// Each process keeps the groups (with their members) and the sender/recipient relations its
    /// sends look up. Every change forgets the entry on every process at once; this is how long an
    /// entry is used before it is read again anyway (the bound should such a notice be lost).
    pub ttl_secs: u64,
    /// An older entry, up to this age, still answers at once while it is read again in the
    /// background; this is what keeps connected users chatting while MySQL is unreachable.
    pub serve_stale_secs: u64,
    /// Most entries of each kind per process.
    pub max_entries: NonZeroUsize,
    /// How long a change waits for every process to confirm it forgot the entries.
    pub invalidation_wait_ms: NonZeroU64,
}

/// `[mail]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    /// Outgoing mail (email codes). Locally, scripts/services.sh runs an SMTP server that stores
    /// every message under var/mail/. Use smtps:// (or a TLS-capable relay) in production.
    pub smtp_url: SecretString,
    /// sender of those mails
    pub from: String,
    /// When true, registering with an email needs a valid code from POST /user/email_code.
    pub require_email_verification: bool,
    /// A code is valid this long, for this many wrong tries; a new one per email at most this
    /// often.
    pub code_ttl_secs: NonZeroU64,
    /// code lifetime, wrong tries, resend interval
    pub code_max_attempts: NonZeroU32,
    /// code lifetime, wrong tries, resend interval
    pub code_resend_secs: NonZeroU64,
    /// Wrong codes per email address and purpose in 24 hours, over all its codes, after which every
    /// code for it is refused until the day is over (against slow guessing with fresh codes).
    pub code_max_failures_per_day: NonZeroU32,
}

/// `[groups]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct GroupSettings {
    /// Groups one user may own, and groups one user may be a member of (over either: 409
    /// limit_reached).
    pub max_owned_per_user: NonZeroU64,
    /// groups a user may own (create, receive by transfer) / be in (create, join, be added, be
    /// accepted); over it 409 `limit_reached`
    pub max_joined_per_user: NonZeroU64,
}

/// `[conversations]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct ConversationSettings {
    /// GET /conversations page size when ?limit= is not given, and the most it may ask for.
    pub page_default_limit: NonZeroU32,
    /// `GET /conversations` page sizes
    pub page_max_limit: u32,
}

/// `[people]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct PeopleSettings {
    /// GET /users?q=: the shortest query, and the most results (a prefix match on an index).
    pub search_min_chars: NonZeroUsize,
    /// most matches of `GET /users?q=` (an indexed prefix match)
    pub search_max_results: NonZeroU32,
    /// GET /users?email= lookups per caller and hour (then 429), against harvesting addresses.
    pub email_lookups_per_hour: NonZeroU64,
}

/// Who sees whether a user is online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnlineVisibility {
    /// Friends and members of a group the user is in.
    Contacts,
    /// Any logged-in user.
    Everyone,
}

/// `[privacy]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct PrivacySettings {
    /// Who sees `online` in profiles and member lists: "contacts" (friends and co-members) or
    /// "everyone".
    pub online_visible_to: OnlineVisibility,
}

/// Where uploads are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileBackend {
    /// GridFS in the `mongodb` database: every server process sees every file.
    Mongodb,
    /// Files under `files.dir`: for a single node.
    Disk,
}

/// `[files]` of conf/config.toml (README, Files).
#[derive(Debug, Clone, Deserialize)]
pub struct FileSettings {
    /// "mongodb" (GridFS, the default) or "disk" (`files.dir`).
    pub store: FileBackend,
    /// The folder of the disk store (relative to the working directory).
    pub dir: PathBuf,
    /// The largest upload, in bytes (over it: 413 payload_too_large, checked while streaming).
    pub max_bytes: NonZeroU64,
    /// What one user's uploads may add up to, in bytes (over it: 413 quota_exceeded).
    pub quota_bytes_per_user: NonZeroU64,
    /// How many uploads one user may keep (over it: 413 quota_exceeded).
    pub max_files_per_user: NonZeroU64,
    /// Uploads one user may have in progress at once per process (over it: 429 rate_limited,
    /// rule `uploads_in_flight`).
    pub max_uploads_in_flight_per_user: NonZeroUsize,
    /// Uploads in progress at once per process, of all users (over it: 503 server_busy).
    pub max_uploads_in_flight: NonZeroUsize,
    /// The longest an upload may take, in seconds (then 408 request_timeout).
    pub upload_timeout_secs: NonZeroU64,
    /// The longest an upload may send nothing, in seconds (then 408 request_timeout).
    pub upload_idle_secs: NonZeroU64,
    /// The longest side of a thumbnail, in pixels.
    pub thumbnail_px: NonZeroU32,
    /// The most pixels (width × height) an image may have (larger ones are refused before
    /// decoding: decompression bombs).
    pub max_image_pixels: NonZeroU64,
    /// How long an upload no message references is kept, in hours.
    pub orphan_ttl_hours: NonZeroU64,
    /// How often the sweep of unreferenced uploads runs, in seconds.
    pub sweep_interval_secs: NonZeroU64,
    /// The unit uploads are written and read in, in bytes (the GridFS chunk size; the memory an
    /// upload or a download holds at a time).
    pub chunk_bytes: NonZeroU32,
    /// Images decoded at once per process (each holds the file and its pixels in memory).
    pub image_workers: NonZeroUsize,
}

/// `[metrics]` of conf/config.toml (README, Configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`.
    pub token: SecretString,
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
        for origin in &self.server.allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "server.allowed_origins",
                    format!("`{origin}` must start with http:// or https://"),
                ));
            }
        }
        if let Some(bad) = self
            .server
            .trusted_proxies
            .iter()
            .find(|p| parse_proxy(p).is_none())
        {
            return Err(invalid(
                "server.trusted_proxies",
                format!("`{bad}` is not an IP address or CIDR block (e.g. 10.0.0.0/8)"),
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        if !self.mysql.url.expose_secret().starts_with("mysql://") {
            return Err(invalid("mysql.url", "must start with mysql://"));
        }
        let redis_url = |url: &SecretString| {
            let url = url.expose_secret();
            url.starts_with("redis://") || url.starts_with("rediss://")
        };
        if !redis_url(&self.redis.url) {
            return Err(invalid(
                "redis.url",
                "must start with redis:// or rediss://",
            ));
        }
        if self.redis.mode == RedisMode::Cluster {
            if self.redis.urls.is_empty() {
                return Err(invalid(
                    "redis.urls",
                    "must name at least one seed node in cluster mode",
                ));
            }
            if !self.redis.urls.iter().all(redis_url) {
                return Err(invalid(
                    "redis.urls",
                    "every seed node must start with redis:// or rediss://",
                ));
            }
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
        if !(BCRYPT_MIN_COST..=BCRYPT_MAX_COST).contains(&self.auth.bcrypt_cost) {
            return Err(invalid(
                "auth.bcrypt_cost",
                format!("must be between {BCRYPT_MIN_COST} and {BCRYPT_MAX_COST}"),
            ));
        }
        self.validate_ws()?;
        self.validate_messages()?;
        self.validate_antispam()?;
        self.validate_mail()?;
        self.validate_limits()?;
        self.validate_files()?;
        Ok(self)
    }

    fn validate_ws(&self) -> Result<(), ConfigError> {
        let ws = &self.ws;
        if ws.max_frame_bytes < 1024 {
            return Err(invalid("ws.max_frame_bytes", "must be at least 1024"));
        }
        if ws.client_timeout_secs <= ws.heartbeat_secs.get() {
            return Err(invalid(
                "ws.client_timeout_secs",
                "must be longer than ws.heartbeat_secs",
            ));
        }
        if ws.max_connections < ws.max_connections_per_ip.get() {
            return Err(invalid(
                "ws.max_connections",
                "must be at least ws.max_connections_per_ip",
            ));
        }
        if ws.presence_ttl_secs <= ws.heartbeat_secs.get() {
            return Err(invalid(
                "ws.presence_ttl_secs",
                "must be longer than ws.heartbeat_secs (presence is refreshed every heartbeat)",
            ));
        }
        Ok(())
    }

    fn validate_messages(&self) -> Result<(), ConfigError> {
        let m = &self.messages;
        if m.history_default_limit == 0 || m.history_default_limit > m.history_max_limit.get() {
            return Err(invalid(
                "messages.history_default_limit",
                "must be between 1 and messages.history_max_limit",
            ));
        }
        Ok(())
    }

    fn validate_antispam(&self) -> Result<(), ConfigError> {
        let a = &self.antispam;
        if a.mute_steps_secs.is_empty() || a.mute_steps_secs.contains(&0) {
            return Err(invalid(
                "antispam.mute_steps_secs",
                "must be a non-empty list of positive durations",
            ));
        }
        Ok(())
    }

    /// The keys that bound abuse: groups, conversation pages, people search, anti-spam events.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        if self.conversations.page_default_limit.get() > self.conversations.page_max_limit {
            return Err(invalid(
                "conversations.page_default_limit",
                "must not exceed conversations.page_max_limit",
            ));
        }
        if self.auth.device_cookie_name.is_empty()
            || self.auth.device_cookie_name == self.session.cookie_name
        {
            return Err(invalid(
                "auth.device_cookie_name",
                "must be non-empty and differ from session.cookie_name",
            ));
        }
        if self.ws.max_reply_bytes < 16 * 1024 {
            return Err(invalid("ws.max_reply_bytes", "must be at least 16384"));
        }
        if self.ws.max_outbound_bytes < self.ws.max_reply_bytes {
            return Err(invalid(
                "ws.max_outbound_bytes",
                "must be at least ws.max_reply_bytes",
            ));
        }
        Ok(())
    }

    /// The keys of `[files]`.
    fn validate_files(&self) -> Result<(), ConfigError> {
        let f = &self.files;
        let chunk = f.chunk_bytes.get();
        if !(1024..=8 * 1024 * 1024).contains(&chunk) {
            return Err(invalid(
                "files.chunk_bytes",
                "must be from 1024 to 8388608 (GridFS keeps each chunk in one document)",
            ));
        }
        if f.max_bytes > f.quota_bytes_per_user {
            return Err(invalid(
                "files.max_bytes",
                "must not exceed files.quota_bytes_per_user",
            ));
        }
        if !(16..=4096).contains(&f.thumbnail_px.get()) {
            return Err(invalid("files.thumbnail_px", "must be from 16 to 4096"));
        }
        if f.store == FileBackend::Disk && f.dir.as_os_str().is_empty() {
            return Err(invalid(
                "files.dir",
                "must name a folder with files.store = \"disk\"",
            ));
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
        Ok(())
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
