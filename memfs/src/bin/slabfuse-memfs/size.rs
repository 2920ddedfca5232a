//! Sizes on the command line and in the log lines.
//!
//! Input: a decimal number with an optional binary suffix, as tmpfs and
//! `fusermount3` users write them: `65536`, `64K`, `16M`, `1G`, `2T`
//! (case-insensitive; `KiB`/`KB`-style spellings are accepted and mean the
//! same powers of 1024). Output ([`Human`]): the largest of `G`, `M`, `K`
//! that divides the value exactly, else plain bytes, so that a printed size
//! is always exact and reads back through [`parse_bytes`] to the same value.

use core::fmt;

/// Parses `SIZE`: digits, then an optional `K`/`M`/`G`/`T` (powers of
/// 1024), optionally followed by `B` or `iB`.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "'{text}' is not a size: expected a number with an optional K, M, G or T suffix"
        ));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "'{text}' has an unknown size suffix '{suffix}': use K, M, G or T"
            ));
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is too large"))?;
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses a plain decimal count (no suffix).
pub(crate) fn parse_count(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not a number"));
    }
    text.parse().map_err(|_| format!("'{text}' is too large"))
}

/// A byte count printed exactly: `16M`, `4K`, `12345`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Human(pub(crate) u64);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        if bytes == 0 {
            return f.write_str("0");
        }
        for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
            if bytes.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", bytes >> shift);
            }
        }
        write!(f, "{bytes}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_powers_of_1024_in_any_case_and_spelling() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes("16M"), Ok(16 << 20));
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("16mb"), Ok(16 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("2T"), Ok(2 << 40));
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        assert!(parse_bytes("").unwrap_err().contains("not a size"));
        assert!(parse_bytes("M").unwrap_err().contains("not a size"));
        assert!(parse_bytes("-1").unwrap_err().contains("not a size"));
        assert!(
            parse_bytes("1.5M")
                .unwrap_err()
                .contains("unknown size suffix")
        );
        assert!(
            parse_bytes("10X")
                .unwrap_err()
                .contains("unknown size suffix")
        );
        assert!(
            parse_bytes("16 M")
                .unwrap_err()
                .contains("unknown size suffix")
        );
        assert!(
            parse_bytes("99999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_bytes("17179869184G")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn counts_take_no_suffix() {
        assert_eq!(parse_count("42"), Ok(42));
        assert!(parse_count("4K").is_err());
        assert!(parse_count("").is_err());
        assert!(parse_count("+1").is_err());
    }

    #[test]
    fn human_sizes_are_exact_and_read_back() {
        for (bytes, text) in [
            (0, "0"),
            (512, "512"),
            (4096, "4K"),
            (16 << 20, "16M"),
            ((16 << 20) + 4096, "16388K"),
            (3 << 30, "3G"),
            (12345, "12345"),
        ] {
            assert_eq!(Human(bytes).to_string(), text);
            assert_eq!(parse_bytes(text), Ok(bytes));
        }
    }
}
