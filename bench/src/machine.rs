//! A one-line description of the machine the figures come from (CPU model,
//! CPUs, memory, kernel), read from /proc.

/// The CPU model, CPU count, memory and kernel release, as one line.
pub fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    describe_from(&cpuinfo, &meminfo, kernel.trim())
}

/// [`describe`] from the texts of /proc/cpuinfo and /proc/meminfo.
pub fn describe_from(cpuinfo: &str, meminfo: &str, kernel: &str) -> String {
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let memory_gib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or_else(
            || "? GiB".to_owned(),
            |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0),
        );
    let kernel = if kernel.is_empty() { "?" } else { kernel };
    format!("{model}, {cpus} CPUs, {memory_gib} RAM, Linux {kernel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_cpu_memory_and_kernel() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Example CPU @ 3.0GHz\n\nprocessor\t: 1\nmodel name\t: Example CPU @ 3.0GHz\n";
        let meminfo = "MemTotal:       24576000 kB\nMemFree: 1 kB\n";
        assert_eq!(
            describe_from(cpuinfo, meminfo, "6.1.0"),
            "Example CPU @ 3.0GHz, 2 CPUs, 23 GiB RAM, Linux 6.1.0"
        );
        assert_eq!(
            describe_from("", "", ""),
            "unknown CPU, 0 CPUs, ? GiB RAM, Linux ?"
        );
        assert!(describe().contains("CPUs"));
    }
}
