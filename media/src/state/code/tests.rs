use std::time::{Duration, Instant};

use super::{CODE_KEY_TIMEOUT, CodeDecision, CodeFilter};

/// Feeds the three packets of one key (start, update, end) that started
/// at `timestamp`, and returns the decision on each.
fn key_press(filter: &mut CodeFilter, timestamp: u32, key: char, at: Instant) -> Vec<CodeDecision> {
    (0..3u64)
        .map(|step| {
            filter.on_event(
                7,
                timestamp,
                Some(key),
                at + Duration::from_millis(50 * step),
            )
        })
        .collect()
}

fn star_one() -> CodeFilter {
    CodeFilter::new(vec!['*', '1'])
}

#[test]
fn code_keys_are_swallowed_and_complete() {
    let mut filter = star_one();
    let start = Instant::now();
    let star = key_press(&mut filter, 1000, '*', start);
    assert!(star.iter().all(|decision| !decision.forward));
    assert!(star.iter().all(|decision| !decision.completed));
    let one = key_press(&mut filter, 3000, '1', start + Duration::from_millis(300));
    assert!(one.iter().all(|decision| !decision.forward));
    assert!(
        one[0].completed,
        "the first packet of the last key completes"
    );
    assert!(!one[1].completed, "later packets do not complete it again");
    assert!(one.iter().all(|decision| decision.release.is_empty()));
    assert!(filter.was_swallowed(1000));
    assert!(filter.was_swallowed(3000));
    assert!(
        filter
            .poll_timeout(start + Duration::from_secs(10))
            .is_empty()
    );
}

#[test]
fn ordinary_keys_pass() {
    let mut filter = star_one();
    let start = Instant::now();
    for (index, key) in ['5', '1', '#'].into_iter().enumerate() {
        let timestamp = 1000 * (index as u32 + 1);
        let decisions = key_press(&mut filter, timestamp, key, start);
        assert!(decisions.iter().all(|decision| decision.forward), "{key}");
        assert!(!filter.was_swallowed(timestamp));
    }
}

#[test]
fn broken_code_releases_held_keys_in_order() {
    let mut filter = star_one();
    let start = Instant::now();
    key_press(&mut filter, 1000, '*', start);
    let five = key_press(&mut filter, 2000, '5', start + Duration::from_millis(300));
    assert!(
        !five[0].forward,
        "the breaking key follows the released ones"
    );
    assert_eq!(five[0].release, vec!['*', '5']);
    assert!(five[1..].iter().all(|decision| decision.release.is_empty()));
    assert!(five.iter().all(|decision| !decision.forward));
    assert!(filter.was_swallowed(2000));
    // The code can start again at once.
    let star = key_press(&mut filter, 3000, '*', start + Duration::from_millis(600));
    assert!(!star[0].forward);
    assert!(star[0].release.is_empty());
    let one = key_press(&mut filter, 4000, '1', start + Duration::from_millis(900));
    assert!(one[0].completed);
}

#[test]
fn repeated_first_key_restarts_code() {
    let mut filter = star_one();
    let start = Instant::now();
    key_press(&mut filter, 1000, '*', start);
    let second = key_press(&mut filter, 2000, '*', start + Duration::from_millis(300));
    assert_eq!(second[0].release, vec!['*'], "the first star goes on");
    assert!(!second[0].forward, "the second star is held");
    let one = key_press(&mut filter, 3000, '1', start + Duration::from_millis(600));
    assert!(one[0].completed);
    assert!(one[0].release.is_empty());
}

#[test]
fn held_key_released_after_timeout() {
    let mut filter = star_one();
    let start = Instant::now();
    key_press(&mut filter, 1000, '*', start);
    let last_packet = start + Duration::from_millis(100);
    let almost = last_packet + CODE_KEY_TIMEOUT - Duration::from_millis(1);
    assert!(filter.poll_timeout(almost).is_empty());
    assert_eq!(
        filter.poll_timeout(last_packet + CODE_KEY_TIMEOUT),
        vec!['*']
    );
    assert!(
        filter
            .poll_timeout(start + Duration::from_secs(60))
            .is_empty()
    );
    // The next key is judged afresh.
    let five = key_press(&mut filter, 2000, '5', start + Duration::from_secs(61));
    assert!(five.iter().all(|decision| decision.forward));
    assert!(five[0].release.is_empty());
}

#[test]
fn late_packet_of_swallowed_key_dropped() {
    let mut filter = star_one();
    let start = Instant::now();
    key_press(&mut filter, 1000, '*', start);
    key_press(&mut filter, 2000, '1', start);
    let late = filter.on_event(7, 1000, Some('*'), start + Duration::from_millis(400));
    assert_eq!(late, CodeDecision::default(), "dropped, nothing released");
}

#[test]
fn single_key_code_completes_at_once() {
    let mut filter = CodeFilter::new(vec!['#']);
    let decisions = key_press(&mut filter, 1000, '#', Instant::now());
    assert!(decisions[0].completed);
    assert!(decisions.iter().all(|decision| !decision.forward));
}

#[test]
fn non_key_event_passes_and_breaks_code() {
    let mut filter = star_one();
    let start = Instant::now();
    key_press(&mut filter, 1000, '*', start);
    let flash = filter.on_event(7, 2000, None, start + Duration::from_millis(300));
    assert!(flash.forward);
    assert_eq!(flash.release, vec!['*']);
}
