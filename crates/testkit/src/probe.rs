//! Readiness probes: one real protocol exchange per server kind, over loopback TCP.
//!
//! Each probe returns `Err(description)` while the server does not (yet) do its job, so
//! [`crate::ready::wait_until_ready`] can retry and report the last reason.

use std::net::Ipv4Addr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Outcome of one probe attempt.
pub type ProbeResult = std::result::Result<(), String>;

async fn connect(port: u16) -> std::result::Result<TcpStream, String> {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|err| format!("connect to 127.0.0.1:{port}: {err}"))
}

fn io_failure(step: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |err| format!("{step}: {err}")
}

/// TCP accept only: for apps whose protocol is not known here.
pub async fn tcp_accepts(port: u16) -> ProbeResult {
    connect(port).await.map(drop)
}

/// Redis: `PING` must answer `+PONG`.
pub async fn redis_ping(port: u16) -> ProbeResult {
    let mut stream = BufReader::new(connect(port).await?);
    stream
        .write_all(b"*1\r\n$4\r\nPING\r\n")
        .await
        .map_err(io_failure("send PING"))?;
    let mut line = String::new();
    stream
        .read_line(&mut line)
        .await
        .map_err(io_failure("read PING reply"))?;
    if line.trim_end() == "+PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {:?}", line.trim_end()))
    }
}

/// PostgreSQL: a protocol 3.0 startup packet for `user` / `database` must reach
/// `ReadyForQuery` (trust authentication).
pub async fn postgres_startup(port: u16, user: &str, database: &str) -> ProbeResult {
    let mut stream = connect(port).await?;
    let mut body = Vec::new();
    body.extend_from_slice(&196_608_i32.to_be_bytes()); // protocol 3.0
    for (key, value) in [("user", user), ("database", database)] {
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    stream
        .write_all(&packet)
        .await
        .map_err(io_failure("send startup packet"))?;
    loop {
        let mut header = [0_u8; 5];
        stream
            .read_exact(&mut header)
            .await
            .map_err(io_failure("read backend message"))?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::try_from(len - 4).map_err(|_| format!("bad message length {len}"))?;
        let mut payload = vec![0_u8; len];
        stream
            .read_exact(&mut payload)
            .await
            .map_err(io_failure("read backend message body"))?;
        match header[0] {
            b'R' if payload.get(..4) != Some(&[0, 0, 0, 0]) => {
                return Err("server asks for a password (expected trust auth)".into());
            }
            b'E' => return Err(format!("server error: {}", postgres_error_text(&payload))),
            b'Z' => {
                // Terminate politely.
                let _ = stream.write_all(&[b'X', 0, 0, 0, 4]).await;
                return Ok(());
            }
            _ => {}
        }
    }
}

/// Extracts the `M` (message) field of an ErrorResponse body.
fn postgres_error_text(payload: &[u8]) -> String {
    payload
        .split(|byte| *byte == 0)
        .find_map(|field| field.strip_prefix(b"M"))
        .map(|message| String::from_utf8_lossy(message).into_owned())
        .unwrap_or_else(|| String::from_utf8_lossy(payload).into_owned())
}

/// etcd: `GET /health` must answer 200 with `"health":"true"`.
pub async fn etcd_health(port: u16) -> ProbeResult {
    let url = format!("http://127.0.0.1:{port}/health");
    let response = crate::http::get(&url)
        .await
        .map_err(|err| err.to_string())?;
    let body = response.text();
    if response.status == ::http::StatusCode::OK && body.contains(r#""health":"true""#) {
        Ok(())
    } else {
        Err(format!("/health answered {}: {body}", response.status))
    }
}

/// NATS: the server's `INFO` line (which must advertise JetStream when `jetstream` is set),
/// then `PING` must answer `PONG`.
pub async fn nats_ping(port: u16, jetstream: bool) -> ProbeResult {
    let mut stream = BufReader::new(connect(port).await?);
    let mut info = String::new();
    stream
        .read_line(&mut info)
        .await
        .map_err(io_failure("read INFO"))?;
    if !info.starts_with("INFO ") {
        return Err(format!("expected INFO, got {:?}", info.trim_end()));
    }
    if jetstream && !info.contains(r#""jetstream":true"#) {
        return Err("INFO does not advertise JetStream".into());
    }
    stream
        .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
        .await
        .map_err(io_failure("send CONNECT/PING"))?;
    let mut pong = String::new();
    stream
        .read_line(&mut pong)
        .await
        .map_err(io_failure("read PONG"))?;
    if pong.trim_end() == "PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {:?}", pong.trim_end()))
    }
}

/// MQTT: a v3.1.1 `CONNECT` (clean session) must be accepted by `CONNACK` code 0.
pub async fn mqtt_connect(port: u16) -> ProbeResult {
    let mut stream = connect(port).await?;
    let client_id = b"testkit-probe";
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    stream
        .write_all(&packet)
        .await
        .map_err(io_failure("send CONNECT"))?;
    let mut connack = [0_u8; 4];
    stream
        .read_exact(&mut connack)
        .await
        .map_err(io_failure("read CONNACK"))?;
    let _ = stream.write_all(&[0xE0, 0]).await; // DISCONNECT
    if connack == [0x20, 0x02, 0x00, 0x00] {
        Ok(())
    } else {
        Err(format!("CONNECT answered {connack:02x?}"))
    }
}

/// AMQP 0-9-1: the protocol header must be answered by a `connection.start` method frame.
pub async fn amqp_header(port: u16) -> ProbeResult {
    let mut stream = connect(port).await?;
    stream
        .write_all(b"AMQP\x00\x00\x09\x01")
        .await
        .map_err(io_failure("send protocol header"))?;
    let mut header = [0_u8; 7];
    stream
        .read_exact(&mut header)
        .await
        .map_err(io_failure("read frame header"))?;
    let mut method = [0_u8; 4];
    stream
        .read_exact(&mut method)
        .await
        .map_err(io_failure("read method id"))?;
    // Frame type 1 (method) on channel 0, class 10 (connection) method 10 (start).
    if header[0] == 1 && header[1..3] == [0, 0] && method == [0, 10, 0, 10] {
        Ok(())
    } else {
        Err(format!("header answered {header:02x?} {method:02x?}"))
    }
}

/// epmd: a `NAMES_REQ` must be answered with epmd's own port number.
pub async fn epmd_names(port: u16) -> ProbeResult {
    let mut stream = connect(port).await?;
    stream
        .write_all(&[0, 1, b'n'])
        .await
        .map_err(io_failure("send NAMES_REQ"))?;
    let mut reply = [0_u8; 4];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(io_failure("read NAMES reply"))?;
    if u32::from_be_bytes(reply) == u32::from(port) {
        Ok(())
    } else {
        Err(format!(
            "NAMES_REQ answered port {}",
            u32::from_be_bytes(reply)
        ))
    }
}
