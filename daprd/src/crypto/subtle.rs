//! The `Subtle*Alpha1` operations: one small value encrypted, decrypted, wrapped,
//! unwrapped, signed or verified with a key of a crypto component, or the public part of
//! a key returned. As upstream, a failing component operation is answered with a generic
//! `ERR_CRYPTO` message ("failed to encrypt", ...) and the cause is only logged, so a
//! caller learns nothing that would help side-channel attacks (e.g. padding oracles).

use dapr_components::crypto::{CipherParams, Key};
use dapr_proto::runtime::{
    SubtleDecryptRequest, SubtleDecryptResponse, SubtleEncryptRequest, SubtleEncryptResponse,
    SubtleGetKeyRequest, SubtleGetKeyResponse, SubtleSignRequest, SubtleSignResponse,
    SubtleUnwrapKeyRequest, SubtleUnwrapKeyResponse, SubtleVerifyRequest, SubtleVerifyResponse,
    SubtleWrapKeyRequest, SubtleWrapKeyResponse, subtle_get_key_request::KeyFormat,
};

use super::errors::{self, logged, operation};
use super::{outbound_policy, provider};
use crate::error::ApiError;
use crate::runtime::Runtime;

/// The generic error of a failed component operation, the cause logged.
fn hidden(what: &str, cause: impl std::fmt::Display) -> ApiError {
    tracing::debug!("{}", operation(&cause));
    operation(what)
}

/// `SubtleGetKeyAlpha1`: the public part of a key, as PEM (PKIX) or a JWK.
pub async fn get_key(
    runtime: &Runtime,
    request: SubtleGetKeyRequest,
) -> Result<SubtleGetKeyResponse, ApiError> {
    let handle = provider(runtime, &request.component_name)?;
    let format = KeyFormat::try_from(request.format)
        .map_err(|_| logged(ApiError::bad_request("invalid key format")))?;
    let key = outbound_policy(runtime, &handle)
        .call((), |()| handle.provider.get_key(&request.name))
        .await
        .map_err(|error| logged(errors::get_key(&request.name, error)))?;
    let public_key = match format {
        KeyFormat::Pem => key.to_public_pem().map_err(|error| {
            format!(
                "failed to marshal public key {} as PKIX: {error}",
                request.name
            )
        }),
        KeyFormat::Json => key.to_public_jwk().map_err(|error| {
            format!(
                "failed to marshal public key {} as JSON: {error}",
                request.name
            )
        }),
    }
    .map_err(|reason| logged(errors::get_key(&request.name, reason)))?;
    Ok(SubtleGetKeyResponse {
        name: request.name,
        public_key,
    })
}

/// `SubtleEncryptAlpha1`.
pub async fn encrypt(
    runtime: &Runtime,
    request: SubtleEncryptRequest,
) -> Result<SubtleEncryptResponse, ApiError> {
    let handle = provider(runtime, &request.component_name)?;
    let sealed = outbound_policy(runtime, &handle)
        .call((), |()| {
            handle.provider.encrypt(
                &request.plaintext,
                CipherParams {
                    algorithm: &request.algorithm,
                    key_name: &request.key_name,
                    nonce: &request.nonce,
                    tag: &[],
                    associated_data: &request.associated_data,
                },
            )
        })
        .await
        .map_err(|error| hidden("failed to encrypt", error))?;
    Ok(SubtleEncryptResponse {
        ciphertext: sealed.ciphertext,
        tag: sealed.tag,
    })
}

/// `SubtleDecryptAlpha1`.
pub async fn decrypt(
    runtime: &Runtime,
    request: SubtleDecryptRequest,
) -> Result<SubtleDecryptResponse, ApiError> {
    let handle = provider(runtime, &request.component_name)?;
    let plaintext = outbound_policy(runtime, &handle)
        .call((), |()| {
            handle.provider.decrypt(
                &request.ciphertext,
                CipherParams {
                    algorithm: &request.algorithm,
                    key_name: &request.key_name,
                    nonce: &request.nonce,
                    tag: &request.tag,
                    associated_data: &request.associated_data,
                },
            )
        })
        .await
        .map_err(|error| hidden("failed to decrypt", error))?;
    Ok(SubtleDecryptResponse { plaintext })
}

/// `SubtleWrapKeyAlpha1`: the plaintext key is read as dapr/kit's `ParseKey` reads keys.
pub async fn wrap_key(
    runtime: &Runtime,
    request: SubtleWrapKeyRequest,
) -> Result<SubtleWrapKeyResponse, ApiError> {
    let handle = provider(runtime, &request.component_name)?;
    let plaintext_key = Key::parse(&request.plaintext_key, None)
        .map_err(|error| logged(operation(format!("failed to parse plaintext key: {error}"))))?;
    let sealed = outbound_policy(runtime, &handle)
        .call((), |()| {
            handle.provider.wrap_key(
                &plaintext_key,
                CipherParams {
                    algorithm: &request.algorithm,
                    key_name: &request.key_name,
                    nonce: &request.nonce,
                    tag: &[],
                    associated_data: &request.associated_data,
                },
            )
        })
        .await
        .map_err(|error| hidden("failed to wrap key", error))?;
    Ok(SubtleWrapKeyResponse {
        wrapped_key: sealed.ciphertext,
        tag: sealed.tag,
    })
}

/// `SubtleUnwrapKeyAlpha1`: the key is returned as raw bytes.
pub async fn unwrap_key(
    runtime: &Runtime,
    request: SubtleUnwrapKeyRequest,
) -> Result<SubtleUnwrapKeyResponse, ApiError> {
    let handle = provider(runtime, &request.component_name)?;
    let key = outbound_policy(runtime, &handle)
        .call((), |()| {
            handle.provider.unwrap_key(
                &request.wrapped_key,
                CipherParams {
                    algorithm: &request.algorithm,
                    key_name: &request.key_name,
                    nonce: &request.nonce,
                    tag: &request.tag,
                    associated_data: &request.associated_data,
                },
            )
        })
        .await
        .map_err(|error| hidden("failed to unwrap key", error))?;
    let plaintext_key = key.to_bytes().map_err(|error| {
        logged(operation(format!(
            "failed to serialize unwrapped key: {error}"
        )))
    })?;
    Ok(SubtleUnwrapKeyResponse { plaintext_key })
}

/// `SubtleSignAlpha1`.
pub async fn sign(
    runtime: &Runtime,
    request: SubtleSignRequest,
) -> Result<SubtleSignResponse, ApiError> {
    let handle = provider(runtime, &request.component_name)?;
    let signature = outbound_policy(runtime, &handle)
        .call((), |()| {
            handle
                .provider
                .sign(&request.digest, &request.algorithm, &request.key_name)
        })
        .await
        .map_err(|error| hidden("failed to sign", error))?;
    Ok(SubtleSignResponse { signature })
}

/// `SubtleVerifyAlpha1`.
pub async fn verify(
    runtime: &Runtime,
    request: SubtleVerifyRequest,
) -> Result<SubtleVerifyResponse, ApiError> {
    let handle = provider(runtime, &request.component_name)?;
    let valid = outbound_policy(runtime, &handle)
        .call((), |()| {
            handle.provider.verify(
                &request.digest,
                &request.signature,
                &request.algorithm,
                &request.key_name,
            )
        })
        .await
        .map_err(|error| hidden("failed to verify signature", error))?;
    Ok(SubtleVerifyResponse { valid })
}
