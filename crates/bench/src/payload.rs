//! Object bodies: random bytes generated once per size and shared by every request, and a
//! streamed body for objects too large to hold once per request.
//!
//! Random rather than zero bytes, so that nothing on the path (a compressing file system,
//! a deduplicating device) can make the figures look better than real data would. A
//! [`Bytes`] clone shares the buffer, so sixteen requests in flight cost no copies.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use rand::{RngCore, SeedableRng};

/// One frame of a generated body: large enough that per-frame overhead does not matter,
/// small enough to be one of a few blocks in flight.
pub const FRAME_BYTES: usize = 1024 * 1024;

/// `size` random bytes from a fixed seed (the same run after run).
pub fn random_bytes(size: usize, seed: u64) -> Bytes {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut buffer = vec![0u8; size];
    rng.fill_bytes(&mut buffer);
    Bytes::from(buffer)
}

/// A body of `length` bytes made by repeating `frame` (the last frame cut short), never
/// holding more than the one shared frame in memory.
struct RepeatedBody {
    frame: Bytes,
    remaining_bytes: u64,
}

impl Body for RepeatedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining_bytes == 0 {
            return Poll::Ready(None);
        }
        let count = this.frame.len().min(usize::try_from(this.remaining_bytes).unwrap_or(usize::MAX));
        this.remaining_bytes -= count as u64;
        Poll::Ready(Some(Ok(Frame::data(this.frame.slice(..count)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining_bytes == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining_bytes)
    }
}

/// A streamed request body of `length` bytes repeating `frame`; it can be rebuilt, so the
/// SDK may retry it. With no in-memory bytes, the SDK sends it unsigned with an
/// aws-chunked checksum trailer, as it would send a file.
pub fn repeated_stream(frame: &Bytes, length: u64) -> ByteStream {
    assert!(!frame.is_empty(), "a repeated body needs a non-empty frame");
    let frame = frame.clone();
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(RepeatedBody { frame: frame.clone(), remaining_bytes: length })
    }))
}

/// A body handing out `payload` in [`FRAME_BYTES`] slices (no copies).
struct SlicedBody {
    payload: Bytes,
    offset: usize,
}

impl Body for SlicedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.offset == this.payload.len() {
            return Poll::Ready(None);
        }
        let end = this.payload.len().min(this.offset + FRAME_BYTES);
        let frame = this.payload.slice(this.offset..end);
        this.offset = end;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset == self.payload.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.payload.len() - self.offset) as u64)
    }
}

/// `payload` as a streamed (not in-memory) request body, so the SDK sends it aws-chunked
/// with any checksum as a trailer, as it would send a file.
pub fn sliced_stream(payload: &Bytes) -> ByteStream {
    let payload = payload.clone();
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(SlicedBody { payload: payload.clone(), offset: 0 })
    }))
}

/// Whether `chunk`, found at `offset` of an object built by repeating `frame` (or equal to
/// `frame` when the object is one frame), holds the expected bytes.
pub fn matches_repeated(frame: &[u8], offset: u64, chunk: &[u8]) -> bool {
    let mut position = (offset % frame.len() as u64) as usize;
    let mut rest = chunk;
    while !rest.is_empty() {
        let count = rest.len().min(frame.len() - position);
        if rest[..count] != frame[position..position + count] {
            return false;
        }
        rest = &rest[count..];
        position = 0;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_reproducible_and_not_zero() {
        let a = random_bytes(4096, 7);
        assert_eq!(a, random_bytes(4096, 7));
        assert_ne!(a, random_bytes(4096, 8));
        assert!(a.iter().filter(|byte| **byte == 0).count() < 100);
    }

    #[tokio::test]
    async fn sliced_stream_is_the_payload() {
        let payload = random_bytes(FRAME_BYTES * 2 + 7, 3);
        let body = sliced_stream(&payload).collect().await.expect("collect the sliced body").into_bytes();
        assert_eq!(body, payload);
    }

    #[tokio::test]
    async fn repeated_stream_has_the_exact_length_and_content() {
        let frame = random_bytes(1000, 1);
        let stream = repeated_stream(&frame, 2500);
        let body = stream.collect().await.expect("collect the generated body").into_bytes();
        assert_eq!(body.len(), 2500);
        assert!(matches_repeated(&frame, 0, &body));
        assert!(matches_repeated(&frame, 1500, &body[1500..]));
        assert!(!matches_repeated(&frame, 1, &body[..10]));
    }
}
