//! A guard for every child process a test starts.
//!
//! # How a child is run
//!
//! The program is not spawned directly. A tiny `/bin/sh` wrapper (see [`WRAPPER_SCRIPT`])
//! starts it in the background in a session and process group of its own (`setsid`), with
//! stdin from `/dev/null` and stdout/stderr appended to a log file in the server's temp dir,
//! and reports the program's pid on its stdout. A second background job of the wrapper, the
//! *watcher*, reads the wrapper's stdin, which is a pipe whose only write end is held by
//! [`GuardedProcess`]. When that pipe closes, the watcher sends SIGTERM to the program's
//! process group, waits up to [`STOP_GRACE`] and then sends SIGKILL. When the program exits,
//! the wrapper writes its status (`exit N`) to stdout, where a reader thread picks it up.
//!
//! The pipe closes in exactly two situations: the guard is dropped (normal cleanup), or the
//! test process ends, however it ends, including SIGKILL: the kernel closes a dead
//! process's descriptors, which no in-process cleanup (destructors, `atexit`, signal
//! handlers) can guarantee. So children never outlive the test process, and statics that
//! are never dropped (the shared RabbitMQ) stop at process exit too. The pipe's write end is
//! created close-on-exec by the standard library, so other children never inherit it and
//! cannot keep a server alive.
//!
//! Verified by experiment, and re-checked by the e2e test
//! `process::sigkill_of_the_test_process_stops_its_servers`: a copy of the test binary
//! starts Redis and the shared RabbitMQ (a shell script, `beam.smp` and helpers, plus its
//! own `epmd`), reports their pids, and is SIGKILLed; within a few seconds every process
//! group is empty, the ports are closed and the temp dirs are gone. (The experiment also
//! showed that dash's `kill -TERM -- -PGID` form is rejected; the script uses
//! `kill -s TERM -- -PGID`, which dash accepts.)
//!
//! Dropping the guard closes the pipe, waits (bounded) until the wrapper has seen the
//! program exit, then removes the temp dir (the wrapper removes it as well, which is what
//! cleans up after a killed test process). If the thread is panicking, the last
//! [`PANIC_LOG_LINES`] log lines are printed to stderr first.
//!
//! No signals are sent from Rust code directly (unsafe code is forbidden): explicit signals
//! go through the shell's `kill` builtin.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::sync::watch;

use crate::error::{Result, TestkitError};

/// The shell wrapper every guarded program runs under (see the module docs).
///
/// Positional parameters: `$1` the guard's temp dir, `$2` log file, `$3` grace period in
/// tenths of a second, then the program and its arguments. Stdin is the keep-alive pipe;
/// stdout carries the pid line and, once the program is gone, the `exit N` line. After the
/// keep-alive pipe closed and the process group is gone, the wrapper removes the temp dir,
/// so even a SIGKILLed test process leaves nothing behind.
pub const WRAPPER_SCRIPT: &str = r#"dir=$1; log=$2; grace=$3; shift 3
exec 3<&0
setsid "$@" </dev/null 3<&- >>"$log" 2>&1 &
server=$!
trap '' PIPE
echo "$server"
(
  while read -r _line; do :; done
  kill -s TERM -- "-$server" 2>/dev/null || kill -s TERM "$server" 2>/dev/null
  tries=0
  while kill -s 0 -- "-$server" 2>/dev/null && [ "$tries" -lt "$grace" ]; do
    sleep 0.1; tries=$((tries + 1))
  done
  kill -s KILL -- "-$server" 2>/dev/null
  kill -s KILL "$server" 2>/dev/null
) <&3 &
watcher=$!
exec 3<&-
wait "$server"
echo "exit $?" 2>/dev/null
wait "$watcher"
rm -rf -- "$dir"
"#;

/// How long a program may take to stop after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// How many log lines are printed when a guard is dropped during a panic.
pub const PANIC_LOG_LINES: usize = 40;

/// How a guarded program exited, as reported by the wrapper shell.
///
/// The shell encodes "killed by signal N" as status `128 + N`, so a program that itself
/// exits with a code above 128 is indistinguishable from one killed by a signal; servers
/// do not do that in practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessExit {
    status: i32,
}

impl ProcessExit {
    /// Whether the program exited with code 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// The exit code, or `None` when the program was killed by a signal.
    pub fn code(&self) -> Option<i32> {
        (self.status <= 128).then_some(self.status)
    }

    /// The signal that killed the program, if any (15 for SIGTERM, 9 for SIGKILL).
    pub fn signal(&self) -> Option<i32> {
        (self.status > 128).then_some(self.status - 128)
    }

    /// The raw shell status (`$?` after `wait`).
    pub fn shell_status(&self) -> i32 {
        self.status
    }
}

impl fmt::Display for ProcessExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.signal() {
            Some(signal) => write!(f, "killed by signal {signal}"),
            None => write!(f, "exit code {}", self.status),
        }
    }
}

