//! Reading the header of an encrypted stream: three lines, each ended by a line feed
//! (the scheme name `dapr.io/enc/v1`, the manifest, the base64 MAC), all within the first
//! 64 KiB. [`HeaderReader`] takes input in chunks, checks each line as it completes (no
//! empty line, the right scheme), and hands back the parsed [`Header`] with whatever
//! input followed it. Its errors are upstream's.

use bytes::Bytes;

use super::file_key::FileKey;
use super::manifest::Manifest;
use super::segments::SegmentStream;
use super::{EncError, FILE_KEY_LENGTH, SCHEME_NAME, SEGMENT_SIZE};

/// Collects a header from chunks of input.
#[derive(Debug, Default)]
pub struct HeaderReader {
    buffer: Vec<u8>,
    /// How much of `buffer` has been searched for line feeds.
    scanned: usize,
    /// Where the line being read starts.
    line_start: usize,
    /// How many lines have been read.
    lines: usize,
    /// The manifest and MAC lines, as ranges of `buffer`, once read.
    manifest: Option<(usize, usize)>,
    mac: Option<(usize, usize)>,
}

/// A complete, parsed header (its MAC not checked yet).
#[derive(Debug)]
pub struct Header {
    manifest: Manifest,
    manifest_text: Vec<u8>,
    mac: Vec<u8>,
    rest: Bytes,
}

impl HeaderReader {
    /// A reader at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes more input; returns the header once its third line is complete.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<Header>, EncError> {
        self.buffer.extend_from_slice(data);
        let limit = self.buffer.len().min(SEGMENT_SIZE);
        while self.scanned < limit {
            let index = self.scanned;
            self.scanned += 1;
            if self.buffer[index] != b'\n' {
                continue;
            }
            if index <= self.line_start {
                return Err(EncError::Header("invalid format".to_owned()));
            }
            let line = (self.line_start, index);
            self.line_start = index + 1;
            match self.lines {
                0 if &self.buffer[line.0..line.1] != SCHEME_NAME.as_bytes() => {
                    return Err(EncError::Header("unsupported scheme".to_owned()));
                }
                0 => {}
                1 => self.manifest = Some(line),
                _ => {
                    self.mac = Some(line);
                    return self.complete().map(Some);
                }
            }
            self.lines += 1;
        }
        if self.scanned >= SEGMENT_SIZE {
            return Err(self.incomplete());
        }
        Ok(None)
    }

    /// Ends the input; the header is incomplete.
    pub fn finish(self) -> EncError {
        self.incomplete()
    }

    /// Why a header that ended early is invalid.
    fn incomplete(&self) -> EncError {
        EncError::Header(
            if self.lines == 0 {
                "scheme name not found"
            } else if self.manifest.is_none() {
                "manifest not found"
            } else {
                "message authentication code not found"
            }
            .to_owned(),
        )
    }

    fn complete(&mut self) -> Result<Header, EncError> {
        let (Some(manifest), Some(mac)) = (self.manifest, self.mac) else {
            return Err(self.incomplete());
        };
        let manifest_text = self.buffer[manifest.0..manifest.1].to_vec();
        let parsed = Manifest::parse(&manifest_text)
            .ok_or_else(|| EncError::Header("invalid manifest".to_owned()))?;
        Ok(Header {
            manifest: parsed,
            manifest_text,
            mac: self.buffer[mac.0..mac.1].to_vec(),
            rest: Bytes::copy_from_slice(&self.buffer[self.line_start..]),
        })
    }
}

impl Header {
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The key to unwrap the file key with: `requested` when given, else the manifest's.
    pub fn key_name(&self, requested: &str) -> Result<String, EncError> {
        if !requested.is_empty() {
            return Ok(requested.to_owned());
        }
        if self.manifest.key_name.is_empty() {
            return Err(EncError::DecryptionKeyMissing);
        }
        Ok(self.manifest.key_name.clone())
    }

    /// Checks the MAC with the unwrapped file key and starts decrypting; returns the
    /// decryptor and the input that followed the header. A file key that could not be
    /// unwrapped (`None`, or not 32 bytes) is replaced by zeros, so the failure shows as
    /// a MAC mismatch, as upstream does to keep key lookups from being told apart.
    pub fn open(self, file_key: Option<&[u8]>) -> Result<(SegmentStream, Bytes), EncError> {
        let key: [u8; FILE_KEY_LENGTH] = file_key
            .and_then(|key| key.try_into().ok())
            .unwrap_or([0; FILE_KEY_LENGTH]);
        let file_key = FileKey::new(key, self.manifest.nonce_prefix, self.manifest.cipher);
        file_key.verify_header(&self.manifest_text, &self.mac)?;
        Ok((SegmentStream::decrypting(file_key), self.rest))
    }
}
