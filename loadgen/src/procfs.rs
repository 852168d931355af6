//! What a server costs, read from Linux's /proc: CPU time
//! (`/proc/PID/stat`, user + system, all threads) and resident memory
//! (`VmRSS` in `/proc/PID/status`) of its process, or summed over the
//! processes that together make it (a cluster's nodes and their Redis);
//! this process's open-files limit; and which local process listens on a
//! TCP port (`/proc/net/tcp*` and the processes' `fd` links), to find a
//! local broker from its URL.

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

    /// Both times of `self` and `other` added up.
    pub fn plus(self, other: CpuTicks) -> CpuTicks {
        CpuTicks {
            user: self.user.saturating_add(other.user),
            system: self.system.saturating_add(other.system),
        }
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
    parse_status_kib(text, "VmRSS")
}

/// Parses the `KEY:` line (a size in kB) of `/proc/PID/status`, in KiB:
/// `VmRSS`, or its parts `RssAnon` (heap and stacks), `RssFile` (mapped
/// files, the program's own code among them) and `RssShmem`.
pub fn parse_status_kib(text: &str, key: &str) -> Result<u64, String> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .ok_or_else(|| format!("no {key} line (has the process exited?)"))?;
    let mut parts = line.split_whitespace();
    let value = parts.next().ok_or(format!("{key} has no value"))?;
    match parts.next() {
        Some("kB") | None => {}
        Some(unit) => return Err(format!("{key} is in {unit:?}, expected kB")),
    }
    value
        .parse()
        .map_err(|_| format!("{key} is not a number: {value:?}"))
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

/// The TCP state `LISTEN` in `/proc/net/tcp` (a hex field).
const TCP_LISTEN: &str = "0A";

/// The socket inodes of `/proc/net/tcp` or `/proc/net/tcp6` text that
/// listen on `port` (any local address).
pub fn parse_listening_inodes(text: &str, port: u16) -> Vec<u64> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let (_, local_port) = local.rsplit_once(':')?;
            let listening = fields.get(3) == Some(&TCP_LISTEN);
            let matches = u16::from_str_radix(local_port, 16).ok() == Some(port);
            if !(listening && matches) {
                return None;
            }
            fields.get(9)?.parse().ok()
        })
        .filter(|inode| *inode != 0)
        .collect()
}

/// The process that listens on TCP `port` of this machine, found through
/// `/proc/net/tcp`, `/proc/net/tcp6` and the `fd` links of the processes
/// this user may inspect; `None` when there is none (or it belongs to
/// another user).
pub fn find_listener_pid(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| parse_listening_inodes(&text, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let links: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let processes = std::fs::read_dir("/proc").ok()?;
    processes
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            // Processes of other users are not readable: skipped.
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                return false;
            };
            fds.filter_map(Result::ok).any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| links.iter().any(|l| target.as_os_str() == l.as_str()))
            })
        })
}

/// The name [`ProcessProbe::new`] gives its one process.
pub const SERVER_PROCESS: &str = "server";

/// One process a [`ProcessProbe`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProbedProcess {
    name: String,
    pid: u32,
    stat: PathBuf,
    status: PathBuf,
}

impl ProbedProcess {
    fn new(name: String, pid: u32) -> Result<ProbedProcess, BenchError> {
        let process = ProbedProcess {
            name,
            pid,
            stat: PathBuf::from(format!("/proc/{pid}/stat")),
            status: PathBuf::from(format!("/proc/{pid}/status")),
        };
        process.cpu()?;
        Ok(process)
    }

    fn cpu(&self) -> Result<CpuTicks, BenchError> {
        read_parsed(&self.stat, parse_stat)
    }

    fn rss_kib(&self) -> Result<u64, BenchError> {
        read_parsed(&self.status, parse_vm_rss_kib)
    }

    fn anon_kib(&self) -> Result<u64, BenchError> {
        read_parsed(&self.status, |text| parse_status_kib(text, "RssAnon"))
    }
}

/// Reads the CPU time and memory of a server: one process, or several
/// named processes that together make it, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessProbe {
    /// Never empty.
    processes: Vec<ProbedProcess>,
}

impl ProcessProbe {
    /// A probe of process `pid` (named [`SERVER_PROCESS`]); fails if there
    /// is no such process.
    pub fn new(pid: u32) -> Result<ProcessProbe, BenchError> {
        ProcessProbe::group([(SERVER_PROCESS.to_owned(), pid)])
    }