/// What to run: a program, its arguments, environment and working directory.
#[derive(Debug, Clone)]
pub struct Launch {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    current_dir: Option<PathBuf>,
}

impl Launch {
    /// A launch of `program` that logs and errors under the human-readable `name`.
    pub fn new(name: impl Into<String>, program: impl AsRef<OsStr>) -> Self {
        Self {
            name: name.into(),
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            current_dir: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable (the rest of the environment is inherited).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(mut self, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in envs {
            self = self.env(key, value);
        }
        self
    }

    /// Runs the program in `dir` (default: the guard's temp dir).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// The human-readable name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Creates a temp dir for one server, named after it.
pub fn temp_dir(name: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("testkit-{name}-"))
        .tempdir()
        .map_err(|err| TestkitError::io(format!("creating a temp dir for {name}"), err))
}

/// A running child process that is stopped, and whose temp dir is removed, when this guard
/// is dropped, and that cannot outlive the test process (see the module docs).
#[derive(Debug)]
pub struct GuardedProcess {
    name: String,
    pid: u32,
    wrapper: Child,
    keepalive: Option<ChildStdin>,
    exit: watch::Receiver<Option<ProcessExit>>,
    log_path: PathBuf,
    dir: TempDir,
}

impl GuardedProcess {
    /// Starts `launch` under the wrapper, logging to `<dir>/<name>.log`; the guard owns `dir`
    /// and removes it on drop.
    pub fn spawn(launch: Launch, dir: TempDir) -> Result<Self> {
        let log_path = dir
            .path()
            .join(format!("{}.log", file_name_safe(&launch.name)));
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|err| TestkitError::io(format!("creating {}", log_path.display()), err))?;
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(WRAPPER_SCRIPT)
            .arg("testkit-wrapper")
            .arg(dir.path())
            .arg(&log_path)
            .arg((STOP_GRACE.as_millis() / 100).to_string())
            .arg(&launch.program)
            .args(&launch.args)
            .envs(launch.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(launch.current_dir.as_deref().unwrap_or(dir.path()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut wrapper = command.spawn().map_err(|err| {
            TestkitError::io(format!("spawning the wrapper for {}", launch.name), err)
        })?;
        let keepalive = wrapper.stdin.take();
        let Some(stdout) = wrapper.stdout.take() else {
            return Err(TestkitError::io(
                format!("starting {}", launch.name),
                std::io::Error::other("wrapper stdout was not captured"),
            ));
        };
        let mut reader = BufReader::new(stdout);
        let mut pid_line = String::new();
        let pid = match reader.read_line(&mut pid_line) {
            Ok(_) => pid_line.trim().parse::<u32>().ok(),
            Err(_) => None,
        };
        let Some(pid) = pid else {
            drop(keepalive);
            let _ = wrapper.kill();
            let _ = wrapper.wait();
            return Err(TestkitError::CommandFailed {
                command: format!("/bin/sh wrapper for {}", launch.name),
                status: "no pid reported".into(),
                output: read_tail(&log_path, PANIC_LOG_LINES),
            });
        };
        let (exit_tx, exit_rx) = watch::channel(None);
        let thread_name = format!("testkit-exit-{}", launch.name);
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let mut line = String::new();
                while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                    if let Some(Ok(status)) =
                        line.trim().strip_prefix("exit ").map(str::parse::<i32>)
                    {
                        let _ = exit_tx.send(Some(ProcessExit { status }));
                    }
                    line.clear();
                }
            })
            .map_err(|err| TestkitError::io("spawning the exit-reader thread", err))?;
        tracing::debug!(name = %launch.name, pid, log = %log_path.display(), "started guarded process");
        Ok(Self {
            name: launch.name,
            pid,
            wrapper,
            keepalive,
            exit: exit_rx,
            log_path,
            dir,
        })
    }

    /// The human-readable name given at launch.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of the program itself (not of the wrapper).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temp dir owned by this guard (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file receiving the program's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        read_tail(&self.log_path, lines)
    }

    /// How the program exited, if it has.
    pub fn exited(&self) -> Option<ProcessExit> {
        *self.exit.borrow()
    }

