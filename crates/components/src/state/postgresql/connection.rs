//! Turns upstream's connection settings into a `tokio-postgres` configuration: the
//! `connectionString` (libpq `key=value` text or a `postgres://` URL), the separate
//! `host`/`hostaddr`/`port`/`database`/`user`/`password`/`sslRootCert` settings that
//! override it, the `PG*` environment defaults, pgx's default TLS files
//! under `~/.postgresql`, and the pgx pool keys upstream accepts inside the string
//! (`pool_max_conns`, `pool_max_conn_idle_time`).
//!
//! Keys the driver does not know become server run-time parameters (`search_path=...`),
//! as pgx does. The TLS keys (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslsni`)
//! are handed to module `tls`.

use std::path::Path;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio_postgres::Config;
use tokio_postgres::config::{ChannelBinding, Host, SslMode, TargetSessionAttrs};

use crate::metadata::Properties;

use super::tls::{self, Tls, TlsSettings};

/// The driver configuration plus the pool settings found in the connection string.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// Where and how to connect.
    pub config: Config,
    /// Whether and how to use TLS.
    pub tls: Tls,
    /// `pool_max_conns` from the connection string.
    pub max_conns: Option<usize>,
    /// `pool_max_conn_idle_time` from the connection string.
    pub max_idle_time: Option<Duration>,
    /// pgx's `default_query_exec_mode` from the connection string.
    pub exec_mode: Option<String>,
}

/// Metadata names that override a part of the connection string, and the key they set.
const OVERRIDES: [(&str, &str); 7] = [
    ("user", "user"),
    ("host", "host"),
    ("hostaddr", "hostaddr"),
    ("port", "port"),
    ("database", "dbname"),
    ("password", "password"),
    ("sslRootCert", "sslrootcert"),
];

/// Environment variables libpq and pgx read for settings the string leaves out.
const ENVIRONMENT: [(&str, &str); 10] = [
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGSSLSNI", "sslsni"),
];

/// Reads the connection settings of a component.
pub(crate) fn from_properties(properties: &Properties) -> Result<Connection, String> {
    let text = properties
        .text("connectionString", &["url"])
        .unwrap_or_default()
        .trim();
    let mut pairs = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        parse_url(text)?
    } else {
        parse_key_values(text)?
    };
    for (name, key) in OVERRIDES {
        if let Some(value) = properties.text(name, &[]).filter(|value| !value.is_empty()) {
            pairs.retain(|(existing, _)| existing != key);
            pairs.push((key.to_owned(), value.to_owned()));
        }
    }
    if pairs.is_empty() {
        return Err(
            "missing connectionString: set connectionString (or host, user and database)".into(),
        );
    }
    for (variable, key) in ENVIRONMENT {
        if !has(&pairs, key)
            && let Ok(value) = std::env::var(variable)
            && !value.is_empty()
        {
            pairs.push((key.to_owned(), value));
        }
    }
    if let Some(home) = std::env::var_os("HOME").filter(|home| !home.is_empty()) {
        add_home_tls_files(&mut pairs, &Path::new(&home).join(".postgresql"));
    }
    if !has(&pairs, "host") && !has(&pairs, "hostaddr") {
        pairs.push(("host".into(), "localhost".into()));
    }
    if !has(&pairs, "user")
        && let Ok(user) = std::env::var("USER")
    {
        pairs.push(("user".into(), user));
    }
    build(pairs)
}

fn has(pairs: &[(String, String)], key: &str) -> bool {
    pairs.iter().any(|(existing, _)| existing == key)
}

/// pgx's defaults for the TLS files: `root.crt` as `sslrootcert`, and `postgresql.crt`
/// with `postgresql.key` as `sslcert` and `sslkey` when both exist; settings already
/// given win.
fn add_home_tls_files(pairs: &mut Vec<(String, String)>, dir: &Path) {
    let mut defaults = vec![("sslrootcert", dir.join("root.crt"))];
    let (cert, key) = (dir.join("postgresql.crt"), dir.join("postgresql.key"));
    if cert.is_file() && key.is_file() {
        defaults.extend([("sslcert", cert), ("sslkey", key)]);
    }
    for (name, path) in defaults {
        if !has(pairs, name)
            && path.is_file()
            && let Some(path) = path.to_str()
        {
            pairs.push((name.to_owned(), path.to_owned()));
        }
    }
}

