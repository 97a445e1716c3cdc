//! A minimal HTTP/1.1 client for the PBX's local API: one GET per connection,
//! `Connection: close`, Content-Length, chunked or read-to-end bodies.
//! Enough for `/health` and `/api/calls` without pulling an HTTP stack into
//! the tests.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response with its body fully read.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "invalid JSON body ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends `GET path` to `addr`; `timeout` bounds the connect and each read.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<HttpResponse> {
    request(addr, "GET", path, &[], None, timeout)
}

/// Sends one request with extra `headers` and an optional JSON `body`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.map(serde_json::Value::to_string).unwrap_or_default();
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    read_response(BufReader::new(stream))
}

fn read_response(mut reader: impl BufRead) -> io::Result<HttpResponse> {
    let status_line = read_line(&mut reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("invalid status line {status_line:?}")))?;

    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("invalid header line {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }

    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = response
        .header("Transfer-Encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
    let length = response.header("Content-Length").map(str::parse::<usize>);
    response.body = match (chunked, length) {
        (true, _) => read_chunked(&mut reader)?,
        (false, Some(Ok(length))) => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            body
        }
        (false, Some(Err(error))) => {
            return Err(invalid(format!("invalid Content-Length: {error}")));
        }
        (false, None) => {
            let mut body = Vec::new();
            reader.read_to_end(&mut body)?;
            body
        }
    };
    Ok(response)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|error| invalid(format!("invalid chunk size {size_line:?}: {error}")))?;
        if size == 0 {
            // Trailer fields end with an empty line; none are expected.
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader)?;
    }
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed mid-response",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_with_content_length() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nokay-extra";

        let response = read_response(&wire[..]).expect("valid response");

        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"okay");
    }

    #[test]
    fn response_chunked() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n";

        let response = read_response(&wire[..]).expect("valid response");

        assert_eq!(response.json(), serde_json::json!([1, 2]));
    }

    #[test]
    fn response_invalid_status_line() {
        let wire = b"HTTP/1.1 abc\r\n\r\n";

        let error = read_response(&wire[..]).expect_err("invalid status line");

        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
