//! Query results as upstream renders them: each row a JSON array of its column values,
//! each value as pgx decodes the column's type and Go's `encoding/json` writes it.
//!
//! - `bool` → `true`/`false`; `int2`/`int4`/`int8`/`oid`/`xid`/`cid` and `float4`/`float8`
//!   → numbers (Go's float text: `3`, `0.5`, `1e+21`; NaN and infinities cannot be
//!   written, as in Go); `numeric` → a number with its scale (`12.50`), or the strings
//!   `"NaN"`, `"Infinity"`, `"-Infinity"`;
//! - text types, enums → strings; `bytea` → a base64 string; `json`/`jsonb` → the JSON
//!   value itself (keys sorted, whitespace dropped); `uuid` → pgx's array of 16 byte
//!   values;
//! - `timestamp` → RFC 3339 text in UTC (`2024-05-01T10:20:30.5Z`), `timestamptz` → the
//!   same in the system's time zone, `date` → midnight UTC; infinite ones → `1` / `-1`
//!   (pgx's infinity markers); `time` → `{"Microseconds":…,"Valid":true}`, `interval` →
//!   `{"Microseconds":…,"Days":…,"Months":…,"Valid":true}` (pgx's structs);
//! - `inet`/`cidr` → `"address/bits"`; arrays → JSON arrays of their elements
//!   (multi-dimensional ones flattened, as pgx scans them); `NULL` → `null`.
//!
//! Other types (which upstream decodes into assorted Go structs) are written as their
//! binary form: a string when it is UTF-8 text, otherwise base64.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Kind, Type};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between the Unix epoch and PostgreSQL's.
const POSTGRES_EPOCH_DAYS: i64 = 10_957;

/// Why a result could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum RenderError {
    /// The server sent a value that does not decode as its type.
    #[error("error reading result: {0}")]
    Malformed(String),
    /// The value has no JSON form (Go's encoder refuses it too).
    #[error("error serializing results: json: {0}")]
    Unsupported(String),
}

/// One column value as the server sent it (binary format).
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The rows as a JSON array of arrays.
pub(super) fn render_rows(rows: &[Row]) -> Result<String, RenderError> {
    let mut out = String::from("[");
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push('[');
        for (column_index, column) in row.columns().iter().enumerate() {
            if column_index > 0 {
                out.push(',');
            }
            let Raw(raw) = row
                .try_get::<_, Raw<'_>>(column_index)
                .map_err(|error| RenderError::Malformed(error.to_string()))?;
            match raw {
                None => out.push_str("null"),
                Some(raw) => render_value(&mut out, column.type_(), raw)?,
            }
        }
        out.push(']');
    }
    out.push(']');
    Ok(out)
}

/// Writes one non-null value of type `ty`.
fn render_value(out: &mut String, ty: &Type, raw: &[u8]) -> Result<(), RenderError> {
    let mut reader = Reader::new(raw, ty);
    match *ty {
        Type::BOOL => out.push_str(if reader.u8()? != 0 { "true" } else { "false" }),
        Type::INT2 => push_display(out, reader.i16()?),
        Type::INT4 => push_display(out, reader.i32()?),
        Type::INT8 => push_display(out, reader.i64()?),
        Type::OID | Type::XID | Type::CID => push_display(out, reader.u32()?),
        Type::FLOAT4 => {
            let value = f32::from_bits(reader.u32()?);
            out.push_str(&go_float(
                f64::from(value),
                &value.to_string(),
                &format!("{value:e}"),
            )?);
        }
        Type::FLOAT8 => {
            let value = f64::from_bits(reader.u64()?);
            out.push_str(&go_float(value, &value.to_string(), &format!("{value:e}"))?);
        }
        Type::NUMERIC => out.push_str(&numeric(&mut reader)?),
        Type::BYTEA => push_string(out, &BASE64.encode(reader.all())),
        Type::JSON | Type::JSONB => {
            if *ty == Type::JSONB && reader.u8()? != 1 {
                return Err(reader.malformed());
            }
            let text = reader.all();
            let value: serde_json::Value = serde_json::from_slice(text)
                .map_err(|error| RenderError::Malformed(error.to_string()))?;
            out.push_str(&value.to_string());
        }
        Type::UUID => {
            let bytes = reader.take(16)?;
            let list: Vec<String> = bytes.iter().map(u8::to_string).collect();
            let _ = write!(out, "[{}]", list.join(","));
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => match reader.i64()? {
            i64::MAX => out.push('1'),
            i64::MIN => out.push_str("-1"),
            micros => {
                let zone = if *ty == Type::TIMESTAMPTZ {
                    jiff::tz::TimeZone::system()
                } else {
                    jiff::tz::TimeZone::UTC
                };
                let timestamp = micros
                    .checked_add(POSTGRES_EPOCH_MICROS)
                    .and_then(|unix| jiff::Timestamp::from_microsecond(unix).ok())
                    .ok_or_else(year_out_of_range)?;
                push_string(out, &go_time(&timestamp.to_zoned(zone))?);
            }
        },
        Type::DATE => match reader.i32()? {
            i32::MAX => out.push('1'),
            i32::MIN => out.push_str("-1"),
            days => {
                let seconds = (i64::from(days) + POSTGRES_EPOCH_DAYS) * 86_400;
                let timestamp =
                    jiff::Timestamp::from_second(seconds).map_err(|_| year_out_of_range())?;
                push_string(out, &go_time(&timestamp.to_zoned(jiff::tz::TimeZone::UTC))?);
            }
        },
        Type::TIME => {
            let micros = reader.i64()?;
            let _ = write!(out, "{{\"Microseconds\":{micros},\"Valid\":true}}");
        }
        Type::INTERVAL => {
            let (micros, days, months) = (reader.i64()?, reader.i32()?, reader.i32()?);
            let _ = write!(
                out,
                "{{\"Microseconds\":{micros},\"Days\":{days},\"Months\":{months},\"Valid\":true}}"
            );
        }
        Type::INET | Type::CIDR => push_string(out, &inet(&mut reader)?),
        _ => match ty.kind() {
            Kind::Array(element) => array(out, element, &mut reader)?,
            _ => match std::str::from_utf8(reader.all()) {
                Ok(text) => push_string(out, text),
                Err(_) => push_string(out, &BASE64.encode(raw)),
            },
        },
    }
    if !reader.rest().is_empty() {
        return Err(reader.malformed());
    }
    Ok(())
}

fn push_display(out: &mut String, value: impl std::fmt::Display) {
    let _ = write!(out, "{value}");
}

fn push_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::Value::from(text).to_string());
}