fn build(pairs: Vec<(String, String)>) -> Result<Connection, String> {
    let mut connection = Connection {
        config: Config::new(),
        tls: Tls::plain(),
        max_conns: None,
        max_idle_time: None,
        exec_mode: None,
    };
    let mut tls_settings = TlsSettings::default();
    let mut runtime_parameters = String::new();
    let mut options = None;
    for (key, value) in pairs {
        let config = &mut connection.config;
        let invalid =
            |reason: &str| format!("invalid value for '{key}' in the connection string: {reason}");
        match key.as_str() {
            "host" => {
                for host in value.split(',') {
                    config.host(host);
                }
            }
            "hostaddr" => {
                for address in value.split(',') {
                    config.hostaddr(address.parse().map_err(|_| invalid("not an IP address"))?);
                }
            }
            "port" => {
                for port in value.split(',') {
                    let port = if port.is_empty() {
                        5432
                    } else {
                        port.parse().map_err(|_| invalid("not a port number"))?
                    };
                    config.port(port);
                }
            }
            "dbname" | "database" => {
                config.dbname(value);
            }
            "user" => {
                config.user(value);
            }
            "password" => {
                config.password(value);
            }
            "application_name" => {
                config.application_name(value);
            }
            "options" => options = Some(value),
            "connect_timeout" => {
                let seconds: i64 = value
                    .parse()
                    .map_err(|_| invalid("not a number of seconds"))?;
                if seconds > 0 {
                    config.connect_timeout(Duration::from_secs(seconds.unsigned_abs()));
                }
            }
            "keepalives" => {
                config.keepalives(value != "0");
            }
            "keepalives_idle" => {
                let seconds: u64 = value
                    .parse()
                    .map_err(|_| invalid("not a number of seconds"))?;
                config.keepalives_idle(Duration::from_secs(seconds));
            }
            "target_session_attrs" => {
                let attrs = match value.as_str() {
                    "any" => TargetSessionAttrs::Any,
                    "read-write" => TargetSessionAttrs::ReadWrite,
                    "read-only" => TargetSessionAttrs::ReadOnly,
                    _ => return Err(invalid("use any, read-write or read-only")),
                };
                config.target_session_attrs(attrs);
            }
            "sslmode" => {
                tls_settings.mode = tls::SslMode::parse(&value).ok_or_else(|| {
                    invalid(
                        "unknown sslmode (use disable, allow, prefer, require, verify-ca or verify-full)",
                    )
                })?;
            }
            "sslrootcert" => tls_settings.root_cert = Some(value).filter(|path| !path.is_empty()),
            "sslcert" => tls_settings.cert = Some(value).filter(|path| !path.is_empty()),
            "sslkey" => tls_settings.key = Some(value).filter(|path| !path.is_empty()),
            "sslsni" => tls_settings.sni = value != "0",
            "channel_binding" => {
                let binding = match value.as_str() {
                    "disable" => ChannelBinding::Disable,
                    "prefer" => ChannelBinding::Prefer,
                    "require" => ChannelBinding::Require,
                    _ => return Err(invalid("use disable, prefer or require")),
                };
                config.channel_binding(binding);
            }
            "pool_max_conns" => {
                let max: usize = value.parse().map_err(|_| invalid("not a whole number"))?;
                connection.max_conns = Some(max);
            }
            "pool_max_conn_idle_time" => {
                let idle = dapr_kit::duration::parse(&value)
                    .map_err(|error| invalid(&error.to_string()))?;
                connection.max_idle_time = Some(idle);
            }
            "default_query_exec_mode" => connection.exec_mode = Some(value),
            // An encrypted `sslkey` is refused when it is read, so its password is never
            // needed; the pool keys tune pgx internals that this pool does not have.
            "sslpassword"
            | "passfile"
            | "pool_min_conns"
            | "pool_max_conn_lifetime"
            | "pool_max_conn_lifetime_jitter"
            | "pool_health_check_period"
            | "statement_cache_capacity"
            | "description_cache_capacity" => {
                tracing::debug!(key, "ignoring connection string setting");
            }
            _ => {
                runtime_parameters.push_str(&format!(
                    " -c {}={}",
                    escape_option(&key),
                    escape_option(&value)
                ));
            }
        }
    }
    let options = match options {
        Some(options) => format!("{options}{runtime_parameters}"),
        None => runtime_parameters.trim_start().to_owned(),
    };
    if !options.is_empty() {
        connection.config.options(options);
    }
    connection.tls = tls_for(&mut connection.config, &tls_settings)?;
    Ok(connection)
}

