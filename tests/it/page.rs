//! The browser client is served by the server itself, with a strict Content Security Policy.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_chat_page_and_its_assets_are_served_with_security_headers() {
    let app = spawn_app().await;
    for (path, content_type, marker) in [
        ("/", "text/html", "data-testid=\"composer\""),
        ("/app.js", "text/javascript", "op_type"),
        ("/app.css", "text/css", ".messages"),
    ] {
        let resp = app.get(&app.client, path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        let body = resp.text().await.unwrap();
        assert!(body.contains(marker), "{path}");
    }
}

#[tokio::test]
async fn the_page_has_no_inline_script_and_no_other_origin() {
    let app = spawn_app().await;
    let html = app.get(&app.client, "/").await.text().await.unwrap();
    assert!(!html.contains("<script>"), "inline script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
}
