//! Command-line flags of Sentry, with upstream's names and defaults, and the cross-flag
//! rules upstream enforces before starting.

use std::path::PathBuf;
use std::time::Duration;

use dapr_kit::cli::{LogFlags, MetricsFlags, parse_go_bool, parse_go_duration};

/// A combination of flags Sentry refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// `--mode` is neither `kubernetes` nor `standalone`.
    #[error("invalid mode {0:?}: expected kubernetes or standalone")]
    InvalidMode(String),
    /// Only one of the OIDC server's certificate and key files was given.
    #[error("--oidc-server-tls-cert-file and --oidc-server-tls-key-file must be given together")]
    OidcTlsPairIncomplete,
    /// The OIDC server is enabled with TLS but without its certificate and key.
    #[error(
        "the OIDC server serves TLS: --oidc-server-tls-cert-file and --oidc-server-tls-key-file are required (or set --oidc-server-tls-enabled=false)"
    )]
    OidcTlsFilesMissing,
    /// `--jwt-issuer` was given while JWT issuance is off.
    #[error("--jwt-issuer requires --jwt-enabled")]
    JwtIssuerWithoutJwt,
}

/// Everything the Sentry binary can be told on its command line.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "sentry",
    version,
    about = "Dapr Sentry: the certificate authority issuing workload identities"
)]
pub struct Options {
    /// Name of the Dapr Configuration resource holding control-plane settings, or a path to a
    /// configuration file.
    #[arg(long = "config", default_value = "daprsystem")]
    pub config: String,
    /// Directory holding the issuer's certificate, key and root certificate.
    #[arg(
        long = "issuer-credentials",
        default_value = "/var/run/secrets/dapr.io/credentials"
    )]
    pub issuer_credentials: PathBuf,
    /// Root certificate file, relative to --issuer-credentials unless absolute.
    #[arg(long = "issuer-ca-filename", default_value = "ca.crt")]
    pub issuer_ca_filename: PathBuf,
    /// Issuer certificate file, relative to --issuer-credentials unless absolute.
    #[arg(long = "issuer-certificate-filename", default_value = "issuer.crt")]
    pub issuer_certificate_filename: PathBuf,
    /// Issuer private key file, relative to --issuer-credentials unless absolute.
    #[arg(long = "issuer-key-filename", default_value = "issuer.key")]
    pub issuer_key_filename: PathBuf,
    /// Trust domain the certificate authority issues identities in.
    #[arg(long = "trust-domain", default_value = "localhost")]
    pub trust_domain: String,
    /// Port of the certificate-signing gRPC API.
    #[arg(long = "port", default_value_t = 50001)]
    pub port: u16,
    /// Address the certificate-signing gRPC API binds to (all interfaces when empty).
    #[arg(long = "listen-address")]
    pub listen_address: Option<String>,
    /// Port of the HTTP health server.
    #[arg(long = "healthz-port", default_value_t = 8080)]
    pub healthz_port: u16,
    /// Address the HTTP health server binds to (all interfaces when empty).
    #[arg(long = "healthz-listen-address")]
    pub healthz_listen_address: Option<String>,
    /// Runtime mode: `standalone` or `kubernetes`.
    #[arg(long = "mode", default_value = "standalone")]
    pub mode: String,
    /// Also issue JWT identity tokens.
    #[arg(long = "jwt-enabled", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub jwt_enabled: bool,
    /// JWT signing key file, relative to --issuer-credentials unless absolute.
    #[arg(long = "jwt-key-filename", default_value = "jwt.key")]
    pub jwt_key_filename: PathBuf,
    /// JSON Web Key Set file, relative to --issuer-credentials unless absolute.
    #[arg(long = "jwks-filename", default_value = "jwks.json")]
    pub jwks_filename: PathBuf,
    /// `iss` claim of issued tokens (no claim when not given).
    #[arg(long = "jwt-issuer")]
    pub jwt_issuer: Option<String>,
    /// Signature algorithm for tokens; the signing key must support it.
    #[arg(long = "jwt-signing-algorithm", default_value = "RS256")]
    pub jwt_signing_algorithm: String,
    /// `kid` header of issued tokens (derived from the signing key when not given).
    #[arg(long = "jwt-key-id")]
    pub jwt_key_id: Option<String>,
    /// Lifetime of issued tokens.
    #[arg(long = "jwt-ttl", default_value = "24h", value_parser = parse_go_duration)]
    pub jwt_ttl: Duration,
    /// Serve OpenID Connect discovery documents over HTTP.
    #[arg(long = "oidc-enabled", default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub oidc_enabled: bool,
    /// Port of the OIDC HTTP server.
    #[arg(long = "oidc-server-listen-port", default_value_t = 9080)]
    pub oidc_server_listen_port: u16,
    /// Address the OIDC HTTP server binds to.
    #[arg(long = "oidc-server-listen-address", default_value = "localhost")]
    pub oidc_server_listen_address: String,
    /// Serve the OIDC endpoints over TLS.
    #[arg(long = "oidc-server-tls-enabled", default_value = "true", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub oidc_server_tls_enabled: bool,
    /// Certificate of the OIDC HTTP server (needed when it serves TLS).
    #[arg(long = "oidc-server-tls-cert-file")]
    pub oidc_server_tls_cert_file: Option<PathBuf>,
    /// Private key of the OIDC HTTP server (needed when it serves TLS).
    #[arg(long = "oidc-server-tls-key-file")]
    pub oidc_server_tls_key_file: Option<PathBuf>,
    /// Publicly reachable URI of the key set, advertised instead of the derived one.
    #[arg(long = "oidc-jwks-uri")]
    pub oidc_jwks_uri: Option<String>,
    /// Prefix put in front of every OIDC endpoint path.
    #[arg(long = "oidc-path-prefix")]
    pub oidc_path_prefix: Option<String>,
    /// Host names the OIDC endpoints answer for, comma separated or repeated (any when empty).
    #[arg(long = "oidc-allowed-hosts", value_delimiter = ',')]
    pub oidc_allowed_hosts: Vec<String>,
    /// Kubeconfig file used to reach the Kubernetes API.
    #[arg(long = "kubeconfig", default_value_t = default_kubeconfig())]
    pub kubeconfig: String,
    /// Logging flags.
    #[command(flatten)]
    pub log: LogFlags,
    /// Metrics flags.
    #[command(flatten)]
    pub metrics: MetricsFlags,
}

