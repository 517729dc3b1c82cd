//! Uploads: what `POST /files` keeps and answers, how downloads are served (headers, ranges,
//! HEAD), the limits, both stores, two processes, deleting and the sweep of orphans.

use std::time::Duration;

use chat_server::config::FileBackend;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::Connection;

use crate::files_support::{
    binary, download, file_id, header, png, send_file_to, sha256_hex, upload, upload_ok,
};
use crate::helpers::{expect_error, json_of, spawn_app, spawn_app_sharing, spawn_app_with};
use crate::ws_client::{DELIVERED, STORED_OFFLINE};

/// The number a `SELECT COUNT(*) ...` answers.
async fn count(db: &mut sqlx::MySqlConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

/// The body is exactly `expected` (compared without printing kilobytes on a failure).
async fn same_bytes(resp: reqwest::Response, expected: &[u8]) {
    let status = resp.status();
    let got = resp.bytes().await.unwrap();
    assert!(
        got.as_ref() == expected,
        "{status}: {} bytes, expected {}: {:?}",
        got.len(),
        expected.len(),
        String::from_utf8_lossy(&got[..got.len().min(200)])
    );
}

#[tokio::test]
async fn files_an_uploaded_png_is_described_measured_and_served_back() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bytes = png(640, 480);
    let file = upload_ok(&app, &alice, bytes.clone(), "holiday photo.png").await;
    let id = file_id(&file);
    assert_eq!(id.len(), 24, "{file}");
    assert_eq!(file["mime"], "image/png");
    assert_eq!(file["size"], bytes.len() as u64);
    assert_eq!(file["name"], "holiday photo.png");
    assert_eq!(file["sha256"], sha256_hex(&bytes));
    assert_eq!(
        (file["width"].as_u64(), file["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert_eq!(file["thumbnail"], format!("/files/{id}/thumbnail"));
    assert!(chrono::DateTime::parse_from_rfc3339(file["created_at"].as_str().unwrap()).is_ok());

    let resp = download(&app, &alice.http, &id, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "image/png");
    assert_eq!(header(&resp, "content-length"), bytes.len().to_string());
    assert_eq!(header(&resp, "etag"), format!("\"{}\"", sha256_hex(&bytes)));
    assert_eq!(header(&resp, "cache-control"), "private");
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert!(header(&resp, "content-disposition").starts_with("inline"));
    same_bytes(resp, bytes.as_slice()).await;

    // The client's copy is current: 304.
    let resp = alice
        .http
        .get(app.url(&format!("/files/{id}")))
        .header("If-None-Match", format!("\"{}\"", sha256_hex(&bytes)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    let resp = alice
        .http
        .head(app.url(&format!("/files/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), bytes.len().to_string());
    assert_eq!(header(&resp, "content-type"), "image/png");
    assert!(resp.bytes().await.unwrap().is_empty(), "HEAD has no body");

    let resp = alice
        .http
        .get(app.url(&format!("/files/{id}/thumbnail")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), "image/jpeg");
    assert_eq!(header(&resp, "x-content-type-options"), "nosniff");
    let thumb = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (thumb.width(), thumb.height()),
        (320, 240),
        "longest side 320"
    );

    let mine = json_of(app.get(&alice.http, "/files").await).await;
    assert_eq!(mine["files"][0]["id"], id.as_str(), "{mine}");
    assert_eq!(mine["used_bytes"], bytes.len() as u64);
    assert_eq!(mine["quota_bytes"], 1_073_741_824u64);
    assert_eq!(mine["has_more"], false);
}

#[tokio::test]
async fn files_the_type_comes_from_the_bytes_never_from_the_name() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let file = upload_ok(&app, &alice, png(8, 8), "notes.txt").await;
    assert_eq!(file["mime"], "image/png", "a PNG named .txt is a PNG");
    assert_eq!(file["width"], 8);

    let html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>".to_vec();
    let file = upload_ok(&app, &alice, html.clone(), "cat.png").await;
    assert_eq!(file["mime"], "text/html", "HTML named .png is HTML: {file}");
    assert_eq!(file["width"], serde_json::Value::Null);
    assert_eq!(file["thumbnail"], serde_json::Value::Null);
    let resp = download(&app, &alice.http, &file_id(&file), None).await;
    assert_eq!(header(&resp, "content-type"), "text/html");
    assert!(
        header(&resp, "content-disposition").starts_with("attachment"),
        "never shown inline"
    );
    assert!(header(&resp, "content-security-policy").contains("sandbox"));
    same_bytes(resp, html.as_slice()).await;
    let resp = alice
        .http
        .get(app.url(&format!("/files/{}/thumbnail", file_id(&file))))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;

    // The part `name` wins over the part's file name, and is made safe.
    let form = Form::new()
        .part(
            "file",
            Part::bytes(b"plain text".to_vec()).file_name("a.txt"),
        )
        .text("name", "../../etc/pass\u{7}wd\r\n");
    let resp = alice
        .http
        .post(app.url("/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let file = json_of(resp).await["file"].clone();
    assert_eq!(file["name"], "passwd");
    assert_eq!(file["mime"], "text/plain");
    let long = format!("{}.bin", "ü".repeat(300));
    let file = upload_ok(&app, &alice, binary(10), &long).await;
    assert!(file["name"].as_str().unwrap().len() <= 255, "{file}");
    assert_eq!(file["mime"], "application/octet-stream");
}

#[tokio::test]
async fn files_ranges_serve_parts_and_refuse_what_is_outside() {
    // Small chunks: ranges cross chunk boundaries in GridFS.
    let app = spawn_app_with(|s| s.files.chunk_bytes = nz!(1024)).await;
    let alice = app.chatter("alice").await;
    let bytes = binary(5000);
    let id = file_id(&upload_ok(&app, &alice, bytes.clone(), "data.bin").await);
    let get = |range: &'static str| {
        let (app, http, id) = (&app, alice.http.clone(), id.clone());
        async move { download(app, &http, &id, Some(range)).await }
    };

    let resp = get("bytes=0-99").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 0-99/5000");
    assert_eq!(header(&resp, "content-length"), "100");
    assert!(header(&resp, "content-disposition").starts_with("attachment"));
    same_bytes(resp, &bytes[..100]).await;

    let resp = get("bytes=1000-3100").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 1000-3100/5000");
    same_bytes(resp, &bytes[1000..=3100]).await;

    let resp = get("bytes=-10").await;
    assert_eq!(header(&resp, "content-range"), "bytes 4990-4999/5000");
    same_bytes(resp, &bytes[4990..]).await;

    let resp = get("bytes=4096-").await;
    assert_eq!(header(&resp, "content-range"), "bytes 4096-4999/5000");
    same_bytes(resp, &bytes[4096..]).await;

    // Past the end: clamped; starting past the end: 416.
    let resp = get("bytes=4990-9999").await;
    assert_eq!(header(&resp, "content-range"), "bytes 4990-4999/5000");
    let resp = get("bytes=5000-").await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, "content-range"), "bytes */5000");
    expect_error(
        resp,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
    )
    .await;

    // Several ranges, or a header that is not one: the whole file.
    for whole in ["bytes=0-1,10-11", "pages=1-2"] {
        let resp = get(whole).await;
        assert_eq!(resp.status(), StatusCode::OK, "{whole}");
        assert_eq!(resp.bytes().await.unwrap().len(), 5000);
    }
}

#[tokio::test]
async fn files_limits_refuse_too_large_over_quota_and_too_many() {
    let app = spawn_app_with(|s| {
        s.files.max_bytes = nz!(2000);
        s.files.quota_bytes_per_user = nz!(5000);
        s.antispam.uploads_limit = nz!(4);
    })
    .await;
    let alice = app.chatter("alice").await;
    let resp = upload(&app, &alice.http, binary(2001), "big.bin").await;
    let body = expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert!(body["message"].as_str().unwrap().contains("2000"), "{body}");
    upload_ok(&app, &alice, binary(2000), "one.bin").await;
    upload_ok(&app, &alice, binary(2000), "two.bin").await;
    // 4000 of 5000 used: 1500 more is over the quota, found while the body streams.
    let resp = upload(&app, &alice.http, binary(1500), "three.bin").await;
    expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded").await;
    // The fifth upload in the window: refused by the rule before anything is read.
    let resp = upload(&app, &alice.http, binary(10), "four.bin").await;
    let body = expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(body["rule"], "uploads");

    // The refused uploads left nothing.
    let mine = json_of(app.get(&alice.http, "/files").await).await;
    assert_eq!(mine["files"].as_array().unwrap().len(), 2, "{mine}");
    assert_eq!(mine["used_bytes"], 4000);
    // Others have their own quota and rule.
    let bob = app.chatter("bob").await;
    upload_ok(&app, &bob, binary(2000), "bobs.bin").await;
}

#[tokio::test]
async fn files_bad_forms_are_answered_400() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let body = expect_error(
        upload(&app, &alice.http, Vec::new(), "empty.txt").await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "file");

    let form = Form::new().text("name", "no file here");
    let resp = alice
        .http
        .post(app.url("/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let body = expect_error(resp, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(body["field"], "file");

    let resp = app.post(&alice.http, "/files", &json!({"file": "x"})).await;
    expect_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;

    let resp = alice
        .http
        .post(app.url("/files"))
        .header("Content-Type", "multipart/form-data; boundary=xyz")
        .body("")
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;

    let anonymous = crate::helpers::new_client();
    let resp = upload(&app, &anonymous, png(4, 4), "a.png").await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let mine = json_of(app.get(&alice.http, "/files").await).await;
    assert_eq!(mine["used_bytes"], 0, "nothing kept: {mine}");
}

/// A PNG whose header says `width` x `height` (valid chunks, CRCs and all) and whose pixel
/// data is a few bytes: what a decompression bomb looks like before it is decoded.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

#[tokio::test]
async fn files_images_that_do_not_decode_or_are_too_large_are_refused() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
    fake.extend_from_slice(&binary(500));
    let body = expect_error(
        upload(&app, &alice.http, fake, "fake.png").await,
        StatusCode::BAD_REQUEST,
        "invalid_image",
    )
    .await;
    assert!(!body["message"].as_str().unwrap().is_empty());

    let whole = png(64, 64);
    expect_error(
        upload(
            &app,
            &alice.http,
            whole[..whole.len() - 40].to_vec(),
            "cut.png",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_image",
    )
    .await;

    // 20000 x 20000 = 400 megapixels, over the default 40: refused from the header alone.
    let body = expect_error(
        upload(&app, &alice.http, png_claiming(20_000, 20_000), "bomb.png").await,
        StatusCode::BAD_REQUEST,
        "invalid_image",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("20000 x 20000"),
        "refused for its size: {body}"
    );
    let mine = json_of(app.get(&alice.http, "/files").await).await;
    assert_eq!(mine["used_bytes"], 0, "nothing kept: {mine}");
}

#[tokio::test]
async fn files_the_disk_store_keeps_serves_and_deletes_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("var/test/files")
        .join(uuid::Uuid::new_v4().simple().to_string());
    let in_dir = dir.clone();
    let app = spawn_app_with(move |s| {
        s.files.store = FileBackend::Disk;
        s.files.dir = in_dir;
        s.files.chunk_bytes = nz!(1024);
    })
    .await;
    let alice = app.chatter("alice").await;
    let bytes = png(300, 200);
    let file = upload_ok(&app, &alice, bytes.clone(), "disk.png").await;
    let id = file_id(&file);
    assert_eq!(file["width"], 300);
    let folder = dir.join(&id[22..]);
    let on_disk = folder.join(&id);
    assert!(
        std::fs::read(&on_disk).unwrap() == bytes,
        "the bytes are under files.dir"
    );

    let resp = download(&app, &alice.http, &id, None).await;
    same_bytes(resp, bytes.as_slice()).await;
    let resp = download(&app, &alice.http, &id, Some("bytes=1000-2500")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    same_bytes(resp, &bytes[1000..=2500]).await;
    let resp = alice
        .http
        .get(app.url(&format!("/files/{id}/thumbnail")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let thumb = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (300, 200), "already small");

    let resp = app.delete(&alice.http, &format!("/files/{id}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!on_disk.exists(), "deleting removes the bytes");
    assert!(!folder.join(format!("{id}.thumb")).exists());
    let leftovers: Vec<_> = std::fs::read_dir(&folder).unwrap().collect();
    assert!(leftovers.is_empty(), "no partial files: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn files_a_file_uploaded_through_one_process_downloads_through_another() {
    let a = spawn_app().await;
    let b = spawn_app_sharing(&a).await;
    let alice = a.chatter("alice").await;
    let bob = b.chatter("bob").await;
    let bytes = png(50, 40);
    let id = file_id(&upload_ok(&a, &alice, bytes.clone(), "shared.png").await);
    let mut alice_ws = a.connect_ws(&alice).await;
    let reply = send_file_to(&mut alice_ws, &bob.id, 2, &id).await;
    assert!(
        [DELIVERED, STORED_OFFLINE].contains(&reply.code),
        "{}",
        reply.raw
    );
    let resp = download(&b, &bob.http, &id, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    same_bytes(resp, bytes.as_slice()).await;
    let resp = download(&b, &alice.http, &id, Some("bytes=0-9")).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
}

#[tokio::test]
async fn files_delete_removes_an_unreferenced_upload_and_refuses_a_referenced_one() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let loose = file_id(&upload_ok(&app, &alice, binary(100), "loose.bin").await);
    let sent = file_id(&upload_ok(&app, &alice, binary(100), "sent.bin").await);
    let mut ws = app.connect_ws(&alice).await;
    send_file_to(&mut ws, &bob.id, 6, &sent).await;

    let resp = app.delete(&bob.http, &format!("/files/{loose}")).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = app.delete(&alice.http, &format!("/files/{sent}")).await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;
    let resp = app.delete(&alice.http, &format!("/files/{loose}")).await;
    assert_eq!(json_of(resp).await["status"], "deleted");
    let resp = download(&app, &alice.http, &loose, None).await;
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let mine = json_of(app.get(&alice.http, "/files").await).await;
    assert_eq!(mine["used_bytes"], 100, "the quota is given back: {mine}");
}

#[tokio::test]
async fn files_uploads_no_message_carries_are_swept_after_their_time() {
    let app = spawn_app_with(|s| s.files.sweep_interval_secs = nz!(1)).await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let orphan = file_id(&upload_ok(&app, &alice, png(10, 10), "orphan.png").await);
    let young = file_id(&upload_ok(&app, &alice, binary(50), "young.bin").await);
    let carried = file_id(&upload_ok(&app, &alice, binary(60), "carried.bin").await);
    let mut ws = app.connect_ws(&alice).await;
    send_file_to(&mut ws, &bob.id, 6, &carried).await;

    // Two days old, as far as the sweep can tell.
    let mut db = sqlx::MySqlConnection::connect(app.settings.mysql.url.expose_secret())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE files SET orphan_since = orphan_since - INTERVAL 2 DAY, \
         created_at = created_at - INTERVAL 2 DAY WHERE id IN (?, ?)",
    )
    .bind(&orphan)
    .bind(&carried)
    .execute(&mut db)
    .await
    .unwrap();

    eventually!(
        15,
        "the orphan was never swept",
        download(&app, &alice.http, &orphan, None).await.status() == StatusCode::NOT_FOUND
    );
    for kept in [&young, &carried] {
        let resp = download(&app, &alice.http, kept, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "{kept} is kept");
    }
    assert_eq!(count(&mut db, "SELECT COUNT(*) FROM files").await, 2);
    // The bytes went too: no chunks of the orphan or its thumbnail are left.
    let mongo = mongodb::Client::with_uri_str(app.settings.mongodb.uri.expose_secret())
        .await
        .unwrap()
        .database(&app.settings.mongodb.database);
    let left = mongo
        .collection::<mongodb::bson::Document>("uploads.files")
        .find_one(mongodb::bson::doc! { "_id": { "$in": [&orphan, format!("{orphan}.thumb")] } })
        .await
        .unwrap();
    assert!(left.is_none(), "GridFS still has {left:?}");
}

/// A `POST /files` whose body the test feeds by hand: `send` more of it, or drop it to stall.
fn streamed_upload(
    app: &crate::helpers::TestApp,
    http: &reqwest::Client,
) -> (
    tokio::sync::mpsc::Sender<Vec<u8>>,
    tokio::task::JoinHandle<reqwest::Response>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    }));
    let request = http
        .post(app.url("/files"))
        .header("Content-Type", "multipart/form-data; boundary=XyZ")
        .body(body);
    let handle = tokio::spawn(async move { request.send().await.expect("upload sent") });
    (tx, handle)
}

const PART_HEAD: &[u8] =
    b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.bin\"\r\n\r\n";

#[tokio::test]
async fn files_an_upload_that_pauses_too_long_is_cut_off_and_leaves_nothing() {
    let app = spawn_app_with(|s| s.files.upload_idle_secs = nz!(1)).await;
    let alice = app.chatter("alice").await;
    let (tx, sent) = streamed_upload(&app, &alice.http);
    tx.send(PART_HEAD.to_vec()).await.unwrap();
    tx.send(binary(1000)).await.unwrap();
    // ... and nothing more, the connection kept open.
    let resp = tokio::time::timeout(Duration::from_secs(10), sent)
        .await
        .expect("answered while the body is still open")
        .unwrap();
    expect_error(resp, StatusCode::REQUEST_TIMEOUT, "request_timeout").await;
    drop(tx);
    let mine = json_of(app.get(&alice.http, "/files").await).await;
    assert_eq!(mine["used_bytes"], 0, "{mine}");
    let mut db = sqlx::MySqlConnection::connect(app.settings.mysql.url.expose_secret())
        .await
        .unwrap();
    assert_eq!(
        count(&mut db, "SELECT COUNT(*) FROM files").await,
        0,
        "no record of it is left"
    );
}

#[tokio::test]
async fn files_uploads_in_progress_at_once_are_capped_per_user() {
    let app = spawn_app_with(|s| s.files.max_uploads_in_flight_per_user = nz!(1)).await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let (tx, sent) = streamed_upload(&app, &alice.http);
    tx.send(PART_HEAD.to_vec()).await.unwrap();
    tx.send(binary(100)).await.unwrap();
    // Wait until the server has it in progress (its record, state 1 uploading, is there).
    let mut db = sqlx::MySqlConnection::connect(app.settings.mysql.url.expose_secret())
        .await
        .unwrap();
    eventually!(
        10,
        "the upload never started",
        count(&mut db, "SELECT COUNT(*) FROM files WHERE state = 1").await == 1
    );
    let resp = upload(&app, &alice.http, binary(10), "second.bin").await;
    let body = expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(body["rule"], "uploads_in_flight");
    upload_ok(&app, &bob, binary(10), "bobs.bin").await;
    tx.send(b"\r\n--XyZ--\r\n".to_vec()).await.unwrap();
    drop(tx);
    let resp = sent.await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(json_of(resp).await["file"]["size"], 100);
    upload_ok(&app, &alice, binary(10), "third.bin").await;
}

#[tokio::test]
async fn files_forms_of_many_parts_or_too_large_bodies_are_refused() {
    let app = spawn_app_with(|s| {
        s.files.max_bytes = nz!(1000);
        s.files.quota_bytes_per_user = nz!(100_000);
    })
    .await;
    let alice = app.chatter("alice").await;
    let mut form = Form::new();
    for i in 0..9 {
        form = form.text(format!("extra{i}"), "x");
    }
    let resp = alice
        .http
        .post(app.url("/files"))
        .multipart(form.part("file", Part::bytes(binary(10)).file_name("f.bin")))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    // A declared length past the limit is refused before the body is read (sent by hand: the
    // answer comes while the client would still be sending).
    let head = raw_post_files(&app, &alice.cookie, "Content-Length: 200000\r\n", b"").await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("payload_too_large"), "{head}");
    // A preamble that never ends is cut off at the limit too: one byte past the file's limit
    // and the form's 64 KiB.
    let past = vec![b'a'; 1000 + 64 * 1024 + 1];
    let mut chunk = format!("{:x}\r\n", past.len()).into_bytes();
    chunk.extend_from_slice(&past);
    chunk.extend_from_slice(b"\r\n");
    let head = raw_post_files(
        &app,
        &alice.cookie,
        "Transfer-Encoding: chunked\r\n",
        &chunk,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("payload_too_large"), "{head}");
}

/// A `POST /files` written on a socket by hand (`headers` added to the request head, then
/// `body`, and nothing more): the answer as text.
async fn raw_post_files(
    app: &crate::helpers::TestApp,
    cookie: &str,
    headers: &str,
    body: &[u8],
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /files HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\n{headers}\r\n"
    )
    .into_bytes();
    request.extend_from_slice(body);
    socket.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The head and its Content-Length of body; the server may keep the connection open after.
    let complete = |answer: &[u8]| {
        let text = String::from_utf8_lossy(answer);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        body.len() >= length
    };
    while !complete(&answer) {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn files_a_file_whose_send_is_on_its_way_cannot_be_deleted() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let bob = app.chatter("bob").await;
    let id = file_id(&upload_ok(&app, &alice, binary(40), "f.bin").await);
    let mut ws = app.connect_ws(&alice).await;
    ws.send_to_with_id(&bob.id, "first", "c-1").await;
    // A send that gets as far as marking the file, then is refused (client_msg_id reused).
    let reply = ws
        .request(json!({
            "op_type": 1, "to": bob.id, "type": 6, "attachment": { "file_id": id },
            "client_msg_id": "c-1"
        }))
        .await;
    reply.expect(40009);
    let resp = app.delete(&alice.http, &format!("/files/{id}")).await;
    expect_error(resp, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn files_the_sweep_removes_what_an_upload_cut_off_by_a_crash_left() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("var/test/files")
        .join(uuid::Uuid::new_v4().simple().to_string());
    let in_dir = dir.clone();
    let app = spawn_app_with(move |s| {
        s.files.store = FileBackend::Disk;
        s.files.dir = in_dir;
        s.files.sweep_interval_secs = nz!(1);
    })
    .await;
    let alice = app.chatter("alice").await;
    // What a process that died mid-upload leaves: a pending record and a partial file.
    let id = "00112233445566778899aabb";
    let partial = dir.join("bb").join(format!("{id}.part"));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, binary(500)).unwrap();
    let mut db = sqlx::MySqlConnection::connect(app.settings.mysql.url.expose_secret())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO files (id, owner_id, state, orphan_since, created_at) \
         VALUES (?, ?, 1, NOW(3) - INTERVAL 1 DAY, NOW(3) - INTERVAL 1 DAY)",
    )
    .bind(id)
    .bind(alice.id.parse::<u64>().unwrap())
    .execute(&mut db)
    .await
    .unwrap();
    eventually!(15, "the partial file was never swept", !partial.exists());
    eventually!(
        5,
        "the pending record stays",
        count(&mut db, "SELECT COUNT(*) FROM files").await == 0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn files_my_uploads_are_listed_newest_first_in_pages() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(file_id(
            &upload_ok(&app, &alice, binary(10 + i), &format!("f{i}.bin")).await,
        ));
    }
    let page = json_of(app.get(&alice.http, "/files?limit=2").await).await;
    let listed: Vec<&str> = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[2].as_str(), ids[1].as_str()], "{page}");
    assert_eq!(page["has_more"], true);
    assert_eq!(page["used_bytes"], 10 + 11 + 12);
    let next = json_of(
        app.get(&alice.http, &format!("/files?limit=2&before={}", ids[1]))
            .await,
    )
    .await;
    assert_eq!(next["files"][0]["id"], ids[0].as_str(), "{next}");
    assert_eq!(next["has_more"], false);
    let bob = app.chatter("bob").await;
    let theirs = json_of(app.get(&bob.http, "/files").await).await;
    assert!(
        theirs["files"].as_array().unwrap().is_empty(),
        "only one's own"
    );
    let resp = app.get(&alice.http, "/files?limit=0").await;
    expect_error(resp, StatusCode::BAD_REQUEST, "validation_failed").await;
}

/// `img` encoded as `format`.
fn encoded(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .expect("the test image encodes");
    out.into_inner()
}

#[tokio::test]
async fn files_jpeg_gif_and_webp_images_are_measured_and_thumbnailed_too() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    let img = image::DynamicImage::ImageRgba8(image::ImageBuffer::from_fn(400, 100, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 9, 255])
    }));
    for (format, mime) in [
        (image::ImageFormat::Jpeg, "image/jpeg"),
        (image::ImageFormat::Gif, "image/gif"),
        (image::ImageFormat::WebP, "image/webp"),
    ] {
        let bytes = match format {
            image::ImageFormat::Jpeg => {
                encoded(image::DynamicImage::ImageRgb8(img.to_rgb8()), format)
            }
            _ => encoded(img.clone(), format),
        };
        let file = upload_ok(&app, &alice, bytes, "picture").await;
        assert_eq!(file["mime"], mime, "{file}");
        assert_eq!(
            (file["width"].as_u64(), file["height"].as_u64()),
            (Some(400), Some(100))
        );
        let resp = alice
            .http
            .get(app.url(&format!("/files/{}/thumbnail", file_id(&file))))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{mime}");
        let thumb = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 80), "{mime}");
    }
}

