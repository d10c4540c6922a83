//! The building-block contracts and the built-in components behind them: one async trait
//! per building block (state, pub/sub, bindings, secrets, configuration, lock, crypto,
//! name resolution, HTTP middleware) plus a registry that maps upstream's type strings
//! (`state.redis`, `v1`) to constructors taking the component's metadata.
//!
//! The crate is part of the workspace layout from the start so every later building
//! block has its home; it holds no component yet.
