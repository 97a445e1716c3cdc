//! Lockout per (username as typed, client address), the limit per address,
//! and the audit entries of failed logins and locks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use time::{Duration, OffsetDateTime};

use super::*;
use crate::lockout::address_bucket;

/// Logs in with a wrong password and returns the error.
async fn fail(
    store: &AccountStore,
    username: &str,
    from: Option<IpAddr>,
    now: OffsetDateTime,
) -> AccountsError {
    match store.login(username, "wrong-password", from, now).await {
        Ok(_) => panic!("login as {username} with a wrong password succeeded"),
        Err(error) => error,
    }
}

/// Fails `count` times at `now` and returns the last error.
async fn fail_times(
    store: &AccountStore,
    username: &str,
    from: Option<IpAddr>,
    now: OffsetDateTime,
    count: usize,
) -> AccountsError {
    let mut last = AccountsError::InvalidCredentials;
    for _ in 0..count {
        last = fail(store, username, from, now).await;
    }
    last
}

fn scope_of(error: &AccountsError) -> Option<LockScope> {
    match error {
        AccountsError::Locked { scope, .. } => Some(*scope),
        _ => None,
    }
}

async fn audit_log(store: &AccountStore) -> Vec<AuditEntry> {
    let mut entries = store.list_audit(MAX_AUDIT_PAGE, 0).await.expect("audit");
    entries.reverse();
    entries
}

async fn lock_applies_to_one_address(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let error = fail_times(store, "sam", HOME, T0, 5).await;
    assert_eq!(scope_of(&error), Some(LockScope::Username), "{error:?}");

    let result = store.login("sam", "sam-password", HOME, T0).await;
    assert!(
        matches!(&result, Err(AccountsError::Locked { .. })),
        "the right password from the locked address: {result:?}"
    );
    store
        .login("sam", "sam-password", ELSEWHERE, T0)
        .await
        .expect("another address is not locked");
    store
        .login("sam", "sam-password", None, T0)
        .await
        .expect("an unknown address is a bucket of its own");
}

async fn lock_ignores_username_case(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    for typed in ["sam", "SAM", "Sam", "sAm"] {
        fail(store, typed, HOME, T0).await;
    }
    let error = fail(store, "saM", HOME, T0).await;
    assert!(
        matches!(&error, AccountsError::Locked { username, .. } if username == "saM"),
        "the error names the username as typed: {error:?}"
    );
    let result = store.login("sam", "sam-password", HOME, T0).await;
    assert!(
        matches!(result, Err(AccountsError::Locked { .. })),
        "{result:?}"
    );
}

async fn unknown_username_locks_like_known(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let until = T0 + Duration::minutes(15);
    for attempt in 1..=6 {
        let known = fail(store, "sam", HOME, T0).await;
        let unknown = fail(store, "nobody", HOME, T0).await;
        // Same variant, same fields but the name, same message.
        let known_text = known.to_string().replace("\"sam\"", "NAME");
        let unknown_text = unknown.to_string().replace("\"nobody\"", "NAME");
        assert_eq!(known_text, unknown_text, "attempt {attempt}");
        assert_eq!(scope_of(&known), scope_of(&unknown), "attempt {attempt}");
        if attempt < 5 {
            assert!(
                matches!(known, AccountsError::InvalidCredentials),
                "attempt {attempt}: {known:?}"
            );
        } else {
            assert!(
                matches!(&unknown, AccountsError::Locked { until: u, .. } if *u == until),
                "attempt {attempt}: {unknown:?}"
            );
        }
    }
}

async fn disabled_user_locks_like_others(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "admin", Role::Administrator).await;
    let user = create(store, "sam", Role::Supervisor).await;
    let disable = UserChanges {
        disabled: Some(true),
        ..UserChanges::default()
    };
    store.update_user(user.id, &disable).await.expect("disable");
    for attempt in 1..=4 {
        let result = store.login("sam", "sam-password", HOME, T0).await;
        assert!(
            matches!(result, Err(AccountsError::InvalidCredentials)),
            "attempt {attempt}: {result:?}"
        );
    }
    let result = store.login("sam", "sam-password", HOME, T0).await;
    assert!(
        matches!(result, Err(AccountsError::Locked { .. })),
        "{result:?}"
    );
}

