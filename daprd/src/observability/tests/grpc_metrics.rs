//! `GrpcServerMetricsLayer` on a real tonic server driven by a real gRPC client.

use dapr_kit::metrics::MetricsRegistry;
use prost::Message;

use super::{echo_client, eventually, invoke_request, serve_echo_app};
use crate::observability::metrics::{GrpcServerMetricsLayer, MetricsSettings, SidecarMetrics};

const ON_INVOKE: &str = "/dapr.proto.runtime.v1.AppCallback/OnInvoke";

#[tokio::test]
async fn records_rpcs_by_method_status_and_message_size() {
    let registry = MetricsRegistry::new();
    let metrics =
        SidecarMetrics::register(&registry, &MetricsSettings::new("myapp", "default")).unwrap();
    let address = serve_echo_app!(GrpcServerMetricsLayer::new(metrics));
    let mut client = echo_client(address).await;

    let echo = invoke_request("echo", b"hello world");
    let echo_size = echo.encoded_len();
    let reply = client.on_invoke(echo).await.unwrap().into_inner();
    let reply_size = reply.encoded_len();
    assert!(reply_size > 0);

    let missing = invoke_request("missing", b"");
    let missing_size = missing.encoded_len();
    let error = client.on_invoke(missing).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);

    let error = client.list_input_bindings(()).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unimplemented);

    let ok = format!(
        r#"dapr_grpc_io_server_completed_rpcs{{app_id="myapp",grpc_server_method="{ON_INVOKE}",grpc_server_status="OK"}} 1"#
    );
    let not_found = format!(
        r#"dapr_grpc_io_server_completed_rpcs{{app_id="myapp",grpc_server_method="{ON_INVOKE}",grpc_server_status="NotFound"}} 1"#
    );
    let unimplemented = r#"dapr_grpc_io_server_completed_rpcs{app_id="myapp",grpc_server_method="/dapr.proto.runtime.v1.AppCallback/ListInputBindings",grpc_server_status="Unimplemented"} 1"#;
    eventually("three RPCs recorded", || {
        let text = registry.encode_text();
        let found = [&ok, &not_found, unimplemented]
            .iter()
            .all(|line| text.contains(*line));
        async move { found }
    })
    .await;

    let text = registry.encode_text();
    let expected = [
        format!(
            r#"dapr_grpc_io_server_received_bytes_per_rpc_sum{{app_id="myapp",grpc_server_method="{ON_INVOKE}"}} {}"#,
            echo_size + missing_size
        ),
        format!(
            r#"dapr_grpc_io_server_sent_bytes_per_rpc_sum{{app_id="myapp",grpc_server_method="{ON_INVOKE}"}} {reply_size}"#
        ),
        format!(
            r#"dapr_grpc_io_server_sent_bytes_per_rpc_count{{app_id="myapp",grpc_server_method="{ON_INVOKE}"}} 2"#
        ),
        format!(
            r#"dapr_grpc_io_server_server_latency_count{{app_id="myapp",grpc_server_method="{ON_INVOKE}",grpc_server_status="OK"}} 1"#
        ),
        "# TYPE dapr_grpc_io_server_completed_rpcs counter".to_string(),
    ];
    for line in &expected {
        assert!(text.contains(line.as_str()), "missing {line}\n{text}");
    }
}
