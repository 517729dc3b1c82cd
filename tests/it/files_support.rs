//! What the file tests share: test images, uploads and downloads over HTTP, typed sends.

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
use reqwest::multipart::{Form, Part};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, json_of};
use crate::ws_client::{Chatter, Reply, WsClient};

/// A PNG of `width` x `height` pixels (a gradient: it does not compress to nothing).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, ImageFormat::Png)
        .expect("a PNG is written");
    out.into_inner()
}

/// `n` bytes that are no known format (sniffed as application/octet-stream).
/// Starts with a NUL and has no known signature.
pub fn binary(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            if i == 0 {
                0
            } else {
                ((i * 7 + 3) % 128) as u8 | 0x80
            }
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST /files` with one part `file` named `file_name`.
pub async fn upload(app: &TestApp, http: &Client, bytes: Vec<u8>, file_name: &str) -> Response {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(file_name.to_owned()));
    http.post(app.url("/files"))
        .multipart(form)
        .send()
        .await
        .expect("upload sent")
}

/// An upload that must succeed: the `file` object of the 201.
pub async fn upload_ok(app: &TestApp, who: &Chatter, bytes: Vec<u8>, file_name: &str) -> Value {
    let resp = upload(app, &who.http, bytes, file_name).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "upload {file_name}");
    json_of(resp).await["file"].clone()
}

pub fn file_id(file: &Value) -> String {
    file["id"].as_str().expect("file id is a string").to_owned()
}

/// `GET /files/{id}` with an optional `Range`.
pub async fn download(app: &TestApp, http: &Client, id: &str, range: Option<&str>) -> Response {
    let mut req = http.get(app.url(&format!("/files/{id}")));
    if let Some(range) = range {
        req = req.header("Range", range);
    }
    req.send().await.expect("download sent")
}

pub fn header<'a>(resp: &'a Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("header {name} in {:?}", resp.headers()))
        .to_str()
        .expect("header is text")
}

/// op 1 of a typed message carrying the upload `file_id`.
pub async fn send_file_to(ws: &mut WsClient, to: &str, kind: i64, file_id: &str) -> Reply {
    ws.request(json!({
        "op_type": 1, "to": to, "type": kind, "attachment": { "file_id": file_id }
    }))
    .await
}

/// op 6 of a typed message carrying the upload `file_id`.
pub async fn send_file_to_group(ws: &mut WsClient, group: &str, kind: i64, file_id: &str) -> Reply {
    ws.request(json!({
        "op_type": 6, "to": group, "type": kind, "attachment": { "file_id": file_id }
    }))
    .await
}