fn year_out_of_range() -> RenderError {
    RenderError::Unsupported(
        "error calling MarshalJSON for type time.Time: Time.MarshalJSON: year outside of range [0,9999]"
            .to_owned(),
    )
}

/// A float as Go's JSON encoder writes it: shortest digits, plain notation from 1e-6 up
/// to 1e21 and exponent notation (`1e+21`, `1e-7`) outside it. `plain` and `exponent`
/// are Rust's shortest renderings of the value at its own precision.
fn go_float(value: f64, plain: &str, exponent: &str) -> Result<String, RenderError> {
    if !value.is_finite() {
        let name = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return Err(RenderError::Unsupported(format!(
            "unsupported value: {name}"
        )));
    }
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-6..1e21).contains(&magnitude) {
        return Ok(plain.to_owned());
    }
    Ok(match exponent.split_once('e') {
        Some((mantissa, power)) if !power.starts_with('-') => format!("{mantissa}e+{power}"),
        _ => exponent.to_owned(),
    })
}

/// A time as Go's `time.Time` JSON: RFC 3339 with as many fractional digits as needed,
/// `Z` for UTC.
pub(super) fn go_time(zoned: &jiff::Zoned) -> Result<String, RenderError> {
    if !(0..=9999).contains(&zoned.year()) {
        return Err(year_out_of_range());
    }
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        zoned.year(),
        zoned.month(),
        zoned.day(),
        zoned.hour(),
        zoned.minute(),
        zoned.second()
    );
    let nanos = zoned.subsec_nanosecond();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        let _ = write!(text, ".{}", fraction.trim_end_matches('0'));
    }
    let offset = zoned.offset().seconds();
    if offset == 0 {
        text.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.unsigned_abs() / 60;
        let _ = write!(text, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
    }
    Ok(text)
}

