//! Subcommands of the `cync-bridge` binary. Each submodule turns parsed arguments into a run of
//! library code and an exit status; the work itself lives in the library modules. `anyhow` is
//! allowed here (and in `main`) only: this is the edge where errors become messages for people.

pub mod common;
pub mod config;
pub mod decode;
pub mod demo;
pub mod doctor;
pub mod export;
pub mod healthcheck;
pub mod probe;
pub mod rollout;
pub mod serve;
pub mod setup;
pub mod sim;
pub mod toggle;
