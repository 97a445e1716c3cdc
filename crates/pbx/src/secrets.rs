//! Agent digest passwords.
//!
//! For each agent the first of these wins: the `password` key of its
//! `[[agents]]` entry, the environment variable `PBX_AGENT_<ID>_PASSWORD`,
//! the password stored in `<data_dir>/agent-passwords.toml`, or a new random
//! one. A new password is added to that file (mode 0600) and printed once to
//! standard output, so later starts read the same password back.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::config::Config;

const STORE_FILE: &str = "agent-passwords.toml";
const GENERATED_LENGTH: usize = 16;
/// Letters and digits without look-alikes (0/O/o, 1/l/I), so a password read
/// off a terminal can be typed into a phone without guessing. 56 symbols give
/// about 93 bits for 16 characters.
const ALPHABET: &[u8] = b"23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";

#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretsError {
    #[error("environment variable {variable} is set but empty; unset it or give a password")]
    EmptyVariable { variable: String },
    #[error("environment variable {variable} is not valid UTF-8")]
    NonUnicodeVariable { variable: String },
    #[error("failed to read agent passwords from {path}: {source}")]
    ReadStore {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid agent password file {path}: {source}")]
    ParseStore {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("agent password file {path} stores an empty password for agent {agent}")]
    EmptyStored { path: PathBuf, agent: String },
    #[error("failed to write agent passwords to {path}: {source}")]
    WriteStore {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Returns each configured agent's password, keyed by agent id, creating
/// and storing the ones that no other source provides.
pub(crate) fn resolve_agent_passwords(
    config: &Config,
) -> Result<HashMap<String, String>, SecretsError> {
    resolve_with(config, |variable| std::env::var_os(variable))
}

/// Returns the variable that can hold the password of `agent`: the id in
/// upper case, with '-' and '.' (allowed in ids) turned into '_'.
pub(crate) fn password_variable(agent: &str) -> String {
    let id: String = agent
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            other => other.to_ascii_uppercase(),
        })
        .collect();
    format!("PBX_AGENT_{id}_PASSWORD")
}

