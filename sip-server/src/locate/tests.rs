use super::*;

fn target(text: &str) -> OutboundTarget {
    OutboundTarget::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port: 5061,
        target: target.to_owned(),
    }
}

fn targets(records: &[SrvRecord]) -> Vec<&str> {
    records
        .iter()
        .map(|record| record.target.as_str())
        .collect()
}

fn naptr(order: u16, preference: u16, services: &str, replacement: &str) -> NaptrRule {
    NaptrRule {
        order,
        preference,
        flags: "s".to_owned(),
        services: services.to_owned(),
        replacement: replacement.to_owned(),
    }
}

#[test]
fn ip_and_port_is_udp_without_lookup() {
    let plan = target("192.0.2.1:5070").plan();
    let expected = Destination {
        transport: TransportKind::Udp,
        addr: "192.0.2.1:5070".parse().unwrap(),
        server_name: "192.0.2.1".to_owned(),
    };
    assert_eq!(plan, Plan::Resolved(expected));
}

#[test]
fn ipv6_reference_parses() {
    let plan = target("[2001:db8::1]:5060").plan();
    let Plan::Resolved(destination) = plan else {
        panic!("{plan:?}");
    };
    assert_eq!(destination.addr, "[2001:db8::1]:5060".parse().unwrap());
}

#[test]
fn sips_ip_defaults_to_tls_port() {
    let Plan::Resolved(destination) = target("sips:192.0.2.1").plan() else {
        panic!("numeric sips target needs no look-up");
    };
    assert_eq!(destination.transport, TransportKind::Tls);
    assert_eq!(destination.addr.port(), 5061);
}

#[test]
fn sip_ip_with_transport_tcp() {
    let Plan::Resolved(destination) = target("sip:192.0.2.1;transport=tcp").plan() else {
        panic!("numeric target needs no look-up");
    };
    assert_eq!(destination.transport, TransportKind::Tcp);
    assert_eq!(destination.addr.port(), 5060);
}

#[test]
fn host_with_port_needs_addresses_only() {
    let plan = target("sips:sbc.example.com:5071").plan();
    let expected = Plan::Address {
        host: "sbc.example.com".to_owned(),
        port: 5071,
        transport: TransportKind::Tls,
    };
    assert_eq!(plan, expected);
}

#[test]
fn bare_host_with_port_is_udp() {
    let plan = target("sbc.example.com:5080").plan();
    let expected = Plan::Address {
        host: "sbc.example.com".to_owned(),
        port: 5080,
        transport: TransportKind::Udp,
    };
    assert_eq!(plan, expected);
}

#[test]
fn explicit_transport_queries_its_srv() {
    let plan = target("sip:sbc.example.com;transport=tcp").plan();
    let expected = Plan::Srv {
        host: "sbc.example.com".to_owned(),
        query: SrvQuery {
            transport: TransportKind::Tcp,
            name: "_sip._tcp.sbc.example.com".to_owned(),
        },
    };
    assert_eq!(plan, expected);
}

#[test]
fn sips_host_queries_sips_srv() {
    let plan = target("sips:carrier.example").plan();
    let Plan::Srv { query, .. } = plan else {
        panic!("{plan:?}");
    };
    assert_eq!(query.name, "_sips._tcp.carrier.example");
    assert_eq!(query.transport, TransportKind::Tls);
}

#[test]
fn plain_host_starts_with_naptr() {
    for text in ["sip:carrier.example", "carrier.example"] {
        let plan = target(text).plan();
        let expected = Plan::Naptr {
            host: "carrier.example".to_owned(),
        };
        assert_eq!(plan, expected, "{text}");
    }
}

#[test]
fn invalid_targets_are_rejected() {
    let cases = [
        ("tel:+331234", TargetError::Scheme("tel".to_owned())),
        ("sip:1234@carrier.example", TargetError::UserPart),
        (
            "sip:carrier.example;transport=sctp",
            TargetError::Transport("sctp".to_owned()),
        ),
        (
            "sips:carrier.example;transport=udp",
            TargetError::InsecureTransport("UDP"),
        ),
        ("not a host", TargetError::Invalid("not a host".to_owned())),
    ];
    for (text, expected) in cases {
        assert_eq!(OutboundTarget::parse(text), Err(expected), "{text}");
    }
}

#[test]
fn request_uri_keeps_scheme_and_transport() {
    let uri = target("sips:carrier.example").request_uri("0612345678");
    assert_eq!(uri.to_string(), "sips:0612345678@carrier.example");
    let uri = target("sip:sbc.example:5080;transport=tcp").request_uri("112");
    assert_eq!(uri.to_string(), "sip:112@sbc.example:5080;transport=tcp");
    let uri = target("192.0.2.1:5060").request_uri("112");
    assert_eq!(uri.to_string(), "sip:112@192.0.2.1:5060");
}

