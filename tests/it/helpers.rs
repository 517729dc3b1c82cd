//! `spawn_app()` and typed clients, so each test reads like the scenario it checks.

use std::path::Path;

use chat_server::config::Settings;
use chat_server::startup::Application;
use reqwest::{Client, Response, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::Connection;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    /// A client with its own cookie jar (one browser).
    pub client: Client,
}

pub fn test_settings() -> Settings {
    Settings::load_from(&[Path::new("conf/config.toml"), Path::new("conf/test.toml")])
        .expect("conf/config.toml + conf/test.toml load")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server with isolated data; `customize` adjusts the settings first.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings();
    let id = uuid::Uuid::new_v4().simple().to_string();
    settings.mysql.url = create_database(settings.mysql.url.expose_secret(), &id)
        .await
        .into();
    settings.redis.key_prefix = format!("test:{id}:");
    settings.mongodb.database = format!("chat_t_{id}");
    settings.session.secret = chat_server::config::random_secret();
    customize(&mut settings);
    let app = Application::build(settings.clone())
        .await
        .expect("the application starts against the test services");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        settings,
        client: new_client(),
    }
}

/// A fresh database on the test MariaDB; returns the URL of it.
async fn create_database(base_url: &str, id: &str) -> String {
    let mut conn = sqlx::MySqlConnection::connect(base_url)
        .await
        .expect("the test MariaDB answers (run scripts/services.sh --test up)");
    let name = format!("chat_t_{id}");
    sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let (server, _) = base_url.rsplit_once('/').expect("mysql url has a database");
    format!("{server}/{name}")
}

pub fn new_client() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

pub async fn json_of(resp: Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.expect("response body");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text}"))
}

/// Asserts the error shape every failure shares and returns the body.
pub async fn expect_error(resp: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status, "status");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error bodies are JSON"
    );
    let body = json_of(resp).await;
    assert_eq!(body["code"], code, "code in {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message in {body}"
    );
    body
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post(&self, client: &Client, path: &str, body: &Value) -> Response {
        client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, client: &Client, path: &str) -> Response {
        client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// `GET /metrics` with the configured bearer token; asserts 200 and returns the text.
    pub async fn metrics(&self) -> String {
        let resp = new_client()
            .get(self.url("/metrics"))
            .bearer_auth(self.settings.metrics.token.expose_secret())
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status(), StatusCode::OK, "GET /metrics");
        resp.text().await.expect("metrics text")
    }

    pub async fn register(&self, user_name: &str) -> Response {
        self.post(
            &self.client,
            "/user/register",
            &json!({"user_name": user_name, "password": PASSWORD, "nick_name": user_name}),
        )
        .await
    }

    pub async fn login_with(&self, client: &Client, user_name: &str, password: &str) -> Response {
        self.post(
            client,
            "/user/login",
            &json!({"user_name": user_name, "password": password}),
        )
        .await
    }

    /// Registers `user_name` and logs `client` in as them; returns the user object.
    pub async fn register_and_login(&self, client: &Client, user_name: &str) -> Value {
        let resp = self.register(user_name).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "register {user_name}");
        let resp = self.login_with(client, user_name, PASSWORD).await;
        assert_eq!(resp.status(), StatusCode::OK, "login {user_name}");
        json_of(resp).await["user"].clone()
    }

    /// The session cookie a login response set, as a `Cookie` header value.
    pub fn session_cookie(&self, resp: &Response) -> String {
        let name = &self.settings.session.cookie_name;
        let cookie = resp
            .cookies()
            .find(|c| c.name() == name)
            .expect("the response sets the session cookie");
        format!("{name}={}", cookie.value())
    }

    /// GET /user/me with exactly this cookie (no jar).
    pub async fn me_with_cookie(&self, cookie: &str) -> Response {
        Client::new()
            .get(self.url("/user/me"))
            .header("cookie", cookie)
            .send()
            .await
            .expect("request sent")
    }
}

/// A second server process (in this test process) over the same data as `first`: same MySQL
/// database, Redis prefix, MongoDB database and session secret, on another port.
pub async fn spawn_app_sharing(first: &TestApp) -> TestApp {
    let settings = first.settings.clone();
    let app = Application::build(settings.clone())
        .await
        .expect("a second node starts against the same services");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        settings,
        client: new_client(),
    }
}

/// The `chat-server` binary running as its own OS process over the same data as another app.
/// Killed when dropped.
pub struct ProcessNode {
    pub app: TestApp,
    _child: tokio::process::Child,
}

