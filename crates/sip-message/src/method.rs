//! Request methods (RFC 3261 section 7.1 and the extensions in use).

use std::fmt;
use std::str::FromStr;

use crate::text::is_token;
use crate::{ErrorKind, ParseError};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token, as written.
    Extension(String),
}

const STANDARD: &[(&str, Method)] = &[
    ("INVITE", Method::Invite),
    ("ACK", Method::Ack),
    ("BYE", Method::Bye),
    ("CANCEL", Method::Cancel),
    ("REGISTER", Method::Register),
    ("OPTIONS", Method::Options),
    ("INFO", Method::Info),
    ("UPDATE", Method::Update),
    ("PRACK", Method::Prack),
    ("SUBSCRIBE", Method::Subscribe),
    ("NOTIFY", Method::Notify),
    ("REFER", Method::Refer),
    ("MESSAGE", Method::Message),
    ("PUBLISH", Method::Publish),
];

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Extension(token) => token,
            standard => STANDARD
                .iter()
                .find(|(_, m)| m == standard)
                .map_or("", |(name, _)| name),
        }
    }
}

impl FromStr for Method {
    type Err = ParseError;

    /// Case-sensitive, as RFC 3261 section 7.1 says, so `invite` is an
    /// extension method. `%` is a plain token character here, never an escape.
    fn from_str(text: &str) -> Result<Method, ParseError> {
        if !is_token(text) {
            return Err(ParseError::new(
                ErrorKind::Method,
                format!("invalid method {text:?}"),
            ));
        }
        let standard = STANDARD.iter().find(|(name, _)| *name == text);
        Ok(standard.map_or_else(|| Method::Extension(text.to_owned()), |(_, m)| m.clone()))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!("INVITE".parse::<Method>().unwrap(), Method::Invite);
        assert_eq!(
            "invite".parse::<Method>().unwrap(),
            Method::Extension("invite".into())
        );
        assert_eq!(
            "RE%47IST%45R".parse::<Method>().unwrap().as_str(),
            "RE%47IST%45R"
        );
        assert!("IN VITE".parse::<Method>().is_err());
        assert!("".parse::<Method>().is_err());
        assert_eq!(Method::Prack.to_string(), "PRACK");
    }
}
