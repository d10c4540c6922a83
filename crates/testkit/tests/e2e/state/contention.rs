//! Optimistic concurrency under contention: 16 clients each add 1 to one counter 200 times
//! over the HTTP API (read with its ETag, write back with that ETag and first-write
//! concurrency, retry on upstream's 409), and not one increment is lost or doubled.

use serde_json::Value;

use super::{Kind, STORE, StoreUnderTest};
use crate::support::run_sdk;

per_store!(increments:
    sqlite => Sqlite,
    in_memory => InMemory,
    redis => Redis,
    postgresql_v1 => PostgresV1,
    postgresql_v2 => PostgresV2,
);

const CLIENTS: u64 = 16;
const ROUNDS: u64 = 200;

async fn increments(kind: Kind) {
    let store = StoreUnderTest::start(kind).await;
    let daprd = store.sidecar("counter-app", &[]).await;
    let stdout = run_sdk(
        &daprd,
        SCRIPT,
        &[
            ("STORE", STORE),
            ("CLIENTS", &CLIENTS.to_string()),
            ("ROUNDS", &ROUNDS.to_string()),
        ],
    )
    .await;
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|err| {
        panic!("{err}: {stdout}");
    });
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(report["successes"], CLIENTS * ROUNDS, "{report}");
    assert_eq!(report["final"], CLIENTS * ROUNDS, "{report}");
    assert!(
        report["conflicts"].as_u64().unwrap() > 0,
        "the clients never collided, so the ETags were not exercised: {report}"
    );
    assert!(daprd.process().exited().is_none(), "{}", daprd.log_tail(30));
}

/// Threads with one keep-alive connection each; prints one JSON report line.
const SCRIPT: &str = r#"
import http.client, json, os, random, threading, time

PORT = int(os.environ['DAPR_HTTP_PORT'])
STORE = os.environ['STORE']
CLIENTS = int(os.environ['CLIENTS'])
ROUNDS = int(os.environ['ROUNDS'])
PATH = f'/v1.0/state/{STORE}'
HEADERS = {'content-type': 'application/json'}

def connect():
    return http.client.HTTPConnection('127.0.0.1', PORT, timeout=30)

def call(conn, method, path, body=None):
    conn.request(method, path, body=body, headers=HEADERS if body is not None else {})
    response = conn.getresponse()
    return response, response.read()

errors, successes, conflicts = [], [0] * CLIENTS, [0] * CLIENTS

def worker(index):
    conn, rng = connect(), random.Random(index)
    try:
        for _ in range(ROUNDS):
            collisions = 0
            while True:
                response, body = call(conn, 'GET', f'{PATH}/counter')
                if response.status != 200:
                    errors.append(f'GET: {response.status} {body!r}')
                    return
                etag = response.getheader('ETag')
                save = [{'key': 'counter', 'value': json.loads(body) + 1, 'etag': etag,
                         'options': {'concurrency': 'first-write'}}]
                response, body = call(conn, 'POST', PATH, json.dumps(save))
                if response.status == 204:
                    successes[index] += 1
                    break
                if response.status == 409 and json.loads(body).get('errorCode') == 'ERR_STATE_SAVE':
                    conflicts[index] += 1
                    collisions += 1
                    # Exponential backoff with jitter keeps the losers from colliding again.
                    time.sleep(rng.random() * 0.001 * 2 ** min(collisions, 5))
                    continue
                errors.append(f'POST: {response.status} {body!r}')
                return
    except Exception as err:
        errors.append(f'{type(err).__name__}: {err}')

conn = connect()
response, body = call(conn, 'POST', PATH, json.dumps([{'key': 'counter', 'value': 0}]))
assert response.status == 204, (response.status, body)
started = time.monotonic()
threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
elapsed = time.monotonic() - started
response, body = call(connect(), 'GET', f'{PATH}/counter')
print(json.dumps({'final': json.loads(body) if response.status == 200 else None,
                  'successes': sum(successes), 'conflicts': sum(conflicts),
                  'errors': errors[:5], 'seconds': round(elapsed, 2)}))
"#;