impl ProcessNode {
    /// The OS process id of the server.
    pub fn pid(&self) -> u32 {
        self._child
            .id()
            .expect("the chat-server process is running")
    }
}

/// Starts the built binary with the first app's backends and secret (from the environment,
/// on top of conf/config.toml), and waits for its "chat-server listening" log line.
pub async fn spawn_process_node(first: &TestApp) -> ProcessNode {
    use tokio::io::AsyncBufReadExt;

    let s = &first.settings;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env_remove("CHAT_CONFIG")
        .env("CHAT__SERVER__ADDR", "127.0.0.1:0")
        .env("CHAT__SERVER__WORKERS", "2")
        .env("CHAT__MYSQL__URL", s.mysql.url.expose_secret())
        .env("CHAT__REDIS__URL", s.redis.url.expose_secret())
        .env(
            "CHAT__REDIS__MODE",
            match s.redis.mode {
                chat_server::config::RedisMode::Standalone => "standalone",
                chat_server::config::RedisMode::Cluster => "cluster",
            },
        )
        .env(
            "CHAT__REDIS__URLS",
            s.redis
                .urls
                .iter()
                .map(|u| u.expose_secret().to_owned())
                .collect::<Vec<_>>()
                .join(","),
        )
        .env("CHAT__REDIS__KEY_PREFIX", &s.redis.key_prefix)
        .env("CHAT__MONGODB__URI", s.mongodb.uri.expose_secret())
        .env("CHAT__MONGODB__DATABASE", &s.mongodb.database)
        .env("CHAT__SESSION__SECRET", s.session.secret.expose_secret())
        .env("CHAT__AUTH__BCRYPT_COST", "4")
        .envs(antispam_env(&s.antispam))
        .env("CHAT__WS__OUTBOUND_QUEUE", s.ws.outbound_queue.to_string())
        .env(
            "CHAT__WS__MAX_OUTBOUND_BYTES",
            s.ws.max_outbound_bytes.to_string(),
        )
        .env("CHAT__LOG__FORMAT", "json")
        .env("CHAT__LOG__FILTER", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the chat-server binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let port = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read the server's stdout") {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if entry["fields"]["message"] == "chat-server listening" {
                return entry["fields"]["port"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("a port in {line}"));
            }
        }
        panic!("the chat-server process ended before it was listening");
    })
    .await
    .expect("the chat-server process listens within 30 s");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    ProcessNode {
        app: TestApp {
            address: format!("http://127.0.0.1:{port}"),
            settings: first.settings.clone(),
            client: new_client(),
        },
        _child: child,
    }
}

/// The anti-spam settings as environment overrides, so a process node applies the same rules
/// as the in-process app it joins.
fn antispam_env(a: &chat_server::config::AntispamSettings) -> Vec<(String, String)> {
    let list = |values: &[u64]| {
        values
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    [
        ("UNANSWERED_LIMIT", a.unanswered_limit.to_string()),
        (
            "UNANSWERED_WINDOW_SECS",
            a.unanswered_window_secs.to_string(),
        ),
        ("UNANSWERED_BLOCK_SECS", a.unanswered_block_secs.to_string()),
        ("RATE_LIMIT", a.rate_limit.to_string()),
        ("RATE_WINDOW_SECS", a.rate_window_secs.to_string()),
        ("DUPLICATE_LIMIT", a.duplicate_limit.to_string()),
        ("DUPLICATE_WINDOW_SECS", a.duplicate_window_secs.to_string()),
        ("GROUP_RATE_LIMIT", a.group_rate_limit.to_string()),
        (
            "GROUP_RATE_WINDOW_SECS",
            a.group_rate_window_secs.to_string(),
        ),
        ("MUTE_STEPS_SECS", list(&a.mute_steps_secs)),
        ("STRIKE_WINDOW_SECS", a.strike_window_secs.to_string()),
        ("LOCAL_PER_SEC", a.local_per_sec.to_string()),
        ("LOCAL_BURST", a.local_burst.to_string()),
        ("LOCAL_CLOSE_AFTER", a.local_close_after.to_string()),
        ("EXEMPT_USER_IDS", list(&a.exempt_user_ids)),
    ]
    .into_iter()
    // An empty list is the default; an empty variable would read as one empty element.
    .filter(|(_, value)| !value.is_empty())
    .map(|(key, value)| (format!("CHAT__ANTISPAM__{key}"), value))
    .collect()
}
