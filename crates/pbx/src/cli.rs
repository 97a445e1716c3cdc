//! Command line: global options that override the configuration file, and
//! the `run`, `check-config`, `check-recordings` and `queue-log`
//! subcommands.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigErrors, EMBEDDED_ORIGIN, EMBEDDED_TEXT, Overrides};

/// IP-PBX with automatic call distribution: SIP registrar and B2BUA, ACD
/// queues, RTP relay with recording, call records and an HTTP API.
#[derive(Clone, Debug, Parser)]
#[command(name = "pbx", version)]
pub(crate) struct Cli {
    /// Configuration file (TOML). Default: the built-in configs/pbx.toml.
    #[arg(long, env = "PBX_CONFIG", value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,

    /// Folder for the database, call records, recordings and generated
    /// passwords; replaces `data_dir`. Default: from the file, "data".
    #[arg(long, env = "PBX_DATA_DIR", value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,

    /// SIP UDP and TCP listen address as IP:PORT; replaces `sip.listen`.
    /// Default: from the file, 0.0.0.0:5060.
    #[arg(long, env = "PBX_SIP_LISTEN", value_name = "ADDR", global = true)]
    pub(crate) sip_listen: Option<String>,

    /// HTTP API listen address as IP:PORT; replaces `http.listen`.
    /// Default: from the file, 127.0.0.1:8080.
    #[arg(long, env = "PBX_HTTP_LISTEN", value_name = "ADDR", global = true)]
    pub(crate) http_listen: Option<String>,

    /// Inclusive UDP port range for RTP and RTCP as FIRST-LAST, FIRST even,
    /// at least 4 ports; replaces `media.rtp_ports`. Default: from the file,
    /// 20000-20999.
    #[arg(long, env = "PBX_RTP_PORTS", value_name = "A-B", global = true)]
    pub(crate) rtp_ports: Option<String>,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing
    /// directives such as "info,pbx=debug".
    #[arg(
        long,
        env = "PBX_LOG",
        value_name = "FILTER",
        default_value = "info",
        global = true
    )]
    pub(crate) log_level: String,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub(crate) enum Command {
    /// Runs the PBX (the default when no subcommand is given).
    Run,
    /// Validates a configuration file, prints every error as
    /// FILE:LINE:COL: key: message, and exits with 1 when there are any.
    CheckConfig {
        /// Configuration file to check.
        file: PathBuf,
    },
    /// Verifies every recording against its catalogue entry (file present,
    /// size, SHA-256, WAV header, length) and lists WAV files under
    /// recordings/ without an entry. Prints one line per problem and a
    /// summary; exits with 1 when there is any problem. Reads the data
    /// folder from --data-dir or --config.
    CheckRecordings,
    /// Writes the Asterisk queue_log lines of the queue events stored in
    /// the database, in order, byte for byte as the running PBX appends
    /// them to DATA_DIR/queue_log. Reads the data folder from --data-dir or
    /// --config; the PBX may be running.
    QueueLog {
        /// Only events at or after this time: RFC 3339
        /// (2027-01-15T08:00:00Z) or whole seconds since the Unix epoch.
        /// Default: the first stored event.
        #[arg(long, value_name = "TIME", value_parser = crate::queue_log::parse_time)]
        since: Option<i64>,
        /// Only events before this time, in the same formats as --since.
        /// Default: up to the last stored event.
        #[arg(long, value_name = "TIME", value_parser = crate::queue_log::parse_time)]
        until: Option<i64>,
        /// File to write, created or replaced. Default: standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Rebuilds the queue's part of each call's record (queue, agent,
    /// answer, talk time, outcome) from the queue events stored in the
    /// database and compares it with the CDR. Prints one line per
    /// difference and a summary; exits with 1 when any record is missing
    /// or differs. Reads the data folder from --data-dir or --config; the
    /// PBX may be running.
    CdrCheck {
        /// Only calls that entered a queue at or after this time: RFC 3339
        /// (2027-01-15T08:00:00Z) or whole seconds since the Unix epoch.
        /// Default: the first stored event.
        #[arg(long, value_name = "TIME", value_parser = crate::queue_log::parse_time)]
        since: Option<i64>,
        /// Only calls that entered a queue before this time, in the same
        /// formats as --since. Default: up to the last stored event.
        #[arg(long, value_name = "TIME", value_parser = crate::queue_log::parse_time)]
        until: Option<i64>,
        /// Writes a record rebuilt from the events for each missing CDR,
        /// marked `rebuilt`, with the SIP and media fields empty.
        #[arg(long)]
        repair: bool,
    },
    /// Relays and records media for a PBX that started this process with
    /// the socket to it as standard input (`media.relay_processes`).
    #[command(hide = true)]
    RelayWorker,
}

impl Cli {
    /// Returns the subcommand, `run` when none was given.
    pub(crate) fn command(&self) -> Command {
        self.command.clone().unwrap_or(Command::Run)
    }

    pub(crate) fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            sip_listen: self.sip_listen.clone(),
            http_listen: self.http_listen.clone(),
            rtp_ports: self.rtp_ports.clone(),
        }
    }
}

