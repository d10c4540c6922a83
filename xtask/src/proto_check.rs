//! `cargo xtask proto-check`: our compiled protos against a reference, item by item.

use std::path::Path;

use anyhow::{Context, Result, bail};
use dapr_testkit::proto_check;

/// Compares our descriptors with the SDK's (or with the `.proto` files in `reference`),
/// prints every difference, and fails when there is any.
pub fn run(python: &Path, reference: Option<&Path>, packages: &[String]) -> Result<()> {
    let ours = proto_check::decode_descriptor_set(dapr_proto::FILE_DESCRIPTOR_SET, "dapr-proto")
        .context("cannot decode our own descriptor set")?;
    let (reference_set, origin) = match reference {
        Some(dir) => (
            proto_check::compile_reference_dir(dir)?,
            dir.display().to_string(),
        ),
        None => (
            proto_check::sdk_descriptor_set(python)?,
            "the official Dapr Python SDK".to_string(),
        ),
    };
    let package_filter: Vec<&str> = packages.iter().map(String::as_str).collect();
    let filter = (!package_filter.is_empty()).then_some(package_filter.as_slice());
    let mismatches = proto_check::compare(&ours, &reference_set, filter);

    let mut compared: Vec<&str> = reference_set
        .file
        .iter()
        .map(|file| file.package())
        .filter(|package| filter.is_none_or(|wanted| wanted.contains(package)))
        .collect();
    compared.sort_unstable();
    compared.dedup();
    println!("proto-check: compared packages {compared:?} with {origin}");
    for mismatch in &mismatches {
        println!("  {mismatch}");
    }
    if mismatches.is_empty() {
        println!("proto-check: 0 mismatches");
        Ok(())
    } else {
        bail!("proto-check: {} mismatches", mismatches.len())
    }
}
