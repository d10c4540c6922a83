//! `bindings.cron`: an input binding that sends an event to the app on every fire of its
//! `schedule` (see [`schedule`] for the grammar), like upstream's.
//!
//! As upstream, each event has no payload and two metadata entries: `timeZone` (the
//! scheduler's zone, `Local`) and `readTimeUTC` (the fire time in Go's `Time.String()`
//! form, `2024-01-02 03:04:05.123456789 +0000 UTC`). Deliveries run concurrently, so a
//! slow app does not delay the next fire, and the app's answer is not acted on. Upstream
//! removed the output half (with its `delete` operation) in Dapr 1.10; this binding is
//! input only, and stopping the reading (or closing the binding) stops the schedule.

mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jiff::{Timestamp, Zoned};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use schedule::{Schedule, ScheduleError, parse};

use super::{BindingError, EventHandler, InputBinding, InputEvent, Reading, StopSignal};
use crate::metadata::Properties;

/// The event metadata naming the scheduler's time zone.
pub const TIME_ZONE_METADATA_KEY: &str = "timeZone";
/// The event metadata carrying the fire time in UTC.
pub const READ_TIME_METADATA_KEY: &str = "readTimeUTC";

/// The longest single sleep: waking at least this often notices wall-clock jumps.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A configured cron binding.
#[derive(Debug)]
pub struct CronBinding {
    /// The schedule as written (for logs).
    spec: String,
    schedule: Arc<Schedule>,
    /// Set once the binding is closed: running readings stop and new ones are refused.
    closed: Arc<watch::Sender<bool>>,
}

/// Reads the `schedule` setting and checks it parses.
pub fn open(properties: &Properties) -> Result<CronBinding, BindingError> {
    let spec = properties.text("schedule", &[]).unwrap_or_default();
    if spec.is_empty() {
        return Err(BindingError::InvalidMetadata("schedule not set".into()));
    }
    let schedule = parse(spec).map_err(|err| {
        BindingError::InvalidMetadata(format!("invalid schedule format '{spec}': {err}"))
    })?;
    Ok(CronBinding {
        spec: spec.to_owned(),
        schedule: Arc::new(schedule),
        closed: Arc::new(watch::Sender::new(false)),
    })
}

#[async_trait::async_trait]
impl InputBinding for CronBinding {
    async fn read(&self, handler: Arc<dyn EventHandler>) -> Result<Reading, BindingError> {
        if *self.closed.borrow() {
            return Err(BindingError::Closed);
        }
        let spec = self.spec.clone();
        let schedule = self.schedule.clone();
        let closed = self.closed.clone();
        Ok(Reading::spawn(1, move |stop| {
            run(
                spec.clone(),
                schedule.clone(),
                handler.clone(),
                stop,
                closed.clone(),
            )
        }))
    }

    async fn close(&self) -> Result<(), BindingError> {
        self.closed.send_replace(true);
        Ok(())
    }
}

/// Fires the schedule until the reading is stopped or the binding closed, then waits for
/// the deliveries in flight.
async fn run(
    spec: String,
    schedule: Arc<Schedule>,
    handler: Arc<dyn EventHandler>,
    mut stop: StopSignal,
    close_signal: Arc<watch::Sender<bool>>,
) {
    let mut closed = close_signal.subscribe();
    let mut deliveries = JoinSet::new();
    let mut next = schedule.next_after(&Zoned::now());
    tracing::debug!(schedule = %spec, next = ?next, "cron schedule started");
    loop {
        while deliveries.try_join_next().is_some() {}
        let sleep = match &next {
            Some(due) => {
                let wait = due.timestamp().duration_since(Timestamp::now());
                Duration::try_from(wait).unwrap_or_default().min(MAX_SLEEP)
            }
            None => MAX_SLEEP,
        };
        tokio::select! {
            () = stop.stopped() => break,
            // `close_signal` keeps the sender alive, so this resolves only on close.
            _ = closed.wait_for(|closed| *closed) => break,
            () = tokio::time::sleep(sleep) => {}
        }
        let now = Zoned::now();
        let Some(due) = &next else {
            continue;
        };
        if now.timestamp() < due.timestamp() {
            continue;
        }
        deliveries.spawn(deliver(handler.clone(), now.timestamp()));
        next = schedule.next_after(&now);
        if next.is_none() {
            tracing::warn!(schedule = %spec, "cron schedule has no further fire time");
        }
    }
    tracing::debug!(schedule = %spec, "cron schedule stopped");
    while deliveries.join_next().await.is_some() {}
}

/// Sends one fire to the app; upstream ignores the app's answer, so only a log remains.
async fn deliver(handler: Arc<dyn EventHandler>, fired: Timestamp) {
    let event = InputEvent {
        data: Bytes::new(),
        metadata: HashMap::from([
            (TIME_ZONE_METADATA_KEY.to_owned(), "Local".to_owned()),
            (READ_TIME_METADATA_KEY.to_owned(), go_utc_string(fired)),
        ]),
        content_type: None,
    };
    if let Err(err) = handler.handle(event).await {
        tracing::debug!("the app did not accept a cron event: {err}");
    }
}

