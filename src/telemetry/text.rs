//! The small pieces of the Prometheus text exposition format (version 0.0.4) that need care:
//! escaping and number formatting.
//!
//! Why it exists: a label value comes from the wire (a device id) and may hold anything; one
//! unescaped quote or newline would make the whole scrape unparsable and blind every dashboard.
//! It owns only string formatting into a caller's buffer; it never allocates on its own, never
//! fails (writing to a `String` cannot fail) and knows nothing about metric names.
//!
//! Reference: <https://prometheus.io/docs/instrumenting/exposition_formats/#text-format-details>
//! ("`label_value` can be any sequence of UTF-8 characters, but the backslash, the double-quote and
//! the line feed characters have to be escaped as `\\`, `\"` and `\n`"; in HELP docstrings only the
//! backslash and the line feed are escaped).

use std::fmt::Write as _;

/// Appends `value` escaped for use inside a double-quoted label value.
pub(crate) fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

/// Appends `text` escaped for a `# HELP` docstring.
pub(crate) fn push_help(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

/// Appends a float the way Prometheus parses it: `+Inf`, `-Inf` and `NaN` spelled out (Rust would
/// print `inf`), everything else in Rust's shortest round-trip decimal form (`0.128`, `1`, `5`).
pub(crate) fn push_f64(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value}");
    }
}

/// Appends an unsigned integer sample value.
pub(crate) fn push_u64(out: &mut String, value: u64) {
    let _ = write!(out, "{value}");
}

/// Appends a signed integer sample value.
pub(crate) fn push_i64(out: &mut String, value: i64) {
    let _ = write!(out, "{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline_only() {
        let mut out = String::new();
        push_label_value(&mut out, "a\\b\"c\nd\té");
        assert_eq!(out, "a\\\\b\\\"c\\nd\té");
    }

    #[test]
    fn help_text_keeps_quotes_but_escapes_backslash_and_newline() {
        let mut out = String::new();
        push_help(&mut out, "say \"hi\"\\\n");
        assert_eq!(out, "say \"hi\"\\\\\\n");
    }

    #[test]
    fn floats_use_prometheus_spellings_for_special_values() {
        let cases = [
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.128, "0.128"),
            (1.0, "1"),
            (0.001, "0.001"),
        ];
        for (value, want) in cases {
            let mut out = String::new();
            push_f64(&mut out, value);
            assert_eq!(out, want);
        }
    }
}
