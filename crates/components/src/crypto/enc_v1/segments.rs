//! The binary payload: the plaintext cut into 64 KiB segments, each encrypted on its own
//! with its tag appended (64 KiB + 16 bytes of ciphertext per full segment). Only the
//! last segment may be shorter, and it is sealed with the "last" nonce flag, so a stream
//! cut at a segment boundary, reordered or extended fails to decrypt. An empty plaintext
//! has no segment at all.
//!
//! [`SegmentStream`] takes input in chunks of any size and hands back whole output
//! segments as they complete; it holds at most one segment plus the chunk being pushed.

use bytes::{Bytes, BytesMut};

use super::file_key::FileKey;
use super::{EncError, SEGMENT_OVERHEAD, SEGMENT_SIZE};

/// Which way a stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Encrypt,
    Decrypt,
}

/// Encrypts or decrypts a stream of segments.
pub struct SegmentStream {
    key: FileKey,
    direction: Direction,
    buffer: BytesMut,
    /// The number of the next segment.
    segment: u32,
}

impl std::fmt::Debug for SegmentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentStream")
            .field("direction", &self.direction)
            .field("segment", &self.segment)
            .finish_non_exhaustive()
    }
}

impl SegmentStream {
    pub(super) fn encrypting(key: FileKey) -> Self {
        Self::new(key, Direction::Encrypt)
    }

    pub(super) fn decrypting(key: FileKey) -> Self {
        Self::new(key, Direction::Decrypt)
    }

    fn new(key: FileKey, direction: Direction) -> Self {
        Self {
            key,
            direction,
            buffer: BytesMut::new(),
            segment: 0,
        }
    }

    /// The size of one full input segment.
    fn segment_size(&self) -> usize {
        match self.direction {
            Direction::Encrypt => SEGMENT_SIZE,
            Direction::Decrypt => SEGMENT_SIZE + SEGMENT_OVERHEAD,
        }
    }

    /// Takes more input; returns the segments it completed. A segment is processed once
    /// at least one more byte follows it, since only then is it known not to be last.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Bytes>, EncError> {
        let size = self.segment_size();
        let mut out = Vec::new();
        let mut data = data;
        while !data.is_empty() {
            let room = (size + 1).saturating_sub(self.buffer.len()).max(1);
            let (now, later) = data.split_at(room.min(data.len()));
            self.buffer.extend_from_slice(now);
            data = later;
            if self.buffer.len() > size {
                let segment = self.buffer.split_to(size);
                out.push(self.process(&segment, false)?);
            }
        }
        Ok(out)
    }

    /// How many input bytes are held, waiting for a segment to complete.
    #[cfg(test)]
    pub(super) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Ends the input; returns the last segment (none for an empty plaintext).
    pub fn finish(&mut self) -> Result<Option<Bytes>, EncError> {
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let segment = std::mem::take(&mut self.buffer);
        self.process(&segment, true).map(Some)
    }

    /// Encrypts or decrypts one segment.
    fn process(&mut self, segment: &[u8], last: bool) -> Result<Bytes, EncError> {
        let number = self.segment;
        let processed = match self.direction {
            Direction::Encrypt => {
                self.key
                    .seal_segment(segment, number, last)
                    .ok_or(EncError::Segment {
                        number,
                        reason: "failed to encrypt segment",
                    })?
            }
            Direction::Decrypt => {
                self.key
                    .open_segment(segment, number, last)
                    .ok_or(EncError::Segment {
                        number,
                        reason: "failed to decrypt segment",
                    })?
            }
        };
        if !last {
            self.segment = number.checked_add(1).ok_or(EncError::TooLarge)?;
        }
        Ok(Bytes::from(processed))
    }
}
