//! Files over HTTP: `POST /files` (multipart/form-data: a part `file`, optionally a part
//! `name`), `GET`/`HEAD /files/{id}` (with ranges), `GET /files/{id}/thumbnail`, `DELETE
//! /files/{id}` and `GET /files` (the caller's uploads and quota). The rules (limits, quota,
//! sniffing, who may download) are chat::files'; this edge parses the multipart stream and
//! writes the headers of a download.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_multipart::Multipart;
use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::chat::Chat;
use crate::chat::files::upload::Upload;
use crate::domain::{FileId, Timestamp, UserId};
use crate::error::{AppError, AppResult};
use crate::http::replies::Status;
use crate::session::CurrentSession;
use crate::store::files::ByteStream;
use crate::store::mysql::files::FileRecord;

/// The longest `name` part accepted, in bytes (names are cut to 255 bytes after that).
const NAME_PART_MAX_BYTES: usize = 1024;
/// The most bytes of parts other than `file` and `name` read (and ignored) per upload.
const OTHER_PARTS_MAX_BYTES: usize = 16 * 1024;
/// The most parts a form may have.
const MAX_PARTS: usize = 8;
/// What a form may add to the file's bytes (boundaries, part headers, the other parts).
const FORM_OVERHEAD_BYTES: u64 = 64 * 1024;
/// The most bytes the multipart parser may take in without yielding a part or a piece of one
/// (an endless part header or preamble: it searches all it holds on every read).
const NO_PROGRESS_MAX_BYTES: u64 = 256 * 1024;
/// Most uploads listed per page of `GET /files`, and the default.
const LIST_MAX: u32 = 100;
const LIST_DEFAULT: u32 = 50;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/files")
            .route(web::post().to(upload))
            .route(web::get().to(list)),
    )
    .service(
        web::resource("/files/{id}")
            .route(web::get().to(download))
            .route(web::head().to(download))
            .route(web::delete().to(delete)),
    )
    .service(
        web::resource("/files/{id}/thumbnail")
            .route(web::get().to(thumbnail))
            .route(web::head().to(thumbnail)),
    );
}

/// A file as the API shows it.
#[derive(Serialize)]
pub(crate) struct FileView {
    id: FileId,
    mime: String,
    size: u64,
    name: String,
    sha256: String,
    width: Option<u32>,
    height: Option<u32>,
    /// The URL path of the thumbnail, for images that have one.
    thumbnail: Option<String>,
    created_at: Timestamp,
}

impl From<FileRecord> for FileView {
    fn from(f: FileRecord) -> Self {
        Self {
            thumbnail: f
                .has_thumbnail()
                .then(|| format!("/files/{}/thumbnail", f.id)),
            id: f.id,
            mime: f.mime,
            size: f.size,
            name: f.name,
            sha256: f.sha256,
            width: f.width,
            height: f.height,
            created_at: f.created_at,
        }
    }
}

#[derive(Serialize)]
struct FileReply {
    file: FileView,
}

#[derive(Serialize)]
struct FilesReply {
    files: Vec<FileView>,
    used_bytes: u64,
    quota_bytes: u64,
    has_more: bool,
}

fn bad_form(message: impl Into<std::borrow::Cow<'static, str>>) -> AppError {
    AppError::BadRequest(message.into())
}

/// Multipart failures are the client's: 400 (not multipart, malformed, cut off), 413 past the
/// body limit.
fn multipart_error(err: actix_multipart::MultipartError, max_bytes: u64) -> AppError {
    use actix_multipart::MultipartError as E;
    match err {
        E::ContentTypeMissing | E::ContentTypeParse | E::ContentTypeIncompatible => {
            bad_form("POST /files takes multipart/form-data with a part named `file`")
        }
        E::Payload(actix_web::error::PayloadError::Overflow) => AppError::PayloadTooLarge {
            limit: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        },
        E::Payload(actix_web::error::PayloadError::Io(e)) => {
            bad_form(format!("the multipart body is malformed: {e}"))
        }
        other => bad_form(format!("the multipart body is malformed: {other}")),
    }
}

