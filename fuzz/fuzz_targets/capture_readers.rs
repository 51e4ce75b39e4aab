//! Fuzz target: arbitrary text as a capture file, through both readers and format detection.
//! Nothing may panic, every problem names a line inside the input, and a record the text reader
//! accepts reads back identically after `write_text_record` wrote it (timestamp, direction,
//! bytes) — the simulator's recordings and `decode` rely on that round trip.
#![no_main]

use cync_bridge::capture::{parse_any, parse_socat, parse_text, write_text_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let lines = input.lines().count().max(1);
    let text = parse_text(input);
    let socat = parse_socat(input);
    for capture in [&text, &socat] {
        for record in &capture.records {
            assert!(record.line >= 1 && record.line <= lines, "record line {}", record.line);
        }
        for problem in &capture.problems {
            let _ = problem.to_string();
        }
    }
    let _ = parse_any(input);
    for record in &text.records {
        let mut out = String::new();
        if write_text_record(&mut out, &record.ts, record.dir, &record.bytes).is_err() {
            continue;
        }
        let back = parse_text(&out);
        assert!(back.problems.is_empty(), "{out:?}: {:?}", back.problems);
        let again = back.records.first().expect("the written record reads back");
        assert_eq!(
            (&again.ts, again.dir, &again.bytes),
            (&record.ts, record.dir, &record.bytes)
        );
    }
});
