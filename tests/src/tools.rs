//! External programs the end-to-end tests need.

use std::process::{Command, Stdio};

/// An external program and the Debian package that provides it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const SIPP: Tool = Tool {
    program: "sipp",
    package: "sip-tester",
};
pub const ESPEAK_NG: Tool = Tool {
    program: "espeak-ng",
    package: "espeak-ng",
};
pub const SOX: Tool = Tool {
    program: "sox",
    package: "sox",
};

/// The softphones of the interop tests.
pub const BARESIP: Tool = Tool {
    program: "baresip",
    package: "baresip",
};
pub const LINPHONEC: Tool = Tool {
    program: "linphonec",
    package: "linphone-cli",
};

/// The browser and its WebDriver server, for the console's browser test.
pub const CHROMIUM: Tool = Tool {
    program: "chromium",
    package: "chromium",
};
pub const CHROMEDRIVER: Tool = Tool {
    program: "chromedriver",
    package: "chromium-driver",
};

/// Every tool the call end-to-end tests run.
pub const ALL: [Tool; 3] = [SIPP, ESPEAK_NG, SOX];

/// Checks whether `tool` can be started from `PATH`.
pub fn is_available(tool: Tool) -> bool {
    // `-h`/`--help` exit codes differ between these programs, so only a failure
    // to start at all counts as missing.
    Command::new(tool.program)
        .arg(if tool.program == "sipp" {
            "-v"
        } else {
            "--version"
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Panics with the package to install when a tool is missing. The tests fail
/// rather than skip so a CI machine without the tools cannot pass.
pub fn require(tools: &[Tool]) {
    let missing: Vec<String> = tools
        .iter()
        .filter(|tool| !is_available(**tool))
        .map(|tool| format!("{} (Debian package {})", tool.program, tool.package))
        .collect();
    let packages: Vec<&str> = tools.iter().map(|tool| tool.package).collect();
    assert!(
        missing.is_empty(),
        "missing tools: {}; install them, e.g. `apt-get install -y {}`, \
         or run scripts/test, which installs them when run as root",
        missing.join(", "),
        packages.join(" ")
    );
}
