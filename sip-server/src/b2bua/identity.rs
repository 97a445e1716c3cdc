//! The caller and the number first dialed, as a trunk's INVITE carries
//! them: the caller from P-Asserted-Identity (RFC 3325) when the trunk is
//! trusted to assert it, the first redirecting number from Diversion (RFC
//! 5806), and both written in E.164 by the trunk's numbering plan.

use sip_message::{Request, Uri};

/// The numbering plan of a trunk whose numbers are not in E.164 yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberingPlan {
    /// Country calling code without `+`, such as "33".
    pub country_code: String,
    /// Prefix of national numbers, such as "0"; may be empty.
    pub national_prefix: String,
    /// Prefix of international numbers, such as "00".
    pub international_prefix: String,
}

impl NumberingPlan {
    /// Returns `number` in E.164 (`+` and digits) when it is a national or
    /// international number of this plan. Anything else (short codes,
    /// extensions, names) comes back unchanged. Spaces, dots, dashes and
    /// parentheses that phones put in numbers are dropped first.
    pub fn to_e164(&self, number: &str) -> String {
        let compact: String = number
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
            .collect();
        let (plus, digits) = match compact.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, compact.as_str()),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return number.to_owned();
        }
        if plus {
            return compact;
        }
        if !self.international_prefix.is_empty()
            && let Some(rest) = digits.strip_prefix(self.international_prefix.as_str())
            && !rest.is_empty()
        {
            return format!("+{rest}");
        }
        if !self.national_prefix.is_empty()
            && let Some(rest) = digits.strip_prefix(self.national_prefix.as_str())
            && !rest.is_empty()
        {
            return format!("+{}{rest}", self.country_code);
        }
        number.to_owned()
    }
}

/// Returns the number in the first P-Asserted-Identity of `request`.
pub(super) fn asserted_identity(request: &Request) -> Option<String> {
    first_number(request.headers.get("P-Asserted-Identity")?)
}

/// Returns the number in the first Diversion entry of `request`: the
/// number the citizen dialed before the call was redirected to the centre.
pub(super) fn diverted_from(request: &Request) -> Option<String> {
    first_number(request.headers.get("Diversion")?)
}

/// The user part of the first `sip:`/`sips:` URI, or the number of the
/// first `tel:` URI (RFC 3966), of a header value listing name-addrs.
fn first_number(value: &str) -> Option<String> {
    let first = value.split(',').next()?.trim();
    let uri = match (first.find('<'), first.find('>')) {
        (Some(open), Some(close)) if open < close => &first[open + 1..close],
        _ => first.split(';').next()?.trim(),
    };
    let number = if let Some(tel) = uri.strip_prefix("tel:") {
        tel.split(';').next()?.to_owned()
    } else {
        Uri::parse(uri).ok()?.user_unescaped()?
    };
    let number = super::setup::limit_chars(number.trim(), super::setup::MAX_IDENTITY_CHARS);
    (!number.is_empty()).then_some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn france() -> NumberingPlan {
        NumberingPlan {
            country_code: "33".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
        }
    }

    #[test]
    fn national_and_international_numbers_become_e164() {
        let plan = france();
        assert_eq!(plan.to_e164("0612345678"), "+33612345678");
        assert_eq!(plan.to_e164("06 12 34 56 78"), "+33612345678");
        assert_eq!(plan.to_e164("0044 20 7946 0000"), "+442079460000");
        assert_eq!(plan.to_e164("+33 6 12 34 56 78"), "+33612345678");
        // Short codes, extensions and names are left alone.
        assert_eq!(plan.to_e164("1001"), "1001");
        assert_eq!(plan.to_e164("anonymous"), "anonymous");
        assert_eq!(plan.to_e164("0"), "0");
        assert_eq!(plan.to_e164("+"), "+");
    }

    #[test]
    fn a_plan_without_national_prefix_keeps_national_numbers() {
        let plan = NumberingPlan {
            country_code: "1".into(),
            national_prefix: String::new(),
            international_prefix: "011".into(),
        };
        assert_eq!(plan.to_e164("2025550123"), "2025550123");
        assert_eq!(plan.to_e164("011442079460000"), "+442079460000");
    }

    fn request_with(header: &str, value: &str) -> Request {
        let text = format!(
            "INVITE sip:5000@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-id\r\n\
             From: <sip:anonymous@anonymous.invalid>;tag=a\r\nTo: <sip:5000@pbx.test>\r\n\
             Call-ID: id@test\r\nCSeq: 1 INVITE\r\n{header}: {value}\r\nContent-Length: 0\r\n\r\n"
        );
        match sip_message::Message::parse(text.as_bytes()).unwrap() {
            sip_message::Message::Request(request) => request,
            sip_message::Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn identity_comes_from_sip_or_tel_uris() {
        let sip = request_with(
            "P-Asserted-Identity",
            "\"Jane\" <sip:+33612345678@carrier.test;user=phone>, <tel:+33612345678>",
        );
        assert_eq!(asserted_identity(&sip).as_deref(), Some("+33612345678"));
        let tel = request_with("P-Asserted-Identity", "<tel:0612345678;phone-context=+33>");
        assert_eq!(asserted_identity(&tel).as_deref(), Some("0612345678"));
        let bare = request_with("P-Asserted-Identity", "tel:+15550100");
        assert_eq!(asserted_identity(&bare).as_deref(), Some("+15550100"));
        let junk = request_with("P-Asserted-Identity", "<nonsense>");
        assert_eq!(asserted_identity(&junk), None);
    }

    #[test]
    fn diversion_gives_the_first_redirecting_number() {
        let request = request_with(
            "Diversion",
            "<sip:0140000000@carrier.test>;reason=unconditional;counter=1, <sip:0150000000@x>",
        );
        assert_eq!(diverted_from(&request).as_deref(), Some("0140000000"));
    }
}