#[test]
fn srv_without_naptr_prefers_tls() {
    let queries = target("carrier.example").srv_queries_without_naptr("carrier.example");
    let names: Vec<&str> = queries.iter().map(|query| query.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "_sips._tcp.carrier.example",
            "_sip._tcp.carrier.example",
            "_sip._udp.carrier.example"
        ]
    );
    let secure = target("sips:carrier.example").srv_queries_without_naptr("carrier.example");
    assert_eq!(secure.len(), 1);
    assert_eq!(secure[0].transport, TransportKind::Tls);
}

#[test]
fn address_fallback_uses_default_ports() {
    assert_eq!(
        target("carrier.example").address_fallback(),
        (TransportKind::Udp, 5060)
    );
    assert_eq!(
        target("sips:carrier.example").address_fallback(),
        (TransportKind::Tls, 5061)
    );
}

#[test]
fn naptr_orders_by_order_then_preference() {
    let rules = [
        naptr(20, 10, "SIP+D2U", "_sip._udp.example.com."),
        naptr(10, 50, "SIP+D2T", "_sip._tcp.example.com."),
        naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.com."),
    ];
    let queries = srv_queries_from_naptr(&rules, false);
    let transports: Vec<TransportKind> = queries.iter().map(|query| query.transport).collect();
    assert_eq!(
        transports,
        [TransportKind::Tls, TransportKind::Tcp, TransportKind::Udp]
    );
    assert_eq!(queries[0].name, "_sips._tcp.example.com");
}

#[test]
fn naptr_drops_unknown_services_and_flags() {
    let mut terminal_a = naptr(10, 10, "SIP+D2T", "sbc.example.com.");
    terminal_a.flags = "a".to_owned();
    let rules = [
        naptr(10, 10, "E2U+sip", "_sip._udp.example.com."),
        naptr(10, 20, "SIP+D2S", "_sip._sctp.example.com."),
        terminal_a,
        naptr(30, 10, "SIP+D2U", "_sip._udp.example.com."),
    ];
    let queries = srv_queries_from_naptr(&rules, false);
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0].transport, TransportKind::Udp);
}

#[test]
fn naptr_for_sips_keeps_tls_only() {
    let rules = [
        naptr(10, 10, "SIP+D2U", "_sip._udp.example.com."),
        naptr(20, 10, "SIPS+D2T", "_sips._tcp.example.com."),
    ];
    let queries = srv_queries_from_naptr(&rules, true);
    assert_eq!(queries.len(), 1);
    assert_eq!(queries[0].transport, TransportKind::Tls);
}

#[test]
fn srv_orders_by_priority_first() {
    let records = vec![
        srv(20, 100, "backup.example.com"),
        srv(10, 0, "primary.example.com"),
    ];
    let ordered = order_srv(records, &mut |_| 0);
    assert_eq!(
        targets(&ordered),
        ["primary.example.com", "backup.example.com"]
    );
}

#[test]
fn srv_weight_picks_by_running_sum() {
    // Weights 10, 30 and 60: a draw of 50 falls in the third record's
    // share (41 to 100), then 5 of the remaining 40 in the first's.
    let records = vec![
        srv(10, 10, "a.example.com"),
        srv(10, 30, "b.example.com"),
        srv(10, 60, "c.example.com"),
    ];
    let mut draws = [50, 5, 0].into_iter();
    let ordered = order_srv(records, &mut |_| draws.next().unwrap());
    assert_eq!(
        targets(&ordered),
        ["c.example.com", "a.example.com", "b.example.com"]
    );
}

#[test]
fn srv_draw_gets_the_weight_total() {
    let records = vec![srv(10, 10, "a.example.com"), srv(10, 30, "b.example.com")];
    let mut totals = Vec::new();
    order_srv(records, &mut |total| {
        totals.push(total);
        total
    });
    assert_eq!(totals, [40, 10]);
}

#[test]
fn srv_zero_weight_goes_first_on_zero_draw() {
    let records = vec![
        srv(10, 50, "heavy.example.com"),
        srv(10, 0, "zero.example.com"),
    ];
    let ordered = order_srv(records, &mut |_| 0);
    assert_eq!(targets(&ordered)[0], "zero.example.com");
}

#[test]
fn srv_heavy_weight_wins_most_draws() {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut random = |total: u32| {
        // xorshift64, enough to spread draws over the range.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % (u64::from(total) + 1)) as u32
    };
    let mut heavy_first = 0;
    for _ in 0..1000 {
        let records = vec![
            srv(10, 90, "heavy.example.com"),
            srv(10, 10, "light.example.com"),
        ];
        if order_srv(records, &mut random)[0].target == "heavy.example.com" {
            heavy_first += 1;
        }
    }
    assert!((850..=950).contains(&heavy_first), "{heavy_first}");
}

#[test]
fn srv_dot_target_means_no_service() {
    let ordered = order_srv(vec![srv(0, 0, ".")], &mut |_| 0);
    assert!(ordered.is_empty());
}
