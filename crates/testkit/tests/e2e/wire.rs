//! Minimal raw-protocol clients for the server self-tests (RESP, NATS, MQTT 3.1.1,
//! AMQP 0-9-1): just enough for one real round trip each.

use std::net::Ipv4Addr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub async fn connect(port: u16) -> BufReader<TcpStream> {
    BufReader::new(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap(),
    )
}

pub async fn read_line(stream: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    line.trim_end().to_owned()
}

/// Sends one RESP command and returns the first reply line (and the bulk line if any).
pub async fn redis_command(stream: &mut BufReader<TcpStream>, args: &[&str]) -> String {
    let mut command = format!("*{}\r\n", args.len());
    for arg in args {
        command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(command.as_bytes()).await.unwrap();
    let first = read_line(stream).await;
    if first.starts_with('$') && first != "$-1" {
        read_line(stream).await
    } else {
        first
    }
}

// ---- MQTT 3.1.1 ----

pub async fn mqtt_connect(port: u16, client_id: &str) -> BufReader<TcpStream> {
    let mut stream = connect(port).await;
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30];
    push_mqtt_string(&mut body, client_id);
    send_mqtt(&mut stream, 0x10, &body).await;
    let (kind, payload) = read_mqtt(&mut stream).await;
    assert_eq!((kind, payload), (0x20, vec![0, 0]), "CONNACK");
    stream
}

pub async fn mqtt_subscribe(stream: &mut BufReader<TcpStream>, topic: &str) {
    let mut body = vec![0, 1];
    push_mqtt_string(&mut body, topic);
    body.push(0);
    send_mqtt(stream, 0x82, &body).await;
    let (kind, payload) = read_mqtt(stream).await;
    assert_eq!((kind, payload), (0x90, vec![0, 1, 0]), "SUBACK");
}

pub async fn mqtt_publish(stream: &mut BufReader<TcpStream>, topic: &str, payload: &[u8]) {
    let mut body = Vec::new();
    push_mqtt_string(&mut body, topic);
    body.extend_from_slice(payload);
    send_mqtt(stream, 0x30, &body).await;
}

/// Reads one PUBLISH (QoS 0) and returns (topic, payload).
pub async fn mqtt_receive(stream: &mut BufReader<TcpStream>) -> (String, Vec<u8>) {
    let (kind, body) = read_mqtt(stream).await;
    assert_eq!(kind & 0xF0, 0x30, "PUBLISH expected");
    let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8(body[2..2 + len].to_vec()).unwrap();
    (topic, body[2 + len..].to_vec())
}

fn push_mqtt_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

async fn send_mqtt(stream: &mut BufReader<TcpStream>, first: u8, body: &[u8]) {
    assert!(body.len() < 128, "short packets only");
    let mut packet = vec![first, body.len() as u8];
    packet.extend_from_slice(body);
    stream.write_all(&packet).await.unwrap();
}

