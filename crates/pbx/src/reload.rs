//! Configuration reload on SIGHUP and `POST /api/config/reload`: the file
//! the PBX started with is read again, with the same command-line
//! overrides, validated like at start, and applied to the running engine.
//!
//! A file that does not validate changes nothing. Queues, agents, skills,
//! passwords, memberships, DIDs, trunks, the caller order and recording are
//! applied without touching calls in progress (see
//! `sip_server::b2bua::Core::reconfigure`). The data folder and the
//! `[sip]`, `[http]`, `[media]` and `[registrar]` sections are bound to
//! sockets and stores opened at start, `recording.retention_days` to the
//! retention task started with them, and `recording.jitter_window_ms` to
//! the engine: a change there is reported as needing a restart and the
//! running value stays.

use std::path::PathBuf;

use serde::Serialize;
use tokio::sync::Mutex;

use crate::config::{Config, ConfigErrors, Overrides};
use crate::config_layer::{Entry, Layer, LayerStore, LayerStoreError, Rejected};
use crate::live::{ChangeError, EngineUnavailable, Live};

/// Origin of the running configuration.
#[derive(Clone, Debug)]
pub(crate) enum ConfigSource {
    File {
        path: PathBuf,
        overrides: Overrides,
    },
    /// The default compiled into the binary, which cannot change; the
    /// administration layer still applies over it.
    Embedded {
        overrides: Overrides,
    },
}

impl ConfigSource {
    /// Reads the text, and returns it with its origin and overrides.
    fn read(&self) -> Result<(String, String, &Overrides), ConfigErrors> {
        match self {
            ConfigSource::File { path, overrides } => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| ConfigErrors::read(path, error))?;
                Ok((text, path.display().to_string(), overrides))
            }
            ConfigSource::Embedded { overrides } => Ok((
                crate::config::EMBEDDED_TEXT.to_owned(),
                crate::config::EMBEDDED_ORIGIN.to_owned(),
                overrides,
            )),
        }
    }
}

