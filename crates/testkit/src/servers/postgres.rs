//! PostgreSQL (Debian package `postgresql`).
//!
//! `initdb` and `postgres` refuse to run as root, so when the tests run as root both are run
//! as the `postgres` system user through `setpriv` (which execs, so the guarded pid is the
//! postmaster itself), and the temp dir is handed to that user first.
//!
//! [`Postgres::start_with_tls`] starts a server that accepts TCP clients only over TLS
//! (a `hostssl` line and no `host` line in its `pg_hba.conf`), optionally requiring a
//! client certificate.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Result, TestkitError};
use crate::process::{self, GuardedProcess, Launch};
use crate::ready::{retry_port_races, wait_until_ready};
use crate::{probe, programs};

use super::{READY_TIMEOUT, one_port};

/// The superuser created by `initdb` (trust authentication, no password).
pub const USER: &str = "postgres";
/// The database every connection string points at.
pub const DATABASE: &str = "postgres";
/// The system user that runs the server when the tests run as root.
const SYSTEM_USER: &str = "postgres";
/// Bound on `initdb`.
const INITDB_TIMEOUT: Duration = Duration::from_secs(60);

/// The certificates of a TLS server.
#[derive(Debug, Clone, Copy)]
struct ServerTls<'a> {
    /// The server's certificate chain (PEM), leaf first.
    cert_pem: &'a str,
    /// The server's private key (PEM).
    key_pem: &'a str,
    /// A CA (PEM) that must have issued the clients' certificates.
    client_ca_pem: Option<&'a str>,
}

/// A PostgreSQL server on 127.0.0.1 with trust authentication, stopped when dropped.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    process: GuardedProcess,
}

impl Postgres {
    /// Initialises a cluster in a temp dir, starts the server and returns once a startup
    /// packet reaches `ReadyForQuery`.
    pub async fn start() -> Result<Self> {
        retry_port_races(|| Self::start_once(None)).await
    }

    /// Like [`Postgres::start`], but TCP clients must use TLS (plain TCP connections are
    /// refused by `pg_hba.conf`); the server presents `cert_pem` (its chain, leaf first)
    /// with the key `key_pem`. With `client_ca_pem`, clients must also present a
    /// certificate issued by that CA, whatever its name (`clientcert=verify-ca`).
    pub async fn start_with_tls(
        cert_pem: &str,
        key_pem: &str,
        client_ca_pem: Option<&str>,
    ) -> Result<Self> {
        let tls = ServerTls {
            cert_pem,
            key_pem,
            client_ca_pem,
        };
        retry_port_races(|| Self::start_once(Some(tls))).await
    }

    async fn start_once(tls: Option<ServerTls<'_>>) -> Result<Self> {
        let initdb = programs::find_postgres("initdb")?;
        let postgres = programs::find_postgres("postgres")?;
        let run_as = RunAs::detect()?;
        let dir = process::temp_dir("postgres")?;
        run_as.hand_over(dir.path())?;
        let data = dir.path().join("data");
        run_initdb(&run_as, &initdb, &data, dir.path()).await?;

        let port = one_port()?;
        let mut launch = run_as
            .launch("postgres", &postgres)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"]);
        if let Some(tls) = tls {
            launch = launch.args(tls_settings(&run_as, dir.path(), &tls)?);
        }
        let process = GuardedProcess::spawn(launch, dir)?;
        wait_until_ready(&process, READY_TIMEOUT, || async move {
            match probe::postgres_startup(port, USER, DATABASE).await {
                // A TLS-only server answers a plain startup packet by refusing it in
                // pg_hba.conf's words, which it only does once it accepts connections.
                Err(error) if tls.is_some() && error.contains("pg_hba.conf") => Ok(()),
                other => other,
            }
        })
        .await?;
        Ok(Self { port, process })
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The libpq URL form:
    /// `postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable`.
    pub fn connection_url(&self) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{}/{DATABASE}?sslmode=disable",
            self.port
        )
    }

    /// The libpq key=value form (what Dapr's `connectionString` metadata usually holds):
    /// `host=127.0.0.1 port=PORT user=postgres dbname=postgres sslmode=disable`.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={USER} dbname={DATABASE} sslmode=disable",
            self.port
        )
    }

    /// The guarded postmaster process.
    pub fn process(&self) -> &GuardedProcess {
        &self.process
    }
}

