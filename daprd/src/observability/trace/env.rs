//! The standard `OTEL_EXPORTER_OTLP_*` environment variables, applied to `spec.tracing`
//! the way upstream does when the Configuration names no OTLP endpoint itself.

use dapr_resources::common::{DynamicValue, NameValuePair};
use dapr_resources::configuration::{OtelSpec, TracingSpec};

use super::TracingError;

const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const INSECURE: &str = "OTEL_EXPORTER_OTLP_INSECURE";
const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";

/// Fills the OTLP exporter of `spec` from the environment (`lookup` reads a variable):
/// when no `otel.endpointAddress` is configured, the traces (else generic) endpoint is
/// used without its scheme, the sampling rate defaults to "1", the protocol is `http` for
/// any `http*` value and `grpc` otherwise, and `OTEL_EXPORTER_OTLP_INSECURE=true` turns
/// TLS off. Headers (`k=v,k2=v2`, values percent-decoded) and a timeout in milliseconds
/// are taken from their variables in any case.
pub fn apply_otel_environment(
    spec: &mut TracingSpec,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(), TracingError> {
    let otel = spec.otel.get_or_insert_with(OtelSpec::default);
    if !otel.endpoint_address.is_empty() {
        return Ok(());
    }
    let first = |names: [&str; 2]| {
        names
            .into_iter()
            .find_map(|name| lookup(name).filter(|v| !v.is_empty()))
    };

    if let Some(endpoint) = first([TRACES_ENDPOINT, ENDPOINT]) {
        let endpoint = endpoint.strip_prefix("http://").unwrap_or(&endpoint);
        let endpoint = endpoint.strip_prefix("https://").unwrap_or(endpoint);
        otel.endpoint_address = endpoint.to_string();
        if spec.sampling_rate.is_empty() {
            spec.sampling_rate = "1".to_string();
        }
        let protocol = first([TRACES_PROTOCOL, PROTOCOL]).unwrap_or_default();
        otel.protocol = if protocol.starts_with("http") {
            "http"
        } else {
            "grpc"
        }
        .to_string();
        if lookup(INSECURE).as_deref() == Some("true") {
            otel.is_secure = Some(false);
        }
    }

    if let Some(headers) = first([TRACES_HEADERS, HEADERS]) {
        for (name, value) in parse_headers(&headers)? {
            otel.headers.push(NameValuePair {
                name,
                value: Some(DynamicValue(serde_json::Value::String(value))),
                ..NameValuePair::default()
            });
        }
    }

    let (variable, timeout) = match (lookup(TRACES_TIMEOUT), lookup(TIMEOUT)) {
        (Some(value), _) if !value.is_empty() => (TRACES_TIMEOUT, value),
        (_, Some(value)) if !value.is_empty() => (TIMEOUT, value),
        _ => return Ok(()),
    };
    let millis: i64 = timeout
        .trim()
        .parse()
        .map_err(|_| TracingError::Environment {
            variable,
            reason: format!("{timeout:?} is not a number of milliseconds"),
        })?;
    if millis > 0 {
        otel.timeout = Some(format!("{millis}ms"));
    }
    Ok(())
}

/// `k=v,k2=v2` with valid header names and percent-encoded values.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, TracingError> {
    let invalid = |reason: String| TracingError::Environment {
        variable: HEADERS,
        reason,
    };
    text.split(',')
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("missing '=' in header {pair:?}")))?;
            let name = name.trim();
            if name.is_empty() || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(format!("invalid header name {name:?}")));
            }
            let value = percent_decode(value)
                .ok_or_else(|| invalid(format!("invalid escape in header value {value:?}")))?;
            Ok((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let pair = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            decoded.push(u8::from_str_radix(pair, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn apply(spec: &mut TracingSpec, variables: &[(&str, &str)]) -> Result<(), TracingError> {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        apply_otel_environment(spec, |name| variables.get(name).cloned())
    }

    #[test]
    fn fills_an_unconfigured_otlp_exporter() {
        let mut spec = TracingSpec::default();
        apply(
            &mut spec,
            &[
                (ENDPOINT, "http://wrong:4317"),
                (TRACES_ENDPOINT, "https://collector:4318"),
                (PROTOCOL, "http/protobuf"),
                (INSECURE, "true"),
                (HEADERS, "api-key=a%20b, x-team = core"),
                (TIMEOUT, "2500"),
            ],
        )
        .unwrap();
        let otel = spec.otel.unwrap();
        assert_eq!(spec.sampling_rate, "1");
        assert_eq!(otel.endpoint_address, "collector:4318");
        assert_eq!(otel.protocol, "http");
        assert_eq!(otel.is_secure, Some(false));
        assert_eq!(otel.timeout.as_deref(), Some("2500ms"));
        let headers: Vec<(String, String)> = otel
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.as_ref().unwrap().to_plain_string()))
            .collect();
        assert_eq!(
            headers,
            vec![
                ("api-key".into(), "a b".into()),
                ("x-team".into(), "core".into())
            ]
        );
    }

    #[test]
    fn keeps_a_configured_endpoint_and_rejects_bad_values() {
        let mut spec = TracingSpec {
            sampling_rate: "0.5".into(),
            otel: Some(OtelSpec {
                endpoint_address: "mine:4317".into(),
                protocol: "grpc".into(),
                ..OtelSpec::default()
            }),
            ..TracingSpec::default()
        };
        apply(&mut spec, &[(ENDPOINT, "other:4317")]).unwrap();
        assert_eq!(spec.otel.as_ref().unwrap().endpoint_address, "mine:4317");

        let mut spec = TracingSpec::default();
        apply(&mut spec, &[(ENDPOINT, "c:4317")]).unwrap();
        assert_eq!(spec.otel.as_ref().unwrap().protocol, "grpc");
        assert_eq!(spec.otel.as_ref().unwrap().is_secure, None);

        assert!(apply(&mut TracingSpec::default(), &[(HEADERS, "novalue")]).is_err());
        assert!(apply(&mut TracingSpec::default(), &[(TIMEOUT, "soon")]).is_err());
    }
}
