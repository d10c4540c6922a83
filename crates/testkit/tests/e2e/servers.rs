//! Every backing server starts, does one real round trip through its own protocol, and is
//! gone (pid and port) once its guard is dropped.

use std::net::Ipv4Addr;
use std::time::Duration;

use dapr_testkit::http;
use dapr_testkit::process::pid_alive;
use dapr_testkit::programs;
use dapr_testkit::{Etcd, Mosquitto, Nats, Postgres, RabbitMq, Redis};
use tokio::io::AsyncWriteExt;

use crate::wire;

/// Asserts that nothing listens on `port` and `pid` is gone (the guard has been dropped).
pub async fn assert_stopped(pid: u32, port: u16) {
    assert!(
        !pid_alive(pid),
        "pid {pid} still alive after its guard was dropped"
    );
    let connect = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await;
    assert!(connect.is_err(), "port {port} still accepts connections");
}

#[tokio::test]
async fn redis_set_get_then_stops() {
    let redis = Redis::start().await.unwrap();
    assert_eq!(redis.host(), format!("127.0.0.1:{}", redis.port()));
    let mut stream = wire::connect(redis.port()).await;
    assert_eq!(
        wire::redis_command(&mut stream, &["SET", "greeting", "hello"]).await,
        "+OK"
    );
    assert_eq!(
        wire::redis_command(&mut stream, &["GET", "greeting"]).await,
        "hello"
    );
    let (pid, port, dir) = (
        redis.process().pid(),
        redis.port(),
        redis.process().dir().to_owned(),
    );
    drop(stream);
    drop(redis);
    assert_stopped(pid, port).await;
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
}

#[tokio::test]
async fn postgres_query_through_both_connection_strings_then_stops() {
    let postgres = Postgres::start().await.unwrap();
    let psql = programs::find("psql", "postgresql-client").unwrap();
    for connection in [postgres.connection_url(), postgres.connection_string()] {
        let output = tokio::process::Command::new(&psql)
            .arg(&connection)
            .args(["-X", "-tA", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(
                "CREATE TABLE IF NOT EXISTS kv (k text PRIMARY KEY, v int); \
                  INSERT INTO kv VALUES ('answer', 42) ON CONFLICT (k) DO UPDATE SET v = 42; \
                  SELECT v FROM kv WHERE k = 'answer';",
            )
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "psql {connection}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            stdout.lines().last(),
            Some("42"),
            "psql {connection}: {stdout}"
        );
    }
    let (pid, port) = (postgres.process().pid(), postgres.port());
    drop(postgres);
    assert_stopped(pid, port).await;
}

#[tokio::test]
async fn etcd_put_range_through_the_json_gateway_then_stops() {
    let etcd = Etcd::start().await.unwrap();
    assert_eq!(etcd.endpoint(), format!("127.0.0.1:{}", etcd.port()));
    // base64("testkit-key") and base64("testkit-value").
    let put = http::post_json(
        &format!("{}/v3/kv/put", etcd.url()),
        &serde_json::json!({"key": "dGVzdGtpdC1rZXk=", "value": "dGVzdGtpdC12YWx1ZQ=="}),
    )
    .await
    .unwrap();
    assert_eq!(put.status, 200, "{}", put.text());
    let range = http::post_json(
        &format!("{}/v3/kv/range", etcd.url()),
        &serde_json::json!({"key": "dGVzdGtpdC1rZXk="}),
    )
    .await
    .unwrap();
    let body: serde_json::Value = range.json().unwrap();
    assert_eq!(body["kvs"][0]["value"], "dGVzdGtpdC12YWx1ZQ==", "{body}");
    let (pid, port) = (etcd.process().pid(), etcd.port());
    drop(etcd);
    assert_stopped(pid, port).await;
}

#[tokio::test]
async fn nats_pub_sub_and_jetstream_info_then_stops() {
    let nats = Nats::start().await.unwrap();
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{}", nats.port()));
    let mut stream = wire::connect(nats.port()).await;
    assert!(wire::read_line(&mut stream).await.starts_with("INFO "));
    stream
        .write_all(
            b"CONNECT {\"verbose\":false}\r\nSUB greet 1\r\nPUB greet 5\r\nhello\r\n\
              SUB _INBOX.testkit 2\r\nPUB $JS.API.INFO _INBOX.testkit 0\r\n\r\n",
        )
        .await
        .unwrap();
    assert_eq!(wire::read_line(&mut stream).await, "MSG greet 1 5");
    assert_eq!(wire::read_line(&mut stream).await, "hello");
    assert!(
        wire::read_line(&mut stream)
            .await
            .starts_with("MSG _INBOX.testkit 2 ")
    );
    let info = wire::read_line(&mut stream).await;
    assert!(
        info.contains("io.nats.jetstream.api.v1.account_info_response"),
        "{info}"
    );
    assert!(!info.contains("\"error\""), "{info}");
    let (pid, port) = (nats.process().pid(), nats.port());
    drop(stream);
    drop(nats);
    assert_stopped(pid, port).await;
}

#[tokio::test]
async fn mosquitto_subscribe_publish_then_stops() {
    let mosquitto = Mosquitto::start().await.unwrap();
    assert_eq!(
        mosquitto.url(),
        format!("tcp://127.0.0.1:{}", mosquitto.port())
    );
    let mut subscriber = wire::mqtt_connect(mosquitto.port(), "testkit-sub").await;
    wire::mqtt_subscribe(&mut subscriber, "testkit/topic").await;
    let mut publisher = wire::mqtt_connect(mosquitto.port(), "testkit-pub").await;
    wire::mqtt_publish(&mut publisher, "testkit/topic", b"hello mqtt").await;
    let received =
        tokio::time::timeout(Duration::from_secs(10), wire::mqtt_receive(&mut subscriber))
            .await
            .unwrap();
    assert_eq!(
        received,
        ("testkit/topic".to_owned(), b"hello mqtt".to_vec())
    );
    let (pid, port) = (mosquitto.process().pid(), mosquitto.port());
    drop((subscriber, publisher));
    drop(mosquitto);
    assert_stopped(pid, port).await;
}

#[tokio::test]
async fn rabbitmq_is_shared_and_routes_a_message() {
    let rabbit = RabbitMq::shared().await.unwrap();
    let again = RabbitMq::shared().await.unwrap();
    assert!(std::ptr::eq(rabbit, again), "one broker per test process");
    assert_eq!(
        rabbit.url(),
        format!("amqp://guest:guest@127.0.0.1:{}", rabbit.port())
    );

    let mut amqp = wire::Amqp::connect(rabbit.port()).await;
    amqp.declare_queue("testkit-queue").await;
    amqp.publish("testkit-queue", b"hello amqp").await;
    let mut received = None;
    for _ in 0..50 {
        received = amqp.get("testkit-queue").await;
        if received.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(received.as_deref(), Some(&b"hello amqp"[..]));
    amqp.close().await;
}
