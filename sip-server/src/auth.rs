//! HTTP digest authentication for SIP (RFC 3261 section 22, RFC 8760 for
//! SHA-256): the server side here, the client side in [`client`].
//!
//! A nonce carries its issue time, a serial number and a keyed hash of
//! both, so any nonce this process issued is checked without a table of
//! issued nonces, and one older than [`NONCE_LIFETIME`] is rejected with
//! `stale=true` so the phone retries without asking its user for the
//! password again. The highest nonce count used with each of the last
//! [`TRACKED_NONCES`] serials sits in a ring indexed by serial, so a
//! captured header cannot be replayed, a check costs one array access and
//! no nonce is ever copied. A nonce too old for the ring is rejected as
//! stale too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::Md5;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub mod client;

/// How long a nonce is accepted after it was issued.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Digest algorithms a challenge can offer (RFC 8760).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Md5,
}

impl Algorithm {
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    pub fn from_token(token: &str) -> Option<Algorithm> {
        if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else {
            None
        }
    }

    /// Digest of `parts` joined by colons, as RFC 7616 builds A1, A2 and
    /// the response. Feeding the parts in turn spares the string that
    /// `format!` would build for each of the three digests of a check.
    fn hash_hex(self, parts: &[&str]) -> String {
        fn feed<D: Digest>(parts: &[&str]) -> String {
            let mut digest = D::new();
            for (index, part) in parts.iter().enumerate() {
                if index > 0 {
                    digest.update(b":");
                }
                digest.update(part.as_bytes());
            }
            lower_hex(&digest.finalize())
        }
        match self {
            Algorithm::Sha256 => feed::<Sha256>(parts),
            Algorithm::Md5 => feed::<Md5>(parts),
        }
    }
}

/// Writes `bytes` as lower-case hexadecimal into a string sized up front,
/// which costs one allocation per digest on the registration path.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Why a request's credentials were not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no credentials for realm {realm}")]
    Missing { realm: String },
    #[error("authentication scheme {scheme:?} is not Digest")]
    UnsupportedScheme { scheme: String },
    #[error("malformed credentials: {reason}")]
    Malformed { reason: &'static str },
    #[error("unsupported digest algorithm {algorithm}")]
    UnsupportedAlgorithm { algorithm: String },
    #[error("nonce was not issued by this server")]
    InvalidNonce,
    #[error("nonce expired")]
    StaleNonce,
    #[error("unknown user {username}")]
    UnknownUser { username: String },
    #[error("wrong digest response for user {username}")]
    WrongResponse { username: String },
    #[error("digest uri {uri:?} does not match the Request-URI")]
    UriMismatch { uri: String },
    #[error("nonce count {nc:?} was already used with this nonce")]
    Replayed { nc: String },
}

/// Digest parameters from an Authorization or Proxy-Authorization header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

/// Names of the digest parameters that [`Credentials`] keeps, in the order
/// of the match in [`Credentials::parse`].
const CREDENTIAL_FIELDS: [&str; 9] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "qop",
    "nc",
    "cnonce",
];

impl Credentials {
    /// Parses `Digest k=v, k="v", ...`. Unknown parameters are ignored.
    pub fn parse(value: &str) -> Result<Credentials, AuthError> {
        let rest = value.trim_start();
        let scheme_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if !rest[..scheme_end].eq_ignore_ascii_case("Digest") {
            return Err(AuthError::UnsupportedScheme {
                scheme: rest[..scheme_end].to_owned(),
            });
        }
        let mut credentials = Credentials::default();
        for (name, value) in split_auth_params(&rest[scheme_end..])? {
            // Compared in place, because lower-casing each name allocated.
            let Some(field) = CREDENTIAL_FIELDS
                .iter()
                .position(|field| field.eq_ignore_ascii_case(name))
            else {
                continue;
            };
            let slot = match field {
                0 => &mut credentials.username,
                1 => &mut credentials.realm,
                2 => &mut credentials.nonce,
                3 => &mut credentials.uri,
                4 => &mut credentials.response,
                5 => credentials.algorithm.get_or_insert_with(String::new),
                6 => credentials.qop.get_or_insert_with(String::new),
                7 => credentials.nc.get_or_insert_with(String::new),
                _ => credentials.cnonce.get_or_insert_with(String::new),
            };
            *slot = value;
        }
        if credentials.username.is_empty() || credentials.nonce.is_empty() {
            return Err(AuthError::Malformed {
                reason: "username or nonce missing",
            });
        }
        if credentials.response.is_empty() || credentials.uri.is_empty() {
            return Err(AuthError::Malformed {
                reason: "response or uri missing",
            });
        }
        Ok(credentials)
    }
}

