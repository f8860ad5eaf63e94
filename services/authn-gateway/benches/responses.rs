//! Signed SAML Responses per second on one core (issue: authn-gateway),
//! against the reference measured in the same run: `openssl speed
//! rsa3072`, the raw RSA-3072 signing speed of this machine's OpenSSL on
//! one core.
//!
//! A success Response carries two RSA-SHA256 signatures (the Assertion's
//! and the Response's, SAML-5) over exclusive-c14n forms, six attributes;
//! so the ceiling is half the raw signing speed. Both ratios are printed:
//! Responses/s ÷ raw signs/s, and signatures/s ÷ raw signs/s (the cost of
//! everything around each signature).
//!
//! `SPID_BENCH_RESPONSES` sets the number of Responses (default 2 000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Instant;

use authn_gateway::keys::IdpKeys;
use authn_gateway::level::Level;
use authn_gateway::response::{Addressee, Authenticated, ResponseBuilder};

/// Signs per second of `openssl speed rsa3072` (one process, one core):
/// the line "rsa 3072 bits <s/sign> <s/verify> <sign/s> <verify/s>".
fn openssl_speed() -> f64 {
    let out = Command::new("openssl").args(["speed", "-seconds", "3", "rsa3072"]).output().expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("rsa 3072 bits")).unwrap_or_else(|| panic!("openssl speed: {text}"));
    line.split_whitespace().nth(5).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("openssl speed: {line}"))
}

fn main() {
    let n: usize = std::env::var("SPID_BENCH_RESPONSES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let keys = IdpKeys::ephemeral(3072).unwrap();
    let builder = ResponseBuilder {
        entity_id: "https://idp.example.it",
        key: &keys.current,
        assertion_validity: chrono::Duration::seconds(300),
    };
    let attributes: Vec<(String, String)> = [
        ("spidCode", "XIDP0123456789"),
        ("name", "Mario"),
        ("familyName", "Rossi"),
        ("fiscalNumber", "TINIT-RSSMRA80A01H501U"),
        ("dateOfBirth", "1980-01-01"),
        ("email", "mario.rossi@example.it"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let to = Addressee {
        sp_entity_id: "https://sp.example.it",
        acs_url: "https://sp.example.it/acs",
        in_response_to: Some("_request"),
    };
    let now = chrono::Utc::now();
    let auth = Authenticated { level: Level::L2, authn_instant: now, attributes: &attributes, session_index: None };
    // Warm up.
    for _ in 0..20 {
        builder.success(&to, &auth, now).unwrap();
    }
    let started = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..n {
        bytes += builder.success(&to, &auth, now).unwrap().xml.len();
    }
    let responses = n as f64 / started.elapsed().as_secs_f64();
    let raw = openssl_speed();
    println!("signed SAML Responses, one core, RSA-3072 ({n} Responses of {} bytes)", bytes / n);
    println!("  reference: openssl speed rsa3072      {raw:>8.0} signs/s");
    println!(
        "  Responses (2 signatures each)        {responses:>8.0} /s   {:.2}x the raw signing speed",
        responses / raw
    );
    println!(
        "  signatures inside them               {:>8.0} /s   {:.2}x the raw signing speed (target >= 0.70)",
        2.0 * responses,
        2.0 * responses / raw
    );
}