impl Options {
    /// The options a command line without any flags yields.
    pub fn defaults() -> Self {
        <Self as clap::Parser>::parse_from(["sentry"])
    }

    /// Checks the rules that involve more than one flag.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.mode != "kubernetes" && self.mode != "standalone" {
            return Err(OptionsError::InvalidMode(self.mode.clone()));
        }
        if self.oidc_server_tls_cert_file.is_some() != self.oidc_server_tls_key_file.is_some() {
            return Err(OptionsError::OidcTlsPairIncomplete);
        }
        if self.oidc_enabled
            && self.oidc_server_tls_enabled
            && self.oidc_server_tls_cert_file.is_none()
        {
            return Err(OptionsError::OidcTlsFilesMissing);
        }
        if self.jwt_issuer.is_some() && !self.jwt_enabled {
            return Err(OptionsError::JwtIssuerWithoutJwt);
        }
        Ok(())
    }

    /// Flags this build accepts but does not act on yet, each paired with whether it was set
    /// to something other than its default.
    pub fn unimplemented_flags(&self) -> Vec<(&'static str, bool)> {
        let defaults = Self::defaults();
        vec![
            ("config", self.config != defaults.config),
            (
                "issuer-credentials",
                self.issuer_credentials != defaults.issuer_credentials,
            ),
            (
                "issuer-ca-filename",
                self.issuer_ca_filename != defaults.issuer_ca_filename,
            ),
            (
                "issuer-certificate-filename",
                self.issuer_certificate_filename != defaults.issuer_certificate_filename,
            ),
            (
                "issuer-key-filename",
                self.issuer_key_filename != defaults.issuer_key_filename,
            ),
            ("trust-domain", self.trust_domain != defaults.trust_domain),
            ("port", self.port != defaults.port),
            ("listen-address", self.listen_address.is_some()),
            ("mode", self.mode != defaults.mode),
            ("jwt-enabled", self.jwt_enabled != defaults.jwt_enabled),
            (
                "jwt-key-filename",
                self.jwt_key_filename != defaults.jwt_key_filename,
            ),
            (
                "jwks-filename",
                self.jwks_filename != defaults.jwks_filename,
            ),
            ("jwt-issuer", self.jwt_issuer.is_some()),
            (
                "jwt-signing-algorithm",
                self.jwt_signing_algorithm != defaults.jwt_signing_algorithm,
            ),
            ("jwt-key-id", self.jwt_key_id.is_some()),
            ("jwt-ttl", self.jwt_ttl != defaults.jwt_ttl),
            ("oidc-enabled", self.oidc_enabled != defaults.oidc_enabled),
            (
                "oidc-server-listen-port",
                self.oidc_server_listen_port != defaults.oidc_server_listen_port,
            ),
            (
                "oidc-server-listen-address",
                self.oidc_server_listen_address != defaults.oidc_server_listen_address,
            ),
            (
                "oidc-server-tls-enabled",
                self.oidc_server_tls_enabled != defaults.oidc_server_tls_enabled,
            ),
            (
                "oidc-server-tls-cert-file",
                self.oidc_server_tls_cert_file.is_some(),
            ),
            (
                "oidc-server-tls-key-file",
                self.oidc_server_tls_key_file.is_some(),
            ),
            ("oidc-jwks-uri", self.oidc_jwks_uri.is_some()),
            ("oidc-path-prefix", self.oidc_path_prefix.is_some()),
            ("oidc-allowed-hosts", !self.oidc_allowed_hosts.is_empty()),
            ("kubeconfig", self.kubeconfig != defaults.kubeconfig),
        ]
    }
}

