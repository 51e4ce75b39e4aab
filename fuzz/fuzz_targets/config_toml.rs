//! Fuzz target: arbitrary text as a config file, through loading and validation. Nothing may
//! panic: every input is a valid configuration or a `ConfigError` naming what is wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = cync_bridge::config::from_toml_str(text) {
        // The message is what the user reads: rendering it must not panic either.
        let _ = error.to_string();
    }
});
