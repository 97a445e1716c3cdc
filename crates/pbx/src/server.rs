//! Startup: opens the stores, binds SIP, HTTP and the relay, and runs the
//! engine until SIGINT or SIGTERM.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::sync::mpsc;

use crate::config::Config;
use crate::engine::{Engine, Input};

/// Why the PBX could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("cannot open the CDR store: {0}")]
    Cdr(#[from] cdr::CdrError),
    #[error("cannot start the media relay: {0}")]
    Media(#[from] media::MediaError),
    #[error("cannot bind SIP on {addr}: {source}")]
    SipBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind HTTP on {addr}: {source}")]
    HttpBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid queue setup: {0}")]
    Acd(#[from] acd::AcdError),
}

pub(crate) async fn run(config: Config) -> Result<(), StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let passwords = crate::secrets::resolve_agent_passwords(&config)?;
    let store = cdr::CdrStore::open(&config.data_dir).await?;
    let relay = media::Relay::new(media::RelayConfig {
        bind_address: config.media.address,
        ports: config.media.rtp_ports.clone(),
    })?;

    let (inputs, receiver) = mpsc::channel::<Input>(8192);
    let (sender, sip_bound) = crate::transport::start(config.sip.listen, inputs.clone())
        .await
        .map_err(|source| StartError::SipBind {
            addr: config.sip.listen,
            source,
        })?;
    let http_listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| StartError::HttpBind {
            addr: config.http.listen,
            source,
        })?;
    let http_bound = http_listener.local_addr().unwrap_or(config.http.listen);
    let router = crate::http::router(crate::http::HttpState {
        cdr: store.clone(),
        data_dir: config.data_dir.clone(),
    });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(http_listener, router).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    });

    let (now, wall) = crate::engine::clock_pair();
    let core_config = core_config(&config, sip_bound, passwords);
    let core = sip_server::b2bua::Core::new(core_config, now, wall)?;
    tracing::info!(
        sip = %sip_bound,
        http = %http_bound,
        rtp_ports = ?config.media.rtp_ports,
        data_dir = %config.data_dir.display(),
        "PBX started"
    );
    let engine = Engine {
        core,
        sender,
        relay,
        cdr: store,
        data_dir: config.data_dir.clone(),
        inputs,
    };
    engine.run(receiver, shutdown_signal()).await;
    tracing::info!("PBX stopped");
    Ok(())
}

fn core_config(
    config: &Config,
    sip_bound: SocketAddr,
    passwords: HashMap<String, String>,
) -> sip_server::b2bua::CoreConfig {
    let queues = config
        .queues
        .iter()
        .map(|queue| acd::QueueConfig {
            name: queue.name.clone(),
            ring_timeout: queue.ring_timeout,
            max_wait: queue.max_wait,
            retry_delay: queue.retry_delay,
            wrap_up: queue.wrap_up,
        })
        .collect();
    sip_server::b2bua::CoreConfig {
        domain: config.sip.domain.clone(),
        sip_address: SocketAddr::new(config.sip.advertised_address, sip_bound.port()),
        media_address: config.media.advertised_address,
        trunks: config
            .trunks
            .iter()
            .map(|trunk| sip_server::b2bua::Trunk {
                name: trunk.name.clone(),
                allow: trunk.allow.clone(),
            })
            .collect(),
        dids: config
            .dids
            .iter()
            .map(|did| (did.number.clone(), did.queue.clone()))
            .collect(),
        queues,
        queue_agents: config
            .queues
            .iter()
            .map(|q| (q.name.clone(), q.agents.clone()))
            .collect(),
        registrar: sip_server::registrar::RegistrarConfig {
            min_expires: config.registrar.min_expires,
            max_expires: config.registrar.max_expires,
            default_expires: config.registrar.default_expires,
            max_contacts: config.registrar.max_contacts,
            qualify_interval: config.registrar.qualify_interval,
            qualify_timeout: config.registrar.qualify_timeout,
        },
        digest_algorithms: config.sip.digest_algorithms.clone(),
        passwords,
        recording: config.recording.enabled,
        timers: sip_server::b2bua::default_timers(),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