async fn success_clears_only_its_pair(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    fail_times(store, "sam", HOME, T0, 4).await;
    fail_times(store, "sam", ELSEWHERE, T0, 4).await;
    store
        .login("sam", "sam-password", HOME, T0)
        .await
        .expect("login");
    let error = fail(store, "sam", ELSEWHERE, T0).await;
    assert_eq!(
        scope_of(&error),
        Some(LockScope::Username),
        "the other address keeps its failures: {error:?}"
    );
    let error = fail_times(store, "sam", HOME, T0, 4).await;
    assert!(
        matches!(error, AccountsError::InvalidCredentials),
        "this address starts again from zero: {error:?}"
    );
}

async fn address_limit_stops_spraying(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let limit = store.policy().max_failed_logins_per_address;
    let until = T0 + Duration::minutes(15);
    for index in 1..limit {
        // Known and unknown names alike, once each, so no pair locks.
        let username = if index == 1 {
            "sam".to_owned()
        } else {
            format!("user{index}")
        };
        let error = fail(store, &username, HOME, T0).await;
        assert!(
            matches!(error, AccountsError::InvalidCredentials),
            "failure {index}: {error:?}"
        );
    }
    let error = fail(store, "last-guess", HOME, T0).await;
    assert!(
        matches!(&error, AccountsError::Locked { scope: LockScope::Address, until: u, .. } if *u == until),
        "failure {limit}: {error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("login from this address is locked"),
        "{error}"
    );

    let result = store.login("sam", "sam-password", HOME, T0).await;
    assert!(
        matches!(
            result,
            Err(AccountsError::Locked {
                scope: LockScope::Address,
                ..
            })
        ),
        "every username from the address: {result:?}"
    );
    store
        .login("sam", "sam-password", ELSEWHERE, T0)
        .await
        .expect("other addresses are not locked");
    store
        .login("sam", "sam-password", HOME, until)
        .await
        .expect("the address lock ends");
}

async fn ipv6_locked_by_64_prefix(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    for host in 1..=5 {
        let address = Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, host);
        fail(store, "sam", Some(IpAddr::V6(address)), T0).await;
    }
    let same_prefix = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
    let result = store
        .login("sam", "sam-password", Some(same_prefix), T0)
        .await;
    assert!(
        matches!(result, Err(AccountsError::Locked { .. })),
        "{result:?}"
    );
    let next_prefix = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
    store
        .login("sam", "sam-password", Some(next_prefix), T0)
        .await
        .expect("another /64");
}

#[test]
fn address_buckets() {
    let cases = [
        (None, "unknown"),
        (HOME, "192.0.2.7"),
        (
            Some(IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped())),
            "192.0.2.7",
        ),
        (
            Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 5, 1, 2, 3, 4))),
            "2001:db8:0:5::/64",
        ),
    ];
    for (address, bucket) in cases {
        assert_eq!(address_bucket(address), bucket, "{address:?}");
    }
}

#[test]
fn typed_username_bounded_and_escaped() {
    assert_eq!(typed_username("Sam.O-Neil_2"), "Sam.O-Neil_2");
    assert_eq!(typed_username("sam\nadmin"), "sam\\nadmin");
    let long = "x".repeat(10_000);
    assert_eq!(typed_username(&long).len(), 65);
}

async fn password_reset_lifts_locks_everywhere(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let user = create(store, "sam", Role::Supervisor).await;
    fail_times(store, "sam", HOME, T0, 5).await;
    fail_times(store, "SAM", ELSEWHERE, T0, 5).await;
    fail_times(store, "sam", None, T0, 4).await;
    store
        .set_password(user.id, "brand-new-password")
        .await
        .expect("set");
    for from in [HOME, ELSEWHERE] {
        store
            .login("sam", "brand-new-password", from, T0)
            .await
            .expect("lock lifted");
    }
    let error = fail(store, "sam", None, T0).await;
    assert!(
        matches!(error, AccountsError::InvalidCredentials),
        "failures forgotten too: {error:?}"
    );
}