async fn read_mqtt(stream: &mut BufReader<TcpStream>) -> (u8, Vec<u8>) {
    let kind = stream.read_u8().await.unwrap();
    let mut len = 0_usize;
    let mut shift = 0;
    loop {
        let byte = stream.read_u8().await.unwrap();
        len |= usize::from(byte & 0x7F) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await.unwrap();
    (kind, body)
}

// ---- AMQP 0-9-1 ----

const FRAME_END: u8 = 0xCE;

pub struct Amqp {
    stream: BufReader<TcpStream>,
}

impl Amqp {
    /// Connects as guest/guest to vhost `/` and opens channel 1.
    pub async fn connect(port: u16) -> Self {
        let mut amqp = Self {
            stream: connect(port).await,
        };
        amqp.stream
            .write_all(b"AMQP\x00\x00\x09\x01")
            .await
            .unwrap();
        amqp.expect_method(0, 10, 10).await; // connection.start
        let mut start_ok = Vec::new();
        start_ok.extend_from_slice(&0_u32.to_be_bytes()); // client properties: empty table
        short_string(&mut start_ok, "PLAIN");
        long_string(&mut start_ok, b"\0guest\0guest");
        short_string(&mut start_ok, "en_US");
        amqp.send_method(0, 10, 11, &start_ok).await;
        let tune = amqp.expect_method(0, 10, 30).await; // connection.tune
        let mut tune_ok = tune[..6].to_vec(); // channel-max, frame-max as proposed
        tune_ok.extend_from_slice(&0_u16.to_be_bytes()); // no heartbeats
        amqp.send_method(0, 10, 31, &tune_ok).await;
        let mut open = Vec::new();
        short_string(&mut open, "/");
        short_string(&mut open, "");
        open.push(0);
        amqp.send_method(0, 10, 40, &open).await;
        amqp.expect_method(0, 10, 41).await; // connection.open-ok
        amqp.send_method(1, 20, 10, &[0]).await; // channel.open
        amqp.expect_method(1, 20, 11).await;
        amqp
    }

    /// Declares an exclusive queue.
    pub async fn declare_queue(&mut self, queue: &str) {
        let mut args = vec![0, 0];
        short_string(&mut args, queue);
        args.push(0b0000_0100); // exclusive
        args.extend_from_slice(&0_u32.to_be_bytes());
        self.send_method(1, 50, 10, &args).await;
        self.expect_method(1, 50, 11).await;
    }

    /// Publishes `body` to the default exchange with routing key `queue`.
    pub async fn publish(&mut self, queue: &str, body: &[u8]) {
        let mut args = vec![0, 0];
        short_string(&mut args, "");
        short_string(&mut args, queue);
        args.push(0);
        self.send_method(1, 60, 40, &args).await;
        let mut header = Vec::new();
        header.extend_from_slice(&60_u16.to_be_bytes());
        header.extend_from_slice(&0_u16.to_be_bytes());
        header.extend_from_slice(&(body.len() as u64).to_be_bytes());
        header.extend_from_slice(&0_u16.to_be_bytes());
        self.send_frame(2, 1, &header).await;
        self.send_frame(3, 1, body).await;
    }

    /// `basic.get` with auto-ack; `None` when the queue is empty.
    pub async fn get(&mut self, queue: &str) -> Option<Vec<u8>> {
        let mut args = vec![0, 0];
        short_string(&mut args, queue);
        args.push(1); // no-ack
        self.send_method(1, 60, 70, &args).await;
        let (kind, _, payload) = self.read_frame().await;
        assert_eq!(kind, 1);
        match &payload[..4] {
            [0, 60, 0, 72] => None, // get-empty
            [0, 60, 0, 71] => {
                let (header_kind, _, header) = self.read_frame().await;
                assert_eq!(header_kind, 2);
                let size = u64::from_be_bytes(header[4..12].try_into().unwrap());
                let mut body = Vec::new();
                while (body.len() as u64) < size {
                    let (body_kind, _, chunk) = self.read_frame().await;
                    assert_eq!(body_kind, 3);
                    body.extend_from_slice(&chunk);
                }
                Some(body)
            }
            other => panic!("unexpected answer to basic.get: {other:?}"),
        }
    }

    pub async fn close(mut self) {
        let mut args = 200_u16.to_be_bytes().to_vec();
        short_string(&mut args, "bye");
        args.extend_from_slice(&[0, 0, 0, 0]);
        self.send_method(0, 10, 50, &args).await;
        self.expect_method(0, 10, 51).await;
    }

    async fn send_method(&mut self, channel: u16, class: u16, method: u16, args: &[u8]) {
        let mut payload = class.to_be_bytes().to_vec();
        payload.extend_from_slice(&method.to_be_bytes());
        payload.extend_from_slice(args);
        self.send_frame(1, channel, &payload).await;
    }

    async fn send_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        let mut frame = vec![kind];
        frame.extend_from_slice(&channel.to_be_bytes());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        frame.push(FRAME_END);
        self.stream.write_all(&frame).await.unwrap();
    }

    async fn read_frame(&mut self) -> (u8, u16, Vec<u8>) {
        let kind = self.stream.read_u8().await.unwrap();
        let channel = self.stream.read_u16().await.unwrap();
        let size = self.stream.read_u32().await.unwrap() as usize;
        let mut payload = vec![0; size];
        self.stream.read_exact(&mut payload).await.unwrap();
        assert_eq!(self.stream.read_u8().await.unwrap(), FRAME_END);
        (kind, channel, payload)
    }

    /// Reads a method frame, asserts its channel/class/method, returns its arguments.
    async fn expect_method(&mut self, channel: u16, class: u16, method: u16) -> Vec<u8> {
        let (kind, got_channel, payload) = self.read_frame().await;
        let got = (
            kind,
            got_channel,
            u16::from_be_bytes([payload[0], payload[1]]),
            u16::from_be_bytes([payload[2], payload[3]]),
        );
        assert_eq!(got, (1, channel, class, method), "AMQP method frame");
        payload[4..].to_vec()
    }
}

fn short_string(out: &mut Vec<u8>, text: &str) {
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

fn long_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}
