//! A component's metadata as the component receives it: inline values as text,
//! `secretKeyRef`s read through the resource's secret store (`auth.secretStore`, or the
//! `kubernetes` store in Kubernetes mode), `envRef`s from the sidecar's environment.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use dapr_resources::Component;

use super::SecretStoreHandle;
use crate::config::Mode;

/// The secret store Kubernetes-mode resources read from when they name none.
const KUBERNETES_SECRET_STORE: &str = "kubernetes";

/// Resolves `component`'s metadata into its settings by name.
pub async fn resolve(
    component: &Component,
    secret_stores: &BTreeMap<String, Arc<SecretStoreHandle>>,
    mode: Mode,
) -> Result<BTreeMap<String, String>, String> {
    let mut settings = BTreeMap::new();
    for item in &component.spec.metadata {
        let value = if let Some(reference) = item
            .secret_key_ref
            .as_ref()
            .filter(|reference| !reference.name.is_empty())
        {
            let store_name = component
                .auth
                .as_ref()
                .map(|auth| auth.secret_store.as_str())
                .filter(|name| !name.is_empty())
                .or((mode == Mode::Kubernetes).then_some(KUBERNETES_SECRET_STORE))
                .ok_or_else(|| {
                    format!(
                        "metadata {} refers to secret {} but the component names no secret store in auth.secretStore",
                        item.name, reference.name
                    )
                })?;
            let store = secret_stores
                .get(store_name)
                .ok_or_else(|| format!("secret store {store_name} not found"))?;
            let secret = store
                .store
                .get_secret(&reference.name, &HashMap::new())
                .await
                .map_err(|error| {
                    format!(
                        "failed to read secret {} from secret store {store_name}: {error}",
                        reference.name
                    )
                })?;
            let key = if reference.key.is_empty() {
                &reference.name
            } else {
                &reference.key
            };
            secret.get(key).cloned().ok_or_else(|| {
                format!(
                    "secret {} in secret store {store_name} has no key {key}",
                    reference.name
                )
            })?
        } else if !item.env_ref.is_empty() {
            std::env::var(&item.env_ref).unwrap_or_default()
        } else {
            item.value
                .as_ref()
                .map(|value| value.to_plain_string())
                .unwrap_or_default()
        };
        settings.insert(item.name.clone(), value);
    }
    Ok(settings)
}
