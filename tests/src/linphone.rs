//! linphonec (Debian's linphone-cli 5.1.65) as an agent's phone, headless.
//!
//! linphonec reads its commands from a pipe on standard input, so no
//! terminal is needed. It answers calls by itself (`-a`). Its audio comes
//! from files (`soundcard use files`): it plays a WAV file to the other
//! side and records what it hears to another, because the machine may have
//! no sound card. The configuration binds SIP to 127.0.0.1, enables only
//! the transport under test, and sets no STUN server, no remote
//! provisioning URI, no version check and no DNS SRV or search lookups.
//! Every address it gets is an IP address. HOME and PULSE_SERVER point into
//! the run's own folder, so linphone neither reads nor writes the user's
//! files or sound server. The harness stops it with `quit`, then SIGTERM,
//! then SIGKILL, each by PID.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::pbx::{Agent, DOMAIN};
use crate::ports;
use crate::softphone::{PhoneProcess, Transport};
use crate::tools::{self, LINPHONEC};

/// Time linphonec gets to exit after `quit`.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running linphonec registered as an agent.
pub struct Linphone {
    pub process: PhoneProcess,
    pub dir: PathBuf,
    /// WAV file linphone writes with the audio it hears.
    pub heard_path: PathBuf,
}

impl Linphone {
    /// Writes the configuration into `dir` (created) and starts linphonec
    /// registering `agent` at `registrar` over `transport`, sending `audio`
    /// (8 kHz mono WAV) on calls. `ca_file` is the authority it trusts for
    /// TLS.
    pub fn start_agent(
        agent: &Agent,
        registrar: SocketAddr,
        transport: Transport,
        ca_file: Option<&Path>,
        dir: &Path,
        audio: &Path,
    ) -> Linphone {
        tools::require(&[LINPHONEC]);
        // linphone keeps its call history database under HOME. In a trial
        // run without that folder it opened no SIP port and logged no reason.
        let database_dir = dir.join(".local/share/linphone");
        fs::create_dir_all(&database_dir)
            .unwrap_or_else(|error| panic!("failed to create {}: {error}", database_dir.display()));
        let config_path = dir.join("linphonerc");
        let sip_port = ports::free_port();
        let rtp_port = *ports::free_udp_range(4).start();
        fs::write(
            &config_path,
            config(agent, registrar, transport, ca_file, sip_port, rtp_port),
        )
        .expect("write linphonerc");

        let mut command = Command::new(LINPHONEC.program);
        command
            .arg("-c")
            .arg(&config_path)
            .arg("-a")
            .args(["-d", "5", "-l"])
            .arg(dir.join("linphone-debug.log"))
            .env("HOME", dir)
            .env(
                "PULSE_SERVER",
                format!("unix:{}", dir.join("no-pulse").display()),
            )
            .current_dir(dir);
        let mut process =
            PhoneProcess::spawn("linphonec", command, &dir.join("linphonec.log"), true);
        let heard_path = dir.join("heard.wav");
        process.send_line("soundcard use files");
        process.send_line(&format!("play {}", audio.display()));
        process.send_line(&format!("record {}", heard_path.display()));
        Linphone {
            process,
            dir: dir.to_path_buf(),
            heard_path,
        }
    }

    /// Returns the sample rate and the first channel's samples of what
    /// linphone recorded from the PBX. Call it after [`Linphone::quit`], so
    /// that linphone has closed the file. Waits up to `timeout` for a
    /// readable file and returns None when none came.
    pub fn heard(&self, timeout: Duration) -> Option<(u32, Vec<i16>)> {
        let deadline = std::time::Instant::now() + timeout;
        while read_wav(&self.heard_path).is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        read_wav(&self.heard_path)
    }

    /// Returns linphone's debug log (`-d 5`).
    pub fn debug_log(&self) -> String {
        fs::read_to_string(self.dir.join("linphone-debug.log")).unwrap_or_default()
    }

    /// Sends `quit` and stops the process by PID when it has not exited
    /// within `QUIT_TIMEOUT`.
    pub fn quit(&mut self) {
        if !self.process.has_exited() {
            self.process.send_line("quit");
        }
        let deadline = std::time::Instant::now() + QUIT_TIMEOUT;
        while !self.process.has_exited() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.process.stop();
    }
}

/// Reads a WAV file's rate and first channel, or None when it is missing,
/// has no valid header or has no samples.
fn read_wav(path: &Path) -> Option<(u32, Vec<i16>)> {
    let reader = hound::WavReader::open(path).ok()?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    // linphone 5.1.65's header gives a data length 44 bytes (the header's
    // size) past the end of the file, so the samples are read up to the
    // first error.
    let samples: Vec<i16> = reader.into_samples::<i16>().map_while(Result::ok).collect();
    let first: Vec<i16> = samples.into_iter().step_by(channels).collect();
    (!first.is_empty()).then_some((spec.sample_rate, first))
}

/// Renders the linphonerc. Port 0 disables a transport.
fn config(
    agent: &Agent,
    registrar: SocketAddr,
    transport: Transport,
    ca_file: Option<&Path>,
    sip_port: u16,
    rtp_port: u16,
) -> String {
    let port_of = |wanted: Transport| if wanted == transport { sip_port } else { 0 };
    let mut text = format!(
        "[sip]\n\
         sip_port={}\n\
         sip_tcp_port={}\n\
         sip_tls_port={}\n\
         bind_address=127.0.0.1\n\
         use_ipv6=0\n\
         guess_hostname=0\n\
         register_only_when_network_is_up=0\n\
         auto_net_state_mon=0\n\
         dns_srv_enabled=0\n\
         dns_search_enabled=0\n\
         verify_server_certs=1\n\
         verify_server_cn=1\n\
         default_proxy=0\n",
        port_of(Transport::Udp),
        port_of(Transport::Tcp),
        port_of(Transport::Tls),
    );
    if let Some(ca_file) = ca_file {
        let _ = writeln!(text, "root_ca={}", ca_file.display());
    }
    let _ = write!(
        text,
        "\n[net]\nstun_server=\nfirewall_policy=0\n\n\
         [rtp]\naudio_rtp_port={rtp_port}\nnortp_timeout=20\n\n\
         [sound]\necho_cancellation=0\n\n\
         [misc]\nversion_check_url_root=\nconfig-uri=\n\n\
         [proxy_0]\n\
         reg_proxy=<sip:{registrar};transport={}>\n\
         reg_identity=sip:{}@{}\n\
         reg_expires=600\n\
         reg_sendregister=1\n\
         publish=0\n\n\
         [auth_info_0]\nusername={}\npasswd={}\nrealm={DOMAIN}\n",
        transport.as_str(),
        agent.id,
        registrar.ip(),
        agent.id,
        agent.password,
    );
    text
}