/// What the form's parts besides the file's bytes said.
#[derive(Default)]
struct FormFields {
    had_file: bool,
    name: Option<String>,
    file_name: Option<String>,
}

/// How a form is read: the idle timeout, the file's limit, and the bytes the parser took in
/// since it last yielded something.
struct Reading {
    idle: Duration,
    max_bytes: u64,
    unparsed: Arc<AtomicU64>,
}

/// The next item of a multipart stream, or 408 when nothing came for `idle`.
async fn next_within<T>(
    reading: &Reading,
    next: impl std::future::Future<Output = Option<Result<T, actix_multipart::MultipartError>>>,
) -> AppResult<Option<T>> {
    let (idle, max_bytes) = (reading.idle, reading.max_bytes);
    let item = tokio::time::timeout(idle, next).await;
    reading.unparsed.store(0, Ordering::Relaxed);
    match item {
        Err(_) => Err(AppError::RequestTimeout(
            format!("the upload paused for more than {} s", idle.as_secs()).into(),
        )),
        Ok(None) => Ok(None),
        Ok(Some(item)) => item.map(Some).map_err(|e| multipart_error(e, max_bytes)),
    }
}

/// Reads the parts of the form, streaming `file` into `upload`.
async fn read_form(
    mut form: Multipart,
    upload: &mut Upload<'_>,
    reading: &Reading,
) -> AppResult<FormFields> {
    let mut fields = FormFields::default();
    let mut parts = 0;
    let mut other_bytes = 0usize;
    while let Some(mut part) = next_within(reading, form.next()).await? {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(bad_form(format!(
                "a form of at most {MAX_PARTS} parts is taken"
            )));
        }
        match part.name() {
            Some("file") => {
                if fields.had_file {
                    return Err(AppError::validation("file", "send one part named `file`"));
                }
                fields.had_file = true;
                fields.file_name = part
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .map(str::to_owned);
                while let Some(chunk) = next_within(reading, part.next()).await? {
                    upload.write(&chunk).await?;
                }
            }
            Some("name") => {
                let mut raw = Vec::new();
                while let Some(chunk) = next_within(reading, part.next()).await? {
                    if raw.len() + chunk.len() > NAME_PART_MAX_BYTES {
                        return Err(AppError::validation(
                            "name",
                            format!("must be at most {NAME_PART_MAX_BYTES} bytes"),
                        ));
                    }
                    raw.extend_from_slice(&chunk);
                }
                fields.name = Some(
                    String::from_utf8(raw)
                        .map_err(|_| AppError::validation("name", "must be UTF-8 text"))?,
                );
            }
            _ => {
                while let Some(chunk) = next_within(reading, part.next()).await? {
                    other_bytes += chunk.len();
                    if other_bytes > OTHER_PARTS_MAX_BYTES {
                        return Err(bad_form("only the parts `file` and `name` are taken"));
                    }
                }
            }
        }
    }
    Ok(fields)
}

