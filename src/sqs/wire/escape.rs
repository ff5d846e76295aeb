//! JSON string writing, shared by the log writer (`telemetry`) and the SQS request writer
//! (`request`), so both escape the same way.

use std::fmt::{self, Write};

/// Writes `value` as a JSON string, quotes included.
pub fn write_string(out: &mut impl Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    write_escaped(out, value)?;
    out.write_char('"')
}

/// Writes `value` escaped for the inside of a JSON string, as the AWS SDK escapes it
/// (so SQS request bodies match its serializer byte for byte): `"`, `\` and the control
/// characters (`\b \f \n \r \t`, the rest as `\u00xx`); everything else, UTF-8 included,
/// as is. Runs that need no escape are written whole.
///
/// Every webhook body goes through here on the SQS thread, so plain text is skipped eight
/// bytes at a time (docs/BENCHMARKS.md, "JSON escaping").
pub fn write_escaped(out: &mut impl Write, value: &str) -> fmt::Result {
    let bytes = value.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes.get(i..i + 8) {
            Some(chunk) => {
                let word = u64::from_le_bytes(chunk.try_into().expect("a slice of 8 bytes"));
                if !needs_escape(word) {
                    i += 8;
                    continue;
                }
                i + 8
            }
            None => bytes.len(),
        };
        for (at, &byte) in bytes.iter().enumerate().take(end).skip(i) {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                0x08 => "\\b",
                0x0c => "\\f",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            // `at` is an ASCII byte, so a character boundary.
            out.write_str(&value[run..at])?;
            if escape.is_empty() {
                write!(out, "\\u{byte:04x}")?;
            } else {
                out.write_str(escape)?;
            }
            run = at + 1;
        }
        i = end;
    }
    out.write_str(&value[run..])
}

/// Whether any of the eight bytes in `word` is `"`, `\` or a control character (below
/// 0x20). Exact: the word-at-a-time tests (Anderson's bit hacks, "has a byte less than n"
/// and "has a zero byte") may misplace which byte matched, never whether one did.
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_byte_below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH != 0;
    has_byte_below(word, 0x20)
        || has_byte_below(word ^ (ONES * u64::from(b'"')), 1)
        || has_byte_below(word ^ (ONES * u64::from(b'\\')), 1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    fn escaped(value: &str) -> String {
        let mut out = String::new();
        super::write_string(&mut out, value).unwrap();
        out
    }

    /// serde_json escapes exactly the same set, the same way.
    fn reference(value: &str) -> String {
        serde_json::to_string(value).unwrap()
    }

    #[test]
    fn every_byte_value_at_every_offset_of_a_word() {
        for byte in 0..=0x7f_u8 {
            for offset in 0..17 {
                let mut value = "a".repeat(offset);
                value.push(char::from(byte));
                value.push_str("bcdefghijklmnop");
                assert_eq!(
                    escaped(&value),
                    reference(&value),
                    "byte {byte:#x} at {offset}"
                );
            }
        }
    }

    #[test]
    fn needs_escape_is_exact_for_each_byte_in_each_lane() {
        for byte in 0..=0xff_u8 {
            for lane in 0..8 {
                let mut bytes = [b'x'; 8];
                bytes[lane] = byte;
                let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(
                    super::needs_escape(u64::from_le_bytes(bytes)),
                    expected,
                    "byte {byte:#x} in lane {lane}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn matches_serde_json(value in any::<String>()) {
            prop_assert_eq!(escaped(&value), reference(&value));
        }

        #[test]
        fn matches_serde_json_on_json_like_text(
            value in proptest::collection::vec(
                prop_oneof![
                    Just("\"".to_owned()), Just("\\".to_owned()), Just("\n".to_owned()),
                    Just("\u{1}".to_owned()), Just("Zoë".to_owned()), Just("€𝄞".to_owned()),
                    "[a-z ]{0,20}",
                ],
                0..40,
            ).prop_map(|parts| parts.concat())
        ) {
            prop_assert_eq!(escaped(&value), reference(&value));
        }
    }
}
