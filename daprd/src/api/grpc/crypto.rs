//! `EncryptAlpha1`/`DecryptAlpha1` (bidirectional streams of `StreamPayload` chunks) and
//! the `Subtle*Alpha1` calls over gRPC, by the crypto core.
//!
//! The first request message must arrive within five seconds and carry the options;
//! every payload's `seq` must count up from 0, and no later message may carry options.
//! A broken input ends the output stream with `failed to perform operation: <reason>`,
//! as upstream.

use std::time::Duration;

use bytes::Bytes;
use dapr_components::crypto::enc_v1::EncryptOptions;
use dapr_proto::common::StreamPayload;
use dapr_proto::runtime;
use futures::StreamExt;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::crypto::errors::{logged, operation};
use crate::crypto::{self, stream};
use crate::error::ApiError;
use crate::runtime::Runtime;

/// How long the first message of a stream may take.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// A request message of either stream.
trait CryptoRequest: Send + 'static {
    /// Whether the message carries options.
    fn has_options(&self) -> bool;
    /// Takes the payload out of the message.
    fn take_payload(&mut self) -> Option<StreamPayload>;
}

impl CryptoRequest for runtime::EncryptRequest {
    fn has_options(&self) -> bool {
        self.options.is_some()
    }

    fn take_payload(&mut self) -> Option<StreamPayload> {
        self.payload.take()
    }
}

impl CryptoRequest for runtime::DecryptRequest {
    fn has_options(&self) -> bool {
        self.options.is_some()
    }

    fn take_payload(&mut self) -> Option<StreamPayload> {
        self.payload.take()
    }
}

/// Waits for the first message of `requests`.
async fn first_message<T: CryptoRequest>(requests: &mut Streaming<T>) -> Result<T, ApiError> {
    match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, requests.message()).await {
        Err(_) => Err(logged(ApiError::bad_request(
            "error waiting for first message: context deadline exceeded",
        ))),
        Ok(Err(status)) => Err(logged(operation(format!(
            "error receiving the first message: {}",
            status.message()
        )))),
        Ok(Ok(None)) => Err(logged(operation("error receiving the first message: EOF"))),
        Ok(Ok(Some(message))) => Ok(message),
    }
}

/// The payload chunks of the stream, starting with those of `first`, checked for
/// sequence numbers and stray options.
fn input<T: CryptoRequest>(mut first: T, requests: Streaming<T>) -> stream::Input {
    struct Reader<T> {
        pending: Option<StreamPayload>,
        requests: Streaming<T>,
        expected: u64,
        ended: bool,
    }
    let reader = Reader {
        pending: first.take_payload(),
        requests,
        expected: 0,
        ended: false,
    };
    futures::stream::unfold(reader, |mut reader| async move {
        loop {
            if reader.ended {
                return None;
            }
            if let Some(payload) = reader.pending.take() {
                if payload.seq != reader.expected {
                    reader.ended = true;
                    let reason = format!(
                        "invalid sequence number received: {} (expected: {})",
                        payload.seq, reader.expected
                    );
                    return Some((Err(reason), reader));
                }
                reader.expected += 1;
                if !payload.data.is_empty() {
                    return Some((Ok(Bytes::from(payload.data)), reader));
                }
            }
            match reader.requests.message().await {
                Ok(None) => return None,
                Ok(Some(mut message)) => {
                    if message.has_options() {
                        reader.ended = true;
                        return Some((
                            Err("options found in non-leading message".to_owned()),
                            reader,
                        ));
                    }
                    reader.pending = message.take_payload();
                }
                Err(status) => {
                    reader.ended = true;
                    let reason = format!("error receiving message: {}", status.message());
                    return Some((Err(reason), reader));
                }
            }
        }
    })
    .boxed()
}

/// Numbers the output chunks as `make` messages.
fn output<R: Send + 'static>(
    chunks: stream::Output,
    make: fn(StreamPayload) -> R,
) -> Response<BoxStream<R>> {
    let numbered = chunks.enumerate().map(move |(seq, chunk)| match chunk {
        Ok(data) => Ok(make(StreamPayload {
            data: data.to_vec(),
            seq: seq as u64,
        })),
        Err(reason) => Err(operation(reason).to_status()),
    });
    Response::new(numbered.boxed())
}

/// `EncryptAlpha1`.
pub async fn encrypt(
    runtime: &Runtime,
    request: Request<Streaming<runtime::EncryptRequest>>,
) -> Result<Response<BoxStream<runtime::EncryptResponse>>, Status> {
    let mut requests = request.into_inner();
    let first = first_message(&mut requests)
        .await
        .map_err(|error| error.to_status())?;
    let Some(options) = first.options.clone() else {
        return Err(first_message_without_options());
    };
    if options.key_name.is_empty() {
        return Err(missing_option("keyName"));
    }
    if options.key_wrap_algorithm.is_empty() {
        return Err(missing_option("keyWrapAlgorithm"));
    }
    let handle =
        crypto::provider(runtime, &options.component_name).map_err(|error| error.to_status())?;
    let encrypt_options = EncryptOptions {
        key_name: options.key_name,
        algorithm: options.key_wrap_algorithm,
        decryption_key_name: options.decryption_key_name,
        omit_decryption_key_name: options.omit_decryption_key_name,
        cipher: Some(options.data_encryption_cipher).filter(|cipher| !cipher.is_empty()),
    };
    let chunks = stream::encrypt(
        handle.clone(),
        crypto::outbound_policy(runtime, &handle),
        encrypt_options,
        input(first, requests),
    )
    .await
    .map_err(|error| error.to_status())?;
    Ok(output(chunks, |payload| runtime::EncryptResponse {
        payload: Some(payload),
    }))
}

/// `DecryptAlpha1`.
pub async fn decrypt(
    runtime: &Runtime,
    request: Request<Streaming<runtime::DecryptRequest>>,
) -> Result<Response<BoxStream<runtime::DecryptResponse>>, Status> {
    let mut requests = request.into_inner();
    let first = first_message(&mut requests)
        .await
        .map_err(|error| error.to_status())?;
    let Some(options) = first.options.clone() else {
        return Err(first_message_without_options());
    };
    let handle =
        crypto::provider(runtime, &options.component_name).map_err(|error| error.to_status())?;
    let chunks = stream::decrypt(
        handle.clone(),
        crypto::outbound_policy(runtime, &handle),
        &options.key_name,
        input(first, requests),
    )
    .await
    .map_err(|error| error.to_status())?;
    Ok(output(chunks, |payload| runtime::DecryptResponse {
        payload: Some(payload),
    }))
}

fn first_message_without_options() -> Status {
    logged(ApiError::bad_request(
        "first message does not contain the required options",
    ))
    .to_status()
}

fn missing_option(name: &str) -> Status {
    logged(ApiError::bad_request(format!(
        "missing property '{name}' in the options message"
    )))
    .to_status()
}

/// Runs a `Subtle*` operation and wraps its answer.
pub async fn unary<T>(
    call: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<Response<T>, Status> {
    call.await
        .map(Response::new)
        .map_err(|error| error.to_status())
}