/// Does the work of [`resolve_agent_passwords`] with `lookup` in place of
/// the process environment, which tests cannot change safely.
fn resolve_with(
    config: &Config,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<HashMap<String, String>, SecretsError> {
    let path = config.data_dir.join(STORE_FILE);
    let mut stored = read_store(&path)?;
    let mut passwords = HashMap::with_capacity(config.agents.len());
    let mut generated = Vec::new();
    for agent in &config.agents {
        let password = match (&agent.password, from_environment(&agent.id, &lookup)?) {
            (Some(configured), _) => configured.clone(),
            (None, Some(from_variable)) => from_variable,
            (None, None) => match stored.get(&agent.id) {
                Some(password) => password.clone(),
                None => {
                    let password = generate_password();
                    stored.insert(agent.id.clone(), password.clone());
                    generated.push((agent.id.as_str(), password.clone()));
                    password
                }
            },
        };
        passwords.insert(agent.id.clone(), password);
    }
    if !generated.is_empty() {
        // Stored before printing, so a password shown once is never lost.
        write_store(&path, &stored)?;
        for (agent, password) in generated {
            println!(
                "Generated password for agent {agent}: {password} (stored in {})",
                path.display()
            );
        }
    }
    Ok(passwords)
}

fn from_environment(
    agent: &str,
    lookup: &impl Fn(&str) -> Option<OsString>,
) -> Result<Option<String>, SecretsError> {
    let variable = password_variable(agent);
    let Some(value) = lookup(&variable) else {
        return Ok(None);
    };
    let value = value
        .into_string()
        .map_err(|_| SecretsError::NonUnicodeVariable {
            variable: variable.clone(),
        })?;
    if value.is_empty() {
        return Err(SecretsError::EmptyVariable { variable });
    }
    Ok(Some(value))
}

fn generate_password() -> String {
    // rand::rng() is a cryptographically secure generator seeded by the OS.
    let mut rng = rand::rng();
    (0..GENERATED_LENGTH)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Reads the stored passwords; a missing file is an empty store.
fn read_store(path: &Path) -> Result<BTreeMap<String, String>, SecretsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(SecretsError::ReadStore {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let stored: BTreeMap<String, String> =
        toml::from_str(&text).map_err(|source| SecretsError::ParseStore {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    if let Some((agent, _)) = stored.iter().find(|(_, password)| password.is_empty()) {
        return Err(SecretsError::EmptyStored {
            path: path.to_path_buf(),
            agent: agent.clone(),
        });
    }
    Ok(stored)
}

/// Replaces the store with `stored`: writes a 0600 temporary file next to
/// it, fsyncs it and renames it over, so a crash leaves the old or the new
/// file, never a half-written one.
fn write_store(path: &Path, stored: &BTreeMap<String, String>) -> Result<(), SecretsError> {
    let write_error = |source| SecretsError::WriteStore {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::from(
        "# Agent digest passwords generated by the PBX, by agent id.\n\
         # A password set in the configuration or in PBX_AGENT_<ID>_PASSWORD wins.\n",
    );
    for (agent, password) in stored {
        // toml::Value's Display quotes and escapes both sides.
        let key = toml::Value::String(agent.clone());
        let value = toml::Value::String(password.clone());
        text.push_str(&format!("{key} = {value}\n"));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let temporary = path.with_extension("toml.tmp");
    let mut file = create_private(&temporary).map_err(write_error)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error)?;
    std::fs::rename(&temporary, path).map_err(write_error)
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // mode() applies only when the file is created; a temporary file left
    // by an earlier crash keeps its old mode unless it is set again.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    // NOTE: no owner-only permission on this platform; the file is as
    // readable as the data directory.
    std::fs::File::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;

    fn config_with(data_dir: &Path, agents: &[(&str, Option<&str>)]) -> Config {
        let mut config = Config::embedded_default();
        config.data_dir = data_dir.to_path_buf();
        config.agents = agents
            .iter()
            .map(|(id, password)| AgentConfig {
                id: (*id).to_owned(),
                name: (*id).to_owned(),
                password: password.map(str::to_owned),
                skills: acd::Skills::new(),
                wrap_up: None,
            })
            .collect();
        config
    }

    fn no_environment(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn variable_name_maps_id() {
        assert_eq!(password_variable("1001"), "PBX_AGENT_1001_PASSWORD");
        assert_eq!(
            password_variable("front-desk.2"),
            "PBX_AGENT_FRONT_DESK_2_PASSWORD"
        );
    }

    #[test]
    fn generated_password_uses_alphabet() {
        let password = generate_password();
        assert_eq!(password.len(), GENERATED_LENGTH);
        assert!(
            password.bytes().all(|b| ALPHABET.contains(&b)),
            "{password}"
        );
        assert_ne!(generate_password(), password);
    }

    #[test]
    fn precedence_of_sources() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join(STORE_FILE),
            "\"1001\" = \"stored-1001\"\n\"1002\" = \"stored-1002\"\n\"1003\" = \"stored-1003\"\n",
        )
        .expect("write store");
        let config = config_with(
            dir.path(),
            &[("1001", Some("configured")), ("1002", None), ("1003", None)],
        );
        let environment = |variable: &str| match variable {
            "PBX_AGENT_1001_PASSWORD" => Some(OsString::from("env-1001")),
            "PBX_AGENT_1002_PASSWORD" => Some(OsString::from("env-1002")),
            _ => None,
        };
        let passwords = resolve_with(&config, environment).expect("resolves");
        assert_eq!(passwords["1001"], "configured");
        assert_eq!(passwords["1002"], "env-1002");
        assert_eq!(passwords["1003"], "stored-1003");
        assert_eq!(passwords.len(), 3);
    }

    #[test]
    fn generated_once_then_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let config = config_with(&data_dir, &[("1001", None), ("agent.two", None)]);
        let first = resolve_with(&config, no_environment).expect("first start");
        assert_eq!(first["1001"].len(), GENERATED_LENGTH);
        assert_ne!(first["1001"], first["agent.two"]);

        let path = data_dir.join(STORE_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("store exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = resolve_with(&config, no_environment).expect("second start");
        assert_eq!(second, first);
        assert!(!data_dir.join("agent-passwords.toml.tmp").exists());
    }

    #[test]
    fn new_agent_keeps_stored_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = resolve_with(&config_with(dir.path(), &[("1001", None)]), no_environment)
            .expect("first start");
        let config = config_with(dir.path(), &[("1001", None), ("1002", None)]);
        let second = resolve_with(&config, no_environment).expect("second start");
        assert_eq!(second["1001"], first["1001"]);
        let stored = read_store(&dir.path().join(STORE_FILE)).expect("store readable");
        assert_eq!(stored.get("1002"), Some(&second["1002"]));
    }

    #[test]
    fn no_store_written_when_nothing_generated() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config_with(dir.path(), &[("1001", Some("configured"))]);
        resolve_with(&config, no_environment).expect("resolves");
        assert!(!dir.path().join(STORE_FILE).exists());
    }

    #[test]
    fn empty_variable_is_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config_with(dir.path(), &[("1001", None)]);
        let result = resolve_with(&config, |_| Some(OsString::new()));
        assert!(
            matches!(&result, Err(SecretsError::EmptyVariable { variable })
                if variable == "PBX_AGENT_1001_PASSWORD"),
            "{result:?}"
        );
    }

    #[test]
    fn invalid_store_is_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config_with(dir.path(), &[("1001", None)]);
        let path = dir.path().join(STORE_FILE);
        std::fs::write(&path, "1001 = [\n").expect("write store");
        let result = resolve_with(&config, no_environment);
        assert!(
            matches!(result, Err(SecretsError::ParseStore { .. })),
            "{result:?}"
        );
        std::fs::write(&path, "\"1001\" = \"\"\n").expect("write store");
        let result = resolve_with(&config, no_environment);
        assert!(
            matches!(&result, Err(SecretsError::EmptyStored { agent, .. }) if agent == "1001"),
            "{result:?}"
        );
    }
}