/// The TLS plan for `config`'s hosts. A `hostaddr` without a `host` lends its address as
/// the name TLS checks, and servers reached only over Unix sockets never use TLS (as in
/// libpq and pgx).
fn tls_for(config: &mut Config, settings: &TlsSettings) -> Result<Tls, String> {
    if config.get_hosts().is_empty() {
        let addresses: Vec<String> = config
            .get_hostaddrs()
            .iter()
            .map(ToString::to_string)
            .collect();
        for address in addresses {
            config.host(address);
        }
    }
    // The mode of each attempt is set when connecting.
    config.ssl_mode(SslMode::Disable);
    if config
        .get_hosts()
        .iter()
        .all(|host| !matches!(host, Host::Tcp(_)))
    {
        return Ok(Tls::plain());
    }
    Tls::new(settings)
}

/// Escapes a word of the `options` startup parameter (spaces and backslashes).
fn escape_option(text: &str) -> String {
    text.replace('\\', "\\\\").replace(' ', "\\ ")
}

/// Parses libpq `key=value` text: values may be single-quoted, and a backslash escapes
/// the next character.
pub(crate) fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "invalid connection string: expected '=' after '{key}'"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(format!(
                            "invalid connection string: unterminated quoted value for '{key}'"
                        ));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// Parses `postgres://[user[:password]@][host[:port][,...]][/dbname][?key=value&...]`.
