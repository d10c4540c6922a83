//! The request body of a call to another sidecar, shared between the attempts of that
//! call. The transport reads it chunk by chunk; the chunks read so far are kept (up to
//! [`REPLAY_LIMIT`] bytes, until the peer answers) so that the call can be sent again from
//! the start when the peer refused it without reading it, e.g. a sidecar too old for
//! `CallLocalStream`.

use std::sync::Arc;

use axum::body::{Body, BodyDataStream};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::Mutex;

/// Most bytes kept for a replay (upstream's default request size limit); a longer body
/// cannot be sent again once reading started.
pub const REPLAY_LIMIT: usize = 4 << 20;

/// A request body waiting to be sent; clones share it.
#[derive(Clone)]
pub struct BodySlot(Arc<Mutex<SlotState>>);

struct SlotState {
    /// What has not been read yet.
    remaining: Option<BodyDataStream>,
    /// Whether a transport has started reading.
    started: bool,
    /// The chunks read so far, while the body can still be replayed.
    read: Option<Vec<Bytes>>,
    /// Their total size.
    read_bytes: usize,
}

impl BodySlot {
    /// A slot holding `body`.
    pub fn new(body: Body) -> Self {
        Self(Arc::new(Mutex::new(SlotState {
            remaining: Some(body.into_data_stream()),
            started: false,
            read: Some(Vec::new()),
            read_bytes: 0,
        })))
    }

    /// The next chunk of the body, `None` at its end, or the body's error.
    pub async fn next_data(&self) -> Option<Result<Bytes, String>> {
        let mut state = self.0.lock().await;
        state.started = true;
        let chunk = match state.remaining.as_mut()?.next().await? {
            Ok(chunk) => chunk,
            Err(error) => {
                state.remaining = None;
                state.read = None;
                return Some(Err(error.to_string()));
            }
        };
        state.read_bytes += chunk.len();
        if state.read_bytes > REPLAY_LIMIT {
            state.read = None;
        } else if let Some(read) = state.read.as_mut() {
            read.push(chunk.clone());
        }
        Some(Ok(chunk))
    }

    /// Whether no transport has started reading the body.
    pub fn is_untouched(&self) -> bool {
        self.0.try_lock().is_ok_and(|state| !state.started)
    }

    /// The peer answered: the body will not be replayed, so the kept chunks are released.
    pub fn settle(&self) {
        if let Ok(mut state) = self.0.try_lock() {
            state.read = None;
        }
    }

    /// The whole body again (the chunks already read, then the rest), or `None` when it
    /// can no longer be replayed (too long, broken, or the peer already answered). The
    /// slot is empty afterwards.
    pub async fn replay(&self) -> Option<Body> {
        let mut state = self.0.lock().await;
        let read = state.read.take()?;
        let remaining = state.remaining.take();
        let replayed = futures::stream::iter(read.into_iter().map(Ok::<_, axum::Error>));
        Some(match remaining {
            Some(remaining) => Body::from_stream(replayed.chain(remaining)),
            None => Body::from_stream(replayed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(body: Body) -> String {
        String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_partly_read_body_replays_whole() {
        let chunks = ["ab", "cd", "ef"].map(|chunk| Ok::<_, std::io::Error>(Bytes::from(chunk)));
        let slot = BodySlot::new(Body::from_stream(futures::stream::iter(chunks)));
        assert!(slot.is_untouched());
        assert_eq!(slot.next_data().await.unwrap().unwrap(), "ab");
        assert!(!slot.is_untouched());
        assert_eq!(text(slot.replay().await.unwrap()).await, "abcdef");
        assert!(slot.replay().await.is_none());
    }

    #[tokio::test]
    async fn settled_or_oversized_bodies_do_not_replay() {
        let slot = BodySlot::new(Body::from("payload"));
        slot.next_data().await.unwrap().unwrap();
        slot.settle();
        assert!(slot.replay().await.is_none());

        let big = BodySlot::new(Body::from(vec![7u8; REPLAY_LIMIT + 1]));
        while let Some(chunk) = big.next_data().await {
            chunk.unwrap();
        }
        assert!(big.replay().await.is_none());
    }
}