    /// Waits until the program exits, at most `timeout`.
    pub async fn wait_exit(&self, timeout: Duration) -> Result<ProcessExit> {
        let mut exit = self.exit.clone();
        let waited = tokio::time::timeout(timeout, exit.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(status)) => status.ok_or_else(|| self.vanished()),
            Ok(Err(_)) => Err(self.vanished()),
            Err(_) => Err(TestkitError::Timeout {
                what: format!("exit of {} (pid {})", self.name, self.pid),
                timeout,
                details: format!("; last log lines:\n{}", self.log_tail(PANIC_LOG_LINES)),
            }),
        }
    }

    /// Sends a signal (a name such as `TERM`, `KILL`, `INT`, `HUP`) to the program.
    pub fn signal(&self, signal: &str) -> Result<()> {
        send_signal(signal, &self.pid.to_string())
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the program to exit.
    pub async fn terminate(&self, timeout: Duration) -> Result<ProcessExit> {
        if let Some(exit) = self.exited() {
            return Ok(exit);
        }
        self.signal("TERM")?;
        self.wait_exit(timeout).await
    }

    /// Sends SIGKILL and waits (a few seconds at most) for the exit to be reported.
    pub async fn kill(&self) -> Result<ProcessExit> {
        if let Some(exit) = self.exited() {
            return Ok(exit);
        }
        self.signal("KILL")?;
        self.wait_exit(Duration::from_secs(10)).await
    }

    fn vanished(&self) -> TestkitError {
        TestkitError::CommandFailed {
            command: format!("wrapper of {} (pid {})", self.name, self.pid),
            status: "ended without reporting an exit status".into(),
            output: self.log_tail(PANIC_LOG_LINES),
        }
    }
}

impl Drop for GuardedProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- last {PANIC_LOG_LINES} log lines of {} (pid {}, {}) ----\n{}\n---- end of {} log ----",
                self.name,
                self.pid,
                self.log_path.display(),
                self.log_tail(PANIC_LOG_LINES),
                self.name
            );
        }
        // Closing the pipe makes the watcher stop the program's whole process group.
        drop(self.keepalive.take());
        let deadline = Instant::now() + STOP_GRACE + Duration::from_secs(5);
        loop {
            match self.wrapper.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    tracing::warn!(name = %self.name, pid = self.pid, "wrapper did not finish; killing");
                    let _ = send_signal("KILL", &format!("-{}", self.pid));
                    let _ = send_signal("KILL", &self.pid.to_string());
                    let _ = self.wrapper.kill();
                    let _ = self.wrapper.wait();
                    break;
                }
            }
        }
        tracing::debug!(name = %self.name, pid = self.pid, "stopped guarded process");
    }
}

/// Sends `signal` to `target` (a pid, or `-pgid` for a process group) with the shell's
/// `kill` builtin.
fn send_signal(signal: &str, target: &str) -> Result<()> {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"kill -s "$1" -- "$2""#)
        .arg("testkit-kill")
        .arg(signal)
        .arg(target)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| TestkitError::io(format!("running kill -s {signal} {target}"), err))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(TestkitError::CommandFailed {
            command: format!("kill -s {signal} {target}"),
            status: output.status.to_string(),
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Whether a process with this pid exists (signal 0 probe).
pub fn pid_alive(pid: u32) -> bool {
    send_signal("0", &pid.to_string()).is_ok()
}

/// Whether any process is left in the process group `pgid` (a guarded program's pgid is its
/// pid).
pub fn process_group_alive(pgid: u32) -> bool {
    send_signal("0", &format!("-{pgid}")).is_ok()
}

/// Reads the last `lines` lines of a log file (at most its last 64 KiB).
pub fn read_tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    if len > WINDOW {
        let _ = file.seek(SeekFrom::Start(len - WINDOW));
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return format!("(unreadable log at {})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

fn file_name_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_decoding() {
        let ok = ProcessExit { status: 0 };
        assert!(ok.success());
        assert_eq!(ok.code(), Some(0));
        let term = ProcessExit { status: 143 };
        assert_eq!(term.signal(), Some(15));
        assert_eq!(term.code(), None);
        assert_eq!(term.to_string(), "killed by signal 15");
        assert_eq!(ProcessExit { status: 3 }.to_string(), "exit code 3");
    }

    #[test]
    fn tail_returns_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        assert_eq!(read_tail(&path, 2), "line 99\nline 100");
    }

    #[tokio::test]
    async fn guard_reports_exit_and_cleans_up() {
        let dir = temp_dir("echo").unwrap();
        let launch = Launch::new("echo", "/bin/sh").args(["-c", "echo hello; exit 7"]);
        let process = GuardedProcess::spawn(launch, dir).unwrap();
        let exit = process.wait_exit(Duration::from_secs(10)).await.unwrap();
        assert_eq!(exit.code(), Some(7));
        assert_eq!(process.log_tail(5), "hello");
        let dir = process.dir().to_owned();
        drop(process);
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn terminate_and_kill_report_signals() {
        let sleeper = GuardedProcess::spawn(
            Launch::new("sleeper", "sleep").arg("60"),
            temp_dir("sleeper").unwrap(),
        )
        .unwrap();
        assert!(pid_alive(sleeper.pid()));
        let exit = sleeper.terminate(Duration::from_secs(10)).await.unwrap();
        assert_eq!(exit.signal(), Some(15));
        assert!(!pid_alive(sleeper.pid()));

        let victim = GuardedProcess::spawn(
            Launch::new("victim", "sleep").arg("60"),
            temp_dir("victim").unwrap(),
        )
        .unwrap();
        assert_eq!(victim.kill().await.unwrap().signal(), Some(9));
    }
}
