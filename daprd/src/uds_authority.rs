//! gRPC clients built on grpc-core (the Python SDK among them) name a Unix socket target
//! in the `:authority` of their requests as a percent-encoded path (`tmp%2Fdapr.socket`),
//! which the HTTP/2 server stack rejects as a malformed authority. Upstream's Go server
//! accepts it. This adapter repairs that one header on Unix-socket connections: in the
//! first header block of an HTTP/2 connection it rewrites a literal `:authority` value
//! in place, `%` becoming `_`, before the server parses it.
//!
//! The value keeps its length, so HPACK's dynamic table (whose accounting counts bytes)
//! stays identical on both sides, and later requests that refer to the entry by index
//! decode the repaired value. Anything that does not look exactly like that (HTTP/1.1, a
//! Huffman-coded or long value, another encoding) passes through untouched, and after
//! the first header block every byte passes through with no work.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface every client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HPACK "literal header field with incremental indexing, new name" for `:authority`.
const AUTHORITY_LITERAL: &[u8] = b"\x40\x0a:authority";
/// HTTP/2 frame types holding header blocks.
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
/// The flag ending a header block.
const END_HEADERS: u8 = 0x4;
/// Most bytes examined before giving up (SETTINGS and the like come first).
const SCAN_LIMIT: usize = 64 << 10;

/// Where the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Matching the preface; the number of bytes matched.
    Preface(usize),
    /// Collecting a frame header; the bytes collected.
    FrameHeader(usize),
    /// Inside a frame's payload: bytes left, whether it holds header-block bytes, and
    /// whether the block ends with it.
    Payload {
        left: usize,
        header_block: bool,
        last: bool,
    },
    /// Done: everything passes through.
    Done,
}

/// Where the matcher is inside a header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Literal {
    /// Matched this many bytes of [`AUTHORITY_LITERAL`].
    Name(usize),
    /// Expecting the value's length byte.
    Length,
    /// Inside the value; bytes left.
    Value(usize),
}

/// A stream whose incoming bytes get the repair described in the module docs.
#[derive(Debug)]
pub struct AuthorityRepair<S> {
    inner: S,
    stage: Stage,
    literal: Literal,
    frame_header: [u8; 9],
    scanned: usize,
}

