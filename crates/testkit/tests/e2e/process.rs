//! Process guards: servers die with a panicking test and with a SIGKILLed test process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dapr_testkit::process::{pid_alive, process_group_alive};
use dapr_testkit::{GuardedProcess, RabbitMq, Redis};

use crate::servers::assert_stopped;

#[test]
fn a_panicking_test_still_stops_its_server() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let redis = Redis::start().await.unwrap();
            sender.send((redis.process().pid(), redis.port())).unwrap();
            panic!("deliberate panic while Redis runs (its log tail is printed below)");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread should have panicked");
    let (pid, port) = receiver.recv().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(assert_stopped(pid, port));
}

/// Run only by `sigkill_of_the_test_process_stops_its_servers`, in a child copy of this
/// binary: starts Redis and the shared RabbitMQ (a multi-process server with its own epmd),
/// reports them, and waits to be killed.
#[tokio::test]
#[ignore = "helper process for sigkill_of_the_test_process_stops_its_servers"]
async fn helper_start_servers_and_wait_to_be_killed() {
    let redis = Redis::start().await.unwrap();
    let rabbit = RabbitMq::shared().await.unwrap();
    let report = |process: &GuardedProcess, port: u16| {
        format!("{} {port} {}", process.pid(), process.dir().display())
    };
    println!(
        "READY {} {} {}",
        report(redis.process(), redis.port()),
        report(rabbit.process(), rabbit.port()),
        report(rabbit.epmd_process(), 0),
    );
    tokio::time::sleep(Duration::from_secs(600)).await;
}

/// A server as reported by the helper: pid (= process group), port (0: not checked), dir.
struct Reported {
    pid: u32,
    port: u16,
    dir: PathBuf,
}

impl Reported {
    fn gone(&self) -> bool {
        !process_group_alive(self.pid) && !pid_alive(self.pid) && !self.dir.exists()
    }
}

#[test]
fn sigkill_of_the_test_process_stops_its_servers() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "process::helper_start_servers_and_wait_to_be_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // libtest may print "test <name> ... " on the same line before the helper's output.
    let ready = stdout
        .lines()
        .map(Result::unwrap)
        .find_map(|line| line.split_once("READY ").map(|(_, rest)| rest.to_owned()));
    let Some(ready) = ready else {
        child.kill().unwrap();
        panic!("the helper ended without reporting its servers");
    };
    let fields: Vec<&str> = ready.split_whitespace().collect();
    let servers: Vec<Reported> = fields
        .chunks(3)
        .map(|server| Reported {
            pid: server[0].parse().unwrap(),
            port: server[1].parse().unwrap(),
            dir: PathBuf::from(server[2]),
        })
        .collect();
    assert_eq!(servers.len(), 3, "{ready}");
    assert!(servers.iter().all(|server| pid_alive(server.pid)));

    child.kill().unwrap(); // SIGKILL: no destructor of the helper runs.
    child.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while !servers.iter().all(Reported::gone) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for server in &servers {
        assert!(
            !process_group_alive(server.pid),
            "group {} left",
            server.pid
        );
        assert!(
            !server.dir.exists(),
            "temp dir {} left",
            server.dir.display()
        );
        if server.port != 0 {
            runtime.block_on(assert_stopped(server.pid, server.port));
        }
    }
}
