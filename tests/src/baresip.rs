//! baresip (Debian's 1.0.0) as an agent's phone or as a caller, headless.
//!
//! Each run gets a private configuration folder. baresip binds only
//! 127.0.0.1, loads no UI, STUN, TURN or ICE module, and its resolver points
//! at 127.0.0.1:53. Every URI it gets contains an IP address, so it looks
//! up no name. Audio comes from a WAV file (module `aufile`), and the `sndfile`
//! filter writes what baresip decodes to `dump-*-dec.wav`, so a test can
//! check what the phone heard. The player is an `aubridge` device that
//! nothing reads, because the machine may have no sound card. `-t` makes
//! baresip quit by itself after the run's time limit, and the harness kills
//! it by PID on drop.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::pbx::Agent;
use crate::ports;
use crate::softphone::{PhoneProcess, Transport};
use crate::tools::{self, BARESIP};

/// What one baresip run does.
#[derive(Clone, Debug)]
pub enum Role {
    /// Registers as `agent` at `registrar` over `transport` and answers
    /// every call by itself.
    Agent {
        agent: Agent,
        registrar: SocketAddr,
        transport: Transport,
        /// Certificate authority given to baresip for TLS (`sip_cafile`).
        /// NOTE: baresip 1.0.0 loads it but accepts any server certificate.
        ca_file: Option<PathBuf>,
    },
    /// Dials `uri` from the account `sip:<user>@127.0.0.1` over UDP,
    /// without registering.
    Caller { user: String, uri: String },
}

/// A running baresip in its own configuration folder.
pub struct Baresip {
    pub process: PhoneProcess,
    pub dir: PathBuf,
}

impl Baresip {
    /// Writes the configuration into `dir` (created) and starts baresip,
    /// which sends `audio` (8 kHz mono WAV) on every call and quits after
    /// `time_limit`.
    pub fn start(role: &Role, dir: &Path, audio: &Path, time_limit: Duration) -> Baresip {
        tools::require(&[BARESIP]);
        fs::create_dir_all(dir)
            .unwrap_or_else(|error| panic!("failed to create {}: {error}", dir.display()));
        let sip_port = ports::free_port();
        let rtp = ports::free_udp_range(10);
        let ca_file = match role {
            Role::Agent { ca_file, .. } => ca_file.as_deref(),
            Role::Caller { .. } => None,
        };
        fs::write(
            dir.join("config"),
            config(dir, sip_port, *rtp.start(), *rtp.end(), audio, ca_file),
        )
        .expect("write baresip config");
        fs::write(dir.join("accounts"), account(role, sip_port)).expect("write baresip accounts");

        let mut command = Command::new(BARESIP.program);
        command
            .arg("-f")
            .arg(dir)
            .arg("-t")
            .arg(time_limit.as_secs().max(1).to_string());
        if let Role::Caller { uri, .. } = role {
            command.arg("-e").arg(format!("/dial {uri}"));
        }
        // With HOME in the run's folder, baresip reads and writes none of
        // the user's files.
        command.env("HOME", dir).current_dir(dir);
        let process = PhoneProcess::spawn("baresip", command, &dir.join("baresip.log"), false);
        Baresip {
            process,
            dir: dir.to_path_buf(),
        }
    }

    /// Returns the samples baresip decoded from the PBX on its last call,
    /// from the `sndfile` dump, or None when no dump was written.
    pub fn heard(&self) -> Option<Vec<i16>> {
        let mut dumps: Vec<PathBuf> = fs::read_dir(&self.dir)
            .ok()?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("dump-") && name.ends_with("-dec.wav"))
            })
            .collect();
        dumps.sort();
        let reader = hound::WavReader::open(dumps.last()?).ok()?;
        reader.into_samples::<i16>().collect::<Result<_, _>>().ok()
    }
}

/// Renders `config`. Keys and values are those of baresip 1.0.0's template.
fn config(
    dir: &Path,
    sip_port: u16,
    rtp_first: u16,
    rtp_last: u16,
    audio: &Path,
    ca_file: Option<&Path>,
) -> String {
    let mut text = format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{sip_port}\n\
         net_interface 127.0.0.1\n\
         dns_server 127.0.0.1:53\n\
         call_local_timeout 60\n\
         call_max_calls 2\n\
         audio_source aufile,{}\n\
         audio_player aubridge,unread\n\
         audio_alert aubridge,unread\n\
         audio_level no\n\
         rtp_ports {rtp_first}-{rtp_last}\n\
         rtp_timeout 20\n\
         snd_path {}\n\
         module_path /usr/lib/baresip/modules\n\
         module g711.so\n\
         module aufile.so\n\
         module aubridge.so\n\
         module sndfile.so\n\
         module_tmp account.so\n\
         module_app menu.so\n",
        audio.display(),
        dir.display(),
    );
    if let Some(ca_file) = ca_file {
        let _ = writeln!(text, "sip_cafile {}", ca_file.display());
    }
    text
}

/// Renders the one line of `accounts`.
fn account(role: &Role, sip_port: u16) -> String {
    match role {
        Role::Agent {
            agent,
            registrar,
            transport,
            ..
        } => format!(
            "<sip:{}@{registrar};transport={}>;auth_pass={};answermode=auto;\
             audio_codecs=PCMU;regint=600\n",
            agent.id,
            transport.as_str(),
            agent.password,
        ),
        Role::Caller { user, .. } => {
            format!("<sip:{user}@127.0.0.1:{sip_port}>;regint=0;audio_codecs=PCMU\n")
        }
    }
}
