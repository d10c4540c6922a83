//! Component versions as upstream's registries match them: case-insensitive, and an empty
//! version, `v0` or `v1` all name a component's first version.

/// Whether `version` names a component's first version (empty, `v0` or `v1`).
pub fn is_initial(version: &str) -> bool {
    matches!(version.to_ascii_lowercase().as_str(), "" | "v0" | "v1")
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_v0_and_v1_are_the_first_version() {
        for version in ["", "v0", "V1", "v1"] {
            assert!(super::is_initial(version), "{version}");
        }
        assert!(!super::is_initial("v2"));
    }
}
