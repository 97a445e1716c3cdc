mod lockout;
mod migration;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use cdr::test_database::TestDatabase;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;

const T0: OffsetDateTime = datetime!(2026-12-04 09:00:00 UTC);

/// The client address of most logins in these tests.
const HOME: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
/// Another client's address.
const ELSEWHERE: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20)));

struct Fixture {
    _dir: tempfile::TempDir,
    store: AccountStore,
}

fn test_policy() -> Policy {
    Policy {
        password_cost: PasswordCost::MINIMUM,
        ..Policy::default()
    }
}

async fn fixture(database: &TestDatabase) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_on(dir.path(), database).await;
    Fixture { _dir: dir, store }
}

/// Opens the CDR store on `data_dir` and the account store on its pool, as
/// the PBX does at start.
async fn open_on(data_dir: &Path, database: &TestDatabase) -> AccountStore {
    let cdr = cdr::CdrStore::open_at(data_dir, &database.url(data_dir))
        .await
        .expect("CDR store opens");
    AccountStore::open(cdr.pool().clone(), test_policy())
        .await
        .expect("account store opens")
}

fn new_user(username: &str, role: Role, agent_id: Option<&str>) -> NewUser {
    NewUser {
        username: username.to_owned(),
        password: format!("{username}-password"),
        role,
        agent_id: agent_id.map(str::to_owned),
    }
}

async fn create(store: &AccountStore, username: &str, role: Role) -> User {
    let agent_id = (role == Role::Agent).then_some("1001");
    store
        .create_user(&new_user(username, role, agent_id), T0)
        .await
        .expect("user created")
}

async fn migrations_coexist_with_cdr_store(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = open_on(dir.path(), &database).await;
    create(&first, "admin", Role::Administrator).await;
    first.pool().close().await;

    // A second start runs both migrators again on the same database.
    let second = open_on(dir.path(), &database).await;
    assert_eq!(second.user_count().await.expect("count"), 1);
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(second.pool())
            .await
            .expect("sqlx migrations listed");
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 1000, 1001],
        "CDR and accounts migrations"
    );
}

async fn users_created_and_listed(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let admin = create(store, "admin", Role::Administrator).await;
    let agent = create(store, "alice", Role::Agent).await;
    assert_eq!(admin.role, Role::Administrator);
    assert_eq!(admin.agent_id, None);
    assert!(!admin.disabled);
    assert_eq!(admin.created_at, T0);
    assert_eq!(agent.agent_id.as_deref(), Some("1001"));
    assert_eq!(
        store.list_users().await.expect("list"),
        [admin.clone(), agent]
    );
    assert_eq!(store.user(admin.id).await.expect("get"), Some(admin));
    assert_eq!(store.user(999).await.expect("get"), None);
}

async fn user_fields_validated(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "admin", Role::Administrator).await;

    let duplicate = store
        .create_user(&new_user("ADMIN", Role::Qa, None), T0)
        .await;
    assert!(
        matches!(&duplicate, Err(AccountsError::DuplicateUsername { username }) if username == "ADMIN"),
        "{duplicate:?}"
    );
    for bad in ["", "with space", "semi;colon", &"x".repeat(65)] {
        let result = store.create_user(&new_user(bad, Role::Qa, None), T0).await;
        assert!(
            matches!(result, Err(AccountsError::InvalidUsername { .. })),
            "{bad:?}: {result:?}"
        );
    }
    let mut short = new_user("bob", Role::Qa, None);
    short.password = "1234567".to_owned();
    let result = store.create_user(&short, T0).await;
    assert!(
        matches!(
            result,
            Err(AccountsError::PasswordTooShort {
                length: 7,
                minimum: 8
            })
        ),
        "{result:?}"
    );
    let result = store
        .create_user(&new_user("bob", Role::Agent, None), T0)
        .await;
    assert!(
        matches!(result, Err(AccountsError::AgentIdRequired)),
        "{result:?}"
    );
    let result = store
        .create_user(&new_user("bob", Role::Supervisor, Some("1001")), T0)
        .await;
    assert!(
        matches!(
            result,
            Err(AccountsError::AgentIdNotAllowed { role: "supervisor" })
        ),
        "{result:?}"
    );
    let result = store
        .create_user(&new_user("bob", Role::Agent, Some("10 01")), T0)
        .await;
    assert!(
        matches!(result, Err(AccountsError::InvalidAgentId { .. })),
        "{result:?}"
    );
    assert_eq!(store.user_count().await.expect("count"), 1);
}

async fn first_administrator_created_once(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let created = store
        .create_first_administrator("admin", "first-password", T0)
        .await
        .expect("created");
    let admin = created.expect("no user existed");
    assert_eq!(admin.role, Role::Administrator);
    let again = store
        .create_first_administrator("other", "second-password", T0)
        .await
        .expect("no error");
    assert_eq!(again, None);
    assert_eq!(store.user_count().await.expect("count"), 1);
    store
        .login("admin", "first-password", HOME, T0)
        .await
        .expect("login");
}