/// Splits `a=b, c="d, e"` into pairs, honouring quoted strings and
/// quoted-pairs. Names are slices of `text`. Values are copied once,
/// because a quoted value loses its quotes and escapes.
pub(crate) fn split_auth_params(text: &str) -> Result<Vec<(&str, String)>, AuthError> {
    let mut pairs = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            return Ok(pairs);
        }
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = rest[name_end..]
            .trim_start()
            .strip_prefix('=')
            .ok_or(AuthError::Malformed {
                reason: "parameter without '='",
            })?
            .trim_start();

        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let (value, after) = read_quoted_value(quoted)?;
            rest = after;
            value
        } else {
            let end = rest
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(rest.len());
            let value = rest[..end].to_owned();
            rest = &rest[end..];
            value
        };
        pairs.push((name, value));
    }
}

/// Reads a quoted string whose opening quote is just before `text`, and
/// returns its content with quoted-pairs resolved and the text after it.
fn read_quoted_value(text: &str) -> Result<(String, &str), AuthError> {
    let mut value = String::new();
    let mut copied_up_to = 0;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                value.push_str(&text[copied_up_to..at]);
                return Ok((value, &text[at + 1..]));
            }
            '\\' => {
                value.push_str(&text[copied_up_to..at]);
                let Some((escaped_at, escaped)) = chars.next() else {
                    break;
                };
                value.push(escaped);
                copied_up_to = escaped_at + escaped.len_utf8();
            }
            _ => {}
        }
    }
    Err(AuthError::Malformed {
        reason: "unterminated quote",
    })
}

/// Serials whose use the authenticator remembers: the last this many
/// nonces issued. At 20,000 challenges a second that is 52 s of them,
/// while a phone replies to its challenge within milliseconds. The ring takes
/// 12 MiB of address space, of which only the pages of serials in use are
/// touched.
pub const TRACKED_NONCES: usize = 1 << 20;

/// Issues challenges and checks credentials for one realm.
#[derive(Clone)]
pub struct DigestAuthenticator {
    /// Serial of the next nonce, shared by clones so that they never issue
    /// the same one. Starts at 1: a serial of 0 in the ring is a free slot.
    next_serial: Arc<AtomicU64>,
    /// For each slot `serial % TRACKED_NONCES`, the serial last used there
    /// and the highest nonce count accepted with it, so a captured
    /// Authorization header cannot be sent again (RFC 7616 section 3.3).
    used_serials: Vec<u64>,
    used_counts: Vec<u32>,
    realm: String,
    /// Offered in this order; RFC 8760 section 2.4 has clients take the
    /// first one they support, so the order is the server's preference.
    algorithms: Vec<Algorithm>,
    secret: [u8; 32],
}

