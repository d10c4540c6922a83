//! What the SQLite components (the `sqlite` name resolver and the `state.sqlite` store)
//! have in common, as upstream's shared SQLite package does: the settings both read the
//! same way ([`SqliteSettings`]), and upstream's connection-string rules with the way a
//! connection is opened by them (`connection`). Where the two components behave
//! differently, each passes its own profile or rules instead of keeping a copy.

pub(crate) mod connection;
mod settings;

pub use settings::SqliteSettings;
pub(crate) use settings::{NegativeDurations, SettingsProfile, duration_or_off};
