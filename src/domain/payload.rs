//! What a typed message carries besides its text: an uploaded file (types 2 image, 3 voice,
//! 4 video, 6 file) or a place (type 5 location), and the ids and names of uploads.

use std::fmt;

use mongodb::bson::oid::ObjectId;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::AppError;

use super::MessageType;

/// Longest `location.address`, in characters.
pub const ADDRESS_MAX_CHARS: usize = 200;
/// Longest `attachment.duration_ms` of a voice or video message (one hour).
pub const MAX_DURATION_MS: u32 = 3_600_000;
/// Longest upload name, in bytes.
pub const FILE_NAME_MAX_BYTES: usize = 255;

/// The id of an upload: 24 hex digits (the form of an ObjectId), a string on the wire. New ids
/// are 96 random bits, not ObjectIds' time and counter: one's own upload id tells nothing of
/// anyone else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId(pub ObjectId);

impl FileId {
    /// A new, random id.
    pub fn new() -> Self {
        Self(ObjectId::from_bytes(rand::random::<[u8; 12]>()))
    }

    /// Parses the 24 hex digits of an id.
    pub fn parse(raw: &str) -> Option<Self> {
        ObjectId::parse_str(raw).ok().map(Self)
    }

    /// The id as 24 lowercase hex digits (how it is stored everywhere).
    pub fn to_hex(self) -> String {
        self.0.to_hex()
    }

    /// The URL path of the file's thumbnail.
    pub fn thumbnail_path(self) -> String {
        format!("/files/{self}/thumbnail")
    }
}

impl Default for FileId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl Serialize for FileId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the kind of a message asks of the file it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// Type 2: an `image/*` file.
    Image,
    /// Type 3: an `audio/*` file.
    Voice,
    /// Type 4: a `video/*` file.
    Video,
    /// Type 6: any file.
    File,
}

impl MediaKind {
    /// The media kind of a message type, when the type carries a file.
    pub fn of(kind: MessageType) -> Option<Self> {
        match kind {
            MessageType::IMAGE => Some(Self::Image),
            MessageType::VOICE => Some(Self::Voice),
            MessageType::VIDEO => Some(Self::Video),
            MessageType::FILE => Some(Self::File),
            _ => None,
        }
    }

    /// Whether a file of (sniffed) type `mime` may be sent as this kind.
    pub fn accepts(self, mime: &str) -> bool {
        match self {
            // The formats the server measures and thumbnails; other images go as files.
            Self::Image => matches!(
                mime,
                "image/png" | "image/jpeg" | "image/gif" | "image/webp"
            ),
            // Recorders write voice into containers that are sniffed as video (a browser's
            // MediaRecorder: WebM; phones: MP4/M4A).
            Self::Voice => {
                mime.starts_with("audio/")
                    || matches!(mime, "video/webm" | "video/mp4" | "video/x-matroska")
            }
            Self::Video => mime.starts_with("video/"),
            Self::File => true,
        }
    }

    /// Whether the kind has a play length (voice, video).
    pub fn has_duration(self) -> bool {
        matches!(self, Self::Voice | Self::Video)
    }

    /// What a conversation list shows for such a message without a caption.
    pub fn preview(self) -> &'static str {
        match self {
            Self::Image => "[image]",
            Self::Voice => "[voice]",
            Self::Video => "[video]",
            Self::File => "[file]",
        }
    }

    /// The files it takes, as an error message says it.
    pub fn needs(self) -> &'static str {
        match self {
            Self::Image => "a PNG, JPEG, GIF or WebP file",
            Self::Voice => "an audio file",
            Self::Video => "a video file",
            Self::File => "a file",
        }
    }
}

impl MessageType {
    /// What a conversation list shows for a message of this type without text: `"[image]"`,
    /// `"[location]"` ...; None for text and system notices.
    pub fn placeholder(self) -> Option<&'static str> {
        if self == Self::LOCATION {
            return Some("[location]");
        }
        MediaKind::of(self).map(MediaKind::preview)
    }
}

/// Most characters (grapheme clusters) of a reply's excerpt of the message it answers.
pub const EXCERPT_MAX_CHARS: usize = 100;

/// The first [`EXCERPT_MAX_CHARS`] characters of a message's one-line preview (grapheme
/// clusters, so an emoji or an accented letter is never cut in two).
pub fn excerpt(preview: &str) -> String {
    use unicode_segmentation::UnicodeSegmentation;
    preview.graphemes(true).take(EXCERPT_MAX_CHARS).collect()
}

/// `attachment` of a send: an upload of the sender's and, for voice and video, its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachmentRef {
    /// The upload.
    pub file_id: FileId,
    /// The play length of a voice or video message, 1 ..= one hour.
    pub duration_ms: Option<u32>,
}

/// What a send carries besides its text (its type says which).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Text only (type 1).
    Text,
    /// An upload (types 2, 3, 4, 6).
    Attachment(AttachmentRef),
    /// A place (type 5).
    Location(Location),
}

