use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use super::*;
use crate::nameresolution::build;

/// Environment variable that turns `peer_process` into a second sidecar process.
const PEER_DB_ENV: &str = "DAPR_NR_SQLITE_TEST_PEER_DB";

fn instance(app_id: &str, port: u16) -> Instance {
    Instance {
        app_id: app_id.into(),
        namespace: "default".into(),
        host_address: "127.0.0.1".into(),
        internal_grpc_port: port,
        ..Instance::default()
    }
}

fn request(app_id: &str) -> ResolveRequest {
    ResolveRequest {
        app_id: app_id.into(),
        namespace: "default".into(),
        port: 50001,
    }
}

/// The shortest timings upstream's checks allow: heartbeat every second, dead after two.
fn fast_config(path: &Path) -> SqliteConfig {
    let mut config = SqliteConfig::new(path.to_str().unwrap());
    config.update_interval = Duration::from_secs(2);
    config.common.timeout = Duration::from_secs(1);
    config
}

async fn start(config: &SqliteConfig, app_id: &str, port: u16) -> SqliteResolver {
    SqliteResolver::start(config.clone(), instance(app_id, port))
        .await
        .unwrap()
}

/// Polls `check` every 100ms until it holds, failing after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rows_for(path: &Path, app_id: &str) -> i64 {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .query_row(
            "SELECT count(*) FROM hosts WHERE app_id = ?",
            [app_id],
            |row| row.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn two_instances_on_one_file_resolve_each_other() {
    let directory = tempfile::tempdir().unwrap();
    let config = fast_config(&directory.path().join("nr.db"));
    let orders = start(&config, "orders", 50010).await;
    let payments = start(&config, "payments", 50020).await;

    assert_eq!(
        orders.resolve(&request("payments")).await.unwrap(),
        "127.0.0.1:50020"
    );
    assert_eq!(
        payments.resolve(&request("orders")).await.unwrap(),
        "127.0.0.1:50010"
    );
    assert_eq!(
        orders.resolve(&request("orders")).await.unwrap(),
        "127.0.0.1:50010"
    );
    let error = orders.resolve(&request("shipping")).await.unwrap_err();
    assert_eq!(
        error,
        ResolveError::NoHost {
            app_id: "shipping".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "no host found with the given ID: shipping"
    );

    orders.close().await.unwrap();
    payments.close().await.unwrap();
}

#[tokio::test]
async fn heartbeats_keep_a_registration_alive_past_the_update_interval() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = fast_config(&directory.path().join("nr.db"));
    // Two seconds of slack between a heartbeat and expiry, for busy machines.
    config.common.timeout = Duration::from_secs(2);
    config.update_interval = Duration::from_secs(4);
    let orders = start(&config, "orders", 50010).await;
    let payments = start(&config, "payments", 50020).await;

    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        orders.resolve(&request("payments")).await.unwrap(),
        "127.0.0.1:50020"
    );

    orders.close().await.unwrap();
    payments.close().await.unwrap();
}

#[tokio::test]
async fn a_stopped_instance_expires_and_cleanup_deletes_only_dead_rows() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nr.db");
    let mut config = fast_config(&path);
    config.cleanup_interval = Some(Duration::from_secs(1));
    let orders = start(&config, "orders", 50010).await;
    let payments = start(&config, "payments", 50020).await;
    assert_eq!(
        orders.resolve(&request("payments")).await.unwrap(),
        "127.0.0.1:50020"
    );

    // Dropping without close stops the heartbeat but leaves the row, like a crash.
    drop(payments);
    assert_eq!(rows_for(&path, "payments"), 1);
    eventually(Duration::from_secs(5), "payments to expire", || async {
        orders.resolve(&request("payments")).await.is_err()
    })
    .await;
    assert_eq!(
        orders.resolve(&request("payments")).await.unwrap_err(),
        ResolveError::NoHost {
            app_id: "payments".into()
        }
    );
    eventually(
        Duration::from_secs(6),
        "cleanup to delete the dead row",
        || async { rows_for(&path, "payments") == 0 },
    )
    .await;
    // The live registration survived every cleanup.
    assert_eq!(rows_for(&path, "orders"), 1);
    assert_eq!(
        orders.resolve(&request("orders")).await.unwrap(),
        "127.0.0.1:50010"
    );
    orders.close().await.unwrap();
}

#[tokio::test]
async fn close_deregisters_at_once_and_is_idempotent() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nr.db");
    let config = fast_config(&path);
    let orders = start(&config, "orders", 50010).await;
    let payments = start(&config, "payments", 50020).await;

    payments.close().await.unwrap();
    assert_eq!(rows_for(&path, "payments"), 0);
    assert!(matches!(
        orders.resolve(&request("payments")).await,
        Err(ResolveError::NoHost { .. })
    ));
    payments.close().await.unwrap();
    assert_eq!(
        payments.resolve(&request("orders")).await.unwrap_err(),
        ResolveError::Closed {
            component: "sqlite"
        }
    );
    orders.close().await.unwrap();
}

#[tokio::test]
async fn several_instances_of_an_app_are_picked_at_random() {
    let directory = tempfile::tempdir().unwrap();
    let config = fast_config(&directory.path().join("nr.db"));
    let first = start(&config, "orders", 50010).await;
    let second = start(&config, "orders", 50011).await;

    let mut seen = HashSet::new();
    for _ in 0..64 {
        seen.insert(first.resolve(&request("orders")).await.unwrap());
    }
    assert_eq!(
        seen,
        HashSet::from(["127.0.0.1:50010".to_owned(), "127.0.0.1:50011".to_owned()])
    );
    first.close().await.unwrap();
    second.close().await.unwrap();
}