/// Outcome of a reload that was applied.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct ReloadReport {
    /// The file read.
    pub(crate) file: String,
    /// One line per change made to the running PBX; empty when the file
    /// changed nothing that a reload applies.
    pub(crate) applied: Vec<String>,
    /// Keys whose new value needs a restart; their running value stays.
    pub(crate) restart_needed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    #[error(
        "the PBX runs on the built-in default configuration, which cannot change; \
         start it with --config FILE to reload a file"
    )]
    Embedded,
    /// Every problem of the file, each naming the file and the key.
    #[error("the configuration was not reloaded:\n{}", .0.errors)]
    Invalid(Rejected),
    #[error("the configuration was not reloaded:\n{}", .problems.join("\n"))]
    Unsupported { problems: Vec<String> },
    #[error("the configuration was not reloaded: {0}")]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error(transparent)]
    Engine(#[from] EngineUnavailable),
    /// The engine applied the file, but the events of the change (members
    /// added or removed) could not be stored.
    #[error("the configuration was applied, but {0}")]
    NotDurable(crate::events::NotDurable),
    #[error("the change was not applied: {0}")]
    Layer(#[from] LayerStoreError),
    #[error("the change was not applied: no database holds administration changes here")]
    NoLayerStore,
}

impl From<ConfigErrors> for ReloadError {
    fn from(errors: ConfigErrors) -> ReloadError {
        ReloadError::Invalid(errors.into())
    }
}

/// The configuration in force, with the running values of the settings
/// that need a restart.
struct Running {
    config: Config,
    /// The TOML text the configuration came from, with the layer merged in.
    text: String,
    layer: Layer,
}

/// Reads, checks and applies the configuration; one reload at a time.
pub(crate) struct Reloader {
    source: ConfigSource,
    /// SIP address the core was started with, which a reload keeps.
    sip_bound: crate::transport::Bound,
    running: Mutex<Running>,
    live: Live,
    /// Store of the administration changes; None in tests that have no
    /// database.
    layer_store: Option<LayerStore>,
}

impl Reloader {
    /// Starts from `running`, loaded from `source` with an empty layer.
    pub(crate) fn new(
        source: ConfigSource,
        running: Config,
        sip_bound: crate::transport::Bound,
        live: Live,
    ) -> Reloader {
        let text = source.read().map(|(text, _, _)| text).unwrap_or_default();
        Reloader {
            source,
            sip_bound,
            running: Mutex::new(Running {
                config: running,
                text,
                layer: Layer::default(),
            }),
            live,
            layer_store: None,
        }
    }

    /// Keeps administration changes in `store`; `layer` and `text` are the
    /// stored changes and the merged text that `running` came from.
    pub(crate) fn with_layer(mut self, store: LayerStore, layer: Layer, text: String) -> Reloader {
        self.layer_store = Some(store);
        let running = self.running.get_mut();
        running.layer = layer;
        running.text = text;
        self
    }

    /// Returns the scorecard criteria in force, which a reload replaces.
    pub(crate) async fn qa(&self) -> crate::config::QaConfig {
        self.running.lock().await.config.qa.clone()
    }

    /// Returns the report settings in force, which a reload replaces.
    pub(crate) async fn reports(&self) -> crate::config::ReportsConfig {
        self.running.lock().await.config.reports.clone()
    }

    /// Returns the merged TOML text in force and the administration layer.
    pub(crate) async fn definitions(&self) -> (String, Layer) {
        let running = self.running.lock().await;
        (running.text.clone(), running.layer.clone())
    }

    /// Reloads the file and applies it; logs the outcome either way.
    pub(crate) async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let result = self.try_reload().await;
        log_outcome(
            &result,
            "configuration reloaded",
            "configuration reload rejected",
        );
        result
    }

    async fn try_reload(&self) -> Result<ReloadReport, ReloadError> {
        if let ConfigSource::Embedded { .. } = &self.source {
            return Err(ReloadError::Embedded);
        }
        let mut running = self.running.lock().await;
        let layer = running.layer.clone();
        self.load_and_apply(&mut running, layer).await
    }

    /// Stores an administrator's changes and applies them with the file as
    /// it is now, through the same checks as a reload. Changes that do not
    /// validate or do not apply are not kept.
    pub(crate) async fn apply_changes(
        &self,
        entries: Vec<Entry>,
        at_ms: i64,
        user: &str,
    ) -> Result<ReloadReport, ReloadError> {
        let store = self.layer_store.as_ref().ok_or(ReloadError::NoLayerStore)?;
        let mut running = self.running.lock().await;
        let mut layer = running.layer.clone();
        for entry in &entries {
            layer.set(entry.clone());
        }
        // Check before storing, so a rejected change leaves no row.
        self.load(&running, &layer)?;
        store.save_all(&entries, at_ms, user).await?;
        let previous = running.layer.clone();
        let result = self.load_and_apply(&mut running, layer).await;
        // The file may have changed since the check, or the engine may not
        // answer; only NotDurable means the change is in force regardless.
        if matches!(&result, Err(error) if !matches!(error, ReloadError::NotDurable(_))) {
            undo(store, &previous, &entries, at_ms, user).await;
        }
        log_outcome(
            &result,
            "administration change applied",
            "administration change rejected",
        );
        result
    }

    /// Reads the source and merges `layer` into it, with every check a
    /// start makes.
    fn load(
        &self,
        running: &Running,
        layer: &Layer,
    ) -> Result<(Config, String, String), ReloadError> {
        let (text, origin, overrides) = self.source.read()?;
        let (loaded, merged) =
            crate::config_layer::parse_with_layer(&text, &origin, overrides, layer)
                .map_err(ReloadError::Invalid)?;
        let problems: Vec<String> = loaded
            .unsupported_destinations()
            .into_iter()
            .chain(emptied_routing(&running.config, &loaded))
            .map(|problem| format!("{origin}: {problem}"))
            .collect();
        if !problems.is_empty() {
            return Err(ReloadError::Unsupported { problems });
        }
        Ok((loaded, merged.text, origin))
    }

    async fn load_and_apply(
        &self,
        running: &mut Running,
        layer: Layer,
    ) -> Result<ReloadReport, ReloadError> {
        let (loaded, text, origin) = self.load(running, &layer)?;
        let restart_needed = restart_needed(&running.config, &loaded);
        let mut applied_config = Config {
            data_dir: running.config.data_dir.clone(),
            database: running.config.database.clone(),
            sip: running.config.sip.clone(),
            http: running.config.http.clone(),
            media: running.config.media.clone(),
            registrar: running.config.registrar.clone(),
            ..loaded
        };
        applied_config.recording.retention_days = running.config.recording.retention_days;
        applied_config.recording.jitter_window = running.config.recording.jitter_window;
        let passwords = crate::secrets::resolve_agent_passwords(&applied_config)?;
        let sounds = crate::sounds::built_in_dir(&applied_config.data_dir);
        let core_config =
            crate::server::core_config(&applied_config, self.sip_bound, passwords, &sounds);
        let mut applied = match self.live.reconfigure(core_config).await {
            Ok(applied) => applied,
            Err(ChangeError::Engine(error)) => return Err(error.into()),
            Err(ChangeError::NotDurable(error)) => {
                // The running PBX has the new settings all the same.
                *running = Running {
                    config: applied_config,
                    text,
                    layer,
                };
                return Err(ReloadError::NotDurable(error));
            }
        };
        // The engine does not see these; the HTTP API reads them from here.
        if running.config.qa != applied_config.qa {
            applied.push("scorecard criteria changed".to_owned());
        }
        if running.config.reports != applied_config.reports {
            applied.push("report settings changed".to_owned());
        }
        if running.config.skills != applied_config.skills {
            applied.push("skills catalogue changed".to_owned());
        }
        *running = Running {
            config: applied_config,
            text,
            layer,
        };
        Ok(ReloadReport {
            file: origin,
            applied,
            restart_needed,
        })
    }
}

