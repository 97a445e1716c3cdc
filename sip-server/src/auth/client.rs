//! Digest authentication as a client (RFC 3261 section 22.2, RFC 7616,
//! RFC 8760): reading a provider's `WWW-Authenticate` or
//! `Proxy-Authenticate` challenge and computing the `Authorization` or
//! `Proxy-Authorization` value that responds to it.

use super::{Algorithm, AuthError, Credentials, expected_response, split_auth_params};

/// One digest challenge from a 401 or 407.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// The server offered `qop=auth`, so the credentials carry a client
    /// nonce and a nonce count. Without it the RFC 2069 form is used.
    pub qop_auth: bool,
    pub opaque: Option<String>,
    /// The server rejected an old nonce, not the credentials.
    pub stale: bool,
}

impl Challenge {
    /// Parses `Digest realm="...", nonce="...", ...`. A challenge with an
    /// algorithm other than MD5 and SHA-256 (such as `-sess` variants), or
    /// with a qop list that lacks `auth`, is unsupported.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let rest = value.trim_start();
        let scheme_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if !rest[..scheme_end].eq_ignore_ascii_case("Digest") {
            return Err(AuthError::UnsupportedScheme {
                scheme: rest[..scheme_end].to_owned(),
            });
        }
        let mut realm = None;
        let mut nonce = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop = None;
        let mut opaque = None;
        let mut stale = false;
        for (name, value) in split_auth_params(&rest[scheme_end..])? {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "algorithm" => {
                    algorithm = Algorithm::from_token(&value)
                        .ok_or(AuthError::UnsupportedAlgorithm { algorithm: value })?;
                }
                "qop" => qop = Some(value),
                "opaque" => opaque = Some(value),
                "stale" => stale = value.eq_ignore_ascii_case("true"),
                _ => {}
            }
        }
        let (Some(realm), Some(nonce)) = (realm, nonce) else {
            return Err(AuthError::Malformed {
                reason: "realm or nonce missing",
            });
        };
        let qop_auth = match qop {
            None => false,
            Some(list)
                if list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth")) =>
            {
                true
            }
            Some(_) => {
                return Err(AuthError::Malformed {
                    reason: "unsupported qop",
                });
            }
        };
        Ok(Challenge {
            realm,
            nonce,
            algorithm,
            qop_auth,
            opaque,
            stale,
        })
    }

    /// Picks the first challenge this client supports among the header
    /// values of one response. RFC 8760 section 2.4 has the server list its
    /// challenges in order of preference and the client take the first it
    /// supports.
    pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
        values
            .into_iter()
            .find_map(|value| Challenge::parse(value).ok())
    }

    /// Computes the credentials header value for a request with `method`
    /// to `uri`.
    /// `nonce_count` is the number of requests sent with this nonce, this
    /// one included (RFC 7616 section 3.4); it is ignored without qop.
    pub fn authorization(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        nonce_count: u32,
        cnonce: &str,
    ) -> Result<String, AuthError> {
        let (qop, nc, cnonce) = if self.qop_auth {
            (
                Some("auth".to_owned()),
                Some(format!("{nonce_count:08x}")),
                Some(cnonce.to_owned()),
            )
        } else {
            (None, None, None)
        };
        let credentials = Credentials {
            username: username.to_owned(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_owned(),
            response: String::new(),
            algorithm: Some(self.algorithm.token().to_owned()),
            qop,
            nc,
            cnonce,
        };
        let response =
            expected_response(self.algorithm, &credentials, &self.realm, password, method)?;
        let mut value = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            quote_escape(username),
            quote_escape(&self.realm),
            quote_escape(&self.nonce),
            quote_escape(uri),
            self.algorithm.token(),
        );
        if let (Some(nc), Some(cnonce)) = (&credentials.nc, &credentials.cnonce) {
            value.push_str(&format!(
                ", qop=auth, nc={nc}, cnonce=\"{}\"",
                quote_escape(cnonce)
            ));
        }
        if let Some(opaque) = &self.opaque {
            value.push_str(&format!(", opaque=\"{}\"", quote_escape(opaque)));
        }
        Ok(value)
    }
}

/// Escapes `"` and `\` for a quoted-string.
fn quote_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::auth::DigestAuthenticator;

    #[test]
    fn parses_challenge_with_qop_list() {
        let challenge = Challenge::parse(
            "Digest realm=\"carrier.example\", nonce=\"abc\", algorithm=SHA-256, \
             qop=\"auth,auth-int\", opaque=\"xyz\", stale=TRUE",
        )
        .unwrap();
        assert_eq!(challenge.realm, "carrier.example");
        assert_eq!(challenge.nonce, "abc");
        assert_eq!(challenge.algorithm, Algorithm::Sha256);
        assert!(challenge.qop_auth);
        assert_eq!(challenge.opaque.as_deref(), Some("xyz"));
        assert!(challenge.stale);
    }

    #[test]
    fn rejects_session_algorithm() {
        let error = Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess");
        assert!(matches!(error, Err(AuthError::UnsupportedAlgorithm { .. })));
    }

    #[test]
    fn choose_takes_first_supported() {
        let values = [
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256",
            "Digest realm=\"r\", nonce=\"n\", algorithm=MD5",
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256",
        ];
        let chosen = Challenge::choose(values).unwrap();
        assert_eq!(chosen.algorithm, Algorithm::Md5);
    }

    /// RFC 2617 section 3.5's example, with the method and URI of that
    /// example: the computed response must match the published one.
    #[test]
    fn authorization_matches_rfc_2617_example() {
        let challenge = Challenge {
            realm: "testrealm@host.com".to_owned(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".to_owned(),
            algorithm: Algorithm::Md5,
            qop_auth: true,
            opaque: Some("5ccc069c403ebaf9f0171e9517f40e41".to_owned()),
            stale: false,
        };
        let value = challenge
            .authorization(
                "Mufasa",
                "Circle Of Life",
                "GET",
                "/dir/index.html",
                1,
                "0a4f113b",
            )
            .unwrap();
        assert!(
            value.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{value}"
        );
        assert!(value.contains("nc=00000001"), "{value}");
        assert!(
            value.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""),
            "{value}"
        );
    }

    /// The credentials are accepted by this crate's own server side, for both
    /// algorithms, and a second request with the same nonce needs a higher
    /// nonce count.
    #[test]
    fn authorization_verified_by_server() {
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let mut server = DigestAuthenticator::new("pbx.local", &[algorithm]);
            let now = SystemTime::now();
            let header = server.challenges(now, false).remove(0);
            let challenge = Challenge::parse(&header).unwrap();
            let uri: sip_message::Uri = "sip:pbx.local".parse().unwrap();
            let request = sip_message::Request::new(sip_message::Method::Register, uri);
            for count in [1, 2] {
                let value = challenge
                    .authorization("trunk", "s3cret", "REGISTER", "sip:pbx.local", count, "c1")
                    .unwrap();
                let credentials = Credentials::parse(&value).unwrap();
                let verdict = server.verify(&credentials, &request, now, |_| Some("s3cret"));
                assert_eq!(verdict, Ok("trunk"), "{algorithm:?} nc {count}");
            }
            let replayed = challenge
                .authorization("trunk", "s3cret", "REGISTER", "sip:pbx.local", 2, "c1")
                .unwrap();
            let credentials = Credentials::parse(&replayed).unwrap();
            let verdict = server.verify(&credentials, &request, now, |_| Some("s3cret"));
            assert!(matches!(verdict, Err(AuthError::Replayed { .. })));
        }
    }
}
