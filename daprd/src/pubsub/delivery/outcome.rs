//! What became of one delivery attempt, as upstream's subscribers classify the app's
//! answer.

/// The result of handing an event to the app once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The app processed the event.
    Success,
    /// The app asked to drop the event (`DROP`, HTTP 404): acknowledge it and, when
    /// `dead_letter` is true and the subscription has one, forward it to the dead-letter
    /// topic.
    Dropped {
        /// Whether the event goes to the dead-letter topic.
        dead_letter: bool,
    },
    /// The event was not processed and may be retried (`RETRY`, an error status, an
    /// unreachable app); the text says why.
    Retry(String),
}
