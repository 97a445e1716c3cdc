//! Startup: opens the stores, binds SIP, HTTP and the relay, and runs the
//! engine until SIGINT or SIGTERM.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::config::{Config, MusicOnHold};
use crate::engine::{Engine, Input};

/// Why the PBX could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "data directory {path} is in use by another PBX ({holder}); stop it or give another --data-dir"
    )]
    DataDirInUse { path: String, holder: String },
    #[error("cannot lock data directory {path}: {source}")]
    DataDirLock {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("cannot open the CDR store: {0}")]
    Cdr(#[from] cdr::CdrError),
    #[error("cannot start the media relay: {0}")]
    Media(#[from] media::MediaError),
    #[error("cannot find the PBX's own program to start relay workers from: {0}")]
    OwnProgram(std::io::Error),
    #[error("cannot start SIP: {0}")]
    SipBind(#[from] crate::transport::BindError),
    #[error("cannot start SIP over TLS: {0}")]
    Tls(#[from] crate::tls::TlsFileError),
    #[error("cannot start the DNS resolver of trunk hosts: {0}")]
    Dns(#[from] crate::dns::DnsError),
    #[error("cannot bind HTTP on {addr}: {source}")]
    HttpBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Accounts(#[from] crate::http::BootstrapError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("cannot start the open-call journal's thread: {0}")]
    JournalThread(std::io::Error),
    #[error("cannot open the event store: {0}")]
    Events(#[from] crate::events::EventStoreError),
    #[error(transparent)]
    Catalogue(#[from] crate::catalogue::CatalogueError),
    #[error("cannot open the registrations store: {0}")]
    Registrations(#[from] crate::registrations::RegistrationStoreError),
    #[error("{0}")]
    Unsupported(String),
    #[error("invalid queue setup: {0}")]
    Acd(#[from] acd::AcdError),
    #[error("cannot load the administration changes: {0}")]
    Layer(#[from] crate::config_layer::LayerStoreError),
    #[error("cannot prepare prompts and music on hold: {0}")]
    Sounds(#[from] crate::sounds::SoundsError),
}

/// Starts the PBX on `config`, which was loaded from `source`; SIGHUP and
/// `POST /api/config/reload` read `source` again.
/// Settings the PBX passes to the relay worker processes it starts.
pub(crate) struct RelayWorkers {
    pub(crate) log_level: String,
}

pub(crate) async fn run(
    config: Config,
    source: crate::reload::ConfigSource,
    workers: RelayWorkers,
) -> Result<(), StartError> {
    let shutdown = install_shutdown_signal();
    if let Some(problem) = config.unsupported_destinations().into_iter().next() {
        return Err(StartError::Unsupported(problem));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    // Held until the PBX stops: a second PBX on this folder would take the
    // calls in its journal for calls of a crashed run and hang them up.
    let _data_dir_lock = lock_data_dir(&config.data_dir)?;
    let sounds = crate::sounds::install_built_in(&config.data_dir)?;
    let store = cdr::CdrStore::open_at(&config.data_dir, &config.database_url()).await?;
    // Before the HTTP API starts, whose reports read the events table.
    let event_store = crate::events::EventStore::open(store.pool().clone()).await?;
    let layer_store = crate::config_layer::LayerStore::open(store.pool().clone()).await?;
    let (config, layer, config_text) =
        crate::reload::load_layer(&source, config, &layer_store).await?;
    let queue_log = config.data_dir.join("queue_log");
    // Before the writer opens the file, whose lines must follow the ones
    // restored here.
    crate::queue_log::repair_at_start(&event_store, &queue_log).await;
    let relay_config = media::RelayConfig {
        bind_address: config.media.address,
        ports: config.media.rtp_ports.clone(),
        threads: config.media.relay_threads,
        spin: config.media.relay_spin,
        realtime_priority: config.media.relay_realtime_priority,
        coalesce: config.media.relay_coalesce,
    };
    let relay = match config.media.relay_processes {
        0 => media::Relay::new(relay_config)?,
        count => {
            // The link has no stable layout across builds, so workers must
            // run this very build: /proc/self/exe names it even after an
            // upgrade replaced or removed the file.
            let program = std::path::PathBuf::from("/proc/self/exe");
            if !program.exists() {
                let error = std::io::Error::new(std::io::ErrorKind::NotFound, "no /proc/self/exe");
                return Err(StartError::OwnProgram(error));
            }
            let processes = media::RelayProcesses {
                count,
                program,
                args: vec![
                    "--log-level".into(),
                    workers.log_level.into(),
                    "relay-worker".into(),
                ],
                // So that `ps` and `pidof pbx` list the workers with the PBX,
                // not as "/proc/self/exe".
                arg0: Some("pbx".into()),
            };
            let relay = media::Relay::with_processes(relay_config, processes)?;
            tracing::info!(workers = ?relay.worker_pids(), "relay worker processes started");
            relay
        }
    };

    let (inputs, receiver) = mpsc::channel::<Input>(8192);
    let listeners = listeners(&config)?;
    let (sender, sip_bound, udp) = crate::transport::start(&listeners, inputs.clone()).await?;
    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| StartError::HttpBind {
            addr: config.http.listen,
            source,
        })?;
    let http_bound = http_listener.local_addr().unwrap_or(config.http.listen);
    // Passwords are generated only once the sockets are bound, so a start
    // that fails on a busy port does not print passwords nobody can use,
    // nor store an administrator whose password only that output held.
    let passwords = crate::secrets::resolve_agent_passwords(&config)?;
    crate::http::bootstrap_accounts(&store).await?;
    let (live_requests, live_queue) = mpsc::channel(64);
    let live = crate::live::Live::new(live_requests);
    let reloader =
        std::sync::Arc::new(
            crate::reload::Reloader::new(source, config.clone(), sip_bound, live.clone())
                .with_layer(layer_store, layer, config_text),
        );
    #[cfg(unix)]
    tokio::spawn(crate::reload::reload_on_hangup(reloader.clone()));
    // Committed queue events for the HTTP event stream; the event writer
    // publishes into it.
    let event_feed = crate::events::EventFeed::new(crate::events::FEED_CAPACITY);
    let router = crate::http::router(crate::http::HttpState {
        cdr: store.clone(),
        data_dir: config.data_dir.clone(),
        live: Some(live),
        reloader: Some(reloader),
        events: Some(event_feed.clone()),
    });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(
            http_listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        {
            tracing::error!(%error, "HTTP server stopped");
        }
    });

    let (now, wall) = crate::engine::clock_pair();
    let core_config = core_config(&config, sip_bound, passwords, &sounds);
    let prompts = preload_sounds(&core_config)?;
    let mut core = sip_server::b2bua::Core::new(core_config, now, wall)?;
    let registrations = crate::registrations::RegistrationStore::open(store.pool().clone()).await?;
    let stored = registrations.load(wall).await?;
    for (agent, bindings) in &stored {
        core.restore_bindings(agent, bindings, now);
    }
    if !stored.is_empty() {
        tracing::info!(agents = stored.len(), "restored stored registrations");
    }
    let journal = crate::journal::Journal::open(&config.data_dir, store.pool().clone()).await?;
    let recovered = journal.recover(&store, &config.data_dir).await?;
    if recovered.calls > 0 {
        tracing::warn!(
            calls = recovered.calls,
            "wrote CDRs of calls interrupted by the last stop"
        );
    }
    core.end_interrupted_dialogs(&recovered.legs, now);
    // After the journal, so that a callback cut before the citizen answered
    // has its interrupted CDR and the request comes back.
    restore_callbacks(&mut core, &event_store, now).await?;
    let catalogue = crate::catalogue::Catalogue::open(store.pool().clone()).await?;
    let unfinished = crate::catalogue::recover_unfinished(
        &catalogue,
        &config.data_dir,
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    if unfinished > 0 {
        tracing::warn!(
            recordings = unfinished,
            "catalogued recordings cut by the last stop as interrupted"
        );
    }
    tokio::spawn(
        crate::retention::Retention {
            catalogue: catalogue.clone(),
            accounts: accounts::AccountStore::new(
                store.pool().clone(),
                accounts::Policy::default(),
            ),
            data_dir: config.data_dir.clone(),
            days: config.recording.retention_days,
        }
        .run(),
    );
    let (journal_queue, journal_writes) = mpsc::unbounded_channel();
    let journal_progress = std::sync::Arc::new(crate::journal::JournalProgress::default());
    // A call's SIP messages wait for the journal's commits, and each commit
    // takes several round trips to SQLite's thread. On the runtime's worker
    // (one by default) each of them queued behind the engine's work, so the
    // wait grew with the load (docs/benchmarks.md).
    let journal_writer = crate::journal::spawn_writer(
        journal,
        journal_writes,
        std::sync::Arc::clone(&journal_progress),
    )
    .map_err(StartError::JournalThread)?;
    let (event_queue, event_writes) = mpsc::unbounded_channel();
    let event_writer = tokio::spawn(crate::events::write_events(
        event_store,
        queue_log,
        event_writes,
        event_feed,
    ));
    let (registration_queue, registration_writes) = mpsc::unbounded_channel();
    let registration_writer = tokio::spawn(crate::engine::write_registrations(
        registrations,
        registration_writes,
    ));
    tracing::info!(
        sip = %sip_bound.udp_tcp,
        sip_tls = ?sip_bound.tls,
        sip_ws = ?sip_bound.ws,
        sip_wss = ?sip_bound.wss,
        http = %http_bound,
        rtp_ports = ?config.media.rtp_ports,
        data_dir = %config.data_dir.display(),
        database = %config.database_url(),
        "PBX started"
    );
    let (stored, stored_notices) = mpsc::unbounded_channel();
    let resolver = crate::dns::TrunkResolver::new(config.dns.nameserver)?;
    let engine = Engine {
        trunk_lookups: Vec::new(),
        resolver,
        core,
        stored,
        registrations: registration_queue,
        journal: journal_queue,
        journal_gate: crate::engine::JournalGate::new(journal_progress),
        rtp_timeout: config.media.rtp_timeout,
        sip_counters: crate::metrics::SipCounters::default(),
        events: event_queue,
        request_batch: None,
        sender,
        relay,
        cdr: store,
        catalogue,
        data_dir: config.data_dir.clone(),
        inputs,
        prompts,
        stalls: crate::engine::StallWatch::default(),
        udp_batch: Default::default(),
        late_audio: Default::default(),
        nice: config.sip.engine_nice,
        recording_jitter_window: config.recording.jitter_window,
    };
    // On a worker thread rather than the thread that called `block_on`: a
    // transport task that wakes the engine then usually hands it over on
    // its own thread, where waking the main thread cost a thread switch per
    // SIP message.
    let engine = tokio::spawn(engine.run(receiver, udp, live_queue, stored_notices, shutdown));
    if let Err(error) = engine.await {
        tracing::error!(%error, "the engine task failed");
    }
    // The engine owned the queue's sender, so the writer drains and ends.
    let _ = registration_writer.await;
    let _ = journal_writer.await;
    let _ = event_writer.await;
    tracing::info!("PBX stopped");
    Ok(())
}

/// Locks `pbx.lock` in `data_dir` for this process and writes its PID
/// there, so that a second PBX started on the folder stops with an error
/// naming the first. The kernel releases the lock when the process ends,
/// also on `kill -9`.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    use std::io::Write;

    let path = data_dir.join("pbx.lock");
    let lock_error = |source| StartError::DataDirLock {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => "PID unknown".to_owned(),
                pid => format!("PID {pid}"),
            };
            return Err(StartError::DataDirInUse {
                path: data_dir.display().to_string(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(lock_error(source)),
    }
    file.set_len(0).map_err(lock_error)?;
    writeln!(file, "{}", std::process::id()).map_err(lock_error)?;
    Ok(file)
}

/// Listener addresses from `config`, with the TLS configuration loaded
/// from the certificate files when TLS or WSS listens.
fn listeners(config: &Config) -> Result<crate::transport::Listeners, StartError> {
    let streams = &config.sip.streams;
    let tls = match &streams.certificate {
        Some(files) if streams.tls_listen.is_some() || streams.wss_listen.is_some() => {
            Some(crate::tls::server_config(&files.chain, &files.private_key)?)
        }
        _ => None,
    };
    let with_tls = |addr: Option<SocketAddr>| addr.zip(tls.clone());
    let outbound = &streams.outbound_tls;
    let client_files = outbound
        .client_certificate
        .as_ref()
        .map(|files| (files.chain.as_path(), files.private_key.as_path()));
    let tls_client = crate::tls::client_config(outbound.ca_file.as_deref(), client_files)?;
    Ok(crate::transport::Listeners {
        udp_tcp: config.sip.listen,
        tls: with_tls(streams.tls_listen),
        ws: streams.ws_listen,
        wss: with_tls(streams.wss_listen),
        limits: streams.limits,
        // A reload that changes the trunks keeps this list until a restart.
        flood_limit: (
            config.sip.max_requests_per_source,
            config
                .trunks
                .iter()
                .flat_map(|trunk| trunk.allow.iter().copied())
                .collect(),
        ),
        tls_client: Some(tls_client),
        udp_receive_buffer: config.sip.udp_receive_buffer,
    })
}

pub(crate) fn core_config(
    config: &Config,
    sip_bound: crate::transport::Bound,
    passwords: HashMap<String, String>,
    sounds: &Path,
) -> sip_server::b2bua::CoreConfig {
    let dids = config.dids.iter().map(|did| {
        let route = sip_server::b2bua::DidRoute {
            queue: did.queue.clone(),
            priority: did.priority,
            skills: did.skills.clone(),
            request_type: did.request_type.clone(),
        };
        (did.number.clone(), route)
    });
    sip_server::b2bua::CoreConfig {
        domain: config.sip.domain.clone(),
        sip_address: SocketAddr::new(config.sip.advertised_address, sip_bound.udp_tcp.port()),
        listen_ports: sip_bound.listen_ports(),
        media_address: config.media.advertised_address,
        trunks: config
            .trunks
            .iter()
            .map(|trunk| sip_server::b2bua::Trunk {
                name: trunk.name.clone(),
                allow: trunk.allow.clone(),
                registration: trunk.registration.clone(),
                inbound_credentials: trunk.inbound.clone(),
                outbound: trunk.outbound.clone(),
                numbering: trunk.numbering.clone(),
                trust_identity: trunk.trust_identity,
            })
            .collect(),
        dids: dids.collect(),
        queues: config
            .queues
            .iter()
            .map(|queue| queue.acd.clone())
            .collect(),
        queue_agents: config
            .queues
            .iter()
            .map(|q| (q.name.clone(), q.agents.clone()))
            .collect(),
        agent_skills: config
            .agents
            .iter()
            .map(|agent| (agent.id.clone(), agent.skills.clone()))
            .collect(),
        agent_wrap_up: config
            .agents
            .iter()
            .filter_map(|agent| Some((agent.id.clone(), agent.wrap_up?)))
            .collect(),
        caller_order: config.caller_order,
        ring_in_use: config.ring_in_use,
        registrar: sip_server::registrar::RegistrarConfig {
            min_expires: config.registrar.min_expires,
            max_expires: config.registrar.max_expires,
            default_expires: config.registrar.default_expires,
            max_contacts: config.registrar.max_contacts,
            qualify_interval: config.registrar.qualify_interval,
            qualify_timeout: config.registrar.qualify_timeout,
            flow_timer_secs: flow_timer_secs(config.sip.streams.limits.idle_timeout),
        },
        digest_algorithms: config.sip.digest_algorithms.clone(),
        passwords,
        recording: config.recording.enabled,
        recording_pause_code: config.recording.pause_code.clone(),
        recording_mixed_mono: config.recording.mixed_mono,
        timers: sip_server::b2bua::default_timers(),
        queue_media: config
            .queues
            .iter()
            .map(|queue| (queue.name.clone(), queue_media(queue, sounds)))
            .collect(),
        prompts: sip_server::b2bua::PromptSet::new(prompts_dir(config, sounds)),
        voicemail_max: config.voicemail_max,
        overload: sip_server::b2bua::OverloadLimits {
            max_transactions: config.overload.max_transactions,
            cpu_percent: config.overload.cpu_percent,
            retry_after: config.overload.retry_after,
            max_calls: crate::open_files::call_capacity(),
        },
        session_timer: config.sip.session_timer.clone(),
        surveys: config
            .queues
            .iter()
            .filter_map(|queue| Some((queue.name.clone(), queue.survey.clone()?)))
            .collect(),
    }
}

fn prompts_dir(config: &Config, sounds: &Path) -> PathBuf {
    config
        .media
        .prompts_dir
        .clone()
        .unwrap_or_else(|| sounds.join("en"))
}

fn queue_media(queue: &crate::config::QueueConfig, sounds: &Path) -> sip_server::b2bua::QueueMedia {
    sip_server::b2bua::QueueMedia {
        music_on_hold: match &queue.music_on_hold {
            MusicOnHold::None => None,
            MusicOnHold::BuiltIn => Some(sounds.join("music-on-hold.wav")),
            MusicOnHold::File(path) => Some(path.clone()),
        },
        announce_every: queue.announce_every,
        announce_position: queue.announce_position,
        announce_wait: queue.announce_wait,
    }
}

/// Puts the callback requests a previous run took but did not return back
/// in their queues. A request whose queue is gone is logged and skipped: it
/// keeps its CDR (disposition `callback`) for someone to follow up.
async fn restore_callbacks(
    core: &mut sip_server::b2bua::Core,
    events: &crate::events::EventStore,
    now: std::time::Instant,
) -> Result<(), crate::events::EventStoreError> {
    let pending = events.pending_callbacks().await?;
    let mut restored = 0;
    for request in pending {
        let wall = |ms: i64| {
            std::time::UNIX_EPOCH
                + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or_default())
        };
        let (call, queue) = (request.call.clone(), request.queue.clone());
        let stored = sip_server::b2bua::StoredCallback {
            request: request.call,
            queue: request.queue,
            data: request.data,
            number: request.number,
            arrived: wall(request.arrived_ms),
            failed_attempts: request.failed_attempts,
            retry_at: request.retry_at_ms.map(wall),
        };
        match core.restore_callback(stored, now) {
            Ok(()) => restored += 1,
            Err(error) => tracing::warn!(
                call,
                queue,
                %error,
                "stored callback request not restored"
            ),
        }
    }
    if restored > 0 {
        tracing::info!(requests = restored, "restored callback requests");
    }
    Ok(())
}

/// Decodes every prompt and music file the configuration can play, so a
/// file the player cannot read stops the start.
fn preload_sounds(
    core_config: &sip_server::b2bua::CoreConfig,
) -> Result<crate::sounds::PromptCache, crate::sounds::SoundsError> {
    let mut cache = crate::sounds::PromptCache::default();
    let dir = core_config.prompts.dir();
    let prompts: Vec<PathBuf> = sip_server::b2bua::prompt_names()
        .into_iter()
        .map(|name| dir.join(format!("{name}.wav")))
        .collect();
    let music = core_config
        .queue_media
        .values()
        .filter_map(|media| media.music_on_hold.clone());
    let paths: Vec<PathBuf> = prompts.into_iter().chain(music).collect();
    cache.preload(paths.iter().map(PathBuf::as_path))?;
    Ok(cache)
}

/// Installs the SIGINT and SIGTERM handlers at once and returns a future
/// that ends at the first of them. Installed at the start of [`run`], so a
/// signal that comes while the PBX is still starting (after its HTTP API
/// is up, say) stops it cleanly once the engine runs, instead of killing
/// it with the signal's default action.
fn install_shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                (Ok(mut only), Err(error)) | (Err(error), Ok(mut only)) => {
                    tracing::warn!(%error, "only one of SIGINT and SIGTERM stops the PBX");
                    only.recv().await;
                }
                (Err(error), Err(_)) => {
                    tracing::warn!(%error, "no signal handler; stop the PBX with SIGKILL");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Returns the keep-alive interval for the Flow-Timer of an outbound
/// registration: 120 seconds, or half of `idle_timeout` when that is
/// shorter, so that keep-alives reach the PBX before it closes a quiet
/// connection.
fn flow_timer_secs(idle_timeout: std::time::Duration) -> u32 {
    let half = u32::try_from(idle_timeout.as_secs() / 2).unwrap_or(u32::MAX);
    half.clamp(1, 120)
}
