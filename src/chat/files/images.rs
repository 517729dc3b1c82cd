//! Images (PNG, JPEG, GIF, WebP) through the `image` crate: the size read from the header
//! first, so a decompression bomb (a small file of huge dimensions) is refused before any pixel
//! is decoded; then the decode, under allocation limits, and a JPEG thumbnail whose longest side
//! is `files.thumbnail_px`. CPU-bound: run on the blocking pool.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::AppError;

/// The quality of thumbnails (JPEG, 1–100).
const THUMBNAIL_QUALITY: u8 = 80;

/// The image formats decoded, by sniffed MIME type.
pub(crate) fn format_of(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// What an image is: its size and its thumbnail (JPEG bytes).
#[derive(Debug)]
pub(crate) struct Measured {
    pub width: u32,
    pub height: u32,
    pub thumbnail: Vec<u8>,
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::InvalidImage(message.into())
}

/// Measures and thumbnails an image of `format`; 400 `invalid_image` when it does not decode
/// or has more than `max_pixels` pixels.
pub(crate) fn measure(
    bytes: &[u8],
    format: ImageFormat,
    max_pixels: u64,
    thumbnail_px: u32,
) -> Result<Measured, AppError> {
    use image::ImageDecoder;
    let unreadable =
        |e: image::ImageError| invalid(format!("the file is not a readable {format:?} image: {e}"));
    // The header only: size and pixel format, nothing decoded yet.
    let decoder = ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map_err(unreadable)?;
    let (width, height) = decoder.dimensions();
    let decoded_bytes = decoder.total_bytes();
    drop(decoder);
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 {
        return Err(invalid("the image has no pixels"));
    }
    if pixels > max_pixels {
        return Err(invalid(format!(
            "the image has {width} x {height} pixels, more than the {max_pixels} accepted"
        )));
    }
    // Deep images (16 bits per channel) may not use more memory than the limit at 8 bits.
    if decoded_bytes > max_pixels.saturating_mul(4) {
        return Err(invalid(format!(
            "the image would take {decoded_bytes} bytes decoded, more than {} accepted",
            max_pixels.saturating_mul(4)
        )));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    // The decoded pixels once, plus as much again for a decoder's own frame (GIF): a frame
    // larger than the image's screen fails instead of growing.
    limits.max_alloc = Some(decoded_bytes.saturating_mul(2).saturating_add(1 << 20));
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| invalid(format!("the image does not decode: {e}")))?;
    let small = if width.max(height) > thumbnail_px {
        image.thumbnail(thumbnail_px, thumbnail_px)
    } else {
        image
    };
    let mut thumbnail = Vec::new();
    DynamicImage::ImageRgb8(small.to_rgb8())
        .write_with_encoder(JpegEncoder::new_with_quality(
            &mut thumbnail,
            THUMBNAIL_QUALITY,
        ))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding a thumbnail: {e}")))?;
    Ok(Measured {
        width,
        height,
        thumbnail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = ImageBuffer::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn measures_and_shrinks_to_the_longest_side() {
        let m = measure(&png(640, 200), ImageFormat::Png, 1_000_000, 320).unwrap();
        assert_eq!((m.width, m.height), (640, 200));
        let thumb = image::load_from_memory_with_format(&m.thumbnail, ImageFormat::Jpeg).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 100));
        // Smaller than a thumbnail: kept at its size.
        let m = measure(&png(40, 30), ImageFormat::Png, 1_000_000, 320).unwrap();
        let thumb = image::load_from_memory(&m.thumbnail).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (40, 30));
    }

    #[test]
    fn refuses_garbage_truncation_and_bombs() {
        let code = |r: Result<Measured, AppError>| r.unwrap_err().code();
        assert_eq!(
            code(measure(b"not an image", ImageFormat::Png, 100, 32)),
            "invalid_image"
        );
        let whole = png(64, 64);
        assert_eq!(
            code(measure(
                &whole[..whole.len() / 2],
                ImageFormat::Png,
                1_000_000,
                32
            )),
            "invalid_image"
        );
        // 64 x 64 = 4096 pixels over a limit of 4095: refused before decoding.
        assert_eq!(
            code(measure(&whole, ImageFormat::Png, 4095, 32)),
            "invalid_image"
        );
    }
}
