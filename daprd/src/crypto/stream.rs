//! `EncryptAlpha1`/`DecryptAlpha1` and `PUT /v1.0-alpha1/crypto/{name}/encrypt|decrypt`:
//! a stream of input chunks becomes a stream of output chunks in the `dapr.io/enc/v1`
//! format, with the file key wrapped and unwrapped by the crypto component.
//!
//! Failures before any output (bad options, a key that cannot wrap, a bad header, a MAC
//! mismatch) are returned as errors of the call; later failures (a tampered or cut
//! segment, a broken input stream) end the output stream with an error. The input is
//! pulled only as the output is consumed, and at most one segment is held, so memory stays
//! bounded whatever the payload's size.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use dapr_components::crypto::enc_v1::{
    EncError, EncryptOptions, EncryptionPlan, HeaderReader, SegmentStream,
};
use dapr_components::crypto::{CipherParams, Key};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::CryptoProviderHandle;
use super::errors::{logged, operation};
use crate::error::ApiError;
use crate::resiliency::Policy;

/// Input chunks; an error is the reason the input broke off.
pub type Input = BoxStream<'static, Result<Bytes, String>>;

/// Output chunks; an error (why the stream broke) ends the stream. Each edge renders it
/// as upstream does there.
pub type Output = BoxStream<'static, Result<Bytes, String>>;

/// Encrypts `input` with a fresh file key wrapped by `options.key_name` of `handle`
/// (algorithm and cipher names in any case). The first output chunk is the header; each
/// later one is a segment.
pub async fn encrypt(
    handle: Arc<CryptoProviderHandle>,
    policy: Policy,
    options: EncryptOptions,
    input: Input,
) -> Result<Output, ApiError> {
    let failed = |error: EncError| logged(operation(error));
    // Names are matched in upper case whatever case the caller used, as upstream.
    let options = EncryptOptions {
        algorithm: options.algorithm.to_ascii_uppercase(),
        cipher: options.cipher.map(|cipher| cipher.to_ascii_uppercase()),
        ..options
    };
    let plan = EncryptionPlan::new(&options).map_err(failed)?;
    let file_key = Key::symmetric(plan.file_key().to_vec());
    let params = CipherParams {
        algorithm: plan.algorithm().name(),
        key_name: &options.key_name,
        nonce: plan.algorithm().wrapping_iv(),
        ..CipherParams::default()
    };
    let wrapped = policy
        .call((), |()| handle.provider.wrap_key(&file_key, params))
        .await
        .map_err(|error| failed(EncError::Wrap(error.to_string())))?;
    let (header, segments) = plan.seal(wrapped.ciphertext).map_err(failed)?;
    Ok(pipeline(segments, input, VecDeque::from([header]), None))
}

/// Decrypts `input`, unwrapping the file key with `key_name` of `handle`, or when empty
/// with the key the header names. Each output chunk is a decrypted segment.
pub async fn decrypt(
    handle: Arc<CryptoProviderHandle>,
    policy: Policy,
    key_name: &str,
    mut input: Input,
) -> Result<Output, ApiError> {
    let failed = |error: EncError| logged(operation(error));
    let mut reader = HeaderReader::new();
    let header = loop {
        match input.next().await {
            Some(Ok(chunk)) => {
                if let Some(header) = reader.push(&chunk).map_err(failed)? {
                    break header;
                }
            }
            // A broken input stream shows as an incomplete header, as upstream.
            Some(Err(_)) | None => return Err(failed(reader.finish())),
        }
    };
    let key_name = header.key_name(key_name).map_err(failed)?;
    let manifest = header.manifest();
    // An unwrapping failure is not reported as such: the MAC check below fails instead,
    // so callers cannot tell a missing key from a wrong one (as upstream).
    let params = CipherParams {
        algorithm: manifest.key_wrapping_algorithm.name(),
        key_name: &key_name,
        nonce: manifest.key_wrapping_algorithm.wrapping_iv(),
        ..CipherParams::default()
    };
    let unwrapped = policy
        .call((), |()| {
            handle
                .provider
                .unwrap_key(&manifest.wrapped_file_key, params)
        })
        .await;
    let file_key = match unwrapped {
        Ok(key) => key.to_bytes().ok(),
        Err(error) => {
            tracing::debug!("failed to unwrap the file key with {key_name}: {error}");
            None
        }
    };
    let (segments, rest) = header.open(file_key.as_deref()).map_err(failed)?;
    Ok(pipeline(segments, input, VecDeque::new(), Some(rest)))
}

/// The state of a running stream.
struct Pipeline {
    segments: SegmentStream,
    input: Input,
    /// Output ready to be handed out.
    ready: VecDeque<Bytes>,
    /// Input read before the stream started (what followed the header).
    carried: Option<Bytes>,
    done: bool,
}

/// Streams `input` through `segments`, handing out `ready` first.
fn pipeline(
    segments: SegmentStream,
    input: Input,
    ready: VecDeque<Bytes>,
    carried: Option<Bytes>,
) -> Output {
    let state = Pipeline {
        segments,
        input,
        ready,
        carried,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(chunk) = state.ready.pop_front() {
                return Some((Ok(chunk), state));
            }
            if state.done {
                return None;
            }
            let next = match state.carried.take() {
                Some(carried) => Some(Ok(carried)),
                None => state.input.next().await,
            };
            let processed = match next {
                Some(Ok(chunk)) => state
                    .segments
                    .push(&chunk)
                    .map_err(|error| error.to_string()),
                Some(Err(reason)) => Err(reason),
                None => {
                    state.done = true;
                    state
                        .segments
                        .finish()
                        .map(|last| last.into_iter().collect())
                        .map_err(|error| error.to_string())
                }
            };
            match processed {
                Ok(chunks) => state.ready.extend(chunks),
                Err(reason) => {
                    state.done = true;
                    state.ready.clear();
                    tracing::debug!("crypto stream failed: {reason}");
                    return Some((Err(reason), state));
                }
            }
        }
    })
    .boxed()
}