/// A place (type 5): latitude and longitude in degrees, and an address as the sender gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// −90 ..= 90.
    pub lat: f64,
    /// −180 ..= 180.
    pub lon: f64,
    /// At most [`ADDRESS_MAX_CHARS`] characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl Location {
    /// A checked place; each error names the field at fault (`location.lat` ...).
    pub fn parse(lat: f64, lon: f64, address: Option<&str>) -> Result<Self, AppError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(AppError::validation(
                "location.lat",
                "must be a number from -90 to 90",
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(AppError::validation(
                "location.lon",
                "must be a number from -180 to 180",
            ));
        }
        let address = match address.map(str::trim) {
            None | Some("") => None,
            Some(a) if a.chars().count() > ADDRESS_MAX_CHARS => {
                return Err(AppError::validation(
                    "location.address",
                    format!("must be at most {ADDRESS_MAX_CHARS} characters"),
                ));
            }
            Some(a) if a.chars().any(char::is_control) => {
                return Err(AppError::validation(
                    "location.address",
                    "must not contain control characters",
                ));
            }
            Some(a) => Some(a.to_owned()),
        };
        Ok(Self { lat, lon, address })
    }
}

/// The name of an upload, made safe to show and to offer as a download name: the last path
/// segment only, control characters and the characters of path and header syntax dropped,
/// at most [`FILE_NAME_MAX_BYTES`] bytes (cut at a character boundary); `"file"` when nothing
/// is left.
pub fn sanitize_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c) && !matches!(c, '"' | '\\' | '/'))
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut name = String::with_capacity(trimmed.len().min(FILE_NAME_MAX_BYTES));
    for c in trimmed.chars() {
        if name.len() + c.len_utf8() > FILE_NAME_MAX_BYTES {
            break;
        }
        name.push(c);
    }
    if name.is_empty() {
        "file".to_owned()
    } else {
        name
    }
}

/// Characters that change how the text around them shows without showing themselves: bidi
/// overrides and isolates (`invoice\u{202E}gpj.exe` would show as `invoiceexe.jpg`), zero-width
/// characters, the soft hyphen, the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_controls_and_length() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\Users\\a\\photo.png"), "photo.png");
        assert_eq!(sanitize_file_name("a\u{0}b\r\nc.txt"), "abc.txt");
        assert_eq!(sanitize_file_name("say \"hi\".txt"), "say hi.txt");
        assert_eq!(
            sanitize_file_name("invoice\u{202E}gpj.exe"),
            "invoicegpj.exe"
        );
        assert_eq!(sanitize_file_name("a\u{200B}b\u{FEFF}.txt"), "ab.txt");
        assert_eq!(sanitize_file_name(".."), "file");
        assert_eq!(sanitize_file_name(".hidden"), "hidden");
        assert_eq!(sanitize_file_name(""), "file");
        let long = "é".repeat(200);
        let cut = sanitize_file_name(&long);
        assert!(cut.len() <= FILE_NAME_MAX_BYTES && cut.chars().all(|c| c == 'é'));
        assert_eq!(cut.len(), 254);
    }

    #[test]
    fn locations_are_checked_field_by_field() {
        assert!(Location::parse(52.52, 13.405, Some("Berlin")).is_ok());
        assert!(Location::parse(-90.0, 180.0, None).is_ok());
        let field = |r: Result<Location, AppError>| match r.unwrap_err() {
            AppError::Validation { field, .. } => field.into_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Location::parse(90.5, 0.0, None)), "location.lat");
        assert_eq!(field(Location::parse(f64::NAN, 0.0, None)), "location.lat");
        assert_eq!(field(Location::parse(0.0, -180.1, None)), "location.lon");
        assert_eq!(
            field(Location::parse(0.0, f64::INFINITY, None)),
            "location.lon"
        );
        let long = "x".repeat(ADDRESS_MAX_CHARS + 1);
        assert_eq!(
            field(Location::parse(0.0, 0.0, Some(&long))),
            "location.address"
        );
        assert_eq!(Location::parse(0.0, 0.0, Some("  ")).unwrap().address, None);
    }

    #[test]
    fn kinds_fit_mime_types() {
        assert!(MediaKind::Image.accepts("image/png"));
        assert!(!MediaKind::Image.accepts("text/html"));
        assert!(MediaKind::Voice.accepts("audio/ogg"));
        assert!(MediaKind::Voice.accepts("video/webm"));
        assert!(!MediaKind::Image.accepts("image/tiff"));
        assert!(!MediaKind::Video.accepts("audio/ogg"));
        assert!(MediaKind::File.accepts("application/octet-stream"));
        assert_eq!(MediaKind::of(MessageType::LOCATION), None);
        assert_eq!(MediaKind::of(MessageType::FILE), Some(MediaKind::File));
    }
}