/// Reads `--config` (or the embedded default) and applies the override
/// flags. An invalid override is an error that names its flag.
pub(crate) fn load_config(cli: &Cli) -> Result<Config, ConfigErrors> {
    let overrides = cli.overrides();
    match &cli.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|error| ConfigErrors::read(path, error))?;
            Config::parse_with_overrides(&text, &path.display().to_string(), &overrides)
        }
        None => Config::parse_with_overrides(EMBEDDED_TEXT, EMBEDDED_ORIGIN, &overrides),
    }
}

/// Runs `check-recordings` on the data folder of the configuration the
/// other flags select, and returns the exit code.
pub(crate) fn check_recordings(cli: &Cli) -> i32 {
    match load_config(cli) {
        Ok(config) => crate::check_recordings::run(&config.data_dir, config.database.as_ref()),
        Err(errors) => {
            eprintln!("{errors}");
            1
        }
    }
}

/// Runs `queue-log` on the data folder of the configuration the other
/// flags select, and returns the exit code. `since` and `until` are Unix
/// milliseconds.
pub(crate) fn queue_log(
    cli: &Cli,
    since: Option<i64>,
    until: Option<i64>,
    output: Option<&Path>,
) -> i32 {
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        eprintln!("--until must be later than --since");
        return 2;
    }
    match load_config(cli) {
        Ok(config) => crate::queue_log::run_command(
            &config.data_dir,
            config.database.as_ref(),
            since,
            until,
            output,
        ),
        Err(errors) => {
            eprintln!("{errors}");
            1
        }
    }
}

/// Runs `cdr-check` on the data folder of the configuration the other
/// flags select, and returns the exit code. `since` and `until` are Unix
/// milliseconds.
pub(crate) fn cdr_check(cli: &Cli, since: Option<i64>, until: Option<i64>, repair: bool) -> i32 {
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        eprintln!("--until must be later than --since");
        return 2;
    }
    match load_config(cli) {
        Ok(config) => crate::cdr_check::run_command(
            &config.data_dir,
            config.database.as_ref(),
            since,
            until,
            repair,
        ),
        Err(errors) => {
            eprintln!("{errors}");
            1
        }
    }
}

/// Checks the file at `path`, prints "FILE: OK" to standard output or each
/// error on its own line to standard error, and returns the exit code.
pub(crate) fn check_config(path: &Path) -> i32 {
    match check_config_report(path) {
        Ok(report) => {
            println!("{report}");
            0
        }
        Err(report) => {
            eprintln!("{report}");
            1
        }
    }
}

