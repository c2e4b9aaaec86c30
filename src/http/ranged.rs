//! Serving bytes that are read at any offset (an MP4 export, a segment file as playback sees it)
//! with HTTP range requests (RFC 9110 sections 14 and 13.1.5): `Content-Length` up front,
//! `Accept-Ranges: bytes`, one `Range` answered with 206 and the same bytes as the full answer
//! (several ranges get the whole body, 200), 416 for a range past the end, `If-Range` against a
//! strong `ETag`, and `HEAD`. The body is read in 256 KiB pieces on the blocking pool, so memory
//! stays bounded whatever the length.
//!
//! What the bytes are and which headers describe them is the caller's; no routes here.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Bytes read per body chunk.
const CHUNK: u64 = 256 * 1024;

/// Something with a length whose bytes can be read at any offset, from any thread.
pub trait ByteSource: Send + Sync + 'static {
    /// Total length, bytes.
    fn len(&self) -> u64;
    /// Whether there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `out` with the bytes at `start..start + out.len()`. Errors: past the end, or I/O.
    fn read_at(&self, start: u64, out: &mut [u8]) -> std::io::Result<()>;
}

impl ByteSource for crate::export::Export {
    fn len(&self) -> u64 {
        self.file.len()
    }
    fn read_at(&self, start: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read_at(start, out)
    }
}

impl ByteSource for crate::store::timebase::PlaybackView {
    fn len(&self) -> u64 {
        crate::store::timebase::PlaybackView::len(self)
    }
    fn read_at(&self, start: u64, out: &mut [u8]) -> std::io::Result<()> {
        crate::store::timebase::PlaybackView::read_at(self, start, out)
    }
}

/// One byte range `start..=end` of `len`, from a `Range` header value. `Ok(None)`: serve the
/// whole body (no header, several ranges, another unit). `Err`: unsatisfiable (416).
fn byte_range(h: Option<&HeaderValue>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = h.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    if len == 0 {
        return Err(());
    }
    let r = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let s: u64 = a.parse().map_err(|_| ())?;
        let e = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len - 1)
        };
        (s, e)
    };
    if r.0 > r.1 || r.0 >= len {
        return Err(());
    }
    Ok(Some(r))
}

/// Answers `method` with `src`'s bytes (the range the request asks for), `etag` and the headers
/// in `h` (content type, cache control, disposition: the caller's).
pub fn respond(
    src: Arc<dyn ByteSource>,
    etag: &str,
    mut h: HeaderMap,
    method: &Method,
    req: &HeaderMap,
) -> Response {
    let len = src.len();
    let mut set = |k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(header::ACCEPT_RANGES, "bytes".into());
    set(header::ETAG, etag.to_owned());
    // A Range with If-Range naming another version gets the whole body (RFC 9110 13.1.5).
    let if_range_ok = req
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().ok() == Some(etag));
    let range = if if_range_ok {
        byte_range(req.get(header::RANGE), len)
    } else {
        Ok(None)
    };
    let (status, from, to) = match range {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((a, b))) => {
            set(header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}"));
            (StatusCode::PARTIAL_CONTENT, a, b + 1)
        }
        Err(()) => {
            set(header::CONTENT_RANGE, format!("bytes */{len}"));
            return (StatusCode::RANGE_NOT_SATISFIABLE, h).into_response();
        }
    };
    set(header::CONTENT_LENGTH, (to - from).to_string());
    if method == Method::HEAD {
        return (status, h).into_response();
    }
    (status, h, Body::from_stream(body(src, from, to))).into_response()
}

/// The bytes `from..to` of `src`, [`CHUNK`] at a time, each read on the blocking pool.
fn body(
    src: Arc<dyn ByteSource>,
    from: u64,
    to: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> {
    futures_util::stream::try_unfold(from, move |at| {
        let src = src.clone();
        async move {
            if at >= to {
                return Ok(None);
            }
            let n = CHUNK.min(to - at);
            let buf = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n as usize];
                src.read_at(at, &mut buf).map(|_| buf)
            })
            .await
            .map_err(std::io::Error::other)??;
            Ok(Some((buf, at + n)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(byte_range(Some(&v("bytes=0-9")), 100), Ok(Some((0, 9))));
        assert_eq!(byte_range(Some(&v("bytes=90-")), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some(&v("bytes=-10")), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some(&v("bytes=-1000")), 100), Ok(Some((0, 99))));
        assert_eq!(
            byte_range(Some(&v("bytes=50-1000")), 100),
            Ok(Some((50, 99)))
        );
        assert_eq!(byte_range(Some(&v("bytes=0-1,5-6")), 100), Ok(None));
        assert_eq!(byte_range(Some(&v("items=0-1")), 100), Ok(None));
        assert_eq!(byte_range(Some(&v("bytes=100-")), 100), Err(()));
        assert_eq!(byte_range(Some(&v("bytes=9-3")), 100), Err(()));
        assert_eq!(byte_range(Some(&v("bytes=-0")), 100), Err(()));
        assert_eq!(byte_range(Some(&v("bytes=x-3")), 100), Err(()));
        assert_eq!(byte_range(Some(&v("bytes=0-")), 0), Err(()));
    }
}