async fn failed_logins_and_locks_audited(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let seconds = [0, 10, 59, 61, 62];
    for second in seconds {
        fail(store, "Sam", HOME, T0 + Duration::seconds(second)).await;
    }
    // Refused while locked: no password check, nothing audited.
    fail_times(store, "sam", HOME, T0 + Duration::seconds(70), 3).await;
    let entries = audit_log(store).await;
    let actions: Vec<(&str, OffsetDateTime)> = entries
        .iter()
        .map(|entry| (entry.action.as_str(), entry.at))
        .collect();
    assert_eq!(
        actions,
        [
            ("session.login_failed", T0),
            ("session.login_failed", T0 + Duration::seconds(61)),
            ("session.locked", T0 + Duration::seconds(62)),
        ],
        "at most one failure entry per minute, and every lock"
    );
    for entry in &entries {
        assert_eq!(entry.user_id, None, "{entry:?}");
        assert_eq!(entry.username, None, "{entry:?}");
        assert_eq!(entry.target.as_deref(), Some("Sam"), "{entry:?}");
        assert_eq!(
            entry.remote_address.as_deref(),
            Some("192.0.2.7"),
            "{entry:?}"
        );
    }
}

async fn unknown_username_audited_alike(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    fail_times(store, "nobody", None, T0, 5).await;
    let entries = audit_log(store).await;
    let actions: Vec<&str> = entries.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(actions, ["session.login_failed", "session.locked"]);
    assert_eq!(entries[1].target.as_deref(), Some("nobody"));
    assert_eq!(entries[1].remote_address, None);
}

async fn address_lock_audited(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let limit = store.policy().max_failed_logins_per_address;
    for index in 0..limit {
        fail(store, &format!("user{index}"), ELSEWHERE, T0).await;
    }
    let entries = audit_log(store).await;
    let failed = entries
        .iter()
        .filter(|entry| entry.action == "session.login_failed")
        .count();
    assert_eq!(failed, limit as usize, "one entry per username");
    let last = entries.last().expect("entries");
    assert_eq!(last.action, "session.address_locked");
    assert_eq!(last.target, None);
    assert_eq!(last.remote_address.as_deref(), Some("198.51.100.20"));
}

async fn concurrent_failures_cannot_pass_lock(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.login("sam", "wrong-password", HOME, T0).await })
        })
        .collect();
    let mut rejected = 0;
    let mut locked = 0;
    for attempt in attempts {
        match attempt.await.expect("login task") {
            Err(AccountsError::InvalidCredentials) => rejected += 1,
            Err(AccountsError::Locked { .. }) => locked += 1,
            other => panic!("unexpected result {other:?}"),
        }
    }
    assert_eq!(rejected, 4, "only four passwords checked before the lock");
    assert_eq!(locked, 16);
    let locks: Vec<String> = entries_of(store, "session.locked").await;
    assert_eq!(locks, ["sam"], "one lock entry");
}

/// Returns the targets of the audit entries with `action`, oldest first.
async fn entries_of(store: &AccountStore, action: &str) -> Vec<String> {
    audit_log(store)
        .await
        .into_iter()
        .filter(|entry| entry.action == action)
        .filter_map(|entry| entry.target)
        .collect()
}

cdr::storage_tests!(
    lock_applies_to_one_address,
    lock_ignores_username_case,
    unknown_username_locks_like_known,
    disabled_user_locks_like_others,
    success_clears_only_its_pair,
    address_limit_stops_spraying,
    ipv6_locked_by_64_prefix,
    password_reset_lifts_locks_everywhere,
    failed_logins_and_locks_audited,
    unknown_username_audited_alike,
    address_lock_audited,
    concurrent_failures_cannot_pass_lock,
);