impl DigestAuthenticator {
    /// `algorithms` must not be empty; an empty list offers MD5.
    pub fn new(realm: &str, algorithms: &[Algorithm]) -> DigestAuthenticator {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let algorithms = if algorithms.is_empty() {
            vec![Algorithm::Md5]
        } else {
            algorithms.to_vec()
        };
        DigestAuthenticator {
            next_serial: Arc::new(AtomicU64::new(1)),
            // Zeroed vectors come from the allocator as untouched pages.
            used_serials: vec![0; TRACKED_NONCES],
            used_counts: vec![0; TRACKED_NONCES],
            realm: realm.to_owned(),
            algorithms,
            secret,
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Header values for WWW-Authenticate or Proxy-Authenticate, one per
    /// offered algorithm, in order of preference.
    pub fn challenges(&self, now: SystemTime, stale: bool) -> Vec<String> {
        let nonce = self.issue_nonce(now);
        self.algorithms
            .iter()
            .copied()
            .map(|algorithm| {
                // Sent to every REGISTER without credentials, so it is put
                // together without the formatting machinery.
                let mut value = String::with_capacity(96 + self.realm.len() + nonce.len());
                for part in [
                    "Digest realm=\"",
                    &self.realm,
                    "\", nonce=\"",
                    &nonce,
                    "\", algorithm=",
                    algorithm.token(),
                    ", qop=\"auth\"",
                    if stale { ", stale=true" } else { "" },
                ] {
                    value.push_str(part);
                }
                value
            })
            .collect()
    }

    /// Returns `<issue time>.<serial>.<tag>` in hex. The serial makes every
    /// challenge's nonce unique, so two phones challenged in the same second
    /// do not share nonce counts. The tag proves that this process issued
    /// the nonce, so a serial cannot be forged.
    fn issue_nonce(&self, now: SystemTime) -> String {
        let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        format!("{seconds:x}.{serial:x}.{}", self.nonce_tag(seconds, serial))
    }

    fn nonce_tag(&self, seconds: u64, serial: u64) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(seconds.to_be_bytes());
        hasher.update(serial.to_be_bytes());
        lower_hex(&hasher.finalize()[..12])
    }

    /// Checks that this process issued `nonce` within its lifetime and
    /// returns its serial.
    fn check_nonce(&self, nonce: &str, now: SystemTime) -> Result<u64, AuthError> {
        let mut parts = nonce.splitn(3, '.');
        let (Some(issued), Some(serial), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::InvalidNonce);
        };
        let issued = u64::from_str_radix(issued, 16).map_err(|_| AuthError::InvalidNonce)?;
        let serial = u64::from_str_radix(serial, 16).map_err(|_| AuthError::InvalidNonce)?;
        if !constant_time_eq(tag.as_bytes(), self.nonce_tag(issued, serial).as_bytes()) {
            return Err(AuthError::InvalidNonce);
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        // A nonce from the future means our clock stepped back; accept it
        // within the lifetime rather than locking every phone out.
        if now.abs_diff(issued) > NONCE_LIFETIME.as_secs() {
            return Err(AuthError::StaleNonce);
        }
        Ok(serial)
    }

    /// Checks `credentials` for a request with `method`, looking the
    /// password up with `password_of`. Returns the authenticated username.
    pub fn verify<'a>(
        &mut self,
        credentials: &'a Credentials,
        request: &sip_message::Request,
        now: SystemTime,
        password_of: impl FnOnce(&str) -> Option<&'a str>,
    ) -> Result<&'a str, AuthError> {
        let method = request.method.as_str();
        if credentials.realm != self.realm {
            return Err(AuthError::Missing {
                realm: self.realm.clone(),
            });
        }
        let algorithm = match &credentials.algorithm {
            None => Algorithm::Md5,
            Some(token) => {
                Algorithm::from_token(token).ok_or_else(|| AuthError::UnsupportedAlgorithm {
                    algorithm: token.clone(),
                })?
            }
        };
        if !self.algorithms.contains(&algorithm) {
            return Err(AuthError::UnsupportedAlgorithm {
                algorithm: algorithm.token().to_owned(),
            });
        }
        let serial = self.check_nonce(&credentials.nonce, now)?;
        let username = credentials.username.as_str();
        let password = password_of(username).ok_or_else(|| AuthError::UnknownUser {
            username: username.to_owned(),
        })?;
        let expected = expected_response(algorithm, credentials, &self.realm, password, method)?;
        if !constant_time_eq(
            expected.as_bytes(),
            credentials.response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(AuthError::WrongResponse {
                username: username.to_owned(),
            });
        }
        // Checked after the response, so only a holder of the password (or
        // of a captured header) learns about the uri and the count.
        if !same_resource(&credentials.uri, &request.uri) {
            return Err(AuthError::UriMismatch {
                uri: credentials.uri.clone(),
            });
        }
        self.record_use(credentials, serial)?;
        Ok(username)
    }

    /// Accepts each nonce count once per nonce, in increasing order; without
    /// qop there is no count, so such a nonce is good for one request.
    fn record_use(&mut self, credentials: &Credentials, serial: u64) -> Result<(), AuthError> {
        let count = match &credentials.nc {
            Some(nc) => u32::from_str_radix(nc, 16).map_err(|_| AuthError::Malformed {
                reason: "nonce count is not hexadecimal",
            })?,
            None => 0,
        };
        let issued = self.next_serial.load(Ordering::Relaxed);
        let tracked = TRACKED_NONCES as u64;
        // The tag proved that this process issued the serial, so it is below
        // `issued`. A serial that left the ring can no longer be checked for
        // replays, so the phone is asked to take a fresh nonce.
        if serial == 0 || serial >= issued || issued - serial > tracked {
            return Err(AuthError::StaleNonce);
        }
        let slot = (serial % tracked) as usize;
        if self.used_serials[slot] == serial {
            if count <= self.used_counts[slot] {
                return Err(AuthError::Replayed {
                    nc: credentials.nc.clone().unwrap_or_default(),
                });
            }
        } else {
            // The slot held a serial older than the ring, or none.
            self.used_serials[slot] = serial;
        }
        self.used_counts[slot] = count;
        Ok(())
    }
}

