//! The `bindings.http` settings, read the way upstream reads them: `url`, `responseTimeout`,
//! `maxResponseBodySize` (a Kubernetes quantity, default 100Mi, zero or less for no
//! limit), `errorIfNot2XX` (default true), `securityToken` with `securityTokenHeader`, and
//! the TLS settings `MTLSRootCA`, `MTLSClientCert`, `MTLSClientKey` (PEM text or a file
//! path) and `MTLSRenegotiation`.

use std::time::Duration;

use http::Uri;

use crate::bindings::BindingError;
use crate::metadata::Properties;

/// Upstream's default `maxResponseBodySize`: 100 MiB.
const DEFAULT_MAX_RESPONSE_BODY_SIZE: u64 = 100 << 20;

/// The component's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The base URL requests go to (`url`).
    pub url: String,
    /// The header and value sent with every request (`securityTokenHeader`,
    /// `securityToken`), when both are set.
    pub security_token: Option<(String, String)>,
    /// How long a request may take, response body included (`responseTimeout`).
    pub response_timeout: Option<Duration>,
    /// The most response body bytes read (`maxResponseBodySize`); `None`: no limit.
    pub max_response_body_size: Option<u64>,
    /// Whether a status outside 2xx is an error (`errorIfNot2XX`).
    pub error_if_not_2xx: bool,
    /// TLS settings for `https` URLs.
    pub tls: TlsSettings,
}

/// TLS material, as PEM text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// The CAs trusted for the server instead of the system's roots (`MTLSRootCA`).
    pub root_ca: Option<String>,
    /// The client certificate chain and its key (`MTLSClientCert`, `MTLSClientKey`),
    /// used when both are set.
    pub client_identity: Option<(String, String)>,
}

