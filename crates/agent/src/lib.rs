//! The agent runtime: provider-neutral conversation types, providers, tools, and the loop.

pub mod tools;
pub mod types;
