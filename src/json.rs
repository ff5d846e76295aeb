//! JSON string writing, shared by the log writer (`telemetry`) and the SQS request writer
//! (`sqs_json`), so both escape the same way.

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
pub fn write_escaped(out: &mut impl Write, value: &str) -> fmt::Result {
    let mut run = 0;
    for (i, byte) in value.bytes().enumerate() {
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
        // `i` is an ASCII byte, so a character boundary.
        out.write_str(&value[run..i])?;
        if escape.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(escape)?;
        }
        run = i + 1;
    }
    out.write_str(&value[run..])
}
