//! Extensions of REGISTER beyond RFC 3261: a Path through proxies
//! (RFC 3327), a flow of SIP Outbound (RFC 5626) and a public GRUU
//! (RFC 5627).

use sip_message::{Headers, NameAddr, Request, Uri};

use super::Rejection;
use crate::transaction::{Target, TransportKind};

/// Most Path values a REGISTER may carry: real deployments have one or
/// two proxies between a phone and the registrar.
pub(super) const MAX_PATH_VALUES: usize = 8;

/// Option tags of the extensions, as they appear in Supported and Require.
pub const TAG_PATH: &str = "path";
pub const TAG_OUTBOUND: &str = "outbound";
pub const TAG_GRUU: &str = "gruu";

/// The extensions a REGISTER uses, read once before its contacts.
#[derive(Debug, Default)]
pub(super) struct Extensions {
    /// Path values, top first: the proxy next to the PBX comes first and
    /// the edge proxy next to the phone last.
    pub(super) path: Vec<String>,
    /// The phone listed `path` in Supported, so the 200 echoes the Path.
    pub(super) path_supported: bool,
    pub(super) outbound_supported: bool,
    pub(super) gruu_supported: bool,
    /// The edge proxy marked its Path URI with `ob`, or no proxy added
    /// any Via, so the PBX is the first hop of the phone's flow.
    first_hop_ready: bool,
}

impl Extensions {
    /// Reads the extensions of `request`. A Path from a phone that did not
    /// list `path` in Supported is rejected with 421 and `Require: path`,
    /// because the PBX would route calls through proxies that the phone
    /// does not know about.
    // NOTE: some registrars answer this case with 420 instead. 421 is the
    // response RFC 3261 section 8.2.4 gives a server that cannot process a
    // request without an extension the client did not list.
    pub(super) fn read(request: &Request) -> Result<Extensions, Rejection> {
        let headers = &request.headers;
        let path = headers.paths().map_err(|_| Rejection::Bad("Bad Path"))?;
        // Each value becomes a Route header of every call to the phone, so
        // an unbounded list would make those INVITEs too large to send.
        if path.len() > MAX_PATH_VALUES {
            return Err(Rejection::Bad("Too Many Path Values"));
        }
        let path_supported = lists_tag(headers, "Supported", TAG_PATH);
        if !path.is_empty() && !path_supported {
            return Err(Rejection::ExtensionRequired(TAG_PATH));
        }
        // The transaction layer has parsed the top Via. The others belong to
        // the hops that added them, so counting them is enough.
        // NOTE: a malformed lower Via is not rejected, so it goes back
        // unchanged in the response.
        let via_count = headers.list_len("Via");
        // The edge proxy, which adds the last Path value, marks it with
        // `ob` when it keeps the phone's flow.
        let edge_keeps_flow = path
            .last()
            .is_some_and(|edge| edge.uri.params.contains("ob"));
        Ok(Extensions {
            path: path.iter().map(ToString::to_string).collect(),
            path_supported,
            outbound_supported: lists_tag(headers, "Supported", TAG_OUTBOUND),
            gruu_supported: lists_tag(headers, "Supported", TAG_GRUU),
            first_hop_ready: via_count <= 1 || edge_keeps_flow,
        })
    }

    /// Returns the reg-id of `contact` when the registrar applies SIP
    /// Outbound to it: the contact has `+sip.instance` and `reg-id`, and
    /// the phone listed `outbound` in Supported. Otherwise the reg-id is
    /// ignored, as RFC 5626 requires, and the contact is an ordinary
    /// binding.
    pub(super) fn flow_reg_id(
        &self,
        contact: &NameAddr,
        instance: Option<&str>,
    ) -> Result<Option<u32>, Rejection> {
        let Some(text) = contact.params.value("reg-id") else {
            return Ok(None);
        };
        let reg_id = text
            .parse::<u32>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or(Rejection::Bad("Bad reg-id"))?;
        if instance.is_none() || !self.outbound_supported {
            return Ok(None);
        }
        if !self.first_hop_ready {
            return Err(Rejection::Status(439, "First Hop Lacks Outbound Support"));
        }
        Ok(Some(reg_id))
    }
}

/// True when a list header `name` (Supported, Require) contains `tag`.
pub(super) fn lists_tag(headers: &Headers, name: &str, tag: &str) -> bool {
    headers
        .get_all(name)
        .flat_map(|value| value.split(','))
        .any(|element| element.trim().eq_ignore_ascii_case(tag))
}

/// Returns the `+sip.instance` of `contact` without its quotes and angle
/// brackets, as in `urn:uuid:00000000-0000-1000-8000-000a95a0e128`.
pub fn instance_id(contact: &NameAddr) -> Option<String> {
    let quoted = contact.params.value("+sip.instance")?;
    let text = quoted.trim().trim_matches('"');
    let text = text
        .strip_prefix('<')
        .and_then(|inner| inner.strip_suffix('>'))
        .unwrap_or(text);
    (!text.is_empty()).then(|| text.to_owned())
}

/// Returns the public GRUU of `instance` at `aor` (RFC 5627):
/// the address-of-record with a `gr` parameter naming the instance.
pub fn public_gruu(aor: &Uri, instance: &str) -> Uri {
    let mut gruu = aor.clone();
    gruu.password = None;
    gruu.headers = None;
    gruu.params = sip_message::Params::default();
    gruu.params.set("gr", Some(instance));
    gruu
}

/// Returns where requests go to a contact registered through the proxies
/// of `path`: to the first of them, over the connection the REGISTER came
/// on when that proxy sent it. A first proxy named by host name is reached through
/// the REGISTER's source, because names are not resolved yet.
pub(super) fn path_target(path: &[String], source: Target) -> Option<Target> {
    let first = NameAddr::parse(path.first()?).ok()?;
    let ip: std::net::IpAddr = match &first.uri.host {
        sip_message::Host::Ipv4(v4) => (*v4).into(),
        sip_message::Host::Ipv6(v6) => (*v6).into(),
        sip_message::Host::Domain(_) => return Some(source),
    };
    let transport = match first.uri.params.value("transport") {
        Some(token) => TransportKind::from_token(token).unwrap_or(TransportKind::Udp),
        None => TransportKind::Udp,
    };
    let default_port = if transport == TransportKind::Tls {
        5061
    } else {
        5060
    };
    let addr = std::net::SocketAddr::new(ip, first.uri.port.unwrap_or(default_port));
    if addr == source.addr {
        return Some(source);
    }
    Some(Target {
        transport,
        addr,
        connection: None,
    })
}
