//! Free loopback TCP ports for servers under test.
//!
//! A port is found by binding `127.0.0.1:0`, reading the port the kernel chose and releasing
//! the socket. Between that release and the server's own bind another process could take the
//! same port; the window is a few milliseconds and the kernel rarely hands the same ephemeral
//! port out twice in a row, so collisions are rare. Within this process the race is closed
//! completely: every port handed out is remembered and never handed out again. Server
//! launchers in this kit retry with fresh ports when a server reports "address already in
//! use".

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

use crate::error::{Result, TestkitError};

/// Ports this process has already handed out.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Returns a loopback TCP port that is free right now and was not returned before in this
/// process. See the module docs for the (small) race with other processes.
///
/// # Panics
/// Panics if the kernel refuses to bind an ephemeral loopback port, which means the test
/// machine itself is broken.
pub fn free_port() -> u16 {
    match free_ports(1).as_slice() {
        [port] => *port,
        _ => unreachable!("free_ports(1) returns one port"),
    }
}

/// Returns `count` distinct free loopback TCP ports (all sockets are held until every port
/// has been chosen, so they differ from one another).
///
/// # Panics
/// Panics if the kernel refuses to bind ephemeral loopback ports.
pub fn free_ports(count: usize) -> Vec<u16> {
    match try_free_ports(count) {
        Ok(ports) => ports,
        Err(err) => panic!("cannot reserve {count} free loopback ports: {err}"),
    }
}

/// Like [`free_ports`], returning an error instead of panicking.
pub fn try_free_ports(count: usize) -> Result<Vec<u16>> {
    let mut held = Vec::with_capacity(count);
    let mut ports = Vec::with_capacity(count);
    let mut seen = handed_out()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Each bind to port 0 yields a new ephemeral port; skip ones handed out before.
    let mut attempts = 0;
    while ports.len() < count {
        attempts += 1;
        if attempts > count * 50 + 100 {
            return Err(TestkitError::io(
                "reserving free ports",
                std::io::Error::other("kernel kept returning ports already handed out"),
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|err| TestkitError::io("binding 127.0.0.1:0", err))?;
        let port = listener
            .local_addr()
            .map_err(|err| TestkitError::io("reading a bound port", err))?
            .port();
        if seen.insert(port) {
            ports.push(port);
        }
        held.push(listener);
    }
    drop(held);
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports = free_ports(8);
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), 8);
        for port in ports {
            assert_ne!(port, 0);
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        }
    }

    #[test]
    fn ports_are_not_handed_out_twice() {
        let first = free_port();
        let later = free_ports(20);
        assert!(!later.contains(&first));
    }
}