/// `instant` as Go's `Time.UTC().String()` writes it: `2006-01-02 15:04:05.999999999 +0000
/// UTC`, the fraction without trailing zeros (and without the dot when whole).
fn go_utc_string(instant: Timestamp) -> String {
    let civil = instant.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    let mut text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        civil.year(),
        civil.month(),
        civil.day(),
        civil.hour(),
        civil.minute(),
        civil.second()
    );
    let nanos = civil.subsec_nanosecond();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push_str(" +0000 UTC");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::EventRejected;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Mutex;

    struct Recorder {
        count: AtomicUsize,
        events: Mutex<Vec<InputEvent>>,
    }

    #[async_trait::async_trait]
    impl EventHandler for Recorder {
        async fn handle(&self, event: InputEvent) -> Result<Bytes, EventRejected> {
            self.count.fetch_add(1, Ordering::SeqCst);
            self.events.lock().await.push(event);
            Ok(Bytes::new())
        }
    }

    fn recorder() -> Arc<Recorder> {
        Arc::new(Recorder {
            count: AtomicUsize::new(0),
            events: Mutex::new(Vec::new()),
        })
    }

    fn properties(schedule: &str) -> Properties {
        Properties::from_json(&json!({ "schedule": schedule })).unwrap()
    }

    async fn wait_for_count(recorder: &Recorder, at_least: usize, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        while recorder.count.load(Ordering::SeqCst) < at_least
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        recorder.count.load(Ordering::SeqCst)
    }

    #[test]
    fn open_checks_the_schedule() {
        let error = open(&Properties::default()).unwrap_err();
        assert_eq!(error.to_string(), "invalid metadata: schedule not set");
        let error = open(&properties("INVALID_SCHEDULE")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid metadata: invalid schedule format 'INVALID_SCHEDULE': expected 5 to 6 \
             fields, found 1: [INVALID_SCHEDULE]"
        );
        assert!(open(&properties("@every 15m")).is_ok());
        assert!(
            open(&Properties::from_json(&json!({"Schedule": "0 0 */6 ? * *"})).unwrap()).is_ok()
        );
    }

    #[tokio::test]
    async fn the_catalog_opens_the_input_half() {
        let binding = crate::bindings::open("Bindings.Cron", "v1", &properties("@daily"))
            .await
            .unwrap();
        assert!(binding.input.is_some() && binding.output.is_none());
        let error = crate::bindings::open("bindings.cron", "v1", &properties("@sometimes"))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid metadata: invalid schedule format '@sometimes': unrecognized descriptor: \
             @sometimes"
        );
    }

    #[test]
    fn read_time_is_written_like_go() {
        let instant: Timestamp = "2024-01-02T03:04:05.120Z".parse().unwrap();
        assert_eq!(go_utc_string(instant), "2024-01-02 03:04:05.12 +0000 UTC");
        let instant: Timestamp = "2024-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(go_utc_string(instant), "2024-01-02 03:04:05 +0000 UTC");
        let instant: Timestamp = "2024-12-31T23:59:59.000000001+01:00".parse().unwrap();
        assert_eq!(
            go_utc_string(instant),
            "2024-12-31 22:59:59.000000001 +0000 UTC"
        );
    }

    #[tokio::test]
    async fn every_second_fires_repeatedly_until_stopped() {
        let binding = open(&properties("@every 1s")).unwrap();
        let recorder = recorder();
        let reading = binding.read(recorder.clone()).await.unwrap();
        let fired = wait_for_count(&recorder, 3, Duration::from_secs(10)).await;
        assert!(fired >= 3, "fired {fired} times");
        reading.unsubscribe().await;
        let after_stop = recorder.count.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(recorder.count.load(Ordering::SeqCst), after_stop);

        let events = recorder.events.lock().await;
        for event in events.iter() {
            assert!(event.data.is_empty());
            assert_eq!(event.content_type, None);
            assert_eq!(event.metadata.len(), 2);
            assert_eq!(event.metadata[TIME_ZONE_METADATA_KEY], "Local");
            let read_time = &event.metadata[READ_TIME_METADATA_KEY];
            assert!(read_time.ends_with(" +0000 UTC"), "{read_time}");
        }
    }

    #[tokio::test]
    async fn closing_stops_running_readings_and_refuses_new_ones() {
        let binding = open(&properties("* * * * * *")).unwrap();
        let recorder = recorder();
        let reading = binding.read(recorder.clone()).await.unwrap();
        let fired = wait_for_count(&recorder, 1, Duration::from_secs(5)).await;
        assert!(fired >= 1);
        binding.close().await.unwrap();
        // Closing alone stops the schedule.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after_close = recorder.count.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(recorder.count.load(Ordering::SeqCst), after_close);
        reading.unsubscribe().await;
        assert_eq!(
            binding.read(recorder).await.err(),
            Some(BindingError::Closed)
        );
    }
}