/// Writes the certificate files and a TLS-only `pg_hba.conf` into `dir`, owned by the
/// server's user (the server refuses a key readable by others), and returns the `-c`
/// arguments that use them.
fn tls_settings(run_as: &RunAs, dir: &Path, tls: &ServerTls<'_>) -> Result<Vec<OsString>> {
    let client_auth = if tls.client_ca_pem.is_some() {
        "trust clientcert=verify-ca"
    } else {
        "trust"
    };
    let hba = format!("local all all trust\nhostssl all all 127.0.0.1/32 {client_auth}\n");
    let mut files = vec![
        ("server.crt", tls.cert_pem, "ssl_cert_file"),
        ("server.key", tls.key_pem, "ssl_key_file"),
        ("pg_hba_tls.conf", hba.as_str(), "hba_file"),
    ];
    if let Some(ca) = tls.client_ca_pem {
        files.push(("client_ca.crt", ca, "ssl_ca_file"));
    }
    let mut args: Vec<OsString> = vec!["-c".into(), "ssl=on".into()];
    for (name, contents, setting) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents)
            .map_err(|err| TestkitError::io(format!("writing {}", path.display()), err))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|err| TestkitError::io(format!("chmod {}", path.display()), err))?;
        run_as.hand_over(&path)?;
        let mut arg = OsString::from(format!("{setting}="));
        arg.push(path.as_os_str());
        args.extend(["-c".into(), arg]);
    }
    Ok(args)
}

/// Whether the server programs must be run as the `postgres` system user.
enum RunAs {
    /// Not root: run as ourselves.
    Myself,
    /// Root: switch to this uid/gid with `setpriv`.
    SystemUser {
        setpriv: PathBuf,
        uid: u32,
        gid: u32,
    },
}

impl RunAs {
    fn detect() -> Result<Self> {
        // The owner of /proc/self is the effective uid of this process.
        let euid = std::fs::metadata("/proc/self")
            .map_err(|err| TestkitError::io("reading /proc/self", err))?
            .uid();
        if euid != 0 {
            return Ok(Self::Myself);
        }
        let setpriv = programs::find("setpriv", "util-linux")?;
        let (uid, gid) = system_user_ids(SYSTEM_USER)?;
        Ok(Self::SystemUser { setpriv, uid, gid })
    }

    /// Gives the temp dir to the user that runs the server.
    fn hand_over(&self, dir: &Path) -> Result<()> {
        match self {
            Self::Myself => Ok(()),
            Self::SystemUser { uid, gid, .. } => {
                std::os::unix::fs::chown(dir, Some(*uid), Some(*gid)).map_err(|err| {
                    TestkitError::io(format!("chown {} to {SYSTEM_USER}", dir.display()), err)
                })
            }
        }
    }

    /// The program to execute and the arguments that precede `program`'s own.
    fn command(&self, program: &Path) -> (PathBuf, Vec<OsString>) {
        match self {
            Self::Myself => (program.to_owned(), Vec::new()),
            Self::SystemUser { setpriv, .. } => (
                setpriv.clone(),
                vec![
                    format!("--reuid={SYSTEM_USER}").into(),
                    format!("--regid={SYSTEM_USER}").into(),
                    "--init-groups".into(),
                    "--".into(),
                    program.as_os_str().to_owned(),
                ],
            ),
        }
    }

    fn launch(&self, name: &str, program: &Path) -> Launch {
        let (executable, prefix) = self.command(program);
        Launch::new(name, executable).args(prefix)
    }
}

/// Reads the uid and gid of `user` from /etc/passwd.
fn system_user_ids(user: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|err| TestkitError::io("reading /etc/passwd", err))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&user))
        .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
        .ok_or_else(|| TestkitError::MissingProgram {
            program: format!("system user `{user}`"),
            package: "postgresql".into(),
        })
}

async fn run_initdb(run_as: &RunAs, initdb: &Path, data: &Path, cwd: &Path) -> Result<()> {
    let (executable, prefix) = run_as.command(initdb);
    let mut command = tokio::process::Command::new(executable);
    command
        .args(prefix)
        .arg("-D")
        .arg(data)
        .args([
            "-A",
            "trust",
            "-U",
            USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(INITDB_TIMEOUT, command.output())
        .await
        .map_err(|_| TestkitError::Timeout {
            what: "initdb".into(),
            timeout: INITDB_TIMEOUT,
            details: String::new(),
        })?
        .map_err(|err| TestkitError::io(format!("running {}", initdb.display()), err))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(TestkitError::CommandFailed {
            command: format!("{} -D {}", initdb.display(), data.display()),
            status: output.status.to_string(),
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
