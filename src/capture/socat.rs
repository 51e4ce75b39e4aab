//! The 2024 socat hexdump logs (`docs/protocol.md#socat-logs`): reader only.
//!
//! Exists because these logs hold the only captured cloud→device commands, mesh-info exchange and
//! 0xA3/0xAB packets (`docs/protocol.md#evidence`), and they are Markdown files whose author edited
//! some lines by hand. Owns the rules for telling socat's own output from those edits. Must never
//! drop a record because its bytes disagree with its `length=` (the record keeps what could be read
//! and says so in [`Record::length_mismatch`]), and never take the ASCII column or a note for
//! bytes.
//!
//! What socat writes, and what the fixture files add to it:
//! ```text
//! > 2024/03/11 00:14:27.455916  length=31 from=0 to=30      '>' device/app → server, '<' back
//!  23 00 00 00 1a 03 37 96 24 69 00 10 31 65 30 37  #.....7.$i..1e07
//! --
//! ```
//! * socat ends a hexdump line early after a `0a` byte, so lines are not always 16 bytes.
//! * Hand edits: `|`, `[ ]`, `{ }` markers around bytes, `##` / `#` notes, bytes elided (the 0x23
//!   hello in Plug.md and Bulb.md keeps 19 of 31 bytes), a hex line replaced by prose (App.md), a
//!   header reduced to a bare `>` (App.md), a pasted terminal escape `^[` before a header.

use super::{hex_byte, Capture, CaptureError, Direction, LengthMismatch, Record};

/// Characters the log's author put around bytes to highlight them (`|86 01 00|`, `[05]`, `{…}`).
const MARKERS: &[char] = &['|', '[', ']', '{', '}'];

/// A parsed `>`/`<` header line.
struct Header {
    dir: Direction,
    ts: String,
    declared: Option<usize>,
}

/// A record whose hex lines are still being read.
struct Open {
    record: Record,
    declared: Option<usize>,
    /// A note appeared inside the record; later hex-looking lines belong to the note.
    in_note: bool,
}

