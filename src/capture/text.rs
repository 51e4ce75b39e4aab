//! The MITM capture text format (`docs/protocol.md#capture-text`): reader and writer.
//!
//! Exists because the 2025 real-cloud captures and our simulator recordings share this format;
//! owns its grammar, in both directions, so what [`write_text_record`] writes [`parse_text`]
//! reads back. Must never stop at a bad record (it becomes a [`CaptureError`] in
//! [`Capture::problems`] and parsing goes on) and never trust a header's byte count for
//! allocation.
//!
//! ```text
//! <timestamp> <DEV→CLOUD|CLOUD→DEV>[ [INJECTED…]][ [conn:<id>]] (<n> bytes)
//! <n bytes as hex separated by single spaces>
//! <blank line>
//! ```
//! plus annotation blocks: a line of `=`, `ANNOTATION SET: <label>`, `Timestamp: <ISO>`, `=`.

use std::fmt;
use std::iter::Peekable;

use super::{excerpt, hex_byte, Annotation, Capture, CaptureError, Direction, Record};

/// A parsed header line.
struct Header {
    ts: String,
    dir: Direction,
    injected: bool,
    conn: Option<String>,
    declared: usize,
}

/// Reads capture text. Never fails as a whole: see [`Capture`] for where bad records go.
pub fn parse_text(input: &str) -> Capture {
    let mut capture = Capture::default();
    let mut lines = input
        .lines()
        .enumerate()
        .map(|(index, text)| (index + 1, text.trim_start_matches('\u{feff}').trim_end()))
        .peekable();
    while let Some((line, text)) = lines.next() {
        if text.is_empty() || is_rule(text) || text.starts_with("Timestamp:") {
            continue;
        }
        if let Some(label) = text.strip_prefix("ANNOTATION SET:") {
            capture.annotations.push(Annotation {
                line,
                label: label.trim().to_string(),
            });
            continue;
        }
        if !looks_like_header(text) {
            capture.problems.push(CaptureError::UnexpectedLine {
                line,
                text: excerpt(text),
            });
            continue;
        }
        match parse_header(line, text) {
            Ok(header) => match read_hex(line, &header, &mut lines) {
                Ok(bytes) => capture.records.push(Record {
                    ts: header.ts,
                    dir: header.dir,
                    injected: header.injected,
                    conn: header.conn,
                    bytes,
                    line,
                    length_mismatch: None,
                }),
                Err(problem) => capture.problems.push(problem),
            },
            Err(problem) => {
                capture.problems.push(problem);
                // The hex line belongs to the bad header; one problem per record is enough.
                lines.next_if(|(_, next)| is_hex_like(next));
            }
        }
    }
    capture
}

/// Writes one record in the capture-text format (lower-case hex, blank line after). Fails with
/// [`fmt::Error`] when `ts` is empty or contains whitespace, because the reader could not take
/// such a record back.
pub fn write_text_record<W: fmt::Write>(
    out: &mut W,
    ts: &str,
    dir: Direction,
    bytes: &[u8],
) -> fmt::Result {
    if ts.is_empty() || ts.contains(char::is_whitespace) {
        return Err(fmt::Error);
    }
    writeln!(out, "{ts} {dir} ({} bytes)", bytes.len())?;
    for (index, byte) in bytes.iter().enumerate() {
        if index > 0 {
            out.write_char(' ')?;
        }
        write!(out, "{byte:02x}")?;
    }
    out.write_str("\n\n")
}

/// Whether `line` is a valid record header (used by format detection).
pub(super) fn is_header(line: &str) -> bool {
    let line = line.trim_start_matches('\u{feff}').trim_end();
    looks_like_header(line) && parse_header(0, line).is_ok()
}

/// Every header ends in `bytes)`; anything else is not even an attempt at one.
fn looks_like_header(text: &str) -> bool {
    text.ends_with("bytes)")
}

/// The `=` rule around annotation blocks (60 in the MITM writer; any length accepted).
fn is_rule(text: &str) -> bool {
    text.len() >= 3 && text.bytes().all(|byte| byte == b'=')
}

fn is_hex_like(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_hexdigit() || byte == b' ')
}