/// Two PBX nodes that start at once on one database both try to create the
/// first administrator. One creates it, and the other starts without an
/// error.
async fn first_administrator_raced_by_two_starts(database: TestDatabase) {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = open_on(dir.path(), &database).await;
    let second = open_on(dir.path(), &database).await;
    let (first_created, second_created) = tokio::join!(
        first.create_first_administrator("admin", "first-password", T0),
        second.create_first_administrator("admin", "second-password", T0),
    );
    let first_created = first_created.expect("first start");
    let second_created = second_created.expect("second start");
    assert_eq!(
        usize::from(first_created.is_some()) + usize::from(second_created.is_some()),
        1,
        "{first_created:?} {second_created:?}"
    );
    assert_eq!(first.user_count().await.expect("count"), 1);
}

async fn login_starts_session_until_expiry(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let user = create(store, "sam", Role::Supervisor).await;
    let session = store
        .login("sam", "sam-password", HOME, T0)
        .await
        .expect("login");
    assert_eq!(session.user, user);
    assert_eq!(session.expires_at, T0 + Duration::hours(8));
    assert_eq!(session.token.len(), 64);

    let last_valid = session.expires_at - Duration::milliseconds(1);
    let caller = store
        .session_caller(&session.token, last_valid)
        .await
        .expect("query");
    let caller = caller.expect("session valid before expiry");
    assert_eq!(caller.user, user);
    assert_eq!(caller.credential, Credential::Session);
    let expired = store
        .session_caller(&session.token, session.expires_at)
        .await;
    assert!(
        expired.expect("query").is_none(),
        "session ends at expires_at"
    );
    let wrong = store.session_caller("0000", T0).await.expect("query");
    assert!(wrong.is_none());
}

async fn session_stored_only_as_digest(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let session = store
        .login("sam", "sam-password", HOME, T0)
        .await
        .expect("login");
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM sessions")
        .fetch_all(store.pool())
        .await
        .expect("sessions listed");
    assert_eq!(stored, [token::digest(&session.token)]);
    assert_ne!(stored[0], session.token);
}

async fn logout_ends_session(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let session = store
        .login("sam", "sam-password", HOME, T0)
        .await
        .expect("login");
    assert!(store.logout(&session.token).await.expect("logout"));
    let caller = store
        .session_caller(&session.token, T0)
        .await
        .expect("query");
    assert!(caller.is_none());
    assert!(!store.logout(&session.token).await.expect("second logout"));
}

async fn wrong_and_unknown_logins_rejected(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let wrong = store.login("sam", "not-the-password", HOME, T0).await;
    assert!(
        matches!(wrong, Err(AccountsError::InvalidCredentials)),
        "{wrong:?}"
    );
    let unknown = store.login("nobody", "sam-password", HOME, T0).await;
    assert!(
        matches!(unknown, Err(AccountsError::InvalidCredentials)),
        "{unknown:?}"
    );
    // Usernames match without regard to case, like the UNIQUE constraint.
    store
        .login("SAM", "sam-password", HOME, T0)
        .await
        .expect("login");
}

async fn lockout_after_five_failures(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let mut now = T0;
    for attempt in 1..=4 {
        let result = store.login("sam", "wrong-password", HOME, now).await;
        assert!(
            matches!(result, Err(AccountsError::InvalidCredentials)),
            "attempt {attempt}: {result:?}"
        );
        now += Duration::minutes(3);
    }
    // The fifth failure, 12 minutes after the first, is inside the window.
    let result = store.login("sam", "wrong-password", HOME, now).await;
    let locked_until = now + Duration::minutes(15);
    assert!(
        matches!(&result, Err(AccountsError::Locked { until, .. }) if *until == locked_until),
        "{result:?}"
    );
    let result = store
        .login(
            "sam",
            "sam-password",
            HOME,
            locked_until - Duration::seconds(1),
        )
        .await;
    assert!(
        matches!(result, Err(AccountsError::Locked { .. })),
        "the right password does not lift the lock: {result:?}"
    );
    store
        .login("sam", "sam-password", HOME, locked_until)
        .await
        .expect("lock expired");
}

async fn failures_outside_window_forgotten(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    let mut now = T0;
    for _ in 0..8 {
        let result = store.login("sam", "wrong-password", HOME, now).await;
        assert!(
            matches!(result, Err(AccountsError::InvalidCredentials)),
            "{result:?}"
        );
        // Four minutes apart, so at most four failures fall in 15 minutes.
        now += Duration::minutes(4);
    }
    store
        .login("sam", "sam-password", HOME, now)
        .await
        .expect("not locked");
}

