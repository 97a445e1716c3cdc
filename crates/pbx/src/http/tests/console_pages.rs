//! The console's pages and files: content types, the Content-Security-Policy,
//! and that the pages only load scripts from files the binary serves.

use super::*;

const PAGES: [&str; 6] = [
    "/console/login",
    "/console/calls",
    "/console/calls/6f0c2a4e-call",
    "/console/wallboard",
    "/console/reports",
    "/console/admin",
];

fn header_text(reply: &Reply, name: header::HeaderName) -> &str {
    reply
        .headers
        .get(&name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

fn check_headers(reply: &Reply, content_type: &str, uri: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{uri}");
    assert_eq!(reply.content_type(), content_type, "{uri}");
    assert_eq!(
        header_text(reply, header::CONTENT_SECURITY_POLICY),
        console::CONTENT_SECURITY_POLICY,
        "{uri}"
    );
    assert_eq!(
        header_text(reply, header::X_CONTENT_TYPE_OPTIONS),
        "nosniff",
        "{uri}"
    );
}

/// Values of `attribute` in every `<tag ...>` of `html`.
fn attributes(html: &str, tag: &str, attribute: &str) -> Vec<String> {
    let open = format!("<{tag}");
    let name = format!(" {attribute}=\"");
    html.match_indices(&open)
        .filter_map(|(start, _)| {
            let rest = &html[start..];
            let element = &rest[..rest.find('>').expect("tag ends")];
            let value = element.split_once(&name)?.1;
            Some(value[..value.find('"').expect("quoted")].to_owned())
        })
        .collect()
}

#[test]
fn the_policy_allows_no_inline_script_or_other_origin() {
    let policy = console::CONTENT_SECURITY_POLICY;
    assert!(policy.contains("default-src 'none'"));
    assert!(policy.contains("script-src 'self';"));
    assert!(!policy.contains("unsafe-inline"));
    assert!(!policy.contains("unsafe-eval"));
    assert!(!policy.contains("http"), "no other origin");
}

#[tokio::test]
async fn pages_are_html_with_the_policy() {
    let fixture = fixture().await;
    for uri in PAGES {
        // Public: a visitor without a session gets the page, whose script
        // then sends it to the login page.
        let reply = fixture.call(None, Method::GET, uri, None).await;
        check_headers(&reply, "text/html; charset=utf-8", uri);
        let html = String::from_utf8(reply.body.clone()).expect("UTF-8 page");
        assert!(html.starts_with("<!doctype html>"), "{uri}");
        // The policy would block inline code; none is written.
        let scripts = html.matches("<script").count();
        let sources = attributes(&html, "script", "src");
        assert_eq!(scripts, sources.len(), "{uri}: every script has a src");
        assert!(!html.contains(" style=\""), "{uri}: no inline style");
        assert!(
            !html.to_ascii_lowercase().contains(" on"),
            "{uri}: no inline event handler"
        );
        for source in sources.iter().chain(&attributes(&html, "link", "href")) {
            let file = source
                .strip_prefix("/console/assets/")
                .unwrap_or_else(|| panic!("{uri}: {source} is not a console file"));
            assert!(
                console::asset_names().any(|(name, _)| name == file),
                "{uri}: {file} is not served"
            );
        }
    }
}

#[tokio::test]
async fn files_have_their_content_type_and_the_policy() {
    let fixture = fixture().await;
    for (name, content_type) in console::asset_names() {
        let uri = format!("/console/assets/{name}");
        let reply = fixture.call(None, Method::GET, &uri, None).await;
        check_headers(&reply, content_type, &uri);
        assert!(!reply.body.is_empty(), "{uri}");
        if name.ends_with(".js") {
            // Modules import each other by relative name.
            let text = String::from_utf8(reply.body.clone()).expect("UTF-8 script");
            for line in text.lines().filter(|line| line.contains("from './")) {
                let imported = line
                    .split("from './")
                    .nth(1)
                    .and_then(|rest| rest.split('\'').next())
                    .expect("import names a file");
                assert!(
                    console::asset_names().any(|(file, _)| file == imported),
                    "{uri} imports {imported}, which is not served"
                );
            }
        }
    }
    let reply = fixture
        .call(None, Method::GET, "/console/assets/missing.js", None)
        .await;
    assert_eq!(
        reply.problem(StatusCode::NOT_FOUND),
        "no console file \"missing.js\""
    );
}

#[tokio::test]
async fn the_root_leads_to_the_console() {
    let fixture = fixture().await;
    let reply = fixture.call(None, Method::GET, "/", None).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(header_text(&reply, header::LOCATION), "/console/calls");
}