/// Returns the report `check_config` prints, as `Ok` when the file is valid.
fn check_config_report(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigErrors::read(path, error).to_string())?;
    let origin = path.display().to_string();
    match Config::parse(&text, &origin) {
        Ok(config) => {
            let unsupported = config.unsupported_destinations();
            if unsupported.is_empty() {
                return Ok(format!("{origin}: OK"));
            }
            let lines: Vec<String> = unsupported
                .iter()
                .map(|problem| format!("{origin}: {problem}"))
                .collect();
            Err(lines.join("\n"))
        }
        Err(errors) => Err(errors.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("pbx").chain(args.iter().copied()))
            .expect("arguments parse")
    }

    #[test]
    fn cli_definition_is_consistent() {
        <Cli as CommandFactory>::command().debug_assert();
    }

    #[test]
    fn run_is_default() {
        let cli = parse(&[]);
        assert_eq!(cli.command(), Command::Run);
        assert_eq!(parse(&["run"]).command(), Command::Run);
    }

    #[test]
    fn global_options_after_subcommand() {
        let cli = parse(&["check-config", "my.toml", "--sip-listen", "127.0.0.1:5070"]);
        assert_eq!(
            cli.command(),
            Command::CheckConfig {
                file: PathBuf::from("my.toml")
            }
        );
        assert_eq!(cli.sip_listen.as_deref(), Some("127.0.0.1:5070"));
    }

    #[test]
    fn check_recordings_takes_the_data_dir_flag() {
        let cli = parse(&["check-recordings", "--data-dir", "/tmp/pbx-data"]);
        assert_eq!(cli.command(), Command::CheckRecordings);
        assert_eq!(cli.data_dir, Some(PathBuf::from("/tmp/pbx-data")));
        let empty = tempfile::tempdir().unwrap();
        let cli = parse(&[
            "check-recordings",
            "--data-dir",
            empty.path().to_str().unwrap(),
        ]);
        assert_eq!(check_recordings(&cli), 1, "no database is a failure");
    }

    #[test]
    fn queue_log_takes_a_range_and_an_output() {
        let cli = parse(&[
            "queue-log",
            "--since",
            "2027-01-15T08:00:00Z",
            "--until",
            "1800003600",
            "--output",
            "/tmp/queue_log",
        ]);
        assert_eq!(
            cli.command(),
            Command::QueueLog {
                since: Some(1_800_000_000_000),
                until: Some(1_800_003_600_000),
                output: Some(PathBuf::from("/tmp/queue_log")),
            }
        );
        let bad = Cli::try_parse_from(["pbx", "queue-log", "--since", "noon"]);
        assert!(bad.is_err(), "an invalid time is refused");
    }

    #[test]
    fn queue_log_refuses_an_empty_range_and_a_missing_database() {
        let empty = tempfile::tempdir().unwrap();
        let cli = parse(&["queue-log", "--data-dir", empty.path().to_str().unwrap()]);
        assert_eq!(queue_log(&cli, Some(2_000), Some(1_000), None), 2);
        assert_eq!(queue_log(&cli, None, None, None), 1, "no database");
    }

    #[test]
    fn load_embedded_with_overrides() {
        let cli = parse(&[
            "--data-dir",
            "/tmp/pbx-data",
            "--rtp-ports",
            "40000-40003",
            "run",
        ]);
        let config = load_config(&cli).expect("valid configuration");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/pbx-data"));
        assert_eq!(config.media.rtp_ports, 40000..=40003);
        assert_eq!(config.agents.len(), 2);
    }

    #[test]
    fn load_rejects_bad_override() {
        let cli = parse(&["--http-listen", "8080"]);
        let errors = load_config(&cli).expect_err("invalid override");
        assert_eq!(errors.0.len(), 1);
        assert!(
            errors
                .to_string()
                .starts_with("--http-listen: http.listen: "),
            "{errors}"
        );
    }

    #[test]
    fn load_reads_config_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pbx.toml");
        std::fs::write(&path, "[sip]\ndomain = \"example.test\"\n").expect("write config");
        let cli = parse(&["--config", path.to_str().expect("UTF-8 temp path")]);
        let config = load_config(&cli).expect("valid configuration");
        assert_eq!(config.sip.domain, "example.test");
        assert!(config.agents.is_empty());
    }

    #[test]
    fn load_missing_file_names_it() {
        let cli = parse(&["--config", "/nonexistent/pbx.toml"]);
        let errors = load_config(&cli).expect_err("missing file");
        let text = errors.to_string();
        assert!(
            text.starts_with("/nonexistent/pbx.toml: failed to read the file: "),
            "{text}"
        );
    }

    #[test]
    fn check_config_refuses_unsupported_destinations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbx.toml");
        std::fs::write(
            &path,
            "[[queues]]\nname = \"q\"\noverflow = \"number:100\"\n",
        )
        .unwrap();
        let report = check_config_report(&path).expect_err("unsupported destination");
        assert!(
            report.contains("queues[0]: queue \"q\" sends calls to the number \"100\""),
            "{report}"
        );
    }

    #[test]
    fn callback_destinations_need_an_outbound_trunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbx.toml");
        let queue = "[[queues]]\nname = \"q\"\nexit_keys = { \"*\" = \"callback\" }\n";
        std::fs::write(&path, queue).unwrap();
        let report = check_config_report(&path).expect_err("no way to call back");
        assert!(
            report.contains("queues[0]: queue \"q\" takes callback requests"),
            "{report}"
        );
        let trunk = "[[trunks]]\nname = \"carrier\"\nallow = [\"192.0.2.0/24\"]\n\
                     outbound = \"192.0.2.1:5060\"\n";
        std::fs::write(&path, format!("{queue}{trunk}")).unwrap();
        assert!(check_config_report(&path).is_ok());
    }

    #[test]
    fn check_config_reports() {
        let dir = tempfile::tempdir().expect("temp dir");
        let good = dir.path().join("good.toml");
        std::fs::write(&good, crate::config::EMBEDDED_TEXT).expect("write config");
        assert_eq!(
            check_config_report(&good),
            Ok(format!("{}: OK", good.display()))
        );
        assert_eq!(check_config(&good), 0);

        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "[http]\nlisten = \"x\"\n[[dids]]\nnumber = \"1\"\nqueue = \"q\"\n",
        )
        .expect("write config");
        let report = check_config_report(&bad).expect_err("invalid file");
        let lines: Vec<&str> = report.lines().collect();
        let name = bad.display();
        assert_eq!(lines.len(), 2, "{report}");
        assert!(
            lines[0].starts_with(&format!("{name}:2:10: http.listen: ")),
            "{report}"
        );
        assert!(
            lines[1].starts_with(&format!("{name}:5:9: dids[0].queue: ")),
            "{report}"
        );
        assert_eq!(check_config(&bad), 1);
    }
}