impl<S> AuthorityRepair<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            stage: Stage::Preface(0),
            literal: Literal::Name(0),
            frame_header: [0; 9],
            scanned: 0,
        }
    }

    /// Runs the scanner over bytes just read, rewriting them in place.
    fn scan(&mut self, bytes: &mut [u8]) {
        let mut index = 0;
        while index < bytes.len() && self.stage != Stage::Done {
            self.scanned += 1;
            if self.scanned > SCAN_LIMIT {
                self.stage = Stage::Done;
                return;
            }
            let byte = bytes[index];
            self.stage = match self.stage {
                Stage::Preface(matched) if PREFACE[matched] != byte => Stage::Done,
                Stage::Preface(matched) if matched + 1 == PREFACE.len() => Stage::FrameHeader(0),
                Stage::Preface(matched) => Stage::Preface(matched + 1),
                Stage::FrameHeader(collected) => {
                    self.frame_header[collected] = byte;
                    if collected + 1 < self.frame_header.len() {
                        Stage::FrameHeader(collected + 1)
                    } else {
                        let [a, b, c, kind, flags, ..] = self.frame_header;
                        let left = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                        let header_block = kind == HEADERS || kind == CONTINUATION;
                        let last = header_block && flags & END_HEADERS != 0;
                        if left == 0 {
                            if last {
                                Stage::Done
                            } else {
                                Stage::FrameHeader(0)
                            }
                        } else {
                            Stage::Payload {
                                left,
                                header_block,
                                last,
                            }
                        }
                    }
                }
                Stage::Payload {
                    left,
                    header_block,
                    last,
                } => {
                    if header_block {
                        bytes[index] = self.repair(byte);
                    }
                    match (left - 1, last) {
                        (0, true) => Stage::Done,
                        (0, false) => Stage::FrameHeader(0),
                        (left, _) => Stage::Payload {
                            left,
                            header_block,
                            last,
                        },
                    }
                }
                Stage::Done => Stage::Done,
            };
            index += 1;
        }
    }

    /// Advances the literal matcher over one header-block byte, returning it repaired.
    fn repair(&mut self, byte: u8) -> u8 {
        let (next, output) = match self.literal {
            Literal::Name(matched) if AUTHORITY_LITERAL[matched] == byte => {
                if matched + 1 == AUTHORITY_LITERAL.len() {
                    (Literal::Length, byte)
                } else {
                    (Literal::Name(matched + 1), byte)
                }
            }
            Literal::Name(_) => (
                Literal::Name(usize::from(byte == AUTHORITY_LITERAL[0])),
                byte,
            ),
            // A raw (not Huffman-coded) value short enough for a one-byte length.
            Literal::Length if byte & 0x80 == 0 && byte < 0x7f && byte > 0 => {
                (Literal::Value(usize::from(byte)), byte)
            }
            Literal::Length => (Literal::Name(0), byte),
            Literal::Value(left) => {
                let next = if left == 1 {
                    Literal::Name(0)
                } else {
                    Literal::Value(left - 1)
                };
                (next, if byte == b'%' { b'_' } else { byte })
            }
        };
        self.literal = next;
        output
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityRepair<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.stage != Stage::Done && matches!(result, Poll::Ready(Ok(()))) {
            let fresh = &mut buf.filled_mut()[before..];
            this.scan(fresh);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityRepair<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes grpc-core sends on a Unix socket (preface, SETTINGS, WINDOW_UPDATE,
    /// then the first HEADERS frame), as captured from grpcio 1.85.
    fn captured() -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        bytes.extend_from_slice(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00");
        bytes.extend_from_slice(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00?\x00\x01");
        let block: &[u8] =
            b"\x83\x86@\x05:path\x06/x.Y/Z@\n:authority\x10tmp%2Fprobe.sock@\x02te\x08trailers";
        bytes.extend_from_slice(&[0, 0, block.len() as u8, HEADERS, END_HEADERS, 0, 0, 0, 1]);
        bytes.extend_from_slice(block);
        bytes.extend_from_slice(b"\x00\x00\x05\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00");
        bytes
    }

    fn repaired(input: &[u8], split: usize) -> Vec<u8> {
        let mut repair = AuthorityRepair::new(());
        let mut output = input.to_vec();
        for piece in output.chunks_mut(split) {
            repair.scan(piece);
        }
        output
    }

    #[test]
    fn the_authority_literal_is_repaired_however_the_bytes_arrive() {
        let input = captured();
        let expected =
            String::from_utf8_lossy(&input).replace("tmp%2Fprobe.sock", "tmp_2Fprobe.sock");
        for split in [1, 2, 7, 64, input.len()] {
            assert_eq!(
                String::from_utf8_lossy(&repaired(&input, split)),
                expected,
                "split {split}"
            );
        }
    }

    #[test]
    fn other_traffic_passes_unchanged() {
        let http1 = b"GET /v1.0/healthz HTTP/1.1\r\nHost: a%2Fb\r\n\r\n".to_vec();
        assert_eq!(repaired(&http1, 5), http1);
        // A '%' in the body (DATA frame) after the first header block is left alone.
        let mut input = captured();
        input.extend_from_slice(b"\x00\x00\x03\x00\x01\x00\x00\x00\x01a%b");
        let output = repaired(&input, 3);
        assert!(output.ends_with(b"a%b"));
        // A Huffman-coded authority is not touched.
        let mut huffman = PREFACE.to_vec();
        let block: &[u8] = b"@\n:authority\x83%%%";
        huffman.extend_from_slice(&[0, 0, block.len() as u8, HEADERS, END_HEADERS, 0, 0, 0, 1]);
        huffman.extend_from_slice(block);
        assert_eq!(repaired(&huffman, 4), huffman);
    }
}