/// The request's `Content-Length`, when it gives one.
fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
async fn upload(
    req: HttpRequest,
    session: CurrentSession,
    state: web::Data<Chat>,
    payload: web::Payload,
) -> AppResult<HttpResponse> {
    let f = &state.settings.files;
    let max_bytes = f.max_bytes.get();
    // The file and what a form adds around it; no body gets past this, whatever it holds.
    let body_limit = max_bytes.saturating_add(FORM_OVERHEAD_BYTES);
    if content_length(&req).is_some_and(|n| n > body_limit) {
        return Err(AppError::PayloadTooLarge {
            limit: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        });
    }
    // Anti-spam, the uploads in progress and the quota, before a byte of the body is read.
    let mut upload = state.begin_upload(session.user_id).await?;
    let reading = Reading {
        idle: Duration::from_secs(f.upload_idle_secs.get()),
        max_bytes,
        unparsed: Arc::default(),
    };
    let unparsed = reading.unparsed.clone();
    let mut seen = 0u64;
    let limited = payload.map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        let waiting =
            unparsed.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        if seen > body_limit {
            Err(actix_web::error::PayloadError::Overflow)
        } else if waiting > NO_PROGRESS_MAX_BYTES {
            Err(actix_web::error::PayloadError::Io(std::io::Error::other(
                "a part header or preamble that does not end",
            )))
        } else {
            Ok(chunk)
        }
    });
    let form = Multipart::new(req.headers(), limited);
    let whole = Duration::from_secs(f.upload_timeout_secs.get());
    let read = tokio::time::timeout(whole, read_form(form, &mut upload, &reading)).await;
    let fields = match read {
        Ok(Ok(fields)) if fields.had_file => fields,
        Ok(Ok(_)) => {
            upload.abort().await;
            return Err(AppError::validation(
                "file",
                "a part named `file` is required",
            ));
        }
        Ok(Err(err)) => {
            upload.abort().await;
            return Err(err);
        }
        Err(_) => {
            upload.abort().await;
            return Err(AppError::RequestTimeout(
                format!("the upload took more than {} s", whole.as_secs()).into(),
            ));
        }
    };
    let file = upload
        .finish(fields.name.as_deref().or(fields.file_name.as_deref()))
        .await?;
    Ok(HttpResponse::Created().json(FileReply { file: file.into() }))
}

#[derive(Deserialize)]
struct ListQuery {
    before: Option<String>,
    limit: Option<u32>,
}

async fn list(
    session: CurrentSession,
    state: web::Data<Chat>,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let before = match query.before.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            FileId::parse(raw)
                .ok_or_else(|| AppError::validation("before", "must be a file id"))?,
        ),
    };
    let limit = match query.limit {
        None => LIST_DEFAULT,
        Some(0) => return Err(AppError::validation("limit", "must be at least 1")),
        Some(n) => n.min(LIST_MAX),
    };
    let mine = state.my_files(session.user_id, before, limit).await?;
    Ok(HttpResponse::Ok().json(FilesReply {
        files: mine.files.into_iter().map(FileView::from).collect(),
        used_bytes: mine.used_bytes,
        quota_bytes: mine.quota_bytes,
        has_more: mine.has_more,
    }))
}

/// The caller, when logged in; anonymous callers get what strangers get (404 on a file).
fn viewer(session: Result<CurrentSession, AppError>) -> AppResult<Option<UserId>> {
    match session {
        Ok(s) => Ok(Some(s.user_id)),
        Err(AppError::Unauthorized) => Ok(None),
        Err(other) => Err(other),
    }
}

fn path_file(raw: &str) -> AppResult<FileId> {
    // An id that cannot exist is a file that does not.
    FileId::parse(raw).ok_or_else(|| AppError::NotFound("no such file".into()))
}

/// The headers every download shares.
fn file_headers(response: &mut HttpResponseBuilder, mime: &str, etag: &str) {
    response
        .insert_header((header::CONTENT_TYPE, mime.to_owned()))
        .insert_header((header::ETAG, format!("\"{etag}\"")))
        .insert_header((header::CACHE_CONTROL, "private"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Opened directly, a file runs nothing (an HTML upload stays inert).
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ));
}

/// Whether the client's `If-None-Match` already names `etag`.
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t.trim_matches('"') == etag)
        })
}

/// Shown in the page (images, audio, video the browser plays) or saved (anything else, so an
/// uploaded page or script never runs in the server's origin).
fn disposition(mime: &str, name: &str) -> ContentDisposition {
    let inline = (mime.starts_with("image/") && mime != "image/svg+xml")
        || mime.starts_with("audio/")
        || mime.starts_with("video/");
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    ContentDisposition {
        disposition: if inline {
            DispositionType::Inline
        } else {
            DispositionType::Attachment
        },
        parameters: vec![
            DispositionParam::Filename(ascii),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: Charset::Ext("UTF-8".to_owned()),
                language_tag: None,
                value: name.as_bytes().to_vec(),
            }),
        ],
    }
}

