//! Speech fixtures generated at test time with espeak-ng and sox.
//!
//! sipp 3.6.1 `rtp_stream` sends the file's bytes as RTP payload without
//! parsing any header: a WAV file's RIFF header goes out as audio (checked
//! with a packet capture), so the streamed files are headerless mu-law. The
//! reference is decoded from those same bytes, so it equals what a bit-exact
//! relay and recorder produce.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools;

/// File names the scenarios stream from their working directory.
pub const CALLER_AUDIO: &str = "caller.ulaw";
pub const AGENT_AUDIO: &str = "agent.ulaw";

/// Sample rate of G.711 and of the recordings.
pub const SAMPLE_RATE: u32 = 8_000;

const CALLER_SENTENCE: &str =
    "Hello, I am calling about the broken street light on Maple Avenue, near the primary school.";
const AGENT_SENTENCE: &str =
    "Thank you for calling the city service centre. My name is Alex. How can I help you today?";

/// One generated side of a call.
#[derive(Clone, Debug)]
pub struct Speech {
    /// Headerless 8 kHz mono mu-law file that sipp streams.
    pub ulaw_path: PathBuf,
    /// The mu-law bytes decoded to 16-bit linear samples.
    pub reference: Vec<i16>,
}

impl Speech {
    pub fn duration_seconds(&self) -> f64 {
        self.reference.len() as f64 / f64::from(SAMPLE_RATE)
    }
}

/// Both sides' audio in `dir`, the working directory to run sipp in.
#[derive(Clone, Debug)]
pub struct AudioFixtures {
    pub dir: PathBuf,
    pub caller: Speech,
    pub agent: Speech,
}

impl AudioFixtures {
    /// Generates the caller sentence in one voice and the agent sentence in a
    /// different voice, pitch and speed, so the two channels differ in content
    /// and in timbre.
    pub fn generate(dir: &Path) -> AudioFixtures {
        tools::require(&[tools::ESPEAK_NG, tools::SOX]);
        let caller = generate_speech(
            dir,
            "caller",
            &["-v", "en-us", "-s", "150"],
            CALLER_SENTENCE,
        );
        let agent = generate_speech(
            dir,
            "agent",
            &["-v", "en-gb+f3", "-s", "165", "-p", "70"],
            AGENT_SENTENCE,
        );
        AudioFixtures {
            dir: dir.to_path_buf(),
            caller,
            agent,
        }
    }
}

fn generate_speech(dir: &Path, name: &str, voice: &[&str], sentence: &str) -> Speech {
    let spoken = dir.join(format!("{name}-espeak.wav"));
    let ulaw_path = dir.join(format!("{name}.ulaw"));
    let reference_path = dir.join(format!("{name}-reference.wav"));

    let mut espeak = Command::new(tools::ESPEAK_NG.program);
    espeak.args(voice).arg("-w").arg(&spoken).arg(sentence);
    run(&mut espeak);

    // Normalizing to -3 dBFS keeps both voices at the same level before the
    // 8-bit companding.
    let mut encode = Command::new(tools::SOX.program);
    encode
        .arg(&spoken)
        .args(["-r", "8000", "-c", "1", "-t", "raw", "-e", "mu-law"]);
    encode.arg(&ulaw_path).args(["norm", "-3"]);
    run(&mut encode);

    let mut decode = Command::new(tools::SOX.program);
    decode
        .args(["-t", "raw", "-r", "8000", "-c", "1", "-e", "mu-law"])
        .arg(&ulaw_path);
    decode
        .args(["-t", "wav", "-e", "signed-integer", "-b", "16"])
        .arg(&reference_path);
    run(&mut decode);

    let reference = read_mono(&reference_path);
    assert!(
        reference.len() > SAMPLE_RATE as usize,
        "{}: expected over one second of speech, got {} samples",
        reference_path.display(),
        reference.len()
    );
    Speech {
        ulaw_path,
        reference,
    }
}

fn read_mono(path: &Path) -> Vec<i16> {
    let reader = hound::WavReader::open(path)
        .unwrap_or_else(|error| panic!("failed to open {}: {error}", path.display()));
    let spec = reader.spec();
    assert_eq!(spec.channels, 1, "{}: expected mono", path.display());
    assert_eq!(
        spec.sample_rate,
        SAMPLE_RATE,
        "{}: expected 8 kHz",
        path.display()
    );
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()))
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("failed to start {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
