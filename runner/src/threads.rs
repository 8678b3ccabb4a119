//! The default worker count: one thread per *physical* core this process may run on.
//!
//! SIMD matmuls gain nothing from a core's second hardware thread (both share one set of
//! vector units and caches), and llama.cpp defaults to physical cores for the same reason.
//! `std::thread::available_parallelism` counts logical CPUs (after affinity and cgroup
//! quotas), so on Linux the allowed CPUs are grouped by `(package, core)` from sysfs and the
//! smaller of the two counts is used. Anywhere that information is missing, the logical count
//! stands.

/// Threads used when none is asked for: the physical cores available to this process.
pub fn default_threads() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    physical_cores().map_or(logical, |p| p.clamp(1, logical))
}

/// Distinct physical cores among the CPUs this process may run on (Linux only).
fn physical_cores() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
        let cpus = parse_cpu_list(allowed)?;
        let mut cores = std::collections::BTreeSet::new();
        for cpu in cpus {
            let topo = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
            let read = |f: &str| std::fs::read_to_string(format!("{topo}/{f}")).ok();
            cores.insert((read("physical_package_id")?, read("core_id")?));
        }
        (!cores.is_empty()).then_some(cores.len())
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Parses a kernel CPU list such as `0-3,8,10-11` (`None` if malformed or absurdly large).
fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    const MAX_CPUS: usize = 1 << 16;
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = if let Some((a, b)) = part.split_once('-') {
            (a.trim().parse().ok()?, b.trim().parse().ok()?)
        } else {
            let v: usize = part.trim().parse().ok()?;
            (v, v)
        };
        if lo > hi || hi >= MAX_CPUS {
            return None;
        }
        out.extend(lo..=hi);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_like_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("\t5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-x"), None);
        assert_eq!(parse_cpu_list("0-99999999"), None);
    }

    #[test]
    fn default_is_between_one_and_the_logical_count() {
        let logical = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let d = default_threads();
        assert!((1..=logical).contains(&d), "{d} of {logical}");
    }
}