/// Restores the rows that `entries` replaced, after the change failed to
/// apply.
async fn undo(store: &LayerStore, previous: &Layer, entries: &[Entry], at_ms: i64, user: &str) {
    for entry in entries {
        let undone = match previous.get(entry.kind, &entry.key) {
            Some(before) => store.save(before, at_ms, user).await,
            None => store.forget(entry.kind, &entry.key).await,
        };
        if let Err(error) = undone {
            tracing::error!(
                %error,
                key = entry.key,
                "failed to undo an administration change the engine did not take"
            );
        }
    }
}

fn log_outcome(result: &Result<ReloadReport, ReloadError>, applied: &str, rejected: &str) {
    match result {
        Ok(report) => {
            for key in &report.restart_needed {
                tracing::warn!(
                    file = report.file,
                    key,
                    "configuration changed a setting that needs a restart; \
                     the running value stays until then"
                );
            }
            tracing::info!(
                file = report.file,
                changes = report.applied.len(),
                restart_needed = report.restart_needed.len(),
                "{applied}"
            );
        }
        Err(error) => tracing::error!(%error, "{rejected}"),
    }
}

/// Loads the stored administration changes and merges them into the
/// configuration read from `source` at start. Changes that no longer
/// validate against the file are logged and left out, so the PBX starts
/// on the file alone instead of not at all.
pub(crate) async fn load_layer(
    source: &ConfigSource,
    config: Config,
    store: &LayerStore,
) -> Result<(Config, Layer, String), LayerStoreError> {
    let layer = store.load().await?;
    let Ok((text, origin, overrides)) = source.read() else {
        return Ok((config, layer, String::new()));
    };
    if layer.is_empty() {
        return Ok((config, layer, text));
    }
    let problems = match crate::config_layer::parse_with_layer(&text, &origin, overrides, &layer) {
        Ok((merged_config, merged)) => {
            let unsupported = merged_config.unsupported_destinations();
            if unsupported.is_empty() {
                tracing::info!(
                    changes = layer.entries().len(),
                    "applied the stored administration changes over {origin}"
                );
                return Ok((merged_config, layer, merged.text));
            }
            unsupported.join("\n")
        }
        Err(rejected) => rejected.errors.to_string(),
    };
    // The layer stays loaded, so that the API shows it and the next change
    // is checked with it; until it validates, reloads and changes fail.
    // TODO: return these errors from the administration API too, not only
    // in the log.
    tracing::error!(
        errors = problems,
        "the stored administration changes do not validate with {origin}; \
         starting on the file alone"
    );
    Ok((config, layer, text))
}

