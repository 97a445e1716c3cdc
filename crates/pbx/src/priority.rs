//! Scheduling weight of the threads that run the SIP engine.
//!
//! The engine answers SIP on timers of half a second (T1). When it waits
//! for a core behind busy threads, phones and trunks retransmit, and the
//! retransmissions make the wait longer. With 1,000 recorded calls and sipp
//! on the same 2 cores, the runtime's threads waited for a core many times
//! longer than they ran, and 200 OKs went out late (measured with
//! `bench/media/run 1000`, docs/benchmarks.md). A lower nice value gives
//! the thread a larger share of a contended core under the normal
//! scheduler. Real-time scheduling, as the relay uses, would let a
//! SIP flood lock every other normal thread out of the cores, where a nice
//! value only tilts the share.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use thread_priority::{
    NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
};

thread_local! {
    /// Whether this thread already took the engine's nice value.
    static APPLIED: Cell<bool> = const { Cell::new(false) };
}

/// One warning per process, not one per thread.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Gives the calling thread `nice` (-20 to 19) the first time it runs the
/// engine; later calls on that thread cost a thread-local read. The engine
/// task can move between runtime workers when `runtime_threads` is above 1,
/// and each worker it lands on keeps the value. 0 changes nothing.
pub(crate) fn engine_thread(nice: i8) {
    if nice == 0 || APPLIED.with(|applied| applied.replace(true)) {
        return;
    }
    match set_nice(nice) {
        Ok(()) => tracing::debug!(nice, "SIP engine thread reniced"),
        Err(error) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    nice,
                    %error,
                    "the SIP engine keeps the normal share of a core, so under load its \
                     answers may wait behind other work; a negative nice value needs \
                     CAP_SYS_NICE or an RLIMIT_NICE that allows it, and \
                     [sip] engine_nice = 0 stops asking"
                );
            }
        }
    }
}

fn set_nice(nice: i8) -> Result<(), String> {
    // The crate takes a priority of 0 to 99 and maps it linearly onto nice
    // 19 to -20 for the normal policy. The priority that lands on `nice` is
    // picked here, and the result is read back rather than trusted.
    let target = i32::from(nice.clamp(-20, 19));
    let priority = (0..=99u8)
        .find(|&p| crate_nice(p) == target)
        .unwrap_or(if target < 0 { 99 } else { 0 });
    let value = ThreadPriorityValue::try_from(priority).map_err(|reason| reason.to_owned())?;
    thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    )
    .map_err(|error| format!("{error:?}"))?;
    match current_nice() {
        Some(now) if now == target => Ok(()),
        Some(now) => Err(format!("asked for nice {target}, the thread has {now}")),
        None => Ok(()),
    }
}

/// Computes the nice value that thread_priority 3 gives priority `p` under
/// the normal policy.
fn crate_nice(p: u8) -> i32 {
    let ratio = 1.0 - f32::from(p) / 99.0;
    i32::from((40.0 * ratio) as i8) - 20
}

/// Field 19 of /proc/thread-self/stat; None where it cannot be read.
fn current_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The name in parentheses may contain spaces, but the fields after it do not.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    after_name.split(' ').nth(19 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nice_value_has_a_priority() {
        for nice in -20..=19 {
            assert!(
                (0..=99u8).any(|p| crate_nice(p) == nice),
                "no priority gives nice {nice}"
            );
        }
    }

    /// On a fresh thread, so the test runner's threads keep their value.
    /// A higher nice value needs no privilege, so this runs anywhere.
    #[test]
    fn thread_takes_the_value_once() {
        std::thread::spawn(|| {
            let start = current_nice().expect("readable nice value");
            let target = (start + 2).clamp(1, 19);
            engine_thread(target as i8);
            assert_eq!(current_nice(), Some(target));
            // Applied once per thread: a second value is not taken.
            engine_thread(19);
            assert_eq!(current_nice(), Some(target));
        })
        .join()
        .expect("test thread");
    }
}
