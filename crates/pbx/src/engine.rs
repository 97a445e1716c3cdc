//! The engine task: owns the sans-IO [`Core`], feeds it messages, media
//! results and the clock, and carries out what it asks for (sending SIP,
//! opening and closing relay sessions, writing CDRs).
//!
//! One task owns the core, so call state needs no locks; slow work (binding
//! ports, finalizing a WAV, writing a CDR) runs in spawned tasks that report
//! back through the input channel.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use sip_server::b2bua::{Command, Core, MediaPorts, Side};
use sip_server::registrar::StoredBinding;
use sip_server::transaction::Target;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::transport::Sender;

/// What the engine reacts to besides its own timer.
pub(crate) enum Input {
    Sip(sip_message::Message, Target),
    MediaOpened {
        call: String,
        result: Result<media::MediaSession, media::MediaError>,
    },
}

pub(crate) struct Engine {
    pub(crate) core: Core,
    /// Bindings to persist, in order, by one writer task.
    pub(crate) registrations: mpsc::UnboundedSender<(String, Vec<StoredBinding>)>,
    pub(crate) sender: Sender,
    pub(crate) relay: media::Relay,
    pub(crate) cdr: cdr::CdrStore,
    pub(crate) data_dir: PathBuf,
    pub(crate) inputs: mpsc::Sender<Input>,
}

impl Engine {
    /// Runs until `shutdown` resolves, then ends every call and waits for
    /// their recordings and CDRs to be written.
    pub(crate) async fn run(
        mut self,
        mut receiver: mpsc::Receiver<Input>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut sessions: HashMap<String, media::MediaSession> = HashMap::new();
        let mut background = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            self.drain(&mut sessions, &mut background);
            let wake = self.core.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                input = receiver.recv() => {
                    let Some(input) = input else { break };
                    self.handle_input(input, &mut sessions);
                }
                () = sleep_until(wake) => self.core.handle_timeout(Instant::now()),
                () = &mut shutdown => break,
                Some(_) = background.join_next(), if !background.is_empty() => {}
            }
        }
        tracing::info!(calls = self.core.active_calls(), "shutting down");
        self.core.shutdown(Instant::now());
        self.drain(&mut sessions, &mut background);
        // Sessions still binding ports when the calls ended are closed too.
        for (_, session) in sessions.drain() {
            let _ = session.close().await;
        }
        while background.join_next().await.is_some() {}
    }

    fn handle_input(&mut self, input: Input, sessions: &mut HashMap<String, media::MediaSession>) {
        let now = Instant::now();
        match input {
            Input::Sip(message, source) => self.core.handle_message(message, source, now),
            Input::MediaOpened {
                call,
                result: Ok(session),
            } => {
                let ports = MediaPorts {
                    caller: session.local_rtp_addr(media::Leg::Caller),
                    agent: session.local_rtp_addr(media::Leg::Agent),
                };
                if self.core.media_opened(&call, ports, now) {
                    sessions.insert(call, session);
                } else {
                    tokio::spawn(async move {
                        let _ = session.close().await;
                    });
                }
            }
            Input::MediaOpened {
                call,
                result: Err(error),
            } => {
                tracing::error!(call, %error, "opening the media relay failed");
                self.core.media_failed(&call, now);
            }
        }
    }

    /// Sends what the core queued and starts the work its commands ask for.
    fn drain(
        &mut self,
        sessions: &mut HashMap<String, media::MediaSession>,
        background: &mut JoinSet<()>,
    ) {
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.core.poll_transmit() {
                progressed = true;
                self.sender.send(transmit.target, transmit.payload);
            }
            while let Some(command) = self.core.poll_command() {
                progressed = true;
                self.execute(command, sessions, background);
            }
            if !progressed {
                return;
            }
        }
    }

    fn execute(
        &mut self,
        command: Command,
        sessions: &mut HashMap<String, media::MediaSession>,
        background: &mut JoinSet<()>,
    ) {
        match command {
            Command::OpenMedia { call, sip_call_id } => {
                let relay = self.relay.clone();
                let inputs = self.inputs.clone();
                tokio::spawn(async move {
                    let result = relay.open_session(&sip_call_id).await;
                    let _ = inputs.send(Input::MediaOpened { call, result }).await;
                });
            }
            Command::SetRemote { call, side, addr } => {
                if let Some(session) = sessions.get(&call) {
                    session.set_remote(leg(side), addr);
                }
            }
            Command::ResetLeg { call, side } => {
                if let Some(session) = sessions.get(&call) {
                    session.reset_leg(leg(side));
                }
            }
            Command::StartRecording { call, path } => {
                if let Some(session) = sessions.get(&call)
                    && let Err(error) = session.start_recording(self.data_dir.join(&path))
                {
                    tracing::error!(call, %error, "recording could not start");
                }
            }
            Command::SaveBindings { agent, bindings } => {
                let _ = self.registrations.send((agent, bindings));
            }
            Command::Finish {
                call,
                record,
                media_open,
            } => {
                let session = if media_open {
                    sessions.remove(&call)
                } else {
                    None
                };
                let store = self.cdr.clone();
                background.spawn(finish_call(session, *record, store));
            }
        }
    }
}

/// Writes bindings in the order the registrar changed them, so an older
/// snapshot never overwrites a newer one.
pub(crate) async fn write_registrations(
    store: crate::registrations::RegistrationStore,
    mut queue: mpsc::UnboundedReceiver<(String, Vec<StoredBinding>)>,
) {
    while let Some((agent, bindings)) = queue.recv().await {
        if let Err(error) = store.save(&agent, &bindings).await {
            tracing::error!(agent, %error, "storing registrations failed");
        }
    }
}

/// Closes the relay, completes the CDR with the recording's outcome and
/// writes it.
async fn finish_call(
    session: Option<media::MediaSession>,
    mut record: cdr::CallRecord,
    store: cdr::CdrStore,
) {
    let summary = match session {
        Some(session) => session.close().await,
        None => Ok(None),
    };
    match summary {
        Ok(Some(summary)) => record.recording_seconds = Some(summary.duration_seconds),
        Ok(None) => record.recording_path = None,
        Err(error) => {
            tracing::error!(call = record.id, %error, "closing the media relay failed");
            record.recording_path = None;
        }
    }
    if let Err(error) = store.write(&record).await {
        tracing::error!(call = record.id, %error, "writing the CDR failed");
    }
}

fn leg(side: Side) -> media::Leg {
    match side {
        Side::Caller => media::Leg::Caller,
        Side::Agent => media::Leg::Agent,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The wall-clock moment matching `Instant::now()`, for CDR timestamps.
pub(crate) fn clock_pair() -> (Instant, SystemTime) {
    (Instant::now(), SystemTime::now())
}