/// Returns a problem for each table the new file leaves empty while the
/// running configuration uses it: a truncated or half-saved file would
/// otherwise take every number, trunk or queue out of service at once.
pub(crate) fn emptied_routing(old: &Config, new: &Config) -> Vec<String> {
    let tables = [
        ("dids", old.dids.len(), new.dids.len()),
        ("trunks", old.trunks.len(), new.trunks.len()),
        ("queues", old.queues.len(), new.queues.len()),
    ];
    tables
        .into_iter()
        .filter(|(_, before, after)| *before > 0 && *after == 0)
        .map(|(table, before, _)| {
            format!(
                "the file has no [[{table}]] while {before} are in use; a reload does not remove \
                 them all (restart the PBX to run without any)"
            )
        })
        .collect()
}

/// Returns the keys of settings that differ and need a restart.
pub(crate) fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut check = |key: &str, changed: bool| {
        if changed {
            keys.push(key.to_owned());
        }
    };
    check("data_dir", old.data_dir != new.data_dir);
    check("database.url", old.database != new.database);
    // The retention task reads it once at start.
    check(
        "recording.retention_days",
        old.recording.retention_days != new.recording.retention_days,
    );
    // The engine reads it once at start.
    check(
        "recording.jitter_window_ms",
        old.recording.jitter_window != new.recording.jitter_window,
    );
    check("sip.listen", old.sip.listen != new.sip.listen);
    check(
        "sip.advertised_address",
        old.sip.advertised_address != new.sip.advertised_address,
    );
    check("sip.domain", old.sip.domain != new.sip.domain);
    check(
        "sip.digest_algorithms",
        old.sip.digest_algorithms != new.sip.digest_algorithms,
    );
    let (old_streams, new_streams) = (&old.sip.streams, &new.sip.streams);
    check(
        "sip.tls_listen",
        old_streams.tls_listen != new_streams.tls_listen,
    );
    check(
        "sip.ws_listen",
        old_streams.ws_listen != new_streams.ws_listen,
    );
    check(
        "sip.wss_listen",
        old_streams.wss_listen != new_streams.wss_listen,
    );
    // NOTE: the certificate files are read only at start. A changed path is
    // reported here, but a certificate renewed at the same path is not.
    check(
        "sip.tls_certificate",
        old_streams.certificate != new_streams.certificate,
    );
    let (old_limits, new_limits) = (old_streams.limits, new_streams.limits);
    check(
        "sip.max_message_bytes",
        old_limits.max_message_bytes != new_limits.max_message_bytes,
    );
    check(
        "sip.max_connections",
        old_limits.max_connections != new_limits.max_connections,
    );
    check(
        "sip.max_connections_per_address",
        old_limits.max_connections_per_address != new_limits.max_connections_per_address,
    );
    check(
        "sip.idle_timeout_secs",
        old_limits.idle_timeout != new_limits.idle_timeout,
    );
    check(
        "sip.message_timeout_secs",
        old_limits.message_timeout != new_limits.message_timeout,
    );
    check(
        "sip.max_connection_attempts_per_address_per_sec",
        old_limits.max_connection_attempts_per_sec != new_limits.max_connection_attempts_per_sec,
    );
    check("http.listen", old.http.listen != new.http.listen);
    check("media.address", old.media.address != new.media.address);
    check(
        "media.advertised_address",
        old.media.advertised_address != new.media.advertised_address,
    );
    check(
        "media.rtp_ports",
        old.media.rtp_ports != new.media.rtp_ports,
    );
    check(
        "media.rtp_timeout_secs",
        old.media.rtp_timeout != new.media.rtp_timeout,
    );
    check(
        "media.prompts_dir",
        old.media.prompts_dir != new.media.prompts_dir,
    );
    // The relay is built once, at the start.
    let (a, b) = (&old.media, &new.media);
    check("media.relay_threads", a.relay_threads != b.relay_threads);
    check("media.relay_spin_us", a.relay_spin != b.relay_spin);
    check(
        "media.relay_realtime_priority",
        a.relay_realtime_priority != b.relay_realtime_priority,
    );
    check(
        "media.relay_coalesce_us",
        a.relay_coalesce != b.relay_coalesce,
    );
    check(
        "media.relay_processes",
        a.relay_processes != b.relay_processes,
    );
    let (a, b) = (&old.registrar, &new.registrar);
    check("registrar.min_expires_secs", a.min_expires != b.min_expires);
    check("registrar.max_expires_secs", a.max_expires != b.max_expires);
    check(
        "registrar.default_expires_secs",
        a.default_expires != b.default_expires,
    );
    check("registrar.max_contacts", a.max_contacts != b.max_contacts);
    check(
        "registrar.qualify_interval_secs",
        a.qualify_interval != b.qualify_interval,
    );
    check(
        "registrar.qualify_timeout_secs",
        a.qualify_timeout != b.qualify_timeout,
    );
    keys
}

