//! A started binding component as the sidecar holds it: the halves its `direction`
//! metadata lets the sidecar use, the app route its input events go to, and its running
//! input reading, which closing stops before the component is closed.
//!
//! As upstream: without `direction` both halves the type implements are used; with it
//! (a comma-separated list, any case, the key matched ignoring case) only the halves it
//! names. `route` (matched exactly) replaces the component's name as the app path of
//! input events. A `direction` naming `input` also tells the sidecar the app listens,
//! so the app is not asked.

use std::collections::BTreeMap;
use std::sync::Arc;

use dapr_components::bindings::{Binding, InputBinding, OutputBinding, Reading};
use tokio::sync::Mutex;

/// The metadata naming the halves the sidecar uses.
const DIRECTION_METADATA: &str = "direction";
/// The metadata naming the app path of input events.
const ROUTE_METADATA: &str = "route";
/// `direction` words.
const INPUT: &str = "input";
const OUTPUT: &str = "output";

/// Upstream's capability names in the metadata API.
const INPUT_CAPABILITY: &str = "INPUT_BINDING";
const OUTPUT_CAPABILITY: &str = "OUTPUT_BINDING";

/// Where the input half's reading stands.
enum ReadState {
    /// Not reading.
    Idle,
    /// Reading; events go to the app.
    Reading(Reading),
    /// The component is closed: no reading may start.
    Closed,
}

/// A binding component and how the sidecar uses it.
pub struct BindingHandle {
    /// The component's name.
    pub name: String,
    /// Its `spec.type` (`bindings.cron`).
    pub component_type: String,
    /// The output half, when the type has one and `direction` allows it.
    pub output: Option<Arc<dyn OutputBinding>>,
    /// The input half, when the type has one and `direction` allows it.
    pub input: Option<Arc<dyn InputBinding>>,
    /// The app path input events are posted to: `route`, else the name.
    pub route: String,
    /// Whether `direction` names `input`: the app is then not asked whether it listens.
    pub input_declared: bool,
    reading: Mutex<ReadState>,
}

impl std::fmt::Debug for BindingHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingHandle")
            .field("name", &self.name)
            .field("component_type", &self.component_type)
            .field("output", &self.output.is_some())
            .field("input", &self.input.is_some())
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

/// Whether a `direction` value names `direction`.
fn names(value: &str, direction: &str) -> bool {
    value
        .split(',')
        .any(|word| word.trim().eq_ignore_ascii_case(direction))
}

impl BindingHandle {
    /// The handle of component `name` started as `binding`, keeping the halves its
    /// `settings` (the resolved metadata) allow.
    pub fn new(
        name: &str,
        component_type: &str,
        binding: Binding,
        settings: &BTreeMap<String, String>,
    ) -> Self {
        let directions: Vec<&str> = settings
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(DIRECTION_METADATA))
            .map(|(_, value)| value.as_str())
            .collect();
        let allows = |direction: &str| {
            directions.is_empty() || directions.iter().any(|value| names(value, direction))
        };
        Self {
            name: name.to_owned(),
            component_type: component_type.to_owned(),
            output: binding.output.filter(|_| allows(OUTPUT)),
            input: binding.input.filter(|_| allows(INPUT)),
            route: settings
                .get(ROUTE_METADATA)
                .cloned()
                .unwrap_or_else(|| name.to_owned()),
            input_declared: directions.iter().any(|value| names(value, INPUT)),
            reading: Mutex::new(ReadState::Idle),
        }
    }

    /// Upstream's capabilities: `INPUT_BINDING`, then `OUTPUT_BINDING`, for the halves used.
    pub fn capabilities(&self) -> Vec<String> {
        self.input
            .as_ref()
            .map(|_| INPUT_CAPABILITY.to_owned())
            .into_iter()
            .chain(self.output.as_ref().map(|_| OUTPUT_CAPABILITY.to_owned()))
            .collect()
    }

    /// Starts the input reading with `start` unless one runs or the component is closed;
    /// returns whether a reading was started.
    pub(crate) async fn start_reading<F, Fut>(&self, start: F) -> Result<bool, String>
    where
        F: FnOnce(Arc<dyn InputBinding>) -> Fut,
        Fut: Future<Output = Result<Reading, String>>,
    {
        let Some(input) = &self.input else {
            return Ok(false);
        };
        let mut state = self.reading.lock().await;
        if !matches!(*state, ReadState::Idle) {
            return Ok(false);
        }
        *state = ReadState::Reading(start(Arc::clone(input)).await?);
        Ok(true)
    }

    /// Stops the input reading, if one runs; events being handled complete first.
    pub(crate) async fn stop_reading(&self) {
        let mut state = self.reading.lock().await;
        if matches!(*state, ReadState::Reading(_))
            && let ReadState::Reading(reading) = std::mem::replace(&mut *state, ReadState::Idle)
        {
            reading.unsubscribe().await;
        }
    }

    /// Stops the reading and closes the component (once when both halves are one object).
    pub async fn close(&self) {
        {
            let mut state = self.reading.lock().await;
            if let ReadState::Reading(reading) = std::mem::replace(&mut *state, ReadState::Closed) {
                reading.unsubscribe().await;
            }
        }
        tracing::info!("closing binding {}", self.name);
        let shared = match (&self.input, &self.output) {
            (Some(input), Some(output)) => {
                std::ptr::addr_eq(Arc::as_ptr(input), Arc::as_ptr(output))
            }
            _ => false,
        };
        if let Some(input) = &self.input
            && !shared
            && let Err(error) = input.close().await
        {
            tracing::warn!("failed to close input binding {}: {error}", self.name);
        }
        if let Some(output) = &self.output
            && let Err(error) = output.close().await
        {
            tracing::warn!("failed to close binding {}: {error}", self.name);
        }
    }
}