#[tokio::test]
async fn files_deep_images_may_not_decode_to_more_than_four_bytes_a_pixel_of_the_limit() {
    // 64 x 64 = 4096 pixels, the limit; at 16 bits a channel they decode to 8 bytes each.
    let app = spawn_app_with(|s| s.files.max_image_pixels = nz!(4096)).await;
    let alice = app.chatter("alice").await;
    let deep = image::DynamicImage::ImageRgba16(image::ImageBuffer::from_fn(64, 64, |x, y| {
        image::Rgba([x as u16 * 1000, y as u16 * 1000, 7, 65535])
    }));
    let body = expect_error(
        upload(
            &app,
            &alice.http,
            encoded(deep, image::ImageFormat::Png),
            "deep.png",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_image",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("decoded"),
        "{body}"
    );
    // The same size at 8 bits passes.
    upload_ok(&app, &alice, png(64, 64), "flat.png").await;
}

#[tokio::test]
async fn files_a_part_header_that_never_ends_is_refused_early() {
    let app = spawn_app().await;
    let alice = app.chatter("alice").await;
    // A part that starts and whose header lines go on and on (256 KiB without the blank line).
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Pad: ".to_vec();
    body.resize(256 * 1024 + 1, b'a');
    let head = raw_post_files(
        &app,
        &alice.cookie,
        &format!("Content-Length: {}\r\n", body.len()),
        &body,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.contains("does not end"), "{head}");
    let mine = json_of(app.get(&alice.http, "/files").await).await;
    assert_eq!(mine["used_bytes"], 0);
}