fn parse_header(line: usize, text: &str) -> Result<Header, CaptureError> {
    let bad = |reason| CaptureError::BadHeader {
        line,
        reason,
        text: excerpt(text),
    };
    let (front, count) = text
        .strip_suffix("bytes)")
        .and_then(|rest| rest.trim_end().rsplit_once('('))
        .ok_or_else(|| bad("no `(<n> bytes)` at the end"))?;
    let declared = count
        .trim()
        .parse::<usize>()
        .map_err(|_| bad("byte count is not a number"))?;
    let (ts, rest) = front
        .trim_end()
        .split_once(' ')
        .ok_or_else(|| bad("no direction after the timestamp"))?;
    if ts.is_empty() {
        return Err(bad("no timestamp"));
    }
    let rest = rest.trim_start();
    let (label, mut tags) = rest.split_once(' ').unwrap_or((rest, ""));
    let dir = Direction::from_label(label)
        .ok_or_else(|| bad("direction is neither DEV→CLOUD nor CLOUD→DEV"))?;
    let mut header = Header {
        ts: ts.to_string(),
        dir,
        injected: false,
        conn: None,
        declared,
    };
    loop {
        tags = tags.trim_start();
        if tags.is_empty() {
            return Ok(header);
        }
        let (tag, after) = tags
            .strip_prefix('[')
            .and_then(|open| open.split_once(']'))
            .ok_or_else(|| bad("text between direction and byte count is not a [tag]"))?;
        apply_tag(&mut header, tag.trim());
        tags = after;
    }
}

/// `[INJECTED]` (committed files), `[INJECTED to conn:<id>]` (current MITM), `[conn:<id>]`.
/// Other tags are free-form annotations and are accepted without meaning.
fn apply_tag(header: &mut Header, tag: &str) {
    if let Some(rest) = tag.strip_prefix("INJECTED") {
        header.injected = true;
        if let Some(conn) = rest.trim_start().strip_prefix("to conn:") {
            header.conn = Some(conn.trim().to_string());
        }
    } else if let Some(conn) = tag.strip_prefix("conn:") {
        header.conn = Some(conn.trim().to_string());
    }
}