async fn successful_login_resets_failures(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    create(store, "sam", Role::Supervisor).await;
    for _ in 0..4 {
        let _ = store.login("sam", "wrong-password", HOME, T0).await;
    }
    store
        .login("sam", "sam-password", HOME, T0)
        .await
        .expect("login");
    for attempt in 1..=4 {
        let result = store.login("sam", "wrong-password", HOME, T0).await;
        assert!(
            matches!(result, Err(AccountsError::InvalidCredentials)),
            "attempt {attempt} after reset: {result:?}"
        );
    }
}

async fn set_password_ends_sessions_and_lock(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let user = create(store, "sam", Role::Supervisor).await;
    let session = store
        .login("sam", "sam-password", HOME, T0)
        .await
        .expect("login");
    for _ in 0..5 {
        let _ = store.login("sam", "wrong-password", HOME, T0).await;
    }
    store
        .set_password(user.id, "brand-new-password")
        .await
        .expect("set");
    let caller = store
        .session_caller(&session.token, T0)
        .await
        .expect("query");
    assert!(caller.is_none(), "old session ended");
    let old = store.login("sam", "sam-password", HOME, T0).await;
    assert!(
        matches!(old, Err(AccountsError::InvalidCredentials)),
        "{old:?}"
    );
    store
        .login("sam", "brand-new-password", HOME, T0)
        .await
        .expect("lock lifted");
    let missing = store.set_password(999, "brand-new-password").await;
    assert!(
        matches!(missing, Err(AccountsError::UserNotFound { id: 999 })),
        "{missing:?}"
    );
}

async fn disabled_user_loses_access(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let admin = create(store, "admin", Role::Administrator).await;
    let user = create(store, "sam", Role::Supervisor).await;
    let session = store
        .login("sam", "sam-password", HOME, T0)
        .await
        .expect("login");
    let token = store
        .create_api_token(user.id, "reports", admin.id, T0)
        .await
        .expect("token");
    let changes = UserChanges {
        disabled: Some(true),
        ..UserChanges::default()
    };
    let updated = store.update_user(user.id, &changes).await.expect("update");
    assert!(updated.disabled);
    let caller = store
        .session_caller(&session.token, T0)
        .await
        .expect("query");
    assert!(caller.is_none(), "session ended");
    let caller = store.token_caller(&token.token).await.expect("query");
    assert!(caller.is_none(), "token refused");
    let login = store.login("sam", "sam-password", HOME, T0).await;
    assert!(
        matches!(login, Err(AccountsError::InvalidCredentials)),
        "{login:?}"
    );
}

async fn role_change_updates_agent_id(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let user = create(store, "alice", Role::Agent).await;
    let to_qa = UserChanges {
        role: Some(Role::Qa),
        ..UserChanges::default()
    };
    let updated = store.update_user(user.id, &to_qa).await.expect("update");
    assert_eq!(updated.role, Role::Qa);
    assert_eq!(updated.agent_id, None, "only agents keep an agent id");
    let to_agent = UserChanges {
        role: Some(Role::Agent),
        ..UserChanges::default()
    };
    let result = store.update_user(user.id, &to_agent).await;
    assert!(
        matches!(result, Err(AccountsError::AgentIdRequired)),
        "{result:?}"
    );
    let with_id = UserChanges {
        role: Some(Role::Agent),
        agent_id: Some(Some("1002".to_owned())),
        ..UserChanges::default()
    };
    let updated = store.update_user(user.id, &with_id).await.expect("update");
    assert_eq!(updated.agent_id.as_deref(), Some("1002"));
    let missing = store.update_user(999, &with_id).await;
    assert!(
        matches!(missing, Err(AccountsError::UserNotFound { id: 999 })),
        "{missing:?}"
    );
}

async fn last_administrator_kept(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let admin = create(store, "admin", Role::Administrator).await;
    let demote = UserChanges {
        role: Some(Role::Supervisor),
        ..UserChanges::default()
    };
    let disable = UserChanges {
        disabled: Some(true),
        ..UserChanges::default()
    };
    for changes in [&demote, &disable] {
        let result = store.update_user(admin.id, changes).await;
        assert!(
            matches!(&result, Err(AccountsError::LastAdministrator { username }) if username == "admin"),
            "{result:?}"
        );
    }
    create(store, "second", Role::Administrator).await;
    store
        .update_user(admin.id, &demote)
        .await
        .expect("another administrator exists");
}

