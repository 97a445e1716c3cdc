//! The administrator created at the first start.

use std::ffi::OsString;

use super::*;
use crate::http::bootstrap::{ADMIN_PASSWORD_VARIABLE, BootstrapError, create_first_administrator};

/// An account store on a new, empty database.
async fn empty_store() -> (tempfile::TempDir, AccountStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cdr = CdrStore::open(dir.path()).await.expect("store opens");
    let policy = Policy {
        password_cost: PasswordCost::MINIMUM,
        ..Policy::default()
    };
    let accounts = AccountStore::open(cdr.pool().clone(), policy)
        .await
        .expect("accounts open");
    (dir, accounts)
}

fn variable(value: &'static str) -> impl Fn(&str) -> Option<OsString> {
    move |name| (name == ADMIN_PASSWORD_VARIABLE).then(|| OsString::from(value))
}

#[tokio::test]
async fn generated_password_returned_once() {
    let (_dir, accounts) = empty_store().await;
    let generated = create_first_administrator(&accounts, T0, |_| None)
        .await
        .expect("bootstrap");
    let password = generated.expect("a password was generated");
    assert_eq!(password.chars().count(), 16);
    let session = accounts
        .login("admin", &password, None, T0)
        .await
        .expect("login");
    assert_eq!(session.user.role, Role::Administrator);

    let again = create_first_administrator(&accounts, T0, |_| None)
        .await
        .expect("second start");
    assert_eq!(again, None, "users exist, nothing generated");
    assert_eq!(accounts.user_count().await.expect("count"), 1);
}

#[tokio::test]
async fn password_from_environment() {
    let (_dir, accounts) = empty_store().await;
    let generated = create_first_administrator(&accounts, T0, variable("chosen-password"))
        .await
        .expect("bootstrap");
    assert_eq!(generated, None, "nothing to print");
    accounts
        .login("admin", "chosen-password", None, T0)
        .await
        .expect("login with the variable's password");
}

#[tokio::test]
async fn bad_environment_rejected() {
    let (_dir, accounts) = empty_store().await;
    let empty = create_first_administrator(&accounts, T0, variable("")).await;
    assert!(
        matches!(
            empty,
            Err(BootstrapError::EmptyVariable {
                variable: "PBX_ADMIN_PASSWORD"
            })
        ),
        "{empty:?}"
    );
    let short = create_first_administrator(&accounts, T0, variable("short")).await;
    assert!(
        matches!(
            short,
            Err(BootstrapError::Accounts(
                accounts::AccountsError::PasswordTooShort { .. }
            ))
        ),
        "{short:?}"
    );
    assert_eq!(accounts.user_count().await.expect("count"), 0);
}

#[tokio::test]
async fn variable_ignored_once_users_exist() {
    let fixture = fixture().await;
    let result = create_first_administrator(&fixture.accounts, T0, variable(""))
        .await
        .expect("no error: the variable is not read");
    assert_eq!(result, None);
}

#[tokio::test]
async fn production_router_logs_in() {
    // `router` as the server builds it: default policy, system clock.
    let dir = tempfile::tempdir().expect("temp dir");
    let cdr = CdrStore::open(dir.path()).await.expect("store opens");
    let accounts = AccountStore::open(cdr.pool().clone(), Policy::default())
        .await
        .expect("accounts open");
    let now = OffsetDateTime::now_utc();
    let password = create_first_administrator(&accounts, now, |_| None)
        .await
        .expect("bootstrap")
        .expect("generated");
    let app = router(HttpState {
        cdr,
        data_dir: dir.path().to_path_buf(),
        live: None,
        reloader: None,
        events: None,
    });
    let body = serde_json::json!({ "username": "admin", "password": password });
    let request = Request::post("/api/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("valid request");
    let response = app.oneshot(request).await.expect("router is infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key(header::SET_COOKIE));
}
