//! A relay out of file descriptors. A test binary of its own, because it
//! lowers the whole process's open files limit.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use media::{MediaError, Relay, RelayConfig};
use nix::sys::resource::{Resource, getrlimit, setrlimit};

#[tokio::test]
async fn out_of_descriptors_fails_at_the_first_pair() {
    let relay = Relay::new(RelayConfig {
        bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ports: 41_200..=41_399,
        threads: 1,
        spin: Duration::ZERO,
        realtime_priority: 0,
        coalesce: std::time::Duration::ZERO,
    })
    .expect("valid relay config");
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let open = std::fs::read_dir("/proc/self/fd")
        .expect("list fds")
        .count() as u64;
    // Room for one session's four sockets and two more.
    setrlimit(Resource::RLIMIT_NOFILE, open + 6, hard).expect("lower the limit");
    let mut sessions = Vec::new();
    let error = loop {
        match relay.open_session("descriptors").await {
            Ok(session) => sessions.push(session),
            Err(error) => break error,
        }
        if sessions.len() > 3 {
            break MediaError::SessionEnded {
                call_id: "more sessions than descriptors".to_owned(),
            };
        }
    };
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");
    // The count above included descriptors closed since, so one or two
    // sessions fit.
    assert!((1..=3).contains(&sessions.len()), "{error}");
    match error {
        MediaError::Bind {
            attempts, source, ..
        } => {
            assert_eq!(attempts, 1, "no other pair was tried");
            assert_eq!(source.raw_os_error(), Some(nix::libc::EMFILE), "{source}");
        }
        other => panic!("expected a bind error, got {other}"),
    }
    for session in sessions {
        session.close().await.expect("close");
    }
}