/// A `numeric` as pgx writes it: its decimal digits with exactly its scale, or a string
/// for the special values.
fn numeric(reader: &mut Reader<'_>) -> Result<String, RenderError> {
    let ndigits = reader.u16()?;
    let weight = i32::from(reader.i16()?);
    let sign = reader.u16()?;
    let scale = usize::from(reader.u16()?);
    match sign {
        0xC000 => return Ok("\"NaN\"".to_owned()),
        0xD000 => return Ok("\"Infinity\"".to_owned()),
        0xF000 => return Ok("\"-Infinity\"".to_owned()),
        0x0000 | 0x4000 => {}
        _ => return Err(reader.malformed()),
    }
    let digits = (0..ndigits)
        .map(|_| reader.i16())
        .collect::<Result<Vec<_>, _>>()?;
    if digits.iter().any(|digit| !(0..10_000).contains(digit)) {
        return Err(reader.malformed());
    }
    if digits.is_empty() {
        return Ok("0".to_owned());
    }
    // Base-10000 digit `i` stands for 10000^(weight - i).
    let digit_at = |position: i32| {
        usize::try_from(position)
            .ok()
            .and_then(|index| digits.get(index))
            .copied()
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        let _ = write!(text, "{}", digit_at(0));
        for position in 1..=weight {
            let _ = write!(text, "{:04}", digit_at(position));
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut position = weight + 1;
        while fraction.len() < scale {
            let _ = write!(fraction, "{:04}", digit_at(position));
            position += 1;
        }
        fraction.truncate(scale);
        let _ = write!(text, ".{fraction}");
    }
    Ok(text)
}

/// An `inet`/`cidr` as Go's `netip.Prefix` text.
fn inet(reader: &mut Reader<'_>) -> Result<String, RenderError> {
    let family = reader.u8()?;
    let bits = reader.u8()?;
    let _is_cidr = reader.u8()?;
    let length = reader.u8()?;
    let address = match (family, length) {
        (2, 4) => {
            let bytes: [u8; 4] = reader.take(4)?.try_into().map_err(|_| reader.malformed())?;
            std::net::IpAddr::from(bytes)
        }
        (3, 16) => {
            let bytes: [u8; 16] = reader
                .take(16)?
                .try_into()
                .map_err(|_| reader.malformed())?;
            std::net::IpAddr::from(bytes)
        }
        _ => return Err(reader.malformed()),
    };
    Ok(format!("{address}/{bits}"))
}

/// An array's elements, flattened, as a JSON array.
fn array(out: &mut String, element: &Type, reader: &mut Reader<'_>) -> Result<(), RenderError> {
    let dimensions = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let _element_oid = reader.u32()?;
    let mut count: usize = if dimensions > 0 { 1 } else { 0 };
    for _ in 0..dimensions.max(0) {
        let length = usize::try_from(reader.i32()?).map_err(|_| reader.malformed())?;
        let _lower_bound = reader.i32()?;
        count = count
            .checked_mul(length)
            .ok_or_else(|| reader.malformed())?;
    }
    out.push('[');
    for index in 0..count {
        if index > 0 {
            out.push(',');
        }
        let length = reader.i32()?;
        if length < 0 {
            out.push_str("null");
            continue;
        }
        let length = usize::try_from(length).map_err(|_| reader.malformed())?;
        let value = reader.take(length)?;
        render_value(out, element, value)?;
    }
    out.push(']');
    Ok(())
}

/// Reads big-endian fields from a value.
struct Reader<'a> {
    bytes: &'a [u8],
    ty: &'a Type,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], ty: &'a Type) -> Self {
        Self { bytes, ty }
    }

    fn malformed(&self) -> RenderError {
        RenderError::Malformed(format!("malformed {} value", self.ty.name()))
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// Everything not read yet.
    fn all(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], RenderError> {
        if self.bytes.len() < length {
            return Err(self.malformed());
        }
        let (head, tail) = self.bytes.split_at(length);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RenderError> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| self.malformed())
    }

    fn u8(&mut self) -> Result<u8, RenderError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, RenderError> {
        self.array().map(u16::from_be_bytes)
    }

    fn i16(&mut self) -> Result<i16, RenderError> {
        self.array().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, RenderError> {
        self.array().map(i32::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, RenderError> {
        self.array().map(u32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, RenderError> {
        self.array().map(i64::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, RenderError> {
        self.array().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(value: f64) -> String {
        go_float(value, &value.to_string(), &format!("{value:e}")).unwrap()
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        assert_eq!(float(3.0), "3");
        assert_eq!(float(-0.5), "-0.5");
        assert_eq!(float(0.0), "0");
        assert_eq!(float(1e20), "100000000000000000000");
        assert_eq!(float(1e21), "1e+21");
        assert_eq!(float(1.5e-7), "1.5e-7");
        assert_eq!(float(0.000001), "0.000001");
        let single = 1.1f32;
        assert_eq!(
            go_float(
                f64::from(single),
                &single.to_string(),
                &format!("{single:e}")
            )
            .unwrap(),
            "1.1"
        );
        for (value, name) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(
                go_float(value, "", "").unwrap_err().to_string(),
                format!("error serializing results: json: unsupported value: {name}")
            );
        }
    }

    fn numeric_text(ndigits: u16, weight: i16, sign: u16, scale: u16, digits: &[i16]) -> String {
        let mut raw = Vec::new();
        for field in [ndigits, weight as u16, sign, scale] {
            raw.extend(field.to_be_bytes());
        }
        for digit in digits {
            raw.extend(digit.to_be_bytes());
        }
        numeric(&mut Reader::new(&raw, &Type::NUMERIC)).unwrap()
    }

    #[test]
    fn numerics_keep_their_scale() {
        // 12.340: digits 12 | 3400, weight 0, scale 3.
        assert_eq!(numeric_text(2, 0, 0, 3, &[12, 3400]), "12.340");
        // 10000: one digit 1 of weight 1.
        assert_eq!(numeric_text(1, 1, 0, 0, &[1]), "10000");
        // -0.0005: digit 5 at weight -1, scale 4.
        assert_eq!(numeric_text(1, -1, 0x4000, 4, &[5]), "-0.0005");
        // 123456789.5: 1 | 2345 | 6789 | 5000, weight 2.
        assert_eq!(
            numeric_text(4, 2, 0, 1, &[1, 2345, 6789, 5000]),
            "123456789.5"
        );
        assert_eq!(numeric_text(0, 0, 0, 2, &[]), "0");
        assert_eq!(numeric_text(0, 0, 0xC000, 0, &[]), "\"NaN\"");
        assert_eq!(numeric_text(0, 0, 0xF000, 0, &[]), "\"-Infinity\"");
    }
}
