//! Kubernetes resource quantities (`4Mi`, `100M`, `1.5Gi`, `512`), as upstream's
//! `--max-body-size` and `--read-buffer-size` flags take them.

/// Why a quantity was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantityError {
    /// The text is not a number followed by an optional known suffix.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Malformed,
    /// The value does not fit in a byte count.
    #[error("cannot get bytes from resource quantity value '{0}'")]
    OutOfRange(String),
}

/// Parses `text` into a whole number of bytes (fractions are rounded up, as Kubernetes does).
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number.matches('.').count() > 1 || number == "." {
        return Err(QuantityError::Malformed);
    }
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => return Err(QuantityError::Malformed),
    };
    let value: f64 = number
        .trim_start_matches('+')
        .parse()
        .map_err(|_| QuantityError::Malformed)?;
    let bytes = (value * multiplier).ceil();
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(QuantityError::OutOfRange(text.to_string()));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_suffixes() {
        for (text, bytes) in [
            ("4Mi", 4 << 20),
            ("4Ki", 4 << 10),
            ("1Gi", 1 << 30),
            ("100M", 100_000_000),
            ("2k", 2000),
            ("512", 512),
            ("1.5Ki", 1536),
            ("0", 0),
            ("+3", 3),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_quantities() {
        for text in ["", "Mi", "4MB", "4 Mi", "1.2.3", "-4Mi", "abc", "."] {
            assert_eq!(parse_bytes(text), Err(QuantityError::Malformed), "{text}");
        }
    }
}
