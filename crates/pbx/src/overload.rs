//! The process's CPU use, sampled for overload control: while it is above
//! `[overload] cpu_percent`, the core refuses new calls with 503.

use std::time::{Duration, Instant};

/// Clock ticks per second in /proc/<pid>/stat (USER_HZ). NOTE: assumed to
/// be 100, which `getconf CLK_TCK` prints on the x86-64 hosts tested.
const USER_HZ: u64 = 100;

/// Turns successive readings of the process's CPU time into a share of
/// the whole machine.
pub(crate) struct CpuMeter {
    cores: u32,
    last: Option<(Instant, Duration)>,
}

impl CpuMeter {
    pub(crate) fn new() -> CpuMeter {
        let cores = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        CpuMeter { cores, last: None }
    }

    /// Returns the share of all cores, in percent, the process used since
    /// the previous call; None on the first call or where the kernel does
    /// not report it.
    pub(crate) fn sample(&mut self, now: Instant) -> Option<f64> {
        let used = process_cpu_time()?;
        let share = self.share(now, used);
        self.last = Some((now, used));
        share
    }

    fn share(&self, now: Instant, used: Duration) -> Option<f64> {
        let (then, used_then) = self.last?;
        let wall = now.checked_duration_since(then)?.as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        let cpu = used.saturating_sub(used_then).as_secs_f64();
        Some(100.0 * cpu / (wall * f64::from(self.cores)))
    }
}

/// User plus system CPU time of this process, from /proc/self/stat.
fn process_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_time(&text)
}

/// Reads utime and stime (fields 14 and 15) after the command name, which
/// is in parentheses and may itself hold spaces and parentheses.
fn parse_cpu_time(stat: &str) -> Option<Duration> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_millis(ticks.checked_mul(1000 / USER_HZ)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_comes_from_fields_14_and_15() {
        let stat = "4242 (pbx (worker) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 8 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_secs(3)));
        assert_eq!(parse_cpu_time("garbage"), None);
    }

    #[test]
    fn share_is_of_every_core() {
        let start = Instant::now();
        let meter = CpuMeter {
            cores: 2,
            last: Some((start, Duration::from_secs(10))),
        };
        // One core busy for the whole second is half of a two-core machine.
        let share = meter.share(start + Duration::from_secs(1), Duration::from_secs(11));
        assert_eq!(share, Some(50.0));
    }

    #[test]
    fn this_process_reports_cpu_time() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu_time().is_some());
        }
    }
}