/// The `response` value a client with `password` computes (RFC 2617 section
/// 3.2.2.1 with the hash of RFC 8760).
pub fn expected_response(
    algorithm: Algorithm,
    credentials: &Credentials,
    realm: &str,
    password: &str,
    method: &str,
) -> Result<String, AuthError> {
    let ha1 = algorithm.hash_hex(&[&credentials.username, realm, password]);
    let ha2 = algorithm.hash_hex(&[method, &credentials.uri]);
    let response = match credentials.qop.as_deref() {
        None => algorithm.hash_hex(&[&ha1, &credentials.nonce, &ha2]),
        Some(qop) if qop.eq_ignore_ascii_case("auth") => {
            let (Some(nc), Some(cnonce)) = (&credentials.nc, &credentials.cnonce) else {
                return Err(AuthError::Malformed {
                    reason: "qop=auth without nc or cnonce",
                });
            };
            algorithm.hash_hex(&[&ha1, &credentials.nonce, nc, cnonce, "auth", &ha2])
        }
        Some(_) => {
            return Err(AuthError::Malformed {
                reason: "unsupported qop",
            });
        }
    };
    Ok(response)
}

/// The digest `uri` names the same resource as the Request-URI (RFC 7616
/// section 3.4.6): same scheme, user, host and port; parameters may differ.
fn same_resource(digest_uri: &str, request_uri: &sip_message::Uri) -> bool {
    let Ok(uri) = digest_uri.parse::<sip_message::Uri>() else {
        return false;
    };
    let same_host = match (&uri.host, &request_uri.host) {
        (sip_message::Host::Domain(a), sip_message::Host::Domain(b)) => a.eq_ignore_ascii_case(b),
        (a, b) => a == b,
    };
    uri.scheme == request_uri.scheme
        && same_host
        && uri.port == request_uri.port
        && uri.user_unescaped() == request_uri.user_unescaped()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The REGISTER the test credentials were computed for.
    fn register() -> sip_message::Request {
        let uri = "sip:pbx.local".parse().unwrap();
        sip_message::Request::new(sip_message::Method::Register, uri)
    }

    fn client_credentials(
        auth: &DigestAuthenticator,
        algorithm: Algorithm,
        password: &str,
        now: SystemTime,
    ) -> Credentials {
        let challenges = auth.challenges(now, false);
        let challenge = challenges
            .iter()
            .find(|c| c.contains(algorithm.token()))
            .unwrap();
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut credentials = Credentials {
            username: "1001".into(),
            realm: auth.realm().into(),
            nonce: nonce.into(),
            uri: "sip:pbx.local".into(),
            algorithm: Some(algorithm.token().into()),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("abc".into()),
            ..Credentials::default()
        };
        credentials.response =
            expected_response(algorithm, &credentials, auth.realm(), password, "REGISTER").unwrap();
        credentials
    }

    #[test]
    fn rfc2617_reference_response() {
        // The worked example of RFC 2617 section 3.5, with SIP's method.
        let credentials = Credentials {
            username: "Mufasa".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("0a4f113b".into()),
            ..Credentials::default()
        };
        let response = expected_response(
            Algorithm::Md5,
            &credentials,
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
        )
        .unwrap();
        assert_eq!(response, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn verify_accepts_both_algorithms() {
        let mut auth = DigestAuthenticator::new("pbx.local", &[Algorithm::Sha256, Algorithm::Md5]);
        let now = SystemTime::now();
        for algorithm in [Algorithm::Sha256, Algorithm::Md5] {
            let credentials = client_credentials(&auth, algorithm, "secret", now);
            let result = auth.verify(&credentials, &register(), now, |_| Some("secret"));
            assert_eq!(result, Ok("1001"), "{algorithm:?}");
        }
    }

    #[test]
    fn verify_rejects_wrong_password() {
        let mut auth = DigestAuthenticator::new("pbx.local", &[Algorithm::Sha256, Algorithm::Md5]);
        let now = SystemTime::now();
        let credentials = client_credentials(&auth, Algorithm::Md5, "guess", now);
        let result = auth.verify(&credentials, &register(), now, |_| Some("secret"));
        assert!(matches!(result, Err(AuthError::WrongResponse { .. })));
    }

    #[test]
    fn verify_flags_stale_and_forged_nonces() {
        let mut auth = DigestAuthenticator::new("pbx.local", &[Algorithm::Sha256, Algorithm::Md5]);
        let issued = SystemTime::now();
        let credentials = client_credentials(&auth, Algorithm::Md5, "secret", issued);
        let later = issued + NONCE_LIFETIME + Duration::from_secs(5);
        let result = auth.verify(&credentials, &register(), later, |_| Some("secret"));
        assert_eq!(result, Err(AuthError::StaleNonce));

        let mut other = DigestAuthenticator::new("pbx.local", &[Algorithm::Sha256, Algorithm::Md5]);
        let result = other.verify(&credentials, &register(), issued, |_| Some("secret"));
        assert_eq!(result, Err(AuthError::InvalidNonce));
    }

    #[test]
    fn challenges_follow_configured_order() {
        let auth = DigestAuthenticator::new("pbx.local", &[Algorithm::Md5, Algorithm::Sha256]);
        let challenges = auth.challenges(SystemTime::now(), false);
        assert!(challenges[0].contains("algorithm=MD5"), "{}", challenges[0]);
        assert!(
            challenges[1].contains("algorithm=SHA-256"),
            "{}",
            challenges[1]
        );
    }

    #[test]
    fn verify_rejects_algorithm_not_offered() {
        let mut auth = DigestAuthenticator::new("pbx.local", &[Algorithm::Sha256]);
        let now = SystemTime::now();
        let mut credentials = client_credentials(&auth, Algorithm::Sha256, "secret", now);
        credentials.algorithm = Some("MD5".into());
        let result = auth.verify(&credentials, &register(), now, |_| Some("secret"));
        assert!(matches!(
            result,
            Err(AuthError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn parse_quoted_and_bare_params() {
        let header = r#"Digest username="1001", realm="pbx.local", nonce="5f.ab", uri="sip:pbx.local", response="00ff", algorithm=MD5, qop=auth, nc=00000001, cnonce="x,\"y""#;
        let credentials = Credentials::parse(header).unwrap();
        assert_eq!(credentials.username, "1001");
        assert_eq!(credentials.cnonce.as_deref(), Some("x,\"y"));
        assert_eq!(credentials.qop.as_deref(), Some("auth"));
        assert_eq!(credentials.algorithm.as_deref(), Some("MD5"));
    }

    #[test]
    fn lower_hex_matches_hex_crate() {
        let bytes = [0x00, 0x0f, 0xa5, 0xff, 0x10];
        assert_eq!(lower_hex(&bytes), hex::encode(bytes));
        assert_eq!(lower_hex(&[]), "");
    }

    #[test]
    fn auth_params_keep_escapes_and_spacing() {
        let pairs = split_auth_params(r#" a = "x\\y\"z" ,b=c,, d="""#).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0], ("a", r#"x\y"z"#.to_owned()));
        assert_eq!(pairs[1], ("b", "c".to_owned()));
        assert_eq!(pairs[2], ("d", String::new()));
        assert!(split_auth_params(r#"a="x\"#).is_err());
        assert!(split_auth_params("a b").is_err());
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(Credentials::parse("Basic abc").is_err());
        assert!(Credentials::parse("Digest username").is_err());
        assert!(Credentials::parse("Digest username=\"unterminated").is_err());
        assert!(Credentials::parse("Digest realm=x").is_err());
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    fn credentials_for(
        auth: &DigestAuthenticator,
        uri: &str,
        nc: &str,
    ) -> (Credentials, sip_message::Request) {
        let challenge = &auth.challenges(SystemTime::now(), false)[0];
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut credentials = Credentials {
            username: "1001".into(),
            realm: "pbx.local".into(),
            nonce: nonce.into(),
            uri: uri.into(),
            qop: Some("auth".into()),
            nc: Some(nc.into()),
            cnonce: Some("c".into()),
            ..Credentials::default()
        };
        credentials.response = expected_response(
            Algorithm::Md5,
            &credentials,
            "pbx.local",
            "secret",
            "REGISTER",
        )
        .unwrap();
        let request = sip_message::Request::new(
            sip_message::Method::Register,
            "sip:pbx.local".parse().unwrap(),
        );
        (credentials, request)
    }

    #[test]
    fn nonce_older_than_the_ring_is_stale() {
        let mut auth = DigestAuthenticator::new("pbx.local", &[Algorithm::Md5]);
        let now = SystemTime::now();
        let (old, request) = credentials_for(&auth, "sip:pbx.local", "00000001");
        // As if a million other challenges went out since.
        auth.next_serial
            .fetch_add(TRACKED_NONCES as u64, Ordering::Relaxed);
        let result = auth.verify(&old, &request, now, |_| Some("secret"));
        assert!(matches!(result, Err(AuthError::StaleNonce)), "{result:?}");
        let (fresh, request) = credentials_for(&auth, "sip:pbx.local", "00000001");
        assert_eq!(
            auth.verify(&fresh, &request, now, |_| Some("secret")),
            Ok("1001")
        );
    }

    #[test]
    fn ring_slot_reused_by_a_newer_serial() {
        let mut auth = DigestAuthenticator::new("pbx.local", &[Algorithm::Md5]);
        let now = SystemTime::now();
        let (first, request) = credentials_for(&auth, "sip:pbx.local", "00000005");
        assert_eq!(
            auth.verify(&first, &request, now, |_| Some("secret")),
            Ok("1001")
        );
        // The next nonce with the same slot starts its own counts at 1,
        // below the 5 the slot's earlier serial reached.
        auth.next_serial
            .fetch_add(TRACKED_NONCES as u64 - 1, Ordering::Relaxed);
        let (second, request) = credentials_for(&auth, "sip:pbx.local", "00000001");
        assert_eq!(
            auth.verify(&second, &request, now, |_| Some("secret")),
            Ok("1001")
        );
        let replay = auth.verify(&second, &request, now, |_| Some("secret"));
        assert!(
            matches!(replay, Err(AuthError::Replayed { .. })),
            "{replay:?}"
        );
    }

    #[test]
    fn same_nonce_count_is_refused_the_second_time() {
        let mut auth = DigestAuthenticator::new("pbx.local", &[Algorithm::Md5]);
        let now = SystemTime::now();
        let (credentials, request) = credentials_for(&auth, "sip:pbx.local", "00000001");
        assert_eq!(
            auth.verify(&credentials, &request, now, |_| Some("secret")),
            Ok("1001")
        );
        let replay = auth.verify(&credentials, &request, now, |_| Some("secret"));
        assert!(
            matches!(replay, Err(AuthError::Replayed { .. })),
            "{replay:?}"
        );

        let mut next = credentials.clone();
        next.nc = Some("00000002".into());
        next.response =
            expected_response(Algorithm::Md5, &next, "pbx.local", "secret", "REGISTER").unwrap();
        assert_eq!(
            auth.verify(&next, &request, now, |_| Some("secret")),
            Ok("1001")
        );
    }

    #[test]
    fn digest_uri_must_name_the_request_uri() {
        let mut auth = DigestAuthenticator::new("pbx.local", &[Algorithm::Md5]);
        let (credentials, request) = credentials_for(&auth, "sip:elsewhere.example", "00000001");
        let result = auth.verify(&credentials, &request, SystemTime::now(), |_| {
            Some("secret")
        });
        assert!(
            matches!(result, Err(AuthError::UriMismatch { .. })),
            "{result:?}"
        );
    }
}
