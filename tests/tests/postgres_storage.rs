//! The PBX with `database.url` on PostgreSQL: an answered call's record and
//! its queue events land in the server's tables, and none in SQLite.
//!
//! Runs on the server named by `PBX_TEST_POSTGRES_URL`, in a schema of its
//! own that is dropped afterwards. Without the variable the test passes
//! without running, except under `CI=true`, where it fails.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdr::database::DatabaseUrl;
use pbx_e2e::fixtures::AudioFixtures;
use pbx_e2e::pbx::{DID, Pbx, PbxConfig, QUEUE};
use pbx_e2e::phones::{self, AgentPhone};
use pbx_e2e::tools::{self, Tool};

const TALK: Duration = Duration::from_secs(2);
const CDR_TIMEOUT: Duration = Duration::from_secs(10);

const PSQL: Tool = Tool {
    program: "psql",
    package: "postgresql-client",
};

/// A schema on the test server, dropped when the value goes out of scope.
struct Schema {
    server: DatabaseUrl,
    name: String,
}

impl Schema {
    fn create(server: DatabaseUrl) -> Schema {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let name = format!("pbx_e2e_{}_{nanos}", std::process::id());
        psql(&server, &format!("CREATE SCHEMA {name}"));
        Schema { server, name }
    }

    /// Returns the server's URL with this schema first on the search path,
    /// so the PBX creates and reads its tables there.
    fn url(&self) -> String {
        let base = self.server.expose();
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}options=-c%20search_path%3D{}", self.name)
    }

    /// Runs `sql` in this schema and returns psql's unaligned output.
    fn query(&self, sql: &str) -> String {
        psql(
            &self.server,
            &format!("SET search_path TO {}; {sql}", self.name),
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        psql(&self.server, &format!("DROP SCHEMA {} CASCADE", self.name));
    }
}

/// Runs `sql` with psql on `server` and returns its output, one row per
/// line and columns separated by `|`.
fn psql(server: &DatabaseUrl, sql: &str) -> String {
    let output = Command::new(PSQL.program)
        .args(["--no-psqlrc", "--quiet", "--tuples-only", "--no-align"])
        .args(["--set", "ON_ERROR_STOP=1"])
        .arg("--dbname")
        .arg(server.expose())
        .arg("--command")
        .arg(sql)
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql on {server} failed for {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn answered_call_stored_in_postgres() {
    let Some(server) = cdr::test_database::postgres_server() else {
        eprintln!("skipped: PBX_TEST_POSTGRES_URL is unset");
        return;
    };
    tools::require(&tools::ALL);
    tools::require(&[PSQL]);
    let schema = Schema::create(server);
    let config = PbxConfig {
        extra: format!("\n[database]\nurl = {:?}\n", schema.url()),
        ..PbxConfig::default()
    };
    let mut pbx = Pbx::start(&config);
    let work_dir = pbx.dir.path().to_path_buf();
    // The phones stream these prompts as their RTP.
    let _audio = AudioFixtures::generate(&work_dir);
    let phone = AgentPhone::new(&config.agents[0]);

    let agent_run = phone.answer(&work_dir, "agent_answer.xml", TALK);
    phone.register(&pbx, &work_dir);
    let caller = phones::caller(&pbx, &work_dir, "caller_hangup.xml", "127.0.0.1", DID)
        .pause(TALK)
        .run();
    caller.assert_success();
    agent_run.wait().assert_success();
    let caller_call_id = caller
        .call_id()
        .expect("Call-ID in the caller's message log");
    // The API reads the record back from the configured database.
    let record = pbx.wait_for_call(&caller_call_id, CDR_TIMEOUT);
    let id = record["id"].as_str().expect("id is a string").to_owned();
    pbx.stop();

    let row = schema.query(&format!(
        "SELECT disposition, queue, agent, caller_call_id FROM call_records WHERE id = '{id}'"
    ));
    assert_eq!(row, format!("answered|{QUEUE}|1001|{caller_call_id}"));
    let kinds = schema.query(&format!(
        "SELECT kind FROM queue_events WHERE call_id = '{id}' ORDER BY seq"
    ));
    let kinds: Vec<&str> = kinds.lines().collect();
    for expected in ["call_enqueued", "offer_answered", "call_completed"] {
        assert!(
            kinds.contains(&expected),
            "{expected} missing from the call's events {kinds:?}"
        );
    }
    let agent_changes = schema.query(
        "SELECT COUNT(*) FROM queue_events \
         WHERE kind = 'agent_state_changed' AND agent = '1001'",
    );
    assert_ne!(agent_changes, "0", "agent state changes stored");
    let migrations = schema.query("SELECT COUNT(*) FROM _sqlx_migrations");
    assert_eq!(
        migrations,
        postgres_migration_files().to_string(),
        "every store's migrations applied"
    );
    assert!(
        !pbx.data_dir.join("pbx.sqlite").exists(),
        "no SQLite database beside a configured PostgreSQL one"
    );
}

/// Number of PostgreSQL migration files of the three crates with a
/// database, so a new migration needs no change here.
fn postgres_migration_files() -> usize {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    ["accounts", "cdr", "pbx"]
        .iter()
        .map(|name| {
            std::fs::read_dir(crates.join(name).join("migrations/postgres"))
                .expect("migration folder readable")
                .filter_map(Result::ok)
                .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "sql"))
                .count()
        })
        .sum()
}