/// `$HOME/.kube/config`, or empty when there is no home directory.
fn default_kubeconfig() -> String {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home)
            .join(".kube")
            .join("config")
            .to_string_lossy()
            .into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        dapr_kit::cli::try_parse_args("sentry", args)
    }

    #[test]
    fn defaults_match_upstream() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.config, "daprsystem");
        assert_eq!(
            options.issuer_credentials,
            PathBuf::from("/var/run/secrets/dapr.io/credentials")
        );
        assert_eq!(options.issuer_ca_filename, PathBuf::from("ca.crt"));
        assert_eq!(
            options.issuer_certificate_filename,
            PathBuf::from("issuer.crt")
        );
        assert_eq!(options.issuer_key_filename, PathBuf::from("issuer.key"));
        assert_eq!(options.trust_domain, "localhost");
        assert_eq!(options.port, 50001);
        assert_eq!(options.listen_address, None);
        assert_eq!(options.healthz_port, 8080);
        assert_eq!(options.healthz_listen_address, None);
        assert_eq!(options.mode, "standalone");
        assert!(!options.jwt_enabled);
        assert_eq!(options.jwt_key_filename, PathBuf::from("jwt.key"));
        assert_eq!(options.jwks_filename, PathBuf::from("jwks.json"));
        assert_eq!(options.jwt_issuer, None);
        assert_eq!(options.jwt_signing_algorithm, "RS256");
        assert_eq!(options.jwt_key_id, None);
        assert_eq!(options.jwt_ttl, Duration::from_secs(24 * 3600));
        assert!(!options.oidc_enabled);
        assert_eq!(options.oidc_server_listen_port, 9080);
        assert_eq!(options.oidc_server_listen_address, "localhost");
        assert!(options.oidc_server_tls_enabled);
        assert_eq!(options.oidc_server_tls_cert_file, None);
        assert_eq!(options.oidc_server_tls_key_file, None);
        assert_eq!(options.oidc_jwks_uri, None);
        assert_eq!(options.oidc_path_prefix, None);
        assert!(options.oidc_allowed_hosts.is_empty());
        assert_eq!(options.kubeconfig, default_kubeconfig());
        assert_eq!(options.log.log_level, "info");
        assert_eq!(options.metrics.metrics_port, 9090);
        assert!(options.metrics.enable_metrics);
        assert_eq!(options.validate(), Ok(()));
        assert!(options.unimplemented_flags().iter().all(|(_, set)| !set));
    }

    #[test]
    fn single_dash_forms_are_accepted() {
        let options = parse(&[
            "-trust-domain",
            "cluster.local",
            "-port=50002",
            "-healthz-port",
            "18080",
        ])
        .unwrap();
        assert_eq!(options.trust_domain, "cluster.local");
        assert_eq!(options.port, 50002);
        assert_eq!(options.healthz_port, 18080);
        let changed: Vec<_> = options
            .unimplemented_flags()
            .into_iter()
            .filter(|(_, set)| *set)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(changed, ["trust-domain", "port"]);
    }

    #[test]
    fn booleans_take_only_attached_values() {
        let options = parse(&[
            "--jwt-enabled",
            "--oidc-server-tls-enabled=false",
            "-oidc-enabled",
            "--mode",
            "kubernetes",
        ])
        .unwrap();
        assert!(options.jwt_enabled);
        assert!(!options.oidc_server_tls_enabled);
        assert!(options.oidc_enabled);
        assert_eq!(options.mode, "kubernetes");
        assert_eq!(options.validate(), Ok(()));
        assert!(parse(&["--jwt-enabled=yes"]).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse(&["--jwt-ttl", "1h30m"]).unwrap().jwt_ttl,
            Duration::from_secs(5400)
        );
        assert!(parse(&["--jwt-ttl", "5x"]).is_err());
    }

    #[test]
    fn allowed_hosts_accept_commas_and_repeats() {
        let options = parse(&[
            "--oidc-allowed-hosts",
            "a.example,b.example",
            "--oidc-allowed-hosts=c.example",
        ])
        .unwrap();
        assert_eq!(
            options.oidc_allowed_hosts,
            ["a.example", "b.example", "c.example"]
        );
    }

    #[test]
    fn cross_flag_rules_match_upstream() {
        assert_eq!(
            parse(&["--mode", "cloud"]).unwrap().validate(),
            Err(OptionsError::InvalidMode("cloud".into()))
        );
        assert_eq!(
            parse(&["--oidc-enabled"]).unwrap().validate(),
            Err(OptionsError::OidcTlsFilesMissing)
        );
        assert_eq!(
            parse(&["--oidc-server-tls-cert-file", "tls.crt"])
                .unwrap()
                .validate(),
            Err(OptionsError::OidcTlsPairIncomplete)
        );
        let with_files = parse(&[
            "--oidc-enabled",
            "--oidc-server-tls-cert-file",
            "tls.crt",
            "--oidc-server-tls-key-file",
            "tls.key",
        ]);
        assert_eq!(with_files.unwrap().validate(), Ok(()));
        assert_eq!(
            parse(&["--jwt-issuer", "me"]).unwrap().validate(),
            Err(OptionsError::JwtIssuerWithoutJwt)
        );
        assert_eq!(
            parse(&["--jwt-issuer", "me", "--jwt-enabled"])
                .unwrap()
                .validate(),
            Ok(())
        );
    }

    #[test]
    fn invalid_numbers_are_usage_errors() {
        let err = parse(&["--healthz-port", "abc"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(parse(&["--oidc-server-listen-port", "99999"]).is_err());
    }
}
