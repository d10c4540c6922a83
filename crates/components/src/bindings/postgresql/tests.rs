//! `bindings.postgresql` against a real PostgreSQL server: statements and parameters,
//! the rendering of every common column type, upstream's metadata and errors, checked
//! with a separate client where the database state matters.

use std::collections::HashMap;

use dapr_testkit::Postgres;
use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls};

use super::*;

fn unique(name: &str) -> String {
    format!("{name}_{}", uuid::Uuid::new_v4().simple())
}

async fn raw_client(server: &Postgres) -> Client {
    let (client, connection) = tokio_postgres::connect(&server.connection_string(), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

fn properties(server: &Postgres, extra: Value) -> Properties {
    let mut settings = json!({"connectionString": server.connection_string()});
    if let (Value::Object(settings), Value::Object(extra)) = (&mut settings, extra) {
        settings.extend(extra);
    }
    Properties::from_json(&settings).unwrap()
}

async fn binding(server: &Postgres, extra: Value) -> PostgresBinding {
    open(&properties(server, extra)).await.unwrap()
}

fn request(operation: &str, sql: &str, params: Option<Value>) -> InvokeRequest {
    let mut metadata = HashMap::from([(SQL_METADATA_KEY.to_owned(), sql.to_owned())]);
    if let Some(params) = params {
        metadata.insert(PARAMS_METADATA_KEY.to_owned(), params.to_string());
    }
    InvokeRequest {
        operation: operation.to_owned(),
        metadata,
        ..InvokeRequest::default()
    }
}

async fn exec(binding: &PostgresBinding, sql: &str, params: Option<Value>) -> InvokeResponse {
    binding.invoke(request(EXEC, sql, params)).await.unwrap()
}

async fn query(binding: &PostgresBinding, sql: &str, params: Option<Value>) -> Value {
    let response = binding.invoke(request(QUERY, sql, params)).await.unwrap();
    serde_json::from_slice(&response.data).unwrap()
}

#[tokio::test]
async fn exec_and_query_with_parameters() {
    let server = Postgres::start().await.unwrap();
    let binding = binding(&server, json!({})).await;
    let table = unique("items");

    // Several statements in one parameterless exec (the simple protocol).
    let created = exec(
        &binding,
        &format!(
            "CREATE TABLE {table} (id integer PRIMARY KEY, name text, price numeric(10,2), \
             seen date, doc jsonb, tags text[]); CREATE INDEX ON {table} (name)"
        ),
        None,
    )
    .await;
    assert_eq!(created.metadata[ROWS_AFFECTED_METADATA_KEY], "0");
    assert!(created.data.is_empty());

    let insert = format!(
        "INSERT INTO {table} (id, name, price, seen, doc, tags) VALUES ($1, $2, $3, $4, $5, $6)"
    );
    let inserted = exec(
        &binding,
        &insert,
        Some(json!([
            1.0,
            "first",
            9.5,
            "2024-05-01",
            "{\"a\": [1, 2]}",
            ["x", "y \"z\""]
        ])),
    )
    .await;
    assert_eq!(inserted.metadata[ROWS_AFFECTED_METADATA_KEY], "1");
    exec(
        &binding,
        &insert,
        Some(json!([2, null, "12.345", null, {"b": true}, null])),
    )
    .await;

    // What the database holds, read by another client.
    let raw = raw_client(&server).await;
    let rows = raw
        .query(
            &format!(
                "SELECT id, name, price::text, seen::text, doc::text, tags FROM {table} ORDER BY id"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, i32>(0), 1);
    assert_eq!(
        rows[0].get::<_, Option<String>>(1).as_deref(),
        Some("first")
    );
    assert_eq!(rows[0].get::<_, String>(2), "9.50");
    assert_eq!(rows[0].get::<_, String>(3), "2024-05-01");
    assert_eq!(rows[0].get::<_, String>(4), r#"{"a": [1, 2]}"#);
    assert_eq!(
        rows[0].get::<_, Vec<String>>(5),
        vec!["x".to_owned(), "y \"z\"".to_owned()]
    );
    assert_eq!(rows[1].get::<_, Option<String>>(1), None);
    assert_eq!(rows[1].get::<_, String>(2), "12.35");
    assert_eq!(rows[1].get::<_, String>(4), r#"{"b": true}"#);

    // Updates report how many rows they touched; parameters fill any type the server
    // expects, arrays included.
    let updated = exec(
        &binding,
        &format!("UPDATE {table} SET name = $1 WHERE id = ANY($2)"),
        Some(json!(["renamed", [1, 2, 3]])),
    )
    .await;
    assert_eq!(updated.metadata[ROWS_AFFECTED_METADATA_KEY], "2");

    let rows = query(
        &binding,
        &format!(
            "SELECT id, name, price, seen, doc, tags FROM {table} WHERE price > $1 ORDER BY id"
        ),
        Some(json!([1])),
    )
    .await;
    assert_eq!(
        rows,
        json!([
            [1, "renamed", 9.50, "2024-05-01T00:00:00Z", {"a": [1, 2]}, ["x", "y \"z\""]],
            [2, "renamed", 12.35, null, {"b": true}, null],
        ])
    );
    // Numerics keep their scale in the JSON text.
    let response = binding
        .invoke(request(
            QUERY,
            &format!("SELECT price FROM {table} WHERE id = 1"),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(&response.data[..], b"[[9.50]]");

    // No rows is an empty array.
    let none = binding
        .invoke(request(
            QUERY,
            &format!("SELECT * FROM {table} WHERE id < 0"),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(&none.data[..], b"[]");
}

#[tokio::test]
async fn query_renders_column_types_as_upstream() {
    let server = Postgres::start().await.unwrap();
    let binding = binding(&server, json!({})).await;
    let response = binding
        .invoke(request(
            QUERY,
            "SELECT 1::int2, 2::int4, 9007199254740993::int8, 1.5::float4, 3::float8, \
             2.5e-7::float8, 'text'::text, 'pad'::char(5), true, false, NULL::int4, \
             '2024-05-01 10:20:30.5'::timestamp, '2024-05-01 10:20:30+02'::timestamptz, \
             '2024-05-01'::date, '{\"b\": 1, \"a\": [true, null]}'::jsonb, \
             '[3, 2]'::json, '\\x00ff10'::bytea, \
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, ARRAY[1, NULL, 3]::int4[], \
             '{{1,2},{3,4}}'::int8[], '01:02:03.5'::time, \
             '1 year 2 days 3 hours'::interval, '192.168.0.1'::inet, '10.0.0.0/8'::cidr, \
             'infinity'::timestamp, '-infinity'::date, 'NaN'::numeric, -0.050::numeric(5,3), \
             ''::text, 'x'::name",
            None,
        ))
        .await
        .unwrap();
    let text = String::from_utf8(response.data.to_vec()).unwrap();
    let rows: Value = serde_json::from_str(&text).unwrap();
    let row = rows[0].as_array().unwrap();

    let timestamptz = row[12].as_str().unwrap();
    let instant: jiff::Timestamp = timestamptz.parse().unwrap();
    assert_eq!(
        instant,
        "2024-05-01T08:20:30Z".parse::<jiff::Timestamp>().unwrap()
    );
    let mut rest = row.clone();
    rest[12] = Value::Null;
    assert_eq!(
        Value::Array(rest),
        json!([
            1, 2, 9007199254740993_i64, 1.5, 3, 2.5e-7, "text", "pad  ", true, false, null,
            "2024-05-01T10:20:30.5Z", null, "2024-05-01T00:00:00Z",
            {"a": [true, null], "b": 1}, [3, 2], "AP8Q",
            [160, 238, 188, 153, 156, 11, 78, 248, 187, 109, 107, 185, 189, 56, 10, 17],
            [1, null, 3], [1, 2, 3, 4], {"Microseconds": 3_723_500_000_i64, "Valid": true},
            {"Microseconds": 10_800_000_000_i64, "Days": 2, "Months": 12, "Valid": true},
            "192.168.0.1/32", "10.0.0.0/8", 1, -1, "NaN", -0.050, "", "x",
        ])
    );
    // Go's number texts: whole floats without a fraction, small ones with an exponent.
    assert!(text.contains(",3,2.5e-7,"), "{text}");
    assert!(text.contains("-0.050,"), "{text}");

    // NaN has no JSON form.
    let error = binding
        .invoke(request(QUERY, "SELECT 'NaN'::float8", None))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        BindingError::Backend("error serializing results: json: unsupported value: NaN".into())
    );
}

#[tokio::test]
async fn responses_carry_upstreams_timing_metadata() {
    let server = Postgres::start().await.unwrap();
    let binding = binding(&server, json!({})).await;
    let response = exec(&binding, "SELECT pg_sleep(0.05)", None).await;
    assert_eq!(response.metadata["operation"], "exec");
    assert_eq!(response.metadata["sql"], "SELECT pg_sleep(0.05)");
    assert_eq!(response.metadata[ROWS_AFFECTED_METADATA_KEY], "1");
    let start: jiff::Timestamp = response.metadata["start-time"].parse().unwrap();
    let end: jiff::Timestamp = response.metadata["end-time"].parse().unwrap();
    assert!(response.metadata["start-time"].ends_with('Z'));
    assert!(end >= start);
    let duration = dapr_kit::duration::parse(&response.metadata["duration"]).unwrap();
    assert!(
        duration >= std::time::Duration::from_millis(50),
        "{duration:?}"
    );

    let response = binding
        .invoke(request(QUERY, "SELECT 1", None))
        .await
        .unwrap();
    assert_eq!(response.metadata["operation"], "query");
    assert!(!response.metadata.contains_key(ROWS_AFFECTED_METADATA_KEY));
    for key in ["start-time", "end-time", "duration"] {
        assert!(response.metadata.contains_key(key), "{key}");
    }
}

#[tokio::test]
async fn bad_requests_get_upstreams_errors() {
    let server = Postgres::start().await.unwrap();
    let binding = binding(&server, json!({})).await;
    assert_eq!(binding.operations(), vec!["exec", "query", "close"]);

    let error = binding
        .invoke(InvokeRequest {
            operation: EXEC.into(),
            ..InvokeRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        error,
        BindingError::InvalidRequest("required metadata not set: sql".into())
    );

    let mut not_an_array = request(QUERY, "SELECT $1", None);
    not_an_array
        .metadata
        .insert(PARAMS_METADATA_KEY.into(), "{\"a\": 1}".into());
    let error = binding.invoke(not_an_array).await.unwrap_err();
    assert!(
        matches!(&error, BindingError::InvalidRequest(text)
            if text.starts_with("invalid metadata property params: failed to unserialize into an array: ")),
        "{error}"
    );

    let error = binding
        .invoke(request(EXEC, "SELEC nothing", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text)
            if text.starts_with("error executing query: ") && text.contains("syntax error")),
        "{error}"
    );
    let error = binding
        .invoke(request(QUERY, "SELECT * FROM missing_table", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text) if text.contains("does not exist")),
        "{error}"
    );
    // A parameter the server cannot read as the column's type.
    let error = binding
        .invoke(request(QUERY, "SELECT $1::int", Some(json!(["twelve"]))))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text) if text.contains("invalid input syntax")),
        "{error}"
    );

    let error = binding
        .invoke(request("delete", "SELECT 1", None))
        .await
        .unwrap_err();
    assert_eq!(error, BindingError::UnsupportedOperation("delete".into()));

    // The pool is still healthy after the failures.
    assert_eq!(
        query(&binding, "SELECT $1::int + 1", Some(json!([41]))).await,
        json!([[42]])
    );

    // `close` closes; it may be called again, other operations are refused.
    let closed = binding
        .invoke(InvokeRequest {
            operation: CLOSE.into(),
            ..InvokeRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(closed, InvokeResponse::default());
    binding.close().await.unwrap();
    let error = binding
        .invoke(request(QUERY, "SELECT 1", None))
        .await
        .unwrap_err();
    assert_eq!(error, BindingError::Closed);
}

#[tokio::test]
async fn pooled_connections_stay_clean() {
    let server = Postgres::start().await.unwrap();
    // One connection, so every request reuses it unless it is discarded.
    let binding = binding(&server, json!({"maxConns": 1})).await;
    let table = unique("tx");
    exec(&binding, &format!("CREATE TABLE {table} (v int)"), None).await;

    // A transaction left open by one request does not swallow the next one's writes.
    exec(&binding, "BEGIN", None).await;
    exec(&binding, &format!("INSERT INTO {table} VALUES (1)"), None).await;
    let raw = raw_client(&server).await;
    let count: i64 = raw
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);

    // A cached statement invalidated by a schema change is prepared again.
    let select = format!("SELECT * FROM {table}");
    assert_eq!(query(&binding, &select, None).await, json!([[1]]));
    exec(
        &binding,
        &format!("ALTER TABLE {table} ADD COLUMN w text DEFAULT 'x'"),
        None,
    )
    .await;
    let first = binding.invoke(request(QUERY, &select, None)).await;
    if let Err(error) = &first {
        assert!(error.to_string().contains("cached plan"), "{error}");
    }
    assert_eq!(query(&binding, &select, None).await, json!([[1, "x"]]));
}

#[tokio::test]
async fn unnamed_statements_work_for_connection_poolers() {
    let server = Postgres::start().await.unwrap();
    let binding = binding(&server, json!({"queryExecMode": "exec"})).await;
    let table = unique("unnamed");
    exec(
        &binding,
        &format!("CREATE TABLE {table} (id int, at timestamptz, doc json)"),
        None,
    )
    .await;
    let inserted = exec(
        &binding,
        &format!("INSERT INTO {table} VALUES ($1, $2, $3), ($4, NULL, NULL)"),
        Some(json!([7, "2024-01-02T03:04:05Z", {"k": "v"}, 8])),
    )
    .await;
    assert_eq!(inserted.metadata[ROWS_AFFECTED_METADATA_KEY], "2");
    let rows = query(
        &binding,
        &format!("SELECT id, doc FROM {table} WHERE id >= $1 ORDER BY id"),
        Some(json!([7])),
    )
    .await;
    assert_eq!(rows, json!([[7, {"k": "v"}], [8, null]]));
    let raw = raw_client(&server).await;
    let at: String = raw
        .query_one(
            &format!("SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM {table} WHERE id = 7"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(at, "2024-01-02 03:04:05");
}

#[tokio::test]
async fn opening_reports_bad_settings_and_unreachable_servers() {
    let server = Postgres::start().await.unwrap();
    let error = open(&properties(&server, json!({"timeout": "500ms"})))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        BindingError::InvalidMetadata(
            "invalid value for 'timeout': must be greater than 1s".into()
        )
    );
    let error = open(&properties(&server, json!({"useAzureAD": true})))
        .await
        .unwrap_err();
    assert!(matches!(error, BindingError::InvalidMetadata(_)), "{error}");

    let port = server.port();
    drop(server);
    let error = open(
        &Properties::from_json(&json!({
            "connectionString": format!("host=127.0.0.1 port={port} user=postgres sslmode=disable"),
        }))
        .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, BindingError::Backend(text) if text.starts_with("failed to ping the DB: ")),
        "{error}"
    );
}

#[test]
fn transaction_words_are_spotted() {
    assert!(may_open_transaction("BEGIN"));
    assert!(may_open_transaction(
        "insert into t values (1); start transaction"
    ));
    assert!(may_open_transaction("DO $$ begin perform 1; end $$"));
    assert!(!may_open_transaction("SELECT start_time, begins FROM t"));
    assert!(!may_open_transaction("INSERT INTO t VALUES ($1)"));
}