pub(crate) fn parse_url(text: &str) -> Result<Vec<(String, String)>, String> {
    let rest = text.split_once("://").map(|(_, rest)| rest).unwrap_or(text);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = authority.rsplit_once('@').unwrap_or(("", authority));
    let mut pairs = Vec::new();
    if !userinfo.is_empty() {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        pairs.push(("user".to_owned(), decode(user)?));
        if let Some(password) = password {
            pairs.push(("password".to_owned(), decode(password)?));
        }
    }
    if !hosts.is_empty() {
        let mut host_list = Vec::new();
        let mut port_list = Vec::new();
        for entry in hosts.split(',') {
            let (host, port) = split_host_port(entry);
            host_list.push(decode(host)?);
            port_list.push(port.to_owned());
        }
        if host_list.iter().any(|host| !host.is_empty()) {
            pairs.push(("host".to_owned(), host_list.join(",")));
        }
        if port_list.iter().any(|port| !port.is_empty()) {
            pairs.push(("port".to_owned(), port_list.join(",")));
        }
    }
    if !path.is_empty() {
        pairs.push(("dbname".to_owned(), decode(path)?));
    }
    for item in query.split('&').filter(|item| !item.is_empty()) {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        pairs.push((decode(key)?, decode(value)?));
    }
    Ok(pairs)
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(entry: &str) -> (&str, &str) {
    if let Some(bracketed) = entry.strip_prefix('[')
        && let Some((host, rest)) = bracketed.split_once(']')
    {
        return (host, rest.strip_prefix(':').unwrap_or(""));
    }
    entry.rsplit_once(':').unwrap_or((entry, ""))
}

fn decode(text: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| format!("invalid connection URL: {text:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio_postgres::config::Host;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn key_value_text_handles_quotes_escapes_and_spacing() {
        assert_eq!(
            parse_key_values("host=db port = 5433  password='a b\\'c' user=x\\ y").unwrap(),
            pairs(&[
                ("host", "db"),
                ("port", "5433"),
                ("password", "a b'c"),
                ("user", "x y")
            ])
        );
        assert!(parse_key_values("host").is_err());
        assert!(parse_key_values("password='open").is_err());
    }

    #[test]
    fn urls_split_into_the_same_keys() {
        assert_eq!(
            parse_url(
                "postgresql://us%40r:p%3Ass@h1:5433,[::1]/my%20db?sslmode=disable&search_path=s"
            )
            .unwrap(),
            pairs(&[
                ("user", "us@r"),
                ("password", "p:ss"),
                ("host", "h1,::1"),
                ("port", "5433,"),
                ("dbname", "my db"),
                ("sslmode", "disable"),
                ("search_path", "s"),
            ])
        );
    }

    #[test]
    fn metadata_overrides_the_string_and_unknown_keys_become_runtime_parameters() {
        let properties = Properties::from_json(&json!({
            "connectionString": "host=a port=1 user=u dbname=d search_path=my_schema pool_max_conns=7",
            "host": "b",
            "database": "other",
            "password": "secret",
        }))
        .unwrap();
        let connection = from_properties(&properties).unwrap();
        assert_eq!(connection.config.get_hosts(), &[Host::Tcp("b".into())]);
        assert_eq!(connection.config.get_ports(), &[1]);
        assert_eq!(connection.config.get_dbname(), Some("other"));
        assert_eq!(connection.config.get_password(), Some(&b"secret"[..]));
        assert_eq!(
            connection.config.get_options(),
            Some("-c search_path=my_schema")
        );
        assert_eq!(connection.max_conns, Some(7));
    }

    #[test]
    fn tls_modes_plan_their_attempts_and_bad_settings_are_refused() {
        let attempts = |text: &str| {
            let properties = Properties::from_json(&json!({"connectionString": text})).unwrap();
            format!("{:?}", from_properties(&properties).unwrap().tls.attempts())
        };
        assert_eq!(attempts("host=a sslmode=disable"), "[Plain]");
        assert_eq!(
            attempts("host=a"),
            "[Tls { mode: Prefer }, Plain]",
            "prefer is the default"
        );
        assert_eq!(
            attempts("host=a sslmode=allow"),
            "[Plain, Tls { mode: Require }]"
        );
        assert_eq!(
            attempts("host=a sslmode=require"),
            "[Tls { mode: Require }]"
        );
        assert_eq!(
            attempts("postgres://u@a/d?sslmode=require&sslsni=0"),
            "[Tls { mode: Require }]"
        );
        // Unix sockets never use TLS, as in libpq.
        assert_eq!(
            attempts("host=/var/run/postgresql sslmode=require"),
            "[Plain]"
        );

        let error = |value: serde_json::Value| {
            from_properties(&Properties::from_json(&value).unwrap()).unwrap_err()
        };
        assert!(
            error(json!({"connectionString": "host=a sslmode=strict"})).contains("unknown sslmode")
        );
        assert!(
            error(json!({"connectionString": "host=a sslmode=require sslkey=/k"}))
                .contains(r#"both "sslcert" and "sslkey" are required"#)
        );
        assert!(
            error(json!({"connectionString": "host=a sslmode=verify-ca", "sslRootCert": "/no/such/ca.pem"}))
                .contains("cannot read sslrootcert \"/no/such/ca.pem\"")
        );
        assert!(
            error(json!({"connectionString": "host=a channel_binding=maybe"}))
                .contains("'channel_binding'")
        );
        assert!(error(json!({})).contains("missing connectionString"));
        assert!(error(json!({"connectionString": "host=a port=x"})).contains("'port'"));
    }

    #[test]
    fn a_hostaddr_alone_names_the_tls_server() {
        let properties = Properties::from_json(
            &json!({"connectionString": "hostaddr=10.0.0.1 sslmode=verify-ca sslrootcert=system"}),
        )
        .unwrap();
        let connection = from_properties(&properties).unwrap();
        assert_eq!(
            connection.config.get_hosts(),
            &[Host::Tcp("10.0.0.1".into())]
        );
    }

    #[test]
    fn client_files_in_the_home_directory_are_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let mut pairs = Vec::new();
        add_home_tls_files(&mut pairs, dir.path());
        assert!(pairs.is_empty());

        std::fs::write(dir.path().join("root.crt"), "").unwrap();
        std::fs::write(dir.path().join("postgresql.crt"), "").unwrap();
        add_home_tls_files(&mut pairs, dir.path());
        assert_eq!(pairs, vec![("sslrootcert".to_owned(), path("root.crt"))]);

        std::fs::write(dir.path().join("postgresql.key"), "").unwrap();
        let mut pairs = vec![("sslcert".to_owned(), "/mine.crt".to_owned())];
        add_home_tls_files(&mut pairs, dir.path());
        assert_eq!(
            pairs,
            vec![
                ("sslcert".to_owned(), "/mine.crt".to_owned()),
                ("sslrootcert".to_owned(), path("root.crt")),
                ("sslkey".to_owned(), path("postgresql.key")),
            ]
        );
    }
}