impl Settings {
    /// Reads and checks the settings.
    pub fn from_properties(properties: &Properties) -> Result<Self, BindingError> {
        let invalid = BindingError::InvalidMetadata;
        let text = |name: &str| {
            properties
                .text(name, &[])
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let url = text("url").ok_or_else(|| invalid("url is required".into()))?;
        check_url(&url).map_err(invalid)?;
        let security_token = text("securityToken").zip(text("securityTokenHeader"));
        let response_timeout = properties
            .duration("responseTimeout", &[])
            .map_err(|err| invalid(err.to_string()))?;
        let max_response_body_size = match text("maxResponseBodySize") {
            None => Some(DEFAULT_MAX_RESPONSE_BODY_SIZE),
            Some(size) => {
                let bytes = parse_byte_size(&size).map_err(|err| {
                    invalid(format!("invalid value for maxResponseBodySize: {err}"))
                })?;
                u64::try_from(bytes).ok().filter(|bytes| *bytes > 0)
            }
        };
        let error_if_not_2xx = text("errorIfNot2XX").is_none_or(|value| is_truthy(&value));
        let tls = tls_settings(&text)?;
        Ok(Self {
            url,
            security_token,
            response_timeout,
            max_response_body_size,
            error_if_not_2xx,
            tls,
        })
    }
}

/// Reads the TLS settings, loading files where a value is not PEM text.
fn tls_settings(text: &dyn Fn(&str) -> Option<String>) -> Result<TlsSettings, BindingError> {
    if let Some(renegotiation) = text("MTLSRenegotiation") {
        match renegotiation.as_str() {
            "RenegotiateNever" => {}
            "RenegotiateOnceAsClient" | "RenegotiateFreelyAsClient" => {
                return Err(BindingError::InvalidMetadata(format!(
                    "MTLSRenegotiation {renegotiation} is not supported: TLS renegotiation is never allowed"
                )));
            }
            other => {
                return Err(BindingError::InvalidMetadata(format!(
                    "invalid renegotiation value: {other}"
                )));
            }
        }
    }
    let pem = |name: &str| {
        text(name)
            .map(|value| pem_text(name, &value))
            .transpose()
            .map_err(BindingError::InvalidMetadata)
    };
    let root_ca = pem("MTLSRootCA")?;
    let client_identity = match (text("MTLSClientCert"), text("MTLSClientKey")) {
        (Some(_), Some(_)) => pem("MTLSClientCert")?.zip(pem("MTLSClientKey")?),
        _ => None,
    };
    Ok(TlsSettings {
        root_ca,
        client_identity,
    })
}

/// `value` when it holds a PEM block, else the content of the file it names.
fn pem_text(name: &str, value: &str) -> Result<String, String> {
    if value.contains("-----BEGIN ") && value.contains("-----END ") {
        return Ok(value.to_owned());
    }
    std::fs::read_to_string(value).map_err(|err| {
        format!(
            "provided {name:?} value is neither a valid file path or nor a valid pem encoded string: {err}"
        )
    })
}

/// Checks that `url` is an absolute `http` or `https` URL.
fn check_url(url: &str) -> Result<(), String> {
    let uri: Uri = url
        .parse()
        .map_err(|err| format!("invalid url {url:?}: {err}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(()),
        _ => Err(format!(
            "invalid url {url:?}: the url must start with http:// or https:// and name a host"
        )),
    }
}

pub use crate::metadata::is_truthy;

/// A Kubernetes quantity (`100Mi`, `10M`, `1e6`, `512`, `-1`) as a whole number of
/// bytes; fractions that do not come out whole are refused.
fn parse_byte_size(text: &str) -> Result<i64, String> {
    let malformed = || {
        "value is not a valid quantity: quantities must match the regular expression \
         '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            .to_owned()
    };
    let not_whole = || format!("cannot get bytes from resource quantity value '{text}'");
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let split = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(malformed());
    }
    let (base, exponent): (i128, i32) = match suffix {
        "" => (10, 0),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (2, 10),
        "Mi" => (2, 20),
        "Gi" => (2, 30),
        "Ti" => (2, 40),
        "Pi" => (2, 50),
        "Ei" => (2, 60),
        other => match other.strip_prefix(['e', 'E']) {
            Some(power) => (10, power.parse().map_err(|_| malformed())?),
            None => return Err(malformed()),
        },
    };
    let digits = format!("{whole}{fraction}");
    let mantissa: i128 = digits.parse().map_err(|_| not_whole())?;
    let mut divisor: i128 = 10i128
        .checked_pow(u32::try_from(fraction.len()).map_err(|_| not_whole())?)
        .ok_or_else(not_whole)?;
    let scale = base
        .checked_pow(exponent.unsigned_abs())
        .ok_or_else(not_whole)?;
    let mut numerator = mantissa;
    if exponent >= 0 {
        numerator = numerator.checked_mul(scale).ok_or_else(not_whole)?;
    } else {
        divisor = divisor.checked_mul(scale).ok_or_else(not_whole)?;
    }
    if numerator % divisor != 0 {
        return Err(not_whole());
    }
    let value = i64::try_from(numerator / divisor).map_err(|_| not_whole())?;
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(value: serde_json::Value) -> Result<Settings, BindingError> {
        Settings::from_properties(&Properties::from_json(&value).unwrap())
    }

    #[test]
    fn defaults_follow_upstream() {
        let settings = settings(json!({"url": "http://localhost:8080/api"})).unwrap();
        assert_eq!(
            settings,
            Settings {
                url: "http://localhost:8080/api".into(),
                security_token: None,
                response_timeout: None,
                max_response_body_size: Some(100 << 20),
                error_if_not_2xx: true,
                tls: TlsSettings::default(),
            }
        );
    }

    #[test]
    fn every_setting_is_read() {
        let settings = settings(json!({
            "URL": "https://example.com",
            "securityToken": "secret",
            "securityTokenHeader": "X-Token",
            "responseTimeout": "1500ms",
            "maxResponseBodySize": "1Ki",
            "errorIfNot2XX": "false",
            "MTLSRenegotiation": "RenegotiateNever",
        }))
        .unwrap();
        assert_eq!(settings.url, "https://example.com");
        assert_eq!(
            settings.security_token,
            Some(("secret".into(), "X-Token".into()))
        );
        assert_eq!(settings.response_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(settings.max_response_body_size, Some(1024));
        assert!(!settings.error_if_not_2xx);
        // A token without its header name is not sent, as upstream.
        let settings = self::settings(json!({"url": "http://a", "securityToken": "s"})).unwrap();
        assert_eq!(settings.security_token, None);
        // Zero or less lifts the limit; unknown words are false.
        for (size, limit) in [("0", None), ("-1", None), ("512", Some(512))] {
            let settings =
                self::settings(json!({"url": "http://a", "maxResponseBodySize": size})).unwrap();
            assert_eq!(settings.max_response_body_size, limit, "{size}");
        }
        let settings =
            self::settings(json!({"url": "http://a", "errorIfNot2XX": "maybe"})).unwrap();
        assert!(!settings.error_if_not_2xx);
    }

    #[test]
    fn bad_settings_are_refused() {
        for (value, error) in [
            (json!({}), "invalid metadata: url is required"),
            (
                json!({"url": "localhost:8080"}),
                "invalid metadata: invalid url \"localhost:8080\": the url must start with http:// or https:// and name a host",
            ),
            (
                json!({"url": "http://a", "MTLSRenegotiation": "RenegotiateOnceAsClient"}),
                "invalid metadata: MTLSRenegotiation RenegotiateOnceAsClient is not supported: TLS renegotiation is never allowed",
            ),
            (
                json!({"url": "http://a", "MTLSRenegotiation": "Sometimes"}),
                "invalid metadata: invalid renegotiation value: Sometimes",
            ),
            (
                json!({"url": "http://a", "maxResponseBodySize": "lots"}),
                "invalid metadata: invalid value for maxResponseBodySize: value is not a valid \
                 quantity: quantities must match the regular expression \
                 '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ),
        ] {
            assert_eq!(
                settings(value.clone()).unwrap_err().to_string(),
                error,
                "{value}"
            );
        }
        let error = settings(json!({"url": "http://a", "MTLSRootCA": "/no/such/ca.pem"}))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "invalid metadata: provided \"MTLSRootCA\" value is neither a valid file path or nor a valid pem encoded string: "
            ),
            "{error}"
        );
    }

    #[test]
    fn pem_values_are_text_or_files() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_text("MTLSRootCA", pem).unwrap(), pem);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, pem).unwrap();
        assert_eq!(
            pem_text("MTLSRootCA", &file.to_string_lossy()).unwrap(),
            pem
        );
        // The client pair is only used when both halves are set; values are trimmed, the
        // files' contents are not.
        let settings = settings(json!({"url": "http://a", "MTLSClientCert": pem})).unwrap();
        assert_eq!(settings.tls.client_identity, None);
        let settings = self::settings(
            json!({"url": "http://a", "MTLSClientCert": pem, "MTLSClientKey": file.to_string_lossy()}),
        )
        .unwrap();
        assert_eq!(
            settings.tls.client_identity,
            Some((pem.trim().to_owned(), pem.to_owned()))
        );
    }

    #[test]
    fn byte_sizes_are_kubernetes_quantities() {
        for (text, bytes) in [
            ("100Mi", 100 << 20),
            ("4Ki", 4096),
            ("1Gi", 1 << 30),
            ("10M", 10_000_000),
            ("2k", 2000),
            ("1e3", 1000),
            ("1E6", 1_000_000),
            ("1.5Ki", 1536),
            ("512", 512),
            ("+3", 3),
            ("-1", -1),
            ("0", 0),
            ("1000m", 1),
        ] {
            assert_eq!(parse_byte_size(text), Ok(bytes), "{text}");
        }
        for text in ["", "Mi", "4MB", "4 Mi", "1.2.3", "abc", ".", "1x"] {
            assert!(
                parse_byte_size(text)
                    .unwrap_err()
                    .starts_with("value is not a valid quantity"),
                "{text}"
            );
        }
        assert_eq!(
            parse_byte_size("1.5"),
            Err("cannot get bytes from resource quantity value '1.5'".into())
        );
    }

    #[test]
    fn truthy_words() {
        for word in ["y", "Yes", "TRUE", "t", "on", "1"] {
            assert!(is_truthy(word), "{word}");
        }
        for word in ["n", "no", "false", "0", "maybe", ""] {
            assert!(!is_truthy(word), "{word}");
        }
    }
}
