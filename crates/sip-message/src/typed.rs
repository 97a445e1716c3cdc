//! Typed accessors for the headers a proxy or B2BUA reads. Each one decodes
//! the raw value on request, so a malformed header only fails the caller
//! that reads it.

use std::sync::OnceLock;

use crate::headers::{Decoded, same_name};
use crate::text::{parse_decimal, split_top_level, trim_lws};
use crate::{ErrorKind, Headers, Method, NameAddr, ParseError, Via};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`; leading zeros are allowed and a number
    /// above 2^32-1 is an error (RFC 3261 section 8.1.1.5).
    pub fn parse(text: &str) -> Result<CSeq, ParseError> {
        let invalid = || ParseError::new(ErrorKind::CSeq, format!("invalid CSeq {text:?}"));
        let text = trim_lws(text);
        let split = text.find(crate::text::is_lws).ok_or_else(invalid)?;
        let (number, method) = (&text[..split], trim_lws(&text[split..]));
        let seq = parse_decimal(number, u64::from(u32::MAX)).ok_or_else(invalid)?;
        let method = method.parse::<Method>().map_err(|_| invalid())?;
        Ok(CSeq {
            seq: u32::try_from(seq).map_err(|_| invalid())?,
            method,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactList {
    /// `Contact: *`, used to remove every binding in a REGISTER.
    Star,
    Addresses(Vec<NameAddr>),
}

impl Headers {
    pub fn call_id(&self) -> Option<&str> {
        self.get("Call-ID")
    }

    /// Errors when CSeq is missing, malformed, or present more than once.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(self.single("CSeq", ErrorKind::CSeq)?)
    }

    pub fn from(&self) -> Result<NameAddr, ParseError> {
        self.from_ref().cloned()
    }

    /// Returns From, decoded once until the headers change.
    pub fn from_ref(&self) -> Result<&NameAddr, ParseError> {
        self.single_name_addr(&self.decoded().from, "From")
    }

    pub fn to(&self) -> Result<NameAddr, ParseError> {
        self.to_ref().cloned()
    }

    /// Returns To, decoded once until the headers change.
    pub fn to_ref(&self) -> Result<&NameAddr, ParseError> {
        self.single_name_addr(&self.decoded().to, "To")
    }

    fn decoded(&self) -> &Decoded {
        self.decoded.get_or_init(Box::default)
    }

    /// Returns the single header `name` decoded as a name-addr, decoding it
    /// into `cell` on first use.
    fn single_name_addr<'a>(
        &'a self,
        cell: &'a OnceLock<Result<NameAddr, ParseError>>,
        name: &str,
    ) -> Result<&'a NameAddr, ParseError> {
        cell.get_or_init(|| NameAddr::parse(self.single(name, ErrorKind::NameAddr)?))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Returns every Via value in order, whether on separate lines or comma-separated.
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        self.list_elements("Via").map(Via::parse).collect()
    }

    pub fn top_via(&self) -> Result<Via, ParseError> {
        let first = self.list_elements("Via").next();
        let first =
            first.ok_or_else(|| ParseError::new(ErrorKind::MissingHeader, "missing Via header"))?;
        Via::parse(first)
    }

    /// `Star` for `Contact: *`; an empty `Addresses` when there is no Contact.
    pub fn contacts(&self) -> Result<ContactList, ParseError> {
        self.contacts_ref().cloned()
    }

    /// Returns the Contact values, decoded once until the headers change.
    pub fn contacts_ref(&self) -> Result<&ContactList, ParseError> {
        let cell = &self.decoded().contacts;
        cell.get_or_init(|| self.decode_contacts())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn decode_contacts(&self) -> Result<ContactList, ParseError> {
        let elements: Vec<&str> = self.list_elements("Contact").collect();
        if elements.contains(&"*") {
            if elements.len() > 1 {
                return Err(ParseError::new(
                    ErrorKind::NameAddr,
                    "Contact '*' combined with other contacts",
                ));
            }
            return Ok(ContactList::Star);
        }
        let addresses = elements
            .into_iter()
            .map(NameAddr::parse)
            .collect::<Result<_, _>>()?;
        Ok(ContactList::Addresses(addresses))
    }

    pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.list_elements("Record-Route")
            .map(NameAddr::parse)
            .collect()
    }

    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.list_elements("Route").map(NameAddr::parse).collect()
    }

    /// Returns every Path value of a REGISTER (RFC 3327), top first.
    pub fn paths(&self) -> Result<Vec<NameAddr>, ParseError> {
        self.list_elements("Path").map(NameAddr::parse).collect()
    }

    /// Reads Max-Forwards. A value above 255 is an error.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        let Some(value) = self.optional_single("Max-Forwards", ErrorKind::MaxForwards)? else {
            return Ok(None);
        };
        let hops = parse_decimal(value, 255).and_then(|v| u8::try_from(v).ok());
        hops.map(Some).ok_or_else(|| {
            ParseError::new(
                ErrorKind::MaxForwards,
                format!("invalid Max-Forwards {value:?}"),
            )
        })
    }

    /// Reads the delta-seconds of Expires. A value above 2^32-1 is an error.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        let Some(value) = self.optional_single("Expires", ErrorKind::Expires)? else {
            return Ok(None);
        };
        let seconds = parse_decimal(value, u64::from(u32::MAX)).and_then(|v| u32::try_from(v).ok());
        seconds.map(Some).ok_or_else(|| {
            ParseError::new(ErrorKind::Expires, format!("invalid Expires {value:?}"))
        })
    }

    pub fn content_type(&self) -> Option<&str> {
        self.get("Content-Type")
    }

    /// Number of elements of the list header `name`, on separate lines or
    /// comma-separated, without parsing them.
    pub fn list_len(&self, name: &str) -> usize {
        self.list_elements(name).count()
    }

    /// Splits a list header at top-level commas and trims each element.
    fn list_elements<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.get_all(name)
            .flat_map(|value| split_top_level(value, ','))
            .map(trim_lws)
    }

    fn optional_single(&self, name: &str, kind: ErrorKind) -> Result<Option<&str>, ParseError> {
        let mut values = self
            .iter()
            .filter(|h| same_name(h.name(), name))
            .map(|h| h.value());
        let first = values.next();
        if values.next().is_some() {
            return Err(ParseError::new(
                kind,
                format!("more than one {name} header"),
            ));
        }
        Ok(first)
    }

    fn single(&self, name: &str, kind: ErrorKind) -> Result<&str, ParseError> {
        self.optional_single(name, kind)?.ok_or_else(|| {
            ParseError::new(ErrorKind::MissingHeader, format!("missing {name} header"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in lines {
            headers.push(name, *value);
        }
        headers
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(
            CSeq::parse("0009 \t INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
        assert_eq!(CSeq::parse("4294967295 ACK").unwrap().seq, u32::MAX);
        assert!(CSeq::parse("4294967296 ACK").is_err());
        assert!(CSeq::parse("-1 ACK").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("1 INV ITE").is_err());
    }

    #[test]
    fn decoded_values_follow_changes() {
        let mut h = headers(&[
            ("To", "<sip:1001@pbx.test>"),
            ("From", "<sip:1001@pbx.test>;tag=a"),
            ("Contact", "<sip:1001@192.0.2.1>"),
        ]);
        assert_eq!(h.to_ref().unwrap().uri.user.as_deref(), Some("1001"));
        assert_eq!(h.from_ref().unwrap().tag(), Some("a"));
        assert!(matches!(h.contacts_ref(), Ok(ContactList::Addresses(list)) if list.len() == 1));

        h.set("To", "<sip:1002@pbx.test>;tag=b");
        h.push("Contact", "*");
        h.remove("From");
        assert_eq!(h.to_ref().unwrap().uri.user.as_deref(), Some("1002"));
        assert_eq!(h.to().unwrap().tag(), Some("b"));
        assert!(h.contacts_ref().is_err());
        assert_eq!(h.from_ref().unwrap_err().kind(), ErrorKind::MissingHeader);

        // A copy decodes its own list, and equality ignores what was decoded.
        let copy = h.clone();
        assert_eq!(copy, h);
        assert_eq!(copy.to_ref().unwrap().uri.user.as_deref(), Some("1002"));
    }

    #[test]
    fn vias_across_lines_and_commas() {
        let h = headers(&[
            ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b"),
            ("v", "SIP/2.0/TLS c"),
        ]);
        let transports: Vec<String> = h.vias().unwrap().into_iter().map(|v| v.transport).collect();
        assert_eq!(transports, vec!["UDP", "TCP", "TLS"]);
        assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK1"));
        assert!(headers(&[]).top_via().is_err());
        assert!(headers(&[("Via", "SIP/2.0/UDP a;;,;,,")]).vias().is_err());
    }

    #[test]
    fn contacts_star_and_absent() {
        assert_eq!(
            headers(&[("m", " * ")]).contacts().unwrap(),
            ContactList::Star
        );
        assert_eq!(
            headers(&[]).contacts().unwrap(),
            ContactList::Addresses(vec![])
        );
        assert!(headers(&[("Contact", "*, <sip:a@b>")]).contacts().is_err());
        let ContactList::Addresses(list) =
            headers(&[("Contact", "\"A, B\" <sip:a@b>, <sip:c@d>;expires=60")])
                .contacts()
                .unwrap()
        else {
            panic!("expected addresses");
        };
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].display_name.as_deref(), Some("A, B"));
        assert_eq!(list[1].params.value("expires"), Some("60"));
    }

    #[test]
    fn numeric_headers() {
        assert_eq!(
            headers(&[("Max-Forwards", "0068")]).max_forwards().unwrap(),
            Some(68)
        );
        assert!(headers(&[("Max-Forwards", "300")]).max_forwards().is_err());
        assert_eq!(headers(&[]).max_forwards().unwrap(), None);
        assert_eq!(
            headers(&[("Expires", "3600")]).expires().unwrap(),
            Some(3600)
        );
        assert!(headers(&[("Expires", "4294967296")]).expires().is_err());
    }

    #[test]
    fn single_value_headers_reject_duplicates() {
        let h = headers(&[
            ("To", "sip:user@example.com"),
            ("t", "sip:other@example.net"),
        ]);
        assert!(h.to().is_err());
        assert!(
            headers(&[("CSeq", "1 INVITE"), ("CSeq", "2 INVITE")])
                .cseq()
                .is_err()
        );
        assert!(headers(&[]).from().is_err());
    }
}