#[tokio::test]
async fn a_lost_registration_is_restored_by_the_next_heartbeat() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nr.db");
    let orders = start(&fast_config(&path), "orders", 50010).await;

    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM hosts WHERE app_id = 'orders'", [])
        .unwrap();
    eventually(
        Duration::from_secs(3),
        "the heartbeat to register again",
        || async { rows_for(&path, "orders") == 1 },
    )
    .await;
    orders.close().await.unwrap();
}

#[tokio::test]
async fn in_memory_databases_are_shared_inside_the_process() {
    let configuration = serde_json::json!({"connectionString": ":memory:"});
    let orders = build("sqlite", "v1", &configuration, instance("orders", 50010))
        .await
        .unwrap();
    let payments = build("sqlite", "", &configuration, instance("payments", 50020))
        .await
        .unwrap();
    assert_eq!(
        orders.resolve(&request("payments")).await.unwrap(),
        "127.0.0.1:50020"
    );
    orders.close().await.unwrap();
    payments.close().await.unwrap();
}

#[tokio::test]
async fn the_file_layout_is_upstreams_and_upstream_rows_resolve() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nr.db");
    let orders = start(&fast_config(&path), "orders", 50010).await;

    let connection = rusqlite::Connection::open(&path).unwrap();
    let columns: Vec<(String, String, bool, bool)> = connection
        .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info('hosts') ORDER BY cid")
        .unwrap()
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get::<_, i64>(3)? > 0,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected = [
        ("registration_id", "TEXT", true, true),
        ("address", "TEXT", true, false),
        ("app_id", "TEXT", true, false),
        ("namespace", "TEXT", true, false),
        ("last_update", "INTEGER", true, false),
    ];
    let expected: Vec<(String, String, bool, bool)> = expected
        .iter()
        .map(|(name, kind, not_null, key)| (name.to_string(), kind.to_string(), *not_null, *key))
        .collect();
    assert_eq!(columns, expected);
    let indexes: HashSet<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'hosts' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        HashSet::from([
            "hosts_address_idx".to_owned(),
            "hosts_last_update_idx".to_owned()
        ])
    );
    let level: String = connection
        .query_row(
            "SELECT value FROM metadata WHERE key = 'nr-migrations'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(level, "1");

    // An upstream sidecar registers with its own statement (empty namespace)...
    connection
        .execute(
            "REPLACE INTO hosts (registration_id, address, app_id, namespace, last_update) \
             VALUES (?, ?, ?, ?, unixepoch(CURRENT_TIMESTAMP))",
            [
                "3f0e8c1e-5b0a-4d63-9c7e-2f1f4b0c9a11",
                "127.0.0.1:50099",
                "upstream-app",
                "",
            ],
        )
        .unwrap();
    assert_eq!(
        orders.resolve(&request("upstream-app")).await.unwrap(),
        "127.0.0.1:50099"
    );
    // ...and finds ours with its own lookup.
    let found: String = connection
        .query_row(
            "SELECT address FROM hosts WHERE ROWID = (SELECT ROWID FROM hosts WHERE app_id = ? \
             AND unixepoch(CURRENT_TIMESTAMP) - last_update < 2 ORDER BY RANDOM() LIMIT 1)",
            ["orders"],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(found, "127.0.0.1:50010");
    orders.close().await.unwrap();
}

#[tokio::test]
async fn a_second_process_shares_the_file_and_expires_when_killed() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nr.db");
    let parent = start(&fast_config(&path), "parent-app", 50030).await;

    let mut peer = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "nameresolution::sqlite::tests::peer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PEER_DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
    let peer_saw = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest prints "test <name> ... " before the test's own output.
            if let Some((_, address)) = line.split_once("PEER RESOLVED ") {
                return address.trim().to_owned();
            }
        }
        panic!("peer process ended before resolving");
    })
    .await
    .expect("peer process did not report");
    assert_eq!(peer_saw, "127.0.0.1:50030");
    assert_eq!(
        parent.resolve(&request("peer-app")).await.unwrap(),
        "127.0.0.1:50031"
    );

    // A crash (SIGKILL) leaves the row behind; it stops resolving after updateInterval.
    peer.kill().await.unwrap();
    eventually(
        Duration::from_secs(5),
        "the killed peer to expire",
        || async {
            matches!(
                parent.resolve(&request("peer-app")).await,
                Err(ResolveError::NoHost { .. })
            )
        },
    )
    .await;
    assert_eq!(rows_for(&path, "peer-app"), 1);
    parent.close().await.unwrap();
}

/// The second sidecar of `a_second_process_shares_the_file_and_expires_when_killed`: only
/// does something when started by it (with the database path in the environment).
#[tokio::test]
#[ignore = "run as a separate process by a_second_process_shares_the_file_and_expires_when_killed"]
async fn peer_process() {
    let Some(path) = std::env::var_os(PEER_DB_ENV) else {
        return;
    };
    let peer = start(&fast_config(Path::new(&path)), "peer-app", 50031).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        if let Ok(address) = peer.resolve(&request("parent-app")).await {
            break address;
        }
        assert!(Instant::now() < deadline, "parent-app never resolved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("PEER RESOLVED {address}");
    // Keep the heartbeat going until the parent kills this process (bounded).
    tokio::time::sleep(Duration::from_secs(60)).await;
}