async fn api_token_acts_as_user(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let admin = create(store, "admin", Role::Administrator).await;
    let user = create(store, "reports", Role::Supervisor).await;
    let later = T0 + Duration::days(400);
    let created = store
        .create_api_token(user.id, "nightly export", admin.id, T0)
        .await
        .expect("token");
    assert!(created.token.starts_with("pbx_"), "{}", created.token);
    assert_eq!(created.info.user_id, user.id);
    assert_eq!(created.info.created_by, admin.id);
    assert_eq!(
        store.list_api_tokens().await.expect("list"),
        std::slice::from_ref(&created.info)
    );

    let caller = store.token_caller(&created.token).await.expect("query");
    let caller = caller.expect("token valid");
    assert_eq!(caller.user, user);
    assert_eq!(
        caller.credential,
        Credential::ApiToken {
            id: created.info.id
        }
    );
    let session = store
        .session_caller(&created.token, later)
        .await
        .expect("query");
    assert!(session.is_none(), "a token is not a session cookie");

    let stored: String = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_one(store.pool())
        .await
        .expect("token row");
    assert_eq!(stored, token::digest(&created.token));

    assert!(
        store
            .revoke_api_token(created.info.id)
            .await
            .expect("revoke")
    );
    assert!(
        store
            .token_caller(&created.token)
            .await
            .expect("query")
            .is_none()
    );
    assert!(
        !store
            .revoke_api_token(created.info.id)
            .await
            .expect("revoke again")
    );
}

async fn api_token_checks_name_and_user(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let admin = create(store, "admin", Role::Administrator).await;
    for name in ["", "   ", "line\nbreak", &"n".repeat(101)] {
        let result = store.create_api_token(admin.id, name, admin.id, T0).await;
        assert!(
            matches!(result, Err(AccountsError::InvalidTokenName { .. })),
            "{name:?}: {result:?}"
        );
    }
    let result = store.create_api_token(999, "export", admin.id, T0).await;
    assert!(
        matches!(result, Err(AccountsError::UserNotFound { id: 999 })),
        "{result:?}"
    );
}

async fn audit_entries_listed_newest_first(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let user = create(store, "quinn", Role::Qa).await;
    for (minute, call) in [(1, "call-1"), (2, "call-2"), (3, "call-3")] {
        let entry = NewAuditEntry {
            user: &user,
            action: "recording.replay",
            target: Some(call),
            remote_address: Some("192.0.2.7:50000"),
        };
        store
            .append_audit(entry, T0 + Duration::minutes(minute))
            .await
            .expect("appended");
    }
    let entries = store.list_audit(2, 0).await.expect("list");
    let targets: Vec<_> = entries.iter().map(|e| e.target.as_deref()).collect();
    assert_eq!(targets, [Some("call-3"), Some("call-2")]);
    let first = &entries[0];
    assert_eq!(first.at, T0 + Duration::minutes(3));
    assert_eq!(first.user_id, Some(user.id));
    assert_eq!(first.username.as_deref(), Some("quinn"));
    assert_eq!(first.action, "recording.replay");
    assert_eq!(first.remote_address.as_deref(), Some("192.0.2.7:50000"));
    let rest = store.list_audit(10, 2).await.expect("list");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].target.as_deref(), Some("call-1"));
}

async fn audit_log_rejects_update_and_delete(database: TestDatabase) {
    let fixture = fixture(&database).await;
    let store = &fixture.store;
    let user = create(store, "quinn", Role::Qa).await;
    let entry = NewAuditEntry {
        user: &user,
        action: "recording.replay",
        target: Some("call-1"),
        remote_address: None,
    };
    store.append_audit(entry, T0).await.expect("appended");
    for statement in [
        "UPDATE audit_log SET username = 'someone-else'",
        "DELETE FROM audit_log",
    ] {
        let error = sqlx::query(statement)
            .execute(store.pool())
            .await
            .expect_err(statement);
        assert!(
            error.to_string().contains("audit_log is append-only"),
            "{statement}: {error}"
        );
    }
    let entries = store.list_audit(10, 0).await.expect("list");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].username.as_deref(), Some("quinn"));
}

#[test]
fn generated_passwords_differ() {
    let first = generate_password();
    let second = generate_password();
    assert_eq!(first.chars().count(), 16);
    assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(first, second);
}

#[test]
fn role_names_round_trip() {
    for role in Role::ALL {
        assert_eq!(Role::from_name(role.as_str()), Some(role));
    }
    assert_eq!(Role::from_name("root"), None);
}

cdr::storage_tests!(
    migrations_coexist_with_cdr_store,
    users_created_and_listed,
    user_fields_validated,
    first_administrator_created_once,
    first_administrator_raced_by_two_starts,
    login_starts_session_until_expiry,
    session_stored_only_as_digest,
    logout_ends_session,
    wrong_and_unknown_logins_rejected,
    lockout_after_five_failures,
    failures_outside_window_forgotten,
    successful_login_resets_failures,
    set_password_ends_sessions_and_lock,
    disabled_user_loses_access,
    role_change_updates_agent_id,
    last_administrator_kept,
    api_token_acts_as_user,
    api_token_checks_name_and_user,
    audit_entries_listed_newest_first,
    audit_log_rejects_update_and_delete,
);
