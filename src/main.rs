//! The `cync-bridge` binary: one executable, one subcommand per tool.
fn main() {}
