//! The connection limit that fits under the process's open-files limit
//! (`RLIMIT_NOFILE`).
//!
//! Every WebSocket session holds one descriptor for its whole life. With
//! `server.max_connections` above the open-files limit, sessions would take
//! the last descriptors and the listener could accept nothing more: no 503
//! `connection_limit` refusal, no `/healthz` answer, only "Too many open
//! files" in the log. So at start the broker first raises its soft limit to
//! the hard one (as Go's runtime does for every program), then, when the
//! limit is still too low, admits only `limit - reserve` sessions, leaving
//! [`reserve`] descriptors for everything else: the listener, HTTP requests
//! (health checks, metrics, publishes, refused upgrades), the Redis
//! connections of a cluster, the runtime's own.

use std::fmt;

/// What the broker found, and did, about its open-files limit at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenFiles {
    /// The soft limit now; `None` when unlimited (or unknown, off Unix).
    pub(crate) limit: Option<u64>,
    /// The soft limit before the broker raised it, when it did.
    pub(crate) raised_from: Option<u64>,
}

impl OpenFiles {
    /// Raises the soft open-files limit to the hard one, where it is lower,
    /// and reports the limit in force afterwards.
    #[cfg(unix)]
    pub(crate) fn raise() -> OpenFiles {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let before = getrlimit(Resource::Nofile);
        let Some(soft) = before.current else {
            return OpenFiles {
                limit: None,
                raised_from: None,
            };
        };
        // An unlimited hard limit is not a value the kernel takes for the
        // soft one (Linux caps both at fs.nr_open): ask for 2^20, Linux's
        // default cap, and keep what there was if that is refused.
        let target = before.maximum.unwrap_or(1 << 20);
        if target > soft {
            let raised = Rlimit {
                current: Some(target),
                maximum: before.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                return OpenFiles {
                    limit: Some(target),
                    raised_from: Some(soft),
                };
            }
        }
        OpenFiles {
            limit: Some(soft),
            raised_from: None,
        }
    }

    /// Off Unix there is no such limit to read.
    #[cfg(not(unix))]
    pub(crate) fn raise() -> OpenFiles {
        OpenFiles {
            limit: None,
            raised_from: None,
        }
    }
}

impl fmt::Display for OpenFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.limit, self.raised_from) {
            (None, _) => write!(f, "open-files limit unlimited"),
            (Some(limit), None) => write!(f, "open-files limit {limit}"),
            (Some(limit), Some(from)) => {
                write!(f, "open-files limit {limit} (raised from {from})")
            }
        }
    }
}

/// Descriptors kept for what is not a session under an open-files limit
/// of `limit`: a tenth of it, and never fewer than 64, so a small limit
/// still leaves room for health checks and refusals.
pub(crate) fn reserve(limit: u64) -> u64 {
    (limit / 10).max(64)
}

/// How many sessions the broker admits at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionLimit {
    /// Sessions admitted at once: the size of the session semaphore.
    pub(crate) sessions: usize,
    /// `server.max_connections`, as configured.
    pub(crate) configured: usize,
    /// The open-files limit, when it made `sessions` lower than
    /// `configured`.
    pub(crate) lowered_by: Option<OpenFiles>,
}

impl ConnectionLimit {
    /// The connection limit for `server.max_connections = configured`
    /// under `open_files`: `configured`, or `limit - reserve(limit)` (at
    /// least 1) when that is lower.
    pub(crate) fn fit(configured: usize, open_files: OpenFiles) -> ConnectionLimit {
        let fitting = open_files.limit.map(|limit| {
            usize::try_from(limit.saturating_sub(reserve(limit)).max(1)).unwrap_or(usize::MAX)
        });
        match fitting {
            Some(fitting) if fitting < configured => ConnectionLimit {
                sessions: fitting,
                configured,
                lowered_by: Some(open_files),
            },
            _ => ConnectionLimit {
                sessions: configured,
                configured,
                lowered_by: None,
            },
        }
    }

    /// Why the broker admits no more sessions, for the 503 refusal.
    pub(crate) fn refusal(&self) -> String {
        match self.lowered_by {
            None => format!(
                "connection limit reached (server.max_connections = {})",
                self.configured
            ),
            Some(open_files) => format!(
                "connection limit reached: {} sessions (server.max_connections = {}, \
                 lowered to fit the {}, less a reserve of {})",
                self.sessions,
                self.configured,
                open_files,
                open_files.limit.map_or(0, reserve)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(limit: u64) -> OpenFiles {
        OpenFiles {
            limit: Some(limit),
            raised_from: None,
        }
    }

    #[test]
    fn the_reserve_is_a_tenth_and_at_least_64() {
        assert_eq!(reserve(100), 64);
        assert_eq!(reserve(640), 64);
        assert_eq!(reserve(20_000), 2_000);
        assert_eq!(reserve(1 << 20), 104_857);
    }

    #[test]
    fn a_limit_that_fits_is_kept() {
        let fitted = ConnectionLimit::fit(100_000, limit(1 << 20));
        assert_eq!(fitted.sessions, 100_000);
        assert_eq!(fitted.lowered_by, None);
        let unlimited = OpenFiles {
            limit: None,
            raised_from: None,
        };
        assert_eq!(ConnectionLimit::fit(100_000, unlimited).sessions, 100_000);
        // Exactly at the edge: 110,000 - 11,000 = 99,000 sessions fit.
        assert_eq!(
            ConnectionLimit::fit(99_000, limit(110_000)).sessions,
            99_000
        );
    }

    #[test]
    fn a_limit_too_high_for_the_descriptors_is_lowered_with_a_reserve() {
        let fitted = ConnectionLimit::fit(100_000, limit(20_000));
        assert_eq!(fitted.sessions, 18_000);
        assert_eq!(fitted.configured, 100_000);
        assert_eq!(fitted.lowered_by, Some(limit(20_000)));
        assert_eq!(ConnectionLimit::fit(100_000, limit(256)).sessions, 192);
        // Even a tiny limit admits one session.
        assert_eq!(ConnectionLimit::fit(100_000, limit(10)).sessions, 1);
    }

    #[test]
    fn the_refusal_names_the_setting_and_why_it_was_lowered() {
        let kept = ConnectionLimit::fit(2, limit(20_000));
        assert_eq!(
            kept.refusal(),
            "connection limit reached (server.max_connections = 2)"
        );
        let raised = OpenFiles {
            limit: Some(320),
            raised_from: Some(256),
        };
        let lowered = ConnectionLimit::fit(100_000, raised);
        assert_eq!(
            lowered.refusal(),
            "connection limit reached: 256 sessions (server.max_connections = 100000, \
             lowered to fit the open-files limit 320 (raised from 256), \
             less a reserve of 64)"
        );
    }
}
