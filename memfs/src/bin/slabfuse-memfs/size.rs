//! Sizes in the log lines.
//!
//! [`Human`] prints the largest of `G`, `M`, `K` that divides the value
//! exactly, else plain bytes, so that a printed size is always exact and
//! reads back through the command line's parser
//! ([`slabfuse_memfs::options::parse_bytes`]) to the same value.

use core::fmt;

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
    use slabfuse_memfs::options::parse_bytes;

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
