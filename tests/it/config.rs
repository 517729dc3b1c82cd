//! Startup configuration: bad values stop startup with the key named.

use std::io::Write;
use std::path::Path;

use chat_server::config::{Mode, Settings};
use secrecy::ExposeSecret;

use crate::helpers::test_settings;

fn load_with_overlay(toml: &str) -> Result<Settings, String> {
    let mut file = tempfile();
    file.1.write_all(toml.as_bytes()).unwrap();
    Settings::load_from(&[
        Path::new("conf/config.toml"),
        Path::new("conf/test.toml"),
        &file.0,
    ])
    .map_err(|e| e.to_string())
}

/// A uniquely named overlay file in the target directory.
fn tempfile() -> (std::path::PathBuf, std::fs::File) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("config-{}.toml", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}

#[test]
fn the_shipped_config_loads() {
    let settings = test_settings();
    assert_eq!(settings.server.mode, Mode::Production);
    assert!(settings.auth.bcrypt_cost >= 4);
}

#[test]
fn the_shipped_defaults_refuse_to_run_in_production_without_a_secret() {
    let err = Settings::load_from(&[Path::new("conf/config.toml")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("session.secret"), "{err}");
}

#[test]
fn dev_mode_generates_a_secret() {
    let settings =
        load_with_overlay("[server]\nmode = \"dev\"\n[session]\nsecret = \"short\"\n").unwrap();
    assert!(settings.session.secret_generated);
    assert!(settings.session.secret.expose_secret().len() >= 64);
}

#[test]
fn a_short_secret_is_refused_in_production() {
    let err = load_with_overlay("[session]\nsecret = \"short\"\n").unwrap_err();
    assert!(err.contains("session.secret"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    for (toml, key) in [
        ("[server]\naddr = \"not an address\"\n", "server.addr"),
        ("[auth]\nbcrypt_cost = 99\n", "auth.bcrypt_cost"),
        (
            "[auth]\nlogin_per_ip_per_minute = 0\n",
            "auth.login_per_ip_per_minute",
        ),
        ("[redis]\nurl = \"http://x\"\n", "redis.url"),
        ("[mysql]\nurl = \"postgres://x\"\n", "mysql.url"),
        ("[mongodb]\nuri = \"http://x\"\n", "mongodb.uri"),
        ("[session]\nttl_secs = \"soon\"\n", "session.ttl_secs"),
        ("[ws]\npipeline_depth = 0\n", "ws.pipeline_depth"),
        ("[mysql]\nmax_connections = 0\n", "mysql.max_connections"),
        ("[messages]\nbatch_max = 0\n", "messages.batch_max"),
        ("[antispam]\nrate_limit = 0\n", "antispam.rate_limit"),
        (
            "[cache]\ninvalidation_wait_ms = 0\n",
            "cache.invalidation_wait_ms",
        ),
        ("[mail]\ncode_ttl_secs = 0\n", "mail.code_ttl_secs"),
        (
            "[people]\nsearch_min_chars = 0\n",
            "people.search_min_chars",
        ),
        ("[server]\naddr = \"127.0.0.1\"\n", "server.addr"),
        (
            "[server]\nallowed_origins = [\"example.com\"]\n",
            "server.allowed_origins",
        ),
    ] {
        let err = load_with_overlay(toml).unwrap_err();
        assert!(err.contains(key), "{key} not named in: {err}");
    }
}
