//! Headless Chromium driven through ChromeDriver's W3C WebDriver protocol
//! (JSON over HTTP on loopback), with the crate's own HTTP client, so the
//! console tests need no WebDriver library.
//!
//! ChromeDriver runs on a free loopback port with its own temporary
//! profile; both processes end by PID when the [`Browser`] is dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{http, ports, tools};

/// Where Debian's chromium package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Bounds one WebDriver command; starting a session is the slowest.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The W3C key of an element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    driver_addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session.
    pub fn start() -> Browser {
        tools::require(&[tools::CHROMIUM, tools::CHROMEDRIVER]);
        let profile = tempfile::Builder::new()
            .prefix("pbx-e2e-chromium-")
            .tempdir()
            .expect("profile directory");
        let driver_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, ports::free_port()));
        let driver = Command::new(tools::CHROMEDRIVER.program)
            .arg(format!("--port={}", driver_addr.port()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start chromedriver: {error}"));
        let mut browser = Browser {
            driver,
            driver_addr,
            session: String::new(),
            _profile: profile,
        };
        browser.wait_for_driver();
        // Without the networking switches Chromium keeps trying to reach
        // update and sync servers, which this test must not contact.
        let profile_dir = browser._profile.path().display().to_string();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1280,900", format!("--user-data-dir={profile_dir}"),
                ],
            },
        }}});
        let reply = browser.command("POST", "/session", Some(&capabilities));
        browser.session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {reply}"))
            .to_owned();
        browser
    }

    fn wait_for_driver(&mut self) {
        let deadline = Instant::now() + DRIVER_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited with {status}");
            }
            let ready = http::get(self.driver_addr, "/status", Duration::from_secs(2))
                .ok()
                .filter(|response| response.status == 200)
                .is_some_and(|response| response.json()["value"]["ready"] == true);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within {DRIVER_START_TIMEOUT:?}"
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends one WebDriver command and returns its `value`; panics on an
    /// error reply.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let response = self.try_command(method, path, body);
        match response {
            Ok(value) => value,
            Err(error) => panic!("WebDriver {method} {path}: {error}"),
        }
    }

    fn try_command(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        // WebDriver wants a JSON body on every POST, `{}` when empty.
        let empty = json!({});
        let body = match (method, body) {
            ("POST", None) => Some(&empty),
            (_, body) => body,
        };
        let response = http::request(self.driver_addr, method, path, &[], body, COMMAND_TIMEOUT)
            .map_err(|error| error.to_string())?;
        let reply = response.json();
        if response.status == 200 {
            Ok(reply["value"].clone())
        } else {
            Err(format!("{}: {}", response.status, reply["value"]))
        }
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.command(
            "POST",
            &self.session_path("/url"),
            Some(&json!({ "url": url })),
        );
    }

    pub fn current_url(&self) -> String {
        let value = self.command("GET", &self.session_path("/url"), None);
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Returns the first element matching `css`, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let body = json!({ "using": "css selector", "value": css });
        self.try_command("POST", &self.session_path("/element"), Some(&body))
            .ok()
            .and_then(|value| value[ELEMENT_KEY].as_str().map(str::to_owned))
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.find(css) {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css:?} within {timeout:?} on {}; page text:\n{}",
                self.current_url(),
                self.page_text()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits up to `timeout` until `check` holds for the text of the
    /// element matching `css`, and returns that text.
    pub fn wait_for_text(
        &self,
        css: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.find(css) {
                let text = self.text(&element);
                if check(&text) {
                    return text;
                }
            }
            assert!(
                Instant::now() < deadline,
                "element {css:?} did not get the expected text within {timeout:?}; page text:\n{}",
                self.page_text()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    pub fn text(&self, element: &str) -> String {
        let path = self.session_path(&format!("/element/{element}/text"));
        self.try_command("GET", &path, None)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub fn type_into(&self, element: &str, text: &str) {
        let path = self.session_path(&format!("/element/{element}/value"));
        self.command("POST", &path, Some(&json!({ "text": text })));
    }

    pub fn click(&self, element: &str) {
        let path = self.session_path(&format!("/element/{element}/click"));
        self.command("POST", &path, None);
    }

    /// Runs `script` as the body of a function in the page and returns
    /// what it returns.
    pub fn execute(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.command("POST", &self.session_path("/execute/sync"), Some(&body))
    }

    /// Returns the visible text of the whole page, for failure messages.
    pub fn page_text(&self) -> String {
        self.find("body")
            .map(|body| self.text(&body))
            .unwrap_or_default()
    }

    /// Writes a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let value = self.command("GET", &self.session_path("/screenshot"), None);
        let encoded = value.as_str().expect("base64 screenshot");
        let bytes = decode_base64(encoded).expect("valid base64");
        std::fs::write(path, bytes)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = self.session_path("");
            let _ = http::request(
                self.driver_addr,
                "DELETE",
                &path,
                &[],
                None,
                Duration::from_secs(10),
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (RFC 4648 section 4), as WebDriver returns screenshots.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |byte: u8| -> Option<u32> {
        Some(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u8> = text.bytes().filter(|byte| *byte != b'=').collect();
    let mut bytes = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut group = 0u32;
        for (index, digit) in chunk.iter().enumerate() {
            group |= value(*digit)? << (18 - 6 * index);
        }
        let produced = chunk.len().saturating_sub(1);
        for index in 0..produced {
            bytes.push((group >> (16 - 8 * index)) as u8);
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
        assert_eq!(decode_base64("a*=="), None);
    }
}