/// Reloads on every SIGHUP until the process ends.
#[cfg(unix)]
pub(crate) async fn reload_on_hangup(reloader: std::sync::Arc<Reloader>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP; reload through the API only");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the configuration");
        // `reload` logs the outcome.
        let _ = reloader.reload().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emptied_routing_is_refused() {
        let old = Config::embedded_default();
        let empty = Config::parse("", "empty.toml").unwrap();
        assert_eq!(
            emptied_routing(&old, &empty),
            [
                "the file has no [[dids]] while 1 are in use; a reload does not remove them all \
                 (restart the PBX to run without any)",
                "the file has no [[trunks]] while 1 are in use; a reload does not remove them all \
                 (restart the PBX to run without any)",
                "the file has no [[queues]] while 1 are in use; a reload does not remove them all \
                 (restart the PBX to run without any)",
            ]
        );
        assert!(emptied_routing(&old, &old).is_empty());
    }

    #[test]
    fn restart_needed_names_the_changed_keys() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        assert!(restart_needed(&old, &new).is_empty());
        new.database = cdr::database::DatabaseUrl::parse("postgres://pbx@db/pbx").ok();
        new.sip.listen = "127.0.0.1:5070".parse().unwrap();
        new.sip.streams.ws_listen = Some("127.0.0.1:5066".parse().unwrap());
        new.media.rtp_ports = 30000..=30099;
        new.media.relay_processes = 3;
        new.registrar.max_contacts = 2;
        new.recording.jitter_window = std::time::Duration::from_millis(300);
        new.queues.clear();
        assert_eq!(
            restart_needed(&old, &new),
            [
                "database.url",
                "recording.jitter_window_ms",
                "sip.listen",
                "sip.ws_listen",
                "media.rtp_ports",
                "media.relay_processes",
                "registrar.max_contacts"
            ]
        );
    }
}