/// The one range asked for, as bytes `start..end` of a file of `size` bytes: None for the
/// whole file (no Range header, a malformed one, several ranges: answered with 200),
/// 416 for a range outside the file.
fn asked_range(req: &HttpRequest, size: u64) -> AppResult<Option<(u64, u64)>> {
    use http_range_header::RangeUnsatisfiableError as R;
    let Some(raw) = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let Ok(parsed) = http_range_header::parse_range_header(raw) else {
        return Ok(None);
    };
    match parsed.validate(size) {
        Ok(ranges) if ranges.len() == 1 => {
            let (start, end) = (*ranges[0].start(), *ranges[0].end());
            Ok(Some((start, end + 1)))
        }
        Ok(_) => Ok(None),
        // A suffix longer than the file means all of it.
        Err(R::FileSuffixOutOfBounds) => Ok(Some((0, size))),
        Err(_) => Err(AppError::RangeNotSatisfiable { size }),
    }
}

/// 304 with the headers of the file, when the client's copy (`If-None-Match`) is current.
fn revalidated(req: &HttpRequest, mime: &str, etag: &str) -> Option<HttpResponse> {
    not_modified(req, etag).then(|| {
        let mut response = HttpResponse::NotModified();
        file_headers(&mut response, mime, etag);
        response.finish()
    })
}

/// The answer with `length` bytes from `bytes`; for HEAD the same headers, and the bytes are
/// never opened.
async fn stream_body(
    req: &HttpRequest,
    mut response: HttpResponseBuilder,
    length: u64,
    bytes: impl std::future::Future<Output = AppResult<ByteStream>>,
) -> AppResult<HttpResponse> {
    response.no_chunking(length);
    if req.method() == Method::HEAD {
        let nothing = futures_util::stream::empty::<Result<web::Bytes, AppError>>();
        return Ok(response.streaming(nothing));
    }
    let bytes = bytes.await?.map_err(|e| {
        tracing::warn!(error = %e, "a download broke off");
        e
    });
    Ok(response.streaming(bytes.boxed_local()))
}

async fn download(
    req: HttpRequest,
    session: Result<CurrentSession, AppError>,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = path_file(&path)?;
    let file = state.readable_file(viewer(session)?, id).await?;
    if let Some(current) = revalidated(&req, &file.mime, &file.sha256) {
        return Ok(current);
    }
    let range = asked_range(&req, file.size)?;
    let (status, start, end) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
        None => (StatusCode::OK, 0, file.size),
    };
    let mut response = HttpResponse::build(status);
    file_headers(&mut response, &file.mime, &file.sha256);
    response
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header(disposition(&file.mime, &file.name));
    if range.is_some() {
        response.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", end - 1, file.size),
        ));
    }
    stream_body(
        &req,
        response,
        end - start,
        state.file_bytes(&file, start..end),
    )
    .await
}

async fn thumbnail(
    req: HttpRequest,
    session: Result<CurrentSession, AppError>,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    const MIME: &str = "image/jpeg";
    let id = path_file(&path)?;
    let file = state.readable_file(viewer(session)?, id).await?;
    let size = file
        .thumbnail_size
        .ok_or_else(|| AppError::NotFound("this file has no thumbnail".into()))?;
    let etag = format!("{}-thumb", file.sha256);
    if let Some(current) = revalidated(&req, MIME, &etag) {
        return Ok(current);
    }
    let mut response = HttpResponse::Ok();
    file_headers(&mut response, MIME, &etag);
    response.insert_header(disposition(MIME, &format!("{}.thumb.jpg", file.name)));
    stream_body(
        &req,
        response,
        u64::from(size),
        state.thumbnail_bytes(&file, size),
    )
    .await
}

async fn delete(
    session: CurrentSession,
    state: web::Data<Chat>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = path_file(&path)?;
    state.delete_file(session.user_id, id).await?;
    Ok(HttpResponse::Ok().json(Status { status: "deleted" }))
}
