//! Our compiled protos against the official Python SDK's: every service, method, message,
//! enum and field the SDK ships must exist here with the same number, type and label, and
//! we must not add anything to those packages.

use dapr_testkit::{proto_check, python};

#[test]
fn our_protos_match_the_official_sdk_descriptors() {
    let ours =
        proto_check::decode_descriptor_set(dapr_proto::FILE_DESCRIPTOR_SET, "dapr-proto").unwrap();
    let sdk = proto_check::sdk_descriptor_set(&python::sdk_python().unwrap()).unwrap();

    let packages: std::collections::BTreeSet<&str> =
        sdk.file.iter().map(|file| file.package()).collect();
    for expected in [
        "dapr.proto.common.v1",
        "dapr.proto.runtime.v1",
        "",
        "durabletask.protos.backend.v1",
    ] {
        assert!(
            packages.contains(expected),
            "the SDK dump lacks package {expected:?}: {packages:?}"
        );
    }

    let mismatches = proto_check::compare(&ours, &sdk, None);
    let report: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
    assert!(
        report.is_empty(),
        "{} mismatches:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn the_comparison_notices_a_changed_field_number() {
    use prost::Message;
    let ours =
        proto_check::decode_descriptor_set(dapr_proto::FILE_DESCRIPTOR_SET, "dapr-proto").unwrap();
    let mut altered = ours.clone();
    let state_file = altered
        .file
        .iter_mut()
        .find(|file| file.name() == "dapr/proto/runtime/v1/state.proto")
        .expect("state.proto is compiled");
    let request = state_file
        .message_type
        .iter_mut()
        .find(|m| m.name() == "GetStateRequest")
        .unwrap();
    let key = request
        .field
        .iter_mut()
        .find(|f| f.name() == "key")
        .unwrap();
    key.number = Some(key.number() + 100);
    let altered = proto_check::decode_descriptor_set(&altered.encode_to_vec(), "altered").unwrap();

    let mismatches = proto_check::compare(&altered, &ours, Some(&["dapr.proto.runtime.v1"]));
    assert_eq!(mismatches.len(), 1, "{mismatches:?}");
    assert_eq!(
        mismatches[0].path,
        "dapr.proto.runtime.v1.GetStateRequest.key"
    );
}
