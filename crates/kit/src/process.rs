//! Facts about the running process that logs and telemetry report.

/// The machine's host name (the log `instance` field), best effort: the kernel's name,
/// then `/etc/hostname`, then the `HOSTNAME`/`COMPUTERNAME` environment variables, and
/// finally "localhost" when none is available.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .into_iter()
        .find_map(|path| non_empty(std::fs::read_to_string(path).ok()))
        .or_else(|| non_empty(std::env::var("HOSTNAME").ok()))
        .or_else(|| non_empty(std::env::var("COMPUTERNAME").ok()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The trimmed text, unless it is missing or blank.
fn non_empty(text: Option<String>) -> Option<String> {
    let trimmed = text?.trim().to_owned();
    (!trimmed.is_empty()).then_some(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_is_a_single_trimmed_word() {
        let name = hostname();
        assert!(!name.is_empty());
        assert_eq!(name, name.trim());
        assert!(!name.contains('\n'));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn hostname_matches_the_kernel() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(), kernel.trim());
    }
}
