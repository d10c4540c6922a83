//! The size limit on proxied gRPC calls: the proxy forwards raw HTTP/2 bodies, so it reads
//! the gRPC framing (a 1-byte flag and a 4-byte big-endian length before each message)
//! as the bytes pass and stops a stream whose message is larger than `--max-body-size`,
//! as a gRPC server with that receive limit would.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Length of the prefix before each gRPC message.
const PREFIX_LEN: usize = 5;

/// A message larger than the limit was seen.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("grpc: received message larger than max ({size} vs. {limit})")]
pub struct MessageTooLarge {
    /// The announced message size.
    pub size: usize,
    /// The limit.
    pub limit: usize,
}

/// Where the reader is in the gRPC framing.
#[derive(Debug, Default)]
struct Framing {
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    message_left: usize,
}

impl Framing {
    /// Advances over `data`, failing at the first message prefix announcing more than
    /// `limit` bytes.
    fn advance(&mut self, mut data: &[u8], limit: usize) -> Result<(), MessageTooLarge> {
        while !data.is_empty() {
            if self.message_left > 0 {
                let skipped = self.message_left.min(data.len());
                self.message_left -= skipped;
                data = &data[skipped..];
                continue;
            }
            let copied = (PREFIX_LEN - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + copied].copy_from_slice(&data[..copied]);
            self.prefix_len += copied;
            data = &data[copied..];
            if self.prefix_len == PREFIX_LEN {
                let [_, a, b, c, d] = self.prefix;
                let size = u32::from_be_bytes([a, b, c, d]) as usize;
                if size > limit {
                    return Err(MessageTooLarge { size, limit });
                }
                self.message_left = size;
                self.prefix_len = 0;
            }
        }
        Ok(())
    }
}

/// Where a tripped limit is reported, for whoever forwards the body to learn why the
/// call failed.
pub type Tripwire = Arc<OnceLock<MessageTooLarge>>;

pin_project_lite::pin_project! {
    /// A gRPC body that fails once a message larger than `limit` starts.
    pub struct LimitedMessages<B> {
        #[pin]
        inner: B,
        limit: usize,
        framing: Framing,
        tripwire: Tripwire,
    }
}

impl<B> LimitedMessages<B> {
    /// Checks the messages of `inner` against `limit` bytes each, reporting a violation in
    /// `tripwire`.
    pub fn new(inner: B, limit: usize, tripwire: Tripwire) -> Self {
        Self {
            inner,
            limit,
            framing: Framing::default(),
            tripwire,
        }
    }
}

impl<B> Body for LimitedMessages<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if this.tripwire.get().is_some() {
            return Poll::Ready(None);
        }
        let frame = match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref()
            && let Err(error) = this.framing.advance(data, *this.limit)
        {
            let _ = this.tripwire.set(error);
            return Poll::Ready(Some(Err(Box::new(error))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.tripwire.get().is_some() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut framed = vec![0];
        framed.extend_from_slice(&(len as u32).to_be_bytes());
        framed.extend(std::iter::repeat_n(7u8, len));
        framed
    }

    #[test]
    fn messages_split_anywhere_are_measured_whole() {
        let stream: Vec<u8> = [message(3), message(10), message(0), message(4)].concat();
        for split in 1..stream.len() {
            let mut framing = Framing::default();
            for piece in stream.chunks(split) {
                framing.advance(piece, 10).unwrap();
            }
        }
        let mut framing = Framing::default();
        let error = framing.advance(&message(11)[..3], 10);
        assert!(error.is_ok(), "the prefix is not complete yet");
        let error = framing.advance(&message(11)[3..], 10).unwrap_err();
        assert_eq!(
            error.to_string(),
            "grpc: received message larger than max (11 vs. 10)"
        );
    }
}
