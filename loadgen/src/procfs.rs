//! What a server process costs, read from Linux's /proc: CPU time
//! (`/proc/PID/stat`, user + system, all threads) and resident memory
//! (`VmRSS` in `/proc/PID/status`); and this process's open-files limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::BenchError;

/// Clock ticks per second of the CPU times in `/proc/PID/stat`.
///
/// This is the kernel's `USER_HZ`, fixed at 100 by the Linux ABI on every
/// architecture Herald targets (what `getconf CLK_TCK` prints).
pub const CLOCK_TICKS_PER_SEC: u64 = 100;

/// CPU time a process has used, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTicks {
    /// Time in user mode.
    pub user: u64,
    /// Time in kernel mode.
    pub system: u64,
}

impl CpuTicks {
    /// User plus system time.
    pub fn total(self) -> Duration {
        let ticks = self.user.saturating_add(self.system);
        Duration::from_millis(ticks.saturating_mul(1000) / CLOCK_TICKS_PER_SEC)
    }

    /// The CPU time used between `earlier` and `self`.
    pub fn since(self, earlier: CpuTicks) -> Duration {
        CpuTicks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
        .total()
    }
}

/// Parses `utime` and `stime` (fields 14 and 15) out of `/proc/PID/stat`.
///
/// The second field (the command name, in parentheses) may itself hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Result<CpuTicks, String> {
    let close = text
        .rfind(')')
        .ok_or_else(|| "no closing parenthesis after the command name".to_owned())?;
    // After ") " come fields 3 (state), 4, ...; utime is field 14.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |number: usize| -> Result<u64, String> {
        let raw = fields
            .get(number - 3)
            .ok_or_else(|| format!("field {number} is missing"))?;
        raw.parse()
            .map_err(|_| format!("field {number} is not a number: {raw:?}"))
    };
    Ok(CpuTicks {
        user: field(14)?,
        system: field(15)?,
    })
}

/// Parses the `VmRSS:` line of `/proc/PID/status`, in KiB.
pub fn parse_vm_rss_kib(text: &str) -> Result<u64, String> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .ok_or_else(|| "no VmRSS line (has the process exited?)".to_owned())?;
    let mut parts = line.split_whitespace();
    let value = parts.next().ok_or("VmRSS has no value")?;
    match parts.next() {
        Some("kB") | None => {}
        Some(unit) => return Err(format!("VmRSS is in {unit:?}, expected kB")),
    }
    value
        .parse()
        .map_err(|_| format!("VmRSS is not a number: {value:?}"))
}

/// Parses the soft limit of `Max open files` in `/proc/PID/limits`
/// (`u64::MAX` for `unlimited`).
pub fn parse_open_files_limit(text: &str) -> Result<u64, String> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .ok_or_else(|| "no `Max open files` line".to_owned())?;
    let soft = line
        .split_whitespace()
        .next()
        .ok_or("`Max open files` has no value")?;
    if soft == "unlimited" {
        return Ok(u64::MAX);
    }
    soft.parse()
        .map_err(|_| format!("`Max open files` is not a number: {soft:?}"))
}

/// The soft open-files limit of this process (what `ulimit -n` prints).
pub fn open_files_limit() -> Result<u64, BenchError> {
    read_parsed(Path::new("/proc/self/limits"), parse_open_files_limit)
}

fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Proc {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|detail| BenchError::ProcFormat {
        path: path.to_owned(),
        detail,
    })
}

/// Reads the CPU time and memory of one (server) process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessProbe {
    pid: u32,
    stat: PathBuf,
    status: PathBuf,
}

impl ProcessProbe {
    /// A probe of process `pid`; fails if there is no such process.
    pub fn new(pid: u32) -> Result<ProcessProbe, BenchError> {
        let probe = ProcessProbe {
            pid,
            stat: PathBuf::from(format!("/proc/{pid}/stat")),
            status: PathBuf::from(format!("/proc/{pid}/status")),
        };
        probe.cpu()?;
        Ok(probe)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// CPU time used so far.
    pub fn cpu(&self) -> Result<CpuTicks, BenchError> {
        read_parsed(&self.stat, parse_stat)
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> Result<u64, BenchError> {
        read_parsed(&self.status, parse_vm_rss_kib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (herald (broker) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 \
                        1234 567 0 0 20 0 3 0 100 1000000 2000 18446744073709551615 1 1 0 0 0";

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let ticks = parse_stat(STAT).expect("valid stat");
        assert_eq!(
            ticks,
            CpuTicks {
                user: 1234,
                system: 567
            }
        );
        assert_eq!(ticks.total(), Duration::from_millis(18_010));
    }

    #[test]
    fn cpu_between_two_samples() {
        let before = CpuTicks {
            user: 100,
            system: 50,
        };
        let after = CpuTicks {
            user: 350,
            system: 75,
        };
        assert_eq!(after.since(before), Duration::from_millis(2750));
        assert_eq!(before.since(after), Duration::ZERO, "never negative");
    }

    #[test]
    fn malformed_stat_is_an_error() {
        assert!(parse_stat("4242 herald S 1").is_err());
        let err = parse_stat("1 (x) S 1 2 3").expect_err("too few fields");
        assert!(err.contains("field 14"), "{err}");
        let err = parse_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 5").expect_err("not a number");
        assert!(err.contains("abc"), "{err}");
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status =
            "Name:\therald-broker\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t2\n";
        assert_eq!(parse_vm_rss_kib(status), Ok(12345));
        assert!(parse_vm_rss_kib("Name:\tx\n").is_err());
        assert!(parse_vm_rss_kib("VmRSS:\t 12 MB\n").is_err());
    }

    #[test]
    fn open_files_limit_soft_value() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20000                20000                files\n";
        assert_eq!(parse_open_files_limit(limits), Ok(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), Ok(u64::MAX));
        assert!(parse_open_files_limit("Max processes 1 1\n").is_err());
    }

    #[test]
    fn this_process_can_be_probed() {
        let probe = ProcessProbe::new(std::process::id()).expect("our own /proc entry");
        assert!(probe.rss_kib().expect("VmRSS") > 0);
        probe.cpu().expect("CPU times");
        assert!(open_files_limit().expect("limits") > 0);
        let missing = ProcessProbe::new(u32::MAX).expect_err("no such process");
        assert!(missing.to_string().contains("/proc/"), "{missing}");
    }
}