/// Reads a socat log. Prose outside records is ignored; see [`Capture`] for the rest.
pub fn parse_socat(input: &str) -> Capture {
    let mut capture = Capture::default();
    let mut open: Option<Open> = None;
    for (index, raw) in input.lines().enumerate() {
        let line = index + 1;
        let text = strip_noise(raw);
        if let Some(header) = parse_header(text) {
            close(&mut capture, open.take());
            open = Some(Open {
                record: Record {
                    ts: header.ts,
                    dir: header.dir,
                    injected: false,
                    conn: None,
                    bytes: Vec::new(),
                    line,
                    length_mismatch: None,
                },
                declared: header.declared,
                in_note: false,
            });
            continue;
        }
        if text.trim() == "--" {
            close(&mut capture, open.take());
            continue;
        }
        let Some(current) = open.as_mut() else {
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        match hex_columns(text) {
            Some(bytes) if !current.in_note => current.record.bytes.extend(bytes),
            Some(_) => capture.problems.push(CaptureError::HexAfterNote { line }),
            None => current.in_note = true,
        }
    }
    close(&mut capture, open.take());
    capture
}

/// Whether `line` is a complete socat header (used by format detection; a bare `>` is too weak
/// a sign to decide the format on).
pub(super) fn is_full_header(line: &str) -> bool {
    parse_header(strip_noise(line)).is_some_and(|header| header.declared.is_some())
}

/// Drops what a terminal or editor left before a line: App.md line 407 has a pasted escape,
/// printed as the two characters `^[`, before `<`; a raw ESC (0x1b) or BOM is dropped too.
fn strip_noise(raw: &str) -> &str {
    let raw = raw.trim_start_matches(['\u{1b}', '\u{feff}']);
    raw.strip_prefix("^[").unwrap_or(raw)
}

/// `> 2024/03/11 00:14:27.455916  length=31 from=0 to=30`, or a bare `>`/`<` (App.md, where
/// the author cut the header of a hand-annotated record).
fn parse_header(text: &str) -> Option<Header> {
    let (dir, rest) = if let Some(rest) = text.strip_prefix('>') {
        (Direction::DeviceToServer, rest)
    } else {
        (Direction::ServerToDevice, text.strip_prefix('<')?)
    };
    if rest.trim().is_empty() {
        return Some(Header {
            dir,
            ts: String::new(),
            declared: None,
        });
    }
    let mut fields = rest.split_whitespace();
    let date = fields.next()?;
    let time = fields.next()?;
    let declared = fields.next()?.strip_prefix("length=")?.parse().ok()?;
    let made_of = |field: &str, separators: &[char]| {
        !field.is_empty()
            && field
                .chars()
                .all(|c| c.is_ascii_digit() || separators.contains(&c))
    };
    if !made_of(date, &['/']) || !made_of(time, &[':', '.']) {
        return None;
    }
    Some(Header {
        dir,
        ts: format!("{date} {time}"),
        declared: Some(declared),
    })
}

/// The bytes of one hexdump line, or `None` for a note.
///
/// socat writes ` xx xx … xx`, pads with spaces, then an ASCII column of one character per
/// byte. Hand edits insert markers and shift that column, so the line is read by structure, not
/// by fixed position: hex tokens up to the first run of two spaces, then only spaces, then
/// exactly one character per byte to the end of the line. Requiring the ASCII column to fit is
/// what tells a hex line from a note that merely starts with hex-looking numbers
/// (`[05 00 44  01 00 …]`, `33 - 64 + 1 …`), and it keeps the ASCII column itself — which can
/// look like hex (`...10298...`) or start with a space — out of the bytes.
fn hex_columns(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_start_matches(' ');
    let (hex, rest) = body.split_at(body.find("  ").unwrap_or(body.len()));
    let bytes = hex
        .split(' ')
        .map(|token| token.trim_matches(MARKERS))
        .filter(|token| !token.is_empty())
        .map(hex_byte)
        .collect::<Option<Vec<u8>>>()?;
    let last = bytes.len().checked_sub(1)?;
    let (ascii_start, _) = rest.char_indices().rev().nth(last)?;
    let gap = rest.get(..ascii_start)?;
    (gap.len() >= 2 && gap.bytes().all(|byte| byte == b' ')).then_some(bytes)
}

/// Finishes a record: flags a `length=` the bytes do not match, and keeps it either way.
fn close(capture: &mut Capture, open: Option<Open>) {
    let Some(Open {
        mut record,
        declared,
        ..
    }) = open
    else {
        return;
    };
    let parsed = record.bytes.len();
    record.length_mismatch = declared
        .filter(|declared| *declared != parsed)
        .map(|declared| LengthMismatch { declared, parsed });
    capture.records.push(record);
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::shared_fixture;
    use super::*;
    use proptest::prelude::*;

    /// socat's exact layout: one-space indent, `xx ` per byte, ASCII column at char 50.
    fn socat_line(bytes: &[u8]) -> String {
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = bytes
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                }
            })
            .collect();
        format!(" {:<48} {ascii}", hex.join(" "))
    }

    #[test]
    fn socat_line_helper_matches_the_real_layout() {
        assert_eq!(
            socat_line(&[0x28, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00]),
            " 28 00 00 00 02 00 00                             (......"
        );
    }

    #[test]
    fn plain_records_are_read_with_direction_timestamp_and_length() {
        let input = "\
> 2024/03/11 00:14:28.745969  length=6 from=117 to=122
 c3 00 00 00 01 0c                                ......
--
< 2024/03/11 00:16:39.211343  length=13 from=2142 to=2154
 a8 00 00 00 08 37 96 24 69 15 2b 0a              .....7.$i.+.
 00                                               .
--
";
        let capture = parse_socat(input);
        assert!(capture.problems.is_empty());
        let [hello, notice] = &capture.records[..] else {
            panic!("{:#?}", capture.records);
        };
        assert_eq!(hello.dir, Direction::DeviceToServer);
        assert_eq!(hello.ts, "2024/03/11 00:14:28.745969");
        assert_eq!(hello.bytes, [0xc3, 0x00, 0x00, 0x00, 0x01, 0x0c]);
        assert_eq!(hello.length_mismatch, None);
        assert_eq!(notice.dir, Direction::ServerToDevice);
        assert_eq!(notice.line, 4);
        // socat broke the line after the 0a byte; both lines are one record.
        assert_eq!(notice.bytes.len(), 13);
        assert_eq!(notice.length_mismatch, None);
    }

    #[test]
    fn elided_bytes_keep_the_record_and_flag_the_length() {
        let input = "\
## device sends authorization code to server
> 2024/03/11 00:14:27.455916  length=31 from=0 to=30
 23 00 00 00 1a 03 37 96 24 69 00 10 31 65 30 37  #.....7.$i..1e07
  00 00 3c     ..<
--
";
        let capture = parse_socat(input);
        let record = &capture.records[0];
        assert_eq!(record.bytes.len(), 19);
        assert_eq!(record.bytes[16..], [0x00, 0x00, 0x3c]);
        assert_eq!(
            record.length_mismatch,
            Some(LengthMismatch {
                declared: 31,
                parsed: 19
            })
        );
    }

    #[test]
    fn markers_around_bytes_are_dropped_and_shifted_ascii_still_fits() {
        let input = "\
> 2024/03/11 00:14:28.682390  length=20 from=62 to=81
 |86 01 00| 30 00 00 00 00 00 00 00 00 00 00 00 00  ...0............
 [01 64] {7e} ||7b                                .d~{
--
";
        let capture = parse_socat(input);
        let record = &capture.records[0];
        assert_eq!(record.bytes[..4], [0x86, 0x01, 0x00, 0x30]);
        assert_eq!(record.bytes[16..], [0x01, 0x64, 0x7e, 0x7b]);
        assert_eq!(record.length_mismatch, None);
    }

    #[test]
    fn the_ascii_column_is_never_taken_for_bytes() {
        // Bytes whose ASCII rendering is itself "31 32" and one starting with a space.
        let looks_like_hex = socat_line(&[0x33, 0x31, 0x20, 0x33, 0x32]);
        assert!(looks_like_hex.ends_with("  31 32"));
        let leading_space = socat_line(&[0x20, 0x41]);
        let input = format!(
            "> 2024/03/11 00:00:00.000001  length=7 from=0 to=6\n{looks_like_hex}\n{leading_space}\n--\n"
        );
        let capture = parse_socat(&input);
        assert_eq!(
            capture.records[0].bytes,
            [0x33, 0x31, 0x20, 0x33, 0x32, 0x20, 0x41]
        );
        assert_eq!(capture.records[0].length_mismatch, None);
    }

    #[test]
    fn notes_inside_a_record_end_its_bytes_and_later_hex_is_reported() {
        let input = "\
> 2024/03/11 00:14:50.000185703  length=5 from=567 to=571
 d3 00 00 00 00                                   .....
 [1F 00 00 00  F8 52] HEX
 [05 00 44  01 00 00 44  01 00     00 00 00 64]
 33 - 64 + 1 + 5 % 256 = 231
 # the next msg like this
 d3 00 00 00 00                                   .....
--
";
        let capture = parse_socat(input);
        assert_eq!(capture.records[0].bytes, [0xd3, 0, 0, 0, 0]);
        assert_eq!(capture.records[0].length_mismatch, None);
        assert!(matches!(
            capture.problems[..],
            [CaptureError::HexAfterNote { line: 7 }]
        ));
    }

    #[test]
    fn bare_headers_and_terminal_escapes_still_open_records() {
        let input = "\
>
 7b 00                                            {.
--
^[< 2024/03/11 00:17:39.847704  length=1 from=2309 to=2309
 78                                               x
--
\u{1b}> 2024/03/11 00:17:40.000000  length=1 from=0 to=0
 d3                                               .
--
";
        let capture = parse_socat(input);
        let [bare, escaped, raw_escape] = &capture.records[..] else {
            panic!("{:#?}", capture.records);
        };
        assert_eq!(bare.ts, "");
        assert_eq!(bare.bytes, [0x7b, 0x00]);
        assert_eq!(bare.length_mismatch, None, "nothing to compare against");
        assert_eq!(escaped.dir, Direction::ServerToDevice);
        assert_eq!(escaped.bytes, [0x78]);
        assert_eq!(raw_escape.dir, Direction::DeviceToServer);
        assert_eq!(raw_escape.bytes, [0xd3]);
    }

    #[test]
    fn prose_outside_records_is_ignored() {
        let input = "# Plug\n\n- `<` is the server to plug\n> quoted prose\n 23 00  #.\n";
        let capture = parse_socat(input);
        assert!(capture.records.is_empty(), "{:#?}", capture.records);
        assert!(capture.problems.is_empty());
    }

    proptest! {
        #[test]
        fn any_input_parses_without_panicking(input in "(?s).{0,400}") {
            let _ = parse_socat(&input);
        }

        #[test]
        fn socat_shaped_garbage_parses_without_panicking(
            input in "[<>0-9a-f |\\[\\]{}\\n.#-]{0,400}"
        ) {
            let _ = parse_socat(&input);
        }

        #[test]
        fn any_bytes_dumped_like_socat_read_back(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..=16), 1..6)
        ) {
            let total: usize = chunks.iter().map(Vec::len).sum();
            let mut input = format!("< 2024/03/11 00:00:00.000001  length={total} from=0 to=0\n");
            for chunk in &chunks {
                input.push_str(&socat_line(chunk));
                input.push('\n');
            }
            let capture = parse_socat(&input);
            prop_assert_eq!(capture.records.len(), 1);
            prop_assert_eq!(&capture.records[0].bytes, &chunks.concat());
            prop_assert_eq!(capture.records[0].length_mismatch, None);
        }
    }

    fn mismatches(capture: &Capture) -> Vec<(usize, usize, usize)> {
        capture
            .records
            .iter()
            .filter_map(|r| r.length_mismatch.map(|m| (r.line, m.declared, m.parsed)))
            .collect()
    }

    #[test]
    fn plug_log_opens_with_the_hand_elided_0x23_hello() {
        let Some(input) = shared_fixture("socat-2024/Plug.md") else {
            return;
        };
        let capture = parse_socat(&input);
        assert_eq!(capture.records.len(), 84);
        assert!(capture.problems.is_empty(), "{:#?}", capture.problems);
        let first = &capture.records[0];
        assert_eq!(first.dir, Direction::DeviceToServer);
        assert_eq!(first.ts, "2024/03/11 00:14:27.455916");
        assert_eq!(
            first.bytes[..10],
            [0x23, 0x00, 0x00, 0x00, 0x1a, 0x03, 0x37, 0x96, 0x24, 0x69]
        );
        // The only mismatch: the author kept 19 of the hello's 31 bytes.
        assert_eq!(mismatches(&capture), [(25, 31, 19)]);
        // The firmware frame with `|86 01 00|` markers reads as its full 55 bytes.
        let firmware = capture
            .records
            .iter()
            .find(|r| r.ts == "2024/03/11 00:14:28.682390")
            .unwrap();
        assert_eq!(firmware.bytes.len(), 55);
        assert_eq!(firmware.bytes[32..35], [0x86, 0x01, 0x00]);
        // The first cloud→device power command (docs/protocol.md#power): 36 bytes, op d0.
        let power_on = capture
            .records
            .iter()
            .find(|r| r.ts == "2024/03/11 00:16:19.803267")
            .unwrap();
        assert_eq!(power_on.dir, Direction::ServerToDevice);
        assert_eq!(power_on.bytes.len(), 36);
        assert_eq!(power_on.bytes[17..19], [0xf8, 0xd0]);
    }

    #[test]
    fn bulb_log_ignores_the_pasted_next_message() {
        let Some(input) = shared_fixture("socat-2024/Bulb.md") else {
            return;
        };
        let capture = parse_socat(&input);
        assert_eq!(capture.records.len(), 42);
        assert_eq!(mismatches(&capture), [(24, 31, 19)]);
        // Lines 112-113 repeat a later message after a `# the next msg like this` note.
        assert!(matches!(
            capture.problems[..],
            [
                CaptureError::HexAfterNote { line: 112 },
                CaptureError::HexAfterNote { line: 113 }
            ]
        ));
        // The 356-byte read of three packets, with `|43` and `|83` markers, is whole.
        let three = capture
            .records
            .iter()
            .find(|r| r.ts == "2024/03/11 00:14:22.000742456")
            .unwrap();
        assert_eq!(three.bytes.len(), 356);
        assert_eq!(three.length_mismatch, None);
    }

    #[test]
    fn app_log_keeps_the_bare_header_record_and_the_escaped_header() {
        let Some(input) = shared_fixture("socat-2024/App.md") else {
            return;
        };
        let capture = parse_socat(&input);
        assert_eq!(capture.records.len(), 99);
        assert!(capture.problems.is_empty(), "{:#?}", capture.problems);
        // The auth record had a hex line replaced by prose: 20 of 48 bytes remain.
        assert_eq!(mismatches(&capture), [(22, 48, 20)]);
        // `>` with no timestamp, bytes in `{…}` markers, then a page of notes.
        let bare = capture.records.iter().find(|r| r.ts.is_empty()).unwrap();
        assert_eq!(bare.line, 417);
        assert_eq!(bare.bytes.len(), 42);
        // Its own header says so: length byte 0x25 + 5 header bytes.
        assert_eq!(bare.bytes[..5], [0x83, 0x00, 0x00, 0x00, 0x25]);
        // Line 407 starts with a pasted `^[` before `<`.
        assert!(capture
            .records
            .iter()
            .any(|r| r.line == 407 && r.dir == Direction::ServerToDevice && r.bytes.len() == 12));
    }
}