    /// A probe of several processes, each with a name for the figures per
    /// process; fails if there is none, or no such process.
    pub fn group(
        processes: impl IntoIterator<Item = (String, u32)>,
    ) -> Result<ProcessProbe, BenchError> {
        let processes = processes
            .into_iter()
            .map(|(name, pid)| ProbedProcess::new(name, pid))
            .collect::<Result<Vec<_>, _>>()?;
        if processes.is_empty() {
            return Err(BenchError::invalid(
                "server processes",
                "a probe needs at least one process",
            ));
        }
        Ok(ProcessProbe { processes })
    }

    /// The id of the (first) process.
    pub fn pid(&self) -> u32 {
        self.processes.first().map_or(0, |p| p.pid)
    }

    /// The processes' names, in the order they were given.
    pub fn names(&self) -> Vec<&str> {
        self.processes.iter().map(|p| p.name.as_str()).collect()
    }

    /// CPU time used so far, summed over the processes.
    pub fn cpu(&self) -> Result<CpuTicks, BenchError> {
        Ok(self
            .cpu_each()?
            .into_iter()
            .fold(CpuTicks::default(), CpuTicks::plus))
    }

    /// CPU time used so far by each process, in the order of
    /// [`ProcessProbe::names`].
    pub fn cpu_each(&self) -> Result<Vec<CpuTicks>, BenchError> {
        self.processes.iter().map(ProbedProcess::cpu).collect()
    }

    /// Resident memory now, summed over the processes, in KiB.
    pub fn rss_kib(&self) -> Result<u64, BenchError> {
        self.processes
            .iter()
            .map(ProbedProcess::rss_kib)
            .sum::<Result<u64, _>>()
    }

    /// The anonymous part of the resident memory (heap and stacks, not
    /// mapped files), summed over the processes, in KiB.
    pub fn anon_kib(&self) -> Result<u64, BenchError> {
        self.processes
            .iter()
            .map(ProbedProcess::anon_kib)
            .sum::<Result<u64, _>>()
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
        let status = "VmRSS:\t 300 kB\nRssAnon:\t 200 kB\nRssFile:\t 100 kB\n";
        assert_eq!(parse_status_kib(status, "RssAnon"), Ok(200));
        assert_eq!(parse_status_kib(status, "RssFile"), Ok(100));
        assert!(parse_status_kib(status, "Rss").is_err(), "whole keys only");
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
        assert!(probe.anon_kib().expect("RssAnon") <= probe.rss_kib().expect("VmRSS"));
        probe.cpu().expect("CPU times");
        assert!(open_files_limit().expect("limits") > 0);
        let missing = ProcessProbe::new(u32::MAX).expect_err("no such process");
        assert!(missing.to_string().contains("/proc/"), "{missing}");
        assert_eq!(probe.names(), [SERVER_PROCESS]);
    }

    #[test]
    fn listening_sockets_are_found_by_port() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                   0: 0100007F:1CE8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0\n\
                   1: 0100007F:1CE8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 20 4 30 10 -1\n\
                   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0 100 0 0 10 0\n";
        assert_eq!(parse_listening_inodes(tcp, 7400), [4242], "LISTEN only");
        assert_eq!(parse_listening_inodes(tcp, 22), [99]);
        assert!(parse_listening_inodes(tcp, 80).is_empty());
        assert!(parse_listening_inodes("garbage\nmore garbage", 7400).is_empty());
    }

    #[test]
    fn this_process_is_found_by_its_listening_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        assert_eq!(find_listener_pid(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(find_listener_pid(port), None, "nobody listens any more");
    }

    #[test]
    fn a_group_sums_its_processes() {
        let pid = std::process::id();
        let one = ProcessProbe::new(pid).expect("our own /proc entry");
        let twice = ProcessProbe::group([("a".to_owned(), pid), ("b".to_owned(), pid)])
            .expect("our own /proc entry, twice");
        assert_eq!(twice.pid(), pid);
        assert_eq!(twice.names(), ["a", "b"]);
        let each = twice.cpu_each().expect("CPU times");
        assert_eq!(each.len(), 2);
        assert_eq!(
            twice.cpu().expect("CPU times"),
            each[0].plus(each[1]),
            "the total is the sum of the parts"
        );
        let rss = twice.rss_kib().expect("VmRSS");
        assert!(rss >= one.rss_kib().expect("VmRSS"), "two shares of ours");
        let empty = ProcessProbe::group([]).expect_err("no process");
        assert!(
            empty.to_string().contains("at least one process"),
            "{empty}"
        );
        let missing = ProcessProbe::group([("a".to_owned(), pid), ("gone".to_owned(), u32::MAX)])
            .expect_err("one is missing");
        assert!(missing.to_string().contains("/proc/"), "{missing}");
    }
}
