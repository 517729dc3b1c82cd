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
