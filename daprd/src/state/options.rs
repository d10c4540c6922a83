//! The concurrency and consistency options of state requests, from the words the HTTP API
//! uses (`first-write`, `last-write`, `strong`, `eventual`). As upstream's stores do, an
//! empty word means "no preference" and any other word is refused.

use dapr_components::state::{Concurrency, Consistency, StateError};

/// Reads a `concurrency` option.
pub fn concurrency(word: &str) -> Result<Concurrency, StateError> {
    match word {
        "" => Ok(Concurrency::Unspecified),
        "first-write" => Ok(Concurrency::FirstWrite),
        "last-write" => Ok(Concurrency::LastWrite),
        other => Err(StateError::InvalidRequest(format!(
            "unrecognized concurrency model '{other}'"
        ))),
    }
}

/// Reads a `consistency` option.
pub fn consistency(word: &str) -> Result<Consistency, StateError> {
    match word {
        "" => Ok(Consistency::Unspecified),
        "strong" => Ok(Consistency::Strong),
        "eventual" => Ok(Consistency::Eventual),
        other => Err(StateError::InvalidRequest(format!(
            "unrecognized consistency model '{other}'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_map_to_options_and_unknown_words_are_refused() {
        assert_eq!(concurrency("").unwrap(), Concurrency::Unspecified);
        assert_eq!(concurrency("first-write").unwrap(), Concurrency::FirstWrite);
        assert_eq!(concurrency("last-write").unwrap(), Concurrency::LastWrite);
        assert_eq!(
            concurrency("whenever").unwrap_err().to_string(),
            "unrecognized concurrency model 'whenever'"
        );
        assert_eq!(consistency("strong").unwrap(), Consistency::Strong);
        assert_eq!(consistency("eventual").unwrap(), Consistency::Eventual);
        assert_eq!(
            consistency("Strong").unwrap_err().to_string(),
            "unrecognized consistency model 'Strong'"
        );
    }
}
