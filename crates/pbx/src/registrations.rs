//! Registrar bindings in the database, so a restart does not make every agent
//! unreachable until its phone registers again.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sip_server::registrar::StoredBinding;
use sip_server::transaction::TransportKind;
use sqlx::{AnyPool, Row};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistrationStoreError {
    #[error("failed to migrate the registrations table: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("registrations query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// Rows (or agents) per statement of [`RegistrationStore::save_all`]: at
/// nine values a row this stays far below SQLite's limit of 32,766 bound
/// values per statement and PostgreSQL's of 65,535.
const ROWS_PER_STATEMENT: usize = 500;

#[derive(Clone)]
pub(crate) struct RegistrationStore {
    pool: AnyPool,
}

impl RegistrationStore {
    /// Uses the PBX database behind `pool`, creating the table if needed.
    pub(crate) async fn open(pool: AnyPool) -> Result<RegistrationStore, RegistrationStoreError> {
        crate::storage::migrate(&pool).await?;
        Ok(RegistrationStore { pool })
    }

    /// Replaces the stored bindings of `agent` with `bindings`, leaving out
    /// those registered over TLS or WebSocket.
    #[cfg(test)]
    pub(crate) async fn save(
        &self,
        agent: &str,
        bindings: &[StoredBinding],
    ) -> Result<(), RegistrationStoreError> {
        self.save_all(&[(agent.to_owned(), bindings.to_vec())])
            .await
    }

    /// Replaces the stored bindings of each agent in `changes`, in one
    /// transaction: under a registration storm one commit (and one `fsync`)
    /// per batch instead of per REGISTER keeps the writer ahead.
    pub(crate) async fn save_all(
        &self,
        changes: &[(String, Vec<StoredBinding>)],
    ) -> Result<(), RegistrationStoreError> {
        let backend = cdr::database::Backend::of(&self.pool);
        let mut transaction = self.pool.begin().await?;
        // Each statement is a round trip to the database's worker, so the
        // batch goes in a few statements of many rows rather than two per
        // agent.
        for agents in changes.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM registrations WHERE agent IN {}",
                cdr::database::placeholder_rows(backend, 1, 1, agents.len())
            );
            let mut delete = sqlx::query(&sql);
            for (agent, _) in agents {
                delete = delete.bind(agent);
            }
            delete.execute(&mut *transaction).await?;
        }
        // Such a binding is reached only over the connection it came on,
        // which a restart closes, so restoring it would fork calls to a
        // phone nobody can reach.
        let durable: Vec<(&str, &StoredBinding)> = changes
            .iter()
            .flat_map(|(agent, bindings)| bindings.iter().map(move |b| (agent.as_str(), b)))
            .filter(|(_, binding)| {
                matches!(binding.transport, TransportKind::Udp | TransportKind::Tcp)
            })
            .collect();
        for rows in durable.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO registrations \
                 (agent, contact, expires_at_ms, call_id, cseq, transport, address, path, \
                 instance) VALUES {}",
                cdr::database::placeholder_rows(backend, 1, rows.len(), 9)
            );
            let mut insert = sqlx::query(&sql);
            for (agent, binding) in rows {
                insert = insert
                    .bind(*agent)
                    .bind(&binding.contact)
                    .bind(unix_millis(binding.expires_at))
                    .bind(&binding.call_id)
                    .bind(i64::from(binding.cseq))
                    .bind(binding.transport.via_token().to_ascii_lowercase())
                    .bind(binding.address.to_string())
                    .bind(binding.path.join("\n"))
                    .bind(binding.instance.clone());
            }
            insert.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Every stored binding that has not expired at `now`, by agent. Rows
    /// that do not decode are skipped with a warning.
    pub(crate) async fn load(
        &self,
        now: SystemTime,
    ) -> Result<HashMap<String, Vec<StoredBinding>>, RegistrationStoreError> {
        let rows = sqlx::query(
            "SELECT agent, contact, expires_at_ms, call_id, cseq, transport, address, path, \
             instance FROM registrations WHERE expires_at_ms > $1",
        )
        .bind(unix_millis(now))
        .fetch_all(&self.pool)
        .await?;
        let mut bindings: HashMap<String, Vec<StoredBinding>> = HashMap::new();
        for row in rows {
            let agent: String = row.try_get("agent")?;
            match decode(&row) {
                Some(binding) => bindings.entry(agent).or_default().push(binding),
                None => tracing::warn!(agent, "stored registration does not decode; skipped"),
            }
        }
        Ok(bindings)
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Option<StoredBinding> {
    let expires_ms: i64 = row.try_get("expires_at_ms").ok()?;
    let transport = TransportKind::from_token(&row.try_get::<String, _>("transport").ok()?)?;
    let path: String = row.try_get("path").ok()?;
    Some(StoredBinding {
        contact: row.try_get("contact").ok()?,
        expires_at: UNIX_EPOCH + Duration::from_millis(u64::try_from(expires_ms).ok()?),
        call_id: row.try_get("call_id").ok()?,
        cseq: u32::try_from(row.try_get::<i64, _>("cseq").ok()?).ok()?,
        transport,
        address: row.try_get::<String, _>("address").ok()?.parse().ok()?,
        path: path.lines().map(str::to_owned).collect(),
        instance: row.try_get("instance").ok()?,
    })
}

fn unix_millis(at: SystemTime) -> i64 {
    let millis = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(millis).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdr::test_database::TestDatabase;

    fn binding(contact: &str, expires_in: Duration) -> StoredBinding {
        StoredBinding {
            contact: contact.to_owned(),
            expires_at: SystemTime::now() + expires_in,
            call_id: "reg-1@test".to_owned(),
            cseq: 7,
            transport: TransportKind::Udp,
            address: "127.0.0.1:5062".parse().unwrap(),
            path: Vec::new(),
            instance: None,
        }
    }

    async fn save_replaces_and_load_skips_expired(database: TestDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let cdr = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path()))
            .await
            .unwrap();
        let store = RegistrationStore::open(cdr.pool().clone()).await.unwrap();
        let first = binding("<sip:1001@127.0.0.1:5062>", Duration::from_secs(600));
        store
            .save("1001", std::slice::from_ref(&first))
            .await
            .unwrap();
        let mut second = binding("<sip:1001@127.0.0.1:5064>", Duration::from_secs(600));
        second.path = vec![
            "<sip:198.51.100.5:5070;lr>".to_owned(),
            "<sip:edge.example.net;lr;ob>".to_owned(),
        ];
        second.instance = Some("urn:uuid:00000000-0000-1000-8000-000a95a0e128".to_owned());
        let expired = binding("<sip:1001@127.0.0.1:5066>", Duration::ZERO);
        store
            .save("1001", &[second.clone(), expired])
            .await
            .unwrap();
        store.save("1002", &[]).await.unwrap();

        let loaded = store.load(SystemTime::now()).await.unwrap();
        assert_eq!(loaded.len(), 1);
        let stored = &loaded["1001"];
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].contact, second.contact);
        assert_eq!(stored[0].cseq, 7);
        assert_eq!(stored[0].address, second.address);
        assert_eq!(stored[0].path, second.path);
        assert_eq!(stored[0].instance, second.instance);
    }

    async fn a_batch_over_several_statements_replaces_every_agent(database: TestDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let cdr = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path()))
            .await
            .unwrap();
        let store = RegistrationStore::open(cdr.pool().clone()).await.unwrap();
        let agents = ROWS_PER_STATEMENT * 2 + 7;
        let contact = |i: usize, port: u16| format!("<sip:a{i}@127.0.0.1:{port}>");
        let first: Vec<(String, Vec<StoredBinding>)> = (0..agents)
            .map(|i| {
                let bindings = vec![
                    binding(&contact(i, 5000), Duration::from_secs(600)),
                    binding(&contact(i, 5001), Duration::from_secs(600)),
                ];
                (format!("a{i}"), bindings)
            })
            .collect();
        store.save_all(&first).await.unwrap();
        // Even agents move to one new contact, odd ones unregister.
        let second: Vec<(String, Vec<StoredBinding>)> = (0..agents)
            .map(|i| {
                let bindings = if i % 2 == 0 {
                    vec![binding(&contact(i, 6000), Duration::from_secs(600))]
                } else {
                    Vec::new()
                };
                (format!("a{i}"), bindings)
            })
            .collect();
        store.save_all(&second).await.unwrap();

        let loaded = store.load(SystemTime::now()).await.unwrap();
        assert_eq!(loaded.len(), agents.div_ceil(2));
        for i in 0..agents {
            match loaded.get(&format!("a{i}")) {
                Some(stored) => {
                    assert_eq!(i % 2, 0, "agent a{i} unregistered but restored");
                    assert_eq!(stored.len(), 1);
                    assert_eq!(stored[0].contact, contact(i, 6000));
                }
                None => assert_eq!(i % 2, 1, "agent a{i} lost its binding"),
            }
        }
    }

    async fn connection_bound_contacts_are_not_stored(database: TestDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let cdr = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path()))
            .await
            .unwrap();
        let store = RegistrationStore::open(cdr.pool().clone()).await.unwrap();
        let udp = binding("<sip:1001@127.0.0.1:5062>", Duration::from_secs(600));
        let mut bindings = vec![udp.clone()];
        for (port, transport) in [
            (5070, TransportKind::Tcp),
            (5071, TransportKind::Tls),
            (5072, TransportKind::Ws),
            (5073, TransportKind::Wss),
        ] {
            let mut other = binding(
                &format!("<sip:1001@127.0.0.1:{port}>"),
                Duration::from_secs(600),
            );
            other.transport = transport;
            bindings.push(other);
        }
        store.save("1001", &bindings).await.unwrap();
        let loaded = store.load(SystemTime::now()).await.unwrap();
        let transports: Vec<TransportKind> = loaded["1001"]
            .iter()
            .map(|binding| binding.transport)
            .collect();
        assert_eq!(transports.len(), 2, "{transports:?}");
        assert!(transports.contains(&TransportKind::Udp));
        assert!(transports.contains(&TransportKind::Tcp));

        // With the WebSocket phone still there, the UDP phone unregisters.
        store.save("1001", &bindings[2..]).await.unwrap();
        let loaded = store.load(SystemTime::now()).await.unwrap();
        assert!(loaded.get("1001").is_none_or(Vec::is_empty), "{loaded:?}");
    }

    async fn reopening_the_cdr_store_after_this_migration_works(database: TestDatabase) {
        let dir = tempfile::tempdir().unwrap();
        let cdr = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path()))
            .await
            .unwrap();
        RegistrationStore::open(cdr.pool().clone()).await.unwrap();
        drop(cdr);
        let reopened = cdr::CdrStore::open_at(dir.path(), &database.url(dir.path())).await;
        assert!(reopened.is_ok(), "{:?}", reopened.err());
    }

    cdr::storage_tests!(
        save_replaces_and_load_skips_expired,
        connection_bound_contacts_are_not_stored,
        reopening_the_cdr_store_after_this_migration_works,
        a_batch_over_several_statements_replaces_every_agent,
    );
}
