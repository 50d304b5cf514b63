//! The agent runtime: provider-neutral conversation types, providers, tools, and the loop.

pub mod context;
pub mod providers;
pub mod run;
pub mod tools;
pub mod types;
