//! Component calls under their outbound policy: which component errors another attempt
//! may fix (the backing service failed or could not be reached; not a bad request, a
//! missing secret or an ETag conflict), and how a policy's refusal reads as the
//! component's own error, so every building block reports it the way it reports a
//! backend failure.

use std::future::Future;

use dapr_components::bindings::BindingError;
use dapr_components::configuration::ConfigurationError;
use dapr_components::crypto::CryptoError;
use dapr_components::lock::LockError;
use dapr_components::pubsub::PubSubError;
use dapr_components::secretstores::SecretError;
use dapr_components::state::StateError;

use super::{Failure, Policy, PolicyError};

/// A component error as the outbound policy sees it.
pub trait ComponentError: std::fmt::Display + Sized {
    /// Whether another attempt may succeed.
    fn is_transient(&self) -> bool;
    /// The error for a call the policy cut short (timeout, open circuit breaker).
    fn refused(reason: String) -> Self;
}

macro_rules! backend_errors {
    ($($error:ident),* $(,)?) => {
        $(impl ComponentError for $error {
            fn is_transient(&self) -> bool {
                matches!(self, $error::Backend(_))
            }

            fn refused(reason: String) -> Self {
                $error::Backend(reason)
            }
        })*
    };
}

backend_errors!(
    StateError,
    PubSubError,
    BindingError,
    SecretError,
    LockError,
    ConfigurationError,
);

impl ComponentError for CryptoError {
    /// A missing key or bad metadata stays so; an operation may have failed on the way to
    /// a remote key set.
    fn is_transient(&self) -> bool {
        matches!(self, CryptoError::Failed(_))
    }

    fn refused(reason: String) -> Self {
        CryptoError::Failed(reason)
    }
}

impl Policy {
    /// Calls a component with `input` under the policy: `operation` gets `input` itself
    /// when no policy applies, a clone of it per attempt otherwise.
    pub async fn call<A, T, E, F, Fut>(&self, input: A, mut operation: F) -> Result<T, E>
    where
        A: Clone,
        E: ComponentError,
        F: FnMut(A) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if self.is_empty() {
            return operation(input).await;
        }
        let outcome = self
            .run(|| {
                let attempt = operation(input.clone());
                async move {
                    attempt.await.map_err(|error| {
                        if error.is_transient() {
                            Failure::transient(error)
                        } else {
                            Failure::permanent(error)
                        }
                    })
                }
            })
            .await;
        outcome.map_err(|error| match error {
            PolicyError::Failed(error) => error,
            refused => E::refused(refused.to_string()),
        })
    }
}