/// Takes the hex line that must follow a good header. A blank line or another header is left
/// for the main loop, so one missing hex line never swallows the next record.
fn read_hex<'a, I>(
    header_line: usize,
    header: &Header,
    lines: &mut Peekable<I>,
) -> Result<Vec<u8>, CaptureError>
where
    I: Iterator<Item = (usize, &'a str)>,
{
    let missing = CaptureError::MissingHex {
        line: header_line,
        declared: header.declared,
    };
    let Some(&(line, text)) = lines.peek() else {
        return Err(missing);
    };
    if text.is_empty() {
        if header.declared == 0 {
            lines.next();
            return Ok(Vec::new());
        }
        return Err(missing);
    }
    if looks_like_header(text) {
        return Err(missing);
    }
    lines.next();
    let bytes = text
        .split_ascii_whitespace()
        .map(|token| {
            hex_byte(token).ok_or_else(|| CaptureError::InvalidHex {
                line,
                token: excerpt(token),
            })
        })
        .collect::<Result<Vec<u8>, CaptureError>>()?;
    if bytes.len() != header.declared {
        return Err(CaptureError::CountMismatch {
            line,
            declared: header.declared,
            found: bytes.len(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::shared_fixture;
    use super::*;
    use proptest::prelude::*;

    /// Hand-written sample covering every tolerated extra of the format. Line numbers matter.
    const SAMPLE: &str = "\
============================================================
ANNOTATION SET: toggle kitchen
Timestamp: 2025-11-06T08:21:00.000000
============================================================

2025-11-06T08:21:00.100000 DEV→CLOUD (6 bytes)
c3 00 00 00 01 0c

2025-11-06T08:21:00.200000 CLOUD→DEV [INJECTED] (5 bytes)
d8 00 00 00 00

2025-11-06T08:21:00.300000 CLOUD→DEV [INJECTED to conn:7] (7 bytes)
28 00 00 00 02 00 00

2025-11-06T08:21:00.400000 DEV→CLOUD [conn:7] (5 bytes)
D3 00 00 00 00
";

    #[test]
    fn sample_with_annotation_and_tags_parses_every_record() {
        let records = parse_text(SAMPLE).strict().unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].line, 6);
        assert_eq!(records[0].dir, Direction::DeviceToServer);
        assert_eq!(records[0].bytes, [0xc3, 0x00, 0x00, 0x00, 0x01, 0x0c]);
        assert!(!records[0].injected);
        assert!(records[1].injected);
        assert_eq!(records[1].conn, None);
        assert_eq!(records[1].dir, Direction::ServerToDevice);
        assert!(records[2].injected);
        assert_eq!(records[2].conn.as_deref(), Some("7"));
        assert!(!records[3].injected);
        assert_eq!(records[3].conn.as_deref(), Some("7"));
        assert_eq!(records[3].bytes[0], 0xd3, "upper-case hex is accepted");
    }

    #[test]
    fn annotation_label_is_kept_with_its_line() {
        let capture = parse_text(SAMPLE);
        assert_eq!(capture.annotations.len(), 1);
        assert_eq!(capture.annotations[0].line, 2);
        assert_eq!(capture.annotations[0].label, "toggle kitchen");
    }

    #[test]
    fn bad_records_are_reported_by_line_and_parsing_continues() {
        let input = "\
2025-11-06T08:21:00.100000 DEV→CLOUD (6 bytes)
c3 00 00 00 01 0c

2025-11-06T08:21:00.200000 CLOUD→DEV (5 bytes)
d8 00 0g 00 00

2025-11-06T08:21:00.300000 CLOUD→DEV (7 bytes)
28 00 00 00 02 00

2025-11-06T08:21:00.400000 SIDEWAYS (1 bytes)
00

2025-11-06T08:21:00.500000 DEV→CLOUD (2 bytes)

2025-11-06T08:21:00.600000 DEV→CLOUD (5 bytes)
d3 00 00 00 00
";
        let capture = parse_text(input);
        let lines: Vec<usize> = capture.records.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 15]);
        assert_eq!(capture.problems.len(), 4, "{:#?}", capture.problems);
        assert!(matches!(
            &capture.problems[0],
            CaptureError::InvalidHex { line: 5, token } if token == "0g"
        ));
        assert!(matches!(
            capture.problems[1],
            CaptureError::CountMismatch {
                line: 8,
                declared: 7,
                found: 6
            }
        ));
        assert!(matches!(
            capture.problems[2],
            CaptureError::BadHeader { line: 10, .. }
        ));
        assert!(matches!(
            capture.problems[3],
            CaptureError::MissingHex {
                line: 13,
                declared: 2
            }
        ));
    }

    #[test]
    fn stray_lines_are_unexpected_but_do_not_hide_records() {
        let input = "note to self\n2025-01-01T00:00:00 DEV→CLOUD (1 bytes)\n7e\n";
        let capture = parse_text(input);
        assert_eq!(capture.records.len(), 1);
        assert!(matches!(
            capture.problems[..],
            [CaptureError::UnexpectedLine { line: 1, .. }]
        ));
    }

    #[test]
    fn crlf_line_endings_are_accepted() {
        let input = "2025-01-01T00:00:00 CLOUD→DEV (2 bytes)\r\n7b 00\r\n\r\n";
        let records = parse_text(input).strict().unwrap();
        assert_eq!(records[0].bytes, [0x7b, 0x00]);
    }

    #[test]
    fn header_count_is_not_trusted_for_allocation() {
        let input = "2025-01-01T00:00:00 CLOUD→DEV (4294967295 bytes)\n00\n";
        let capture = parse_text(input);
        assert!(matches!(
            capture.problems[..],
            [CaptureError::CountMismatch { line: 2, .. }]
        ));
    }

    #[test]
    fn writer_output_is_read_back_identically() {
        let mut out = String::new();
        let packet = [0x73, 0x00, 0x00, 0x00, 0x12, 0x1b, 0xdc, 0xda, 0x3e];
        write_text_record(
            &mut out,
            "2025-11-06T08:21:00.100000",
            Direction::ServerToDevice,
            &packet,
        )
        .unwrap();
        write_text_record(
            &mut out,
            "2025-11-06T08:21:00.200000",
            Direction::DeviceToServer,
            &[],
        )
        .unwrap();
        assert_eq!(
            out,
            "2025-11-06T08:21:00.100000 CLOUD→DEV (9 bytes)\n73 00 00 00 12 1b dc da 3e\n\n\
             2025-11-06T08:21:00.200000 DEV→CLOUD (0 bytes)\n\n\n"
        );
        let records = parse_text(&out).strict().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].bytes, packet);
        assert_eq!(records[0].dir, Direction::ServerToDevice);
        assert_eq!(records[0].ts, "2025-11-06T08:21:00.100000");
        assert!(records[1].bytes.is_empty());
    }

    #[test]
    fn writer_refuses_a_timestamp_the_reader_could_not_take_back() {
        let mut out = String::new();
        assert!(write_text_record(
            &mut out,
            "2024/03/11 00:14:27",
            Direction::DeviceToServer,
            &[1]
        )
        .is_err());
        assert!(write_text_record(&mut out, "", Direction::DeviceToServer, &[1]).is_err());
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn any_written_session_round_trips(
            records in prop::collection::vec(
                ("[0-9T:.Z-]{1,32}", any::<bool>(), prop::collection::vec(any::<u8>(), 0..64)),
                0..8,
            )
        ) {
            let mut out = String::new();
            for (ts, to_device, bytes) in &records {
                let dir = if *to_device { Direction::ServerToDevice } else { Direction::DeviceToServer };
                write_text_record(&mut out, ts, dir, bytes).unwrap();
            }
            let parsed = parse_text(&out).strict().unwrap();
            prop_assert_eq!(parsed.len(), records.len());
            for (read, (ts, to_device, bytes)) in parsed.iter().zip(&records) {
                prop_assert_eq!(&read.ts, ts);
                prop_assert_eq!(read.dir == Direction::ServerToDevice, *to_device);
                prop_assert_eq!(&read.bytes, bytes);
            }
        }

        #[test]
        fn any_input_parses_without_panicking(input in "(?s).{0,400}") {
            let _ = parse_text(&input);
        }

        #[test]
        fn header_shaped_garbage_parses_without_panicking(
            input in "[0-9a-fA-F →\\[\\]():=\\n\\r DEVCLOUINJTconbytes]{0,300}"
        ) {
            let _ = parse_text(&input);
        }
    }

    #[test]
    fn home_capture_has_2251_reads_and_starts_with_a_device_hello() {
        let Some(input) = shared_fixture("captures/home-25-devices-20251106.txt") else {
            return;
        };
        let records = parse_text(&input).strict().unwrap();
        // docs/protocol.md#evidence: 2,251 reads.
        assert_eq!(records.len(), 2251);
        let first = &records[0];
        assert_eq!(first.line, 1);
        assert_eq!(first.ts, "2025-11-06T08:20:40.005881");
        assert_eq!(first.dir, Direction::DeviceToServer);
        assert_eq!(first.bytes.len(), 31);
        // 0x23 hello (docs/protocol.md#hello-and-auth): type, length 0x1a, then the peer id
        // 38 e8 cf 46.
        assert_eq!(
            first.bytes[..10],
            [0x23, 0x00, 0x00, 0x00, 0x1a, 0x03, 0x38, 0xe8, 0xcf, 0x46]
        );
        assert_eq!(records[1].dir, Direction::ServerToDevice);
        assert_eq!(records[1].bytes, [0x28, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00]);
        assert!(records.iter().all(|r| !r.injected && r.conn.is_none()));
        let to_device = records
            .iter()
            .filter(|r| r.dir == Direction::ServerToDevice)
            .count();
        // Counted from the file when this test was written: 1,117 device reads, 1,134 cloud.
        assert_eq!(to_device, 1134);
    }

    #[test]
    fn clienthello_capture_has_54_tls_records_sized_by_their_own_header() {
        let Some(input) = shared_fixture("captures/tls-clienthellos-20251106.txt") else {
            return;
        };
        let records = parse_text(&input).strict().unwrap();
        assert_eq!(records.len(), 54);
        for record in &records {
            assert_eq!(record.dir, Direction::DeviceToServer);
            // TLS record header: 0x16 handshake, version, BE16 length of what follows.
            let [0x16, 0x03, _, high, low, ..] = record.bytes[..] else {
                panic!("line {}: not a TLS handshake record", record.line);
            };
            let length = usize::from(u16::from_be_bytes([high, low]));
            assert_eq!(record.bytes.len(), 5 + length, "line {}", record.line);
        }
    }

    #[test]
    fn switch_mode_capture_has_6_packets_and_nanosecond_timestamps() {
        let Some(input) = shared_fixture("switch-mode-2025/switch-mode-capture-20251007.txt")
        else {
            return;
        };
        let records = parse_text(&input).strict().unwrap();
        assert_eq!(records.len(), 6);
        assert_eq!(records[0].ts, "2025-10-07T20:24:25.000986640");
        assert_eq!(records[0].dir, Direction::ServerToDevice);
        // docs/protocol.md#switch-mode: the "traditional" mode command ends
        // `f7 11 02 01 01 <sum> 7e`.
        assert_eq!(records[0].bytes.len(), 35);
        assert_eq!(
            records[0].bytes[28..],
            [0xf7, 0x11, 0x02, 0x01, 0x01, 0x6b, 0x7e]
        );
        // The file ends without the usual blank line; the last record must still be there.
        assert_eq!(records[5].bytes.last(), Some(&0x7e));
    }
}
