//! Behaviour of the audit log on a real database (SQLite, or Postgres with
//! `SPID_TEST_DATABASE_URL`): recording, search, tamper detection, seals,
//! retention, extracts.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use spid_events::EventBuilder;
use spid_events::registry::deflate_base64;
use spid_proto::events::v1::{
    Authentication, Envelope, EvidenceRecorded, IdentityState, IdentityStateChanged, SamlTransaction, actor,
};
use spid_types::{Clock, ManualClock};

use crate::domain::{AuditLog, Policy, Query};
use crate::keys::AuditKeys;
use crate::seal::LocalTimestamper;
use crate::store::Store;

const HOLDER: &str = "SPID0000000001";

struct Fixture {
    dir: tempfile::TempDir,
    clock: ManualClock,
    log: AuditLog,
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).single().unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start());
    let log = open(dir.path(), &clock).await;
    Fixture { dir, clock, log }
}

async fn open(dir: &std::path::Path, clock: &ManualClock) -> AuditLog {
    let db = spid_server::testkit::database(dir, "audit").await.unwrap();
    crate::migrate(&db).await.unwrap();
    let keys = Arc::new(AuditKeys::load(&dir.join("keys"), true).unwrap());
    let clock: Arc<dyn spid_types::Clock> = Arc::new(clock.clone());
    let stamper = Arc::new(LocalTimestamper { keys: keys.clone(), clock: clock.clone() });
    AuditLog::new(Store::new(db), keys, clock, stamper, Policy { retention_months: 24, evidence_retention_years: 20 })
}

fn authentication(clock: &ManualClock, sp: &str) -> Envelope {
    let a = Authentication {
        spid_code: HOLDER.into(),
        service_provider: sp.into(),
        level: "https://www.spid.gov.it/SpidL2".into(),
        outcome: "success".into(),
        protocol: "saml".into(),
        client_ip: "192.0.2.7".into(),
    };
    EventBuilder::new("authn-gateway", "authn.authentication", HOLDER, clock).payload(&a).build()
}

fn saml(clock: &ManualClock, n: u32) -> Envelope {
    let t = SamlTransaction {
        received_at: Some(spid_proto::time::to_wire(clock.now())),
        client_ip: "192.0.2.7".into(),
        authn_request: deflate_base64(format!("<samlp:AuthnRequest ID=\"_req{n}\"/>").as_bytes()),
        authn_request_id: format!("_req{n}"),
        authn_request_issuer: "https://sp.example.it".into(),
        binding: "HTTP-REDIRECT".into(),
        response: deflate_base64(format!("<samlp:Response ID=\"_resp{n}\"/>").as_bytes()),
        response_id: format!("_resp{n}"),
        spid_code: HOLDER.into(),
        assertion_id: format!("_as{n}"),
        subject_name_id: format!("_nameid{n}"),
        ..SamlTransaction::default()
    };
    EventBuilder::new("authn-gateway", "saml.transaction", &format!("_req{n}"), clock).payload(&t).build()
}

/// Three days of records (4, 0, 3), then seals for them.
async fn three_sealed_days(f: &Fixture) {
    for n in 0..4 {
        f.log.record(&saml(&f.clock, n)).await.unwrap();
        f.clock.advance(Duration::minutes(10));
    }
    f.clock.advance(Duration::days(2));
    for n in 4..7 {
        f.log.record(&saml(&f.clock, n)).await.unwrap();
    }
    f.clock.advance(Duration::days(1));
    let sealed = f.log.seal_days().await.unwrap();
    let days: Vec<_> = sealed.iter().map(|s| (s.day.as_str(), s.records)).collect();
    assert_eq!(days, vec![("2026-03-01", 4), ("2026-03-02", 0), ("2026-03-03", 3)]);
}

/// Runs `;`-separated statements; returns the rows they changed.
async fn exec(log: &AuditLog, sql: &str) -> u64 {
    let mut changed = 0;
    for statement in sql.split(';') {
        let done = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(log.store.db().pool()).await;
        changed += done.unwrap().rows_affected();
    }
    changed
}

#[tokio::test]
async fn records_once_and_finds_by_every_identifier() {
    let f = fixture().await;
    let a = saml(&f.clock, 1);
    let (seq_a, new_a) = f.log.record(&a).await.unwrap();
    let (seq_again, new_again) = f.log.record(&a).await.unwrap();
    assert!(new_a && !new_again);
    assert_eq!(seq_a, seq_again);
    let b = authentication(&f.clock, "https://inps.example.it");
    let (seq_b, _) = f.log.record(&b).await.unwrap();
    assert_eq!(seq_b, seq_a + 1);

    let log = &f.log;
    let by =
        |q: Query| async move { log.search(&q).await.unwrap().into_iter().map(|r| r.sequence).collect::<Vec<_>>() };
    assert_eq!(by(Query { spid_code: HOLDER.into(), ..Query::default() }).await, vec![seq_a, seq_b]);
    assert_eq!(by(Query { request_id: "_req1".into(), ..Query::default() }).await, vec![seq_a]);
    assert_eq!(by(Query { response_id: "_resp1".into(), ..Query::default() }).await, vec![seq_a]);
    assert_eq!(by(Query { assertion_id: "_as1".into(), ..Query::default() }).await, vec![seq_a]);
    assert_eq!(by(Query { service_provider: "https://inps.example.it".into(), ..Query::default() }).await, vec![seq_b]);
    assert_eq!(
        by(Query { spid_code: HOLDER.into(), request_id: "_req1".into(), ..Query::default() }).await,
        vec![seq_a],
        "all identifiers must match"
    );
    assert!(by(Query { request_id: "_req2".into(), ..Query::default() }).await.is_empty());
    assert_eq!(by(Query { event_type: "authn.authentication".into(), ..Query::default() }).await, vec![seq_b]);
    assert_eq!(by(Query { after_sequence: seq_a, ..Query::default() }).await, vec![seq_b]);
    let found = f.log.search(&Query { request_id: "_req1".into(), ..Query::default() }).await.unwrap();
    assert_eq!(found[0].event, a);

    let err = f
        .log
        .search(&Query { from: Some(f.clock.now()), until: Some(start() - Duration::days(1)), ..Query::default() })
        .await;
    assert_eq!(err.unwrap_err().code, "query.range_invalid");
}

#[tokio::test]
async fn batches_absorb_duplicates_in_and_across_batches() {
    let f = fixture().await;
    let a = saml(&f.clock, 1);
    let b = saml(&f.clock, 2);
    let batch: Vec<_> = [&a, &b, &a].iter().map(|e| f.log.prepare(e).unwrap()).collect();
    let outcome = f.log.append(&batch).await.unwrap();
    assert_eq!(outcome, vec![(1, true), (2, true), (1, false)]);
    let c = saml(&f.clock, 3);
    let again: Vec<_> = [&b, &c].iter().map(|e| f.log.prepare(e).unwrap()).collect();
    assert_eq!(f.log.append(&again).await.unwrap(), vec![(2, false), (3, true)]);
    f.clock.advance(Duration::days(1));
    f.log.seal_days().await.unwrap();
    let v = f.log.verify(None, None).await.unwrap();
    assert_eq!((v.records_checked, v.broken), (3, None));
}

#[tokio::test]
async fn hostile_events_are_refused_and_change_nothing() {
    let f = fixture().await;
    let good = saml(&f.clock, 1);
    let cases = [
        (Envelope { event_id: "not-a-uuid".into(), ..good.clone() }, "event.id_invalid"),
        (Envelope { aggregate_id: String::new(), ..good.clone() }, "event.aggregate_invalid"),
        (Envelope { r#type: "Robert'); DROP TABLE".into(), ..good.clone() }, "event.type_invalid"),
        (Envelope { occurred_at: None, ..good.clone() }, "event.time_invalid"),
        (Envelope { source: String::new(), ..good.clone() }, "event.source_invalid"),
        (Envelope { reason: "x".repeat(2 << 20), ..good.clone() }, "event.too_large"),
        (saml(&f.clock, 2).tap_payload(|p| p.value.truncate(3)), "event.payload_invalid"),
    ];
    for (event, code) in cases {
        assert_eq!(f.log.record(&event).await.unwrap_err().code, code);
    }
    assert!(f.log.search(&Query::default()).await.unwrap().is_empty());
}

trait TapPayload {
    fn tap_payload(self, f: impl FnOnce(&mut prost_types::Any)) -> Self;
}

impl TapPayload for Envelope {
    fn tap_payload(mut self, f: impl FnOnce(&mut prost_types::Any)) -> Self {
        if let Some(p) = self.payload.as_mut() {
            f(p);
        }
        self
    }
}

#[tokio::test]
async fn personal_data_is_never_stored_in_clear() {
    let f = fixture().await;
    f.log.record(&saml(&f.clock, 1)).await.unwrap();
    f.log.record(&authentication(&f.clock, "https://inps.example.it")).await.unwrap();
    for table in ["audit_records", "audit_keys", "audit_event_ids"] {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(f.log.store.db().pool())
            .await
            .unwrap();
        assert!(!rows.is_empty());
        for row in rows {
            use sqlx::Row;
            for i in 0..row.len() {
                let text = row
                    .try_get::<Vec<u8>, _>(i)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .or_else(|_| row.try_get::<String, _>(i))
                    .unwrap_or_default();
                for secret in [HOLDER, "192.0.2.7", "_nameid1", "inps"] {
                    assert!(!text.contains(secret), "{secret} in clear in {table}");
                }
            }
        }
    }
}

#[tokio::test]
async fn an_untouched_log_verifies_and_seals_are_idempotent() {
    let f = fixture().await;
    three_sealed_days(&f).await;
    assert!(f.log.seal_days().await.unwrap().is_empty(), "days are sealed once");
    let v = f.log.verify(None, None).await.unwrap();
    assert_eq!(v.broken, None);
    assert_eq!((v.records_checked, v.seals_checked), (7, 3));
    // A period in the middle starts from the previous day's seal.
    let v = f.log.verify(Some(start() + Duration::days(2)), Some(start() + Duration::days(2))).await.unwrap();
    assert_eq!((v.records_checked, v.seals_checked, v.broken), (3, 1, None));
    // Records of today (unsealed) are checked too.
    f.log.record(&saml(&f.clock, 99)).await.unwrap();
    let v = f.log.verify(None, None).await.unwrap();
    assert_eq!((v.records_checked, v.broken), (8, None));
    let seals = f.log.seals().await.unwrap();
    assert!(seals.iter().all(|s| s.tsa == "local" && !s.token.is_empty()));
    let err = f.log.verify(Some(f.clock.now()), Some(start())).await.unwrap_err();
    assert_eq!(err.code, "query.range_invalid");
}

/// Each tampering, on a fresh sealed log, is found at the right place.
#[tokio::test]
async fn every_kind_of_tampering_is_detected_and_located() {
    let cases: [(&str, &str, u64, &str); 10] = [
        ("changed column", "UPDATE audit_records SET event_type = 'identity.restored' WHERE seq = 2", 2, "event_type"),
        (
            "changed content",
            "UPDATE audit_records SET sealed = (SELECT sealed FROM audit_records WHERE seq = 3) WHERE seq = 2",
            2,
            "decrypt",
        ),
        ("removed record", "DELETE FROM audit_records WHERE seq = 3", 3, "missing"),
        ("removed last record of a day", "DELETE FROM audit_records WHERE seq = 4", 4, "missing"),
        (
            "inserted record",
            "UPDATE audit_records SET seq = 8 WHERE seq = 7; INSERT INTO audit_records \
             SELECT 7, month, recorded_at, occurred_at, 'forged', event_type, source, key_id, sealed, chain \
             FROM audit_records WHERE seq = 6",
            7,
            "altered",
        ),
        (
            "reordered records",
            "UPDATE audit_records SET seq = 0 WHERE seq = 5; UPDATE audit_records SET seq = 5 WHERE seq = 6; \
             UPDATE audit_records SET seq = 6 WHERE seq = 0",
            5,
            "chain",
        ),
        ("moved in time", "UPDATE audit_records SET recorded_at = recorded_at + 1 WHERE seq = 1", 1, "chain"),
        ("whole day removed", "DELETE FROM audit_records WHERE seq >= 5", 5, "covers 3 records, 0"),
        ("altered seal", "UPDATE audit_seals SET records = 5 WHERE day = '2026-03-03'", 5, "seal"),
        ("removed seal", "DELETE FROM audit_seals WHERE day = '2026-03-02'", 5, "previous seal"),
    ];
    for (what, sql, sequence, problem) in cases {
        let f = fixture().await;
        three_sealed_days(&f).await;
        assert!(exec(&f.log, sql).await > 0, "{what}: nothing changed");
        let v = f.log.verify(None, None).await.unwrap();
        let broken = v.broken.unwrap_or_else(|| panic!("{what}: not detected"));
        assert_eq!(broken.sequence, sequence, "{what}: {broken:?}");
        assert!(broken.problem.contains(problem), "{what}: {}", broken.problem);
        drop(f.dir);
    }
}

#[tokio::test]
async fn a_record_smuggled_into_a_sealed_day_is_detected() {
    let f = fixture().await;
    three_sealed_days(&f).await;
    // A valid record (chain and all), dated in a sealed day.
    f.log.record(&saml(&f.clock, 50)).await.unwrap();
    let day3 = (start() + Duration::days(2)).timestamp_micros();
    exec(&f.log, &format!("UPDATE audit_records SET recorded_at = {day3} WHERE seq = 8")).await;
    let broken = f.log.verify(None, None).await.unwrap().broken.unwrap();
    assert_eq!(broken.sequence, 8, "{broken:?}");
}

#[tokio::test]
async fn sealing_refuses_a_broken_chain() {
    let f = fixture().await;
    f.log.record(&saml(&f.clock, 1)).await.unwrap();
    f.log.record(&saml(&f.clock, 2)).await.unwrap();
    exec(&f.log, "DELETE FROM audit_records WHERE seq = 1").await;
    f.clock.advance(Duration::days(1));
    let err = f.log.seal_days().await.unwrap_err();
    assert_eq!(err.code, crate::integrity::CHAIN_BROKEN, "{err}");
    assert!(err.message.contains("record 1 is missing"), "names where: {err}");
    assert!(f.log.seals().await.unwrap().is_empty());
}

#[tokio::test]
async fn retention_removes_exactly_the_due_days_and_keeps_the_log_verifiable() {
    let f = fixture().await;
    three_sealed_days(&f).await;
    // A later day, inside the retention period when we apply it.
    f.clock.set(start() + Duration::days(40));
    f.log.record(&authentication(&f.clock, "https://inps.example.it")).await.unwrap();
    f.clock.advance(Duration::days(1));
    f.log.seal_days().await.unwrap();

    // 24 months after 2026-03-02: only 2026-03-01 is past the cutoff.
    f.clock.set(Utc.with_ymd_and_hms(2028, 3, 2, 12, 0, 0).single().unwrap());
    f.log.seal_days().await.unwrap();
    let r = f.log.apply_retention().await.unwrap();
    assert_eq!(r.days, vec!["2026-03-01".to_owned()]);
    assert_eq!(r.records_removed, 4);
    let left: Vec<u64> = f.log.search(&Query::default()).await.unwrap().iter().map(|r| r.sequence).collect();
    assert_eq!(&left[..4], &[5, 6, 7, 8], "only the due day went");
    // The removal is itself on the record, and the log still verifies.
    let applied =
        f.log.search(&Query { event_type: "audit.retention_applied".into(), ..Query::default() }).await.unwrap();
    assert_eq!(applied.len(), 1);
    let v = f.log.verify(None, None).await.unwrap();
    assert_eq!(v.broken, None);
    assert_eq!(v.records_checked, 5);
    // Running again removes nothing more and records nothing.
    assert_eq!(f.log.apply_retention().await.unwrap(), crate::Retention::default());
    // A purged mark on a day still within retention is a break.
    exec(&f.log, "UPDATE audit_seals SET purged_at = 1 WHERE day IN ('2026-03-02', '2026-03-03', '2026-03-04')").await;
    let v = f.log.verify(None, None).await.unwrap();
    assert!(v.broken.is_some_and(|b| b.problem.contains("retention")));
}

#[tokio::test]
async fn evidence_references_outlive_the_registry_by_twenty_years() {
    let f = fixture().await;
    let evidence = |holder: &str, id: &str| {
        let ev = EvidenceRecorded {
            spid_code: holder.into(),
            evidence_id: id.into(),
            kind: "identity-document-scan".into(),
            storage_ref: format!("evidence/{id}"),
            content_sha256: "ab".repeat(32),
        };
        EventBuilder::new("identity-manager", "evidence.recorded", holder, &f.clock).payload(&ev).build()
    };
    f.log.record(&evidence(HOLDER, "ev-1")).await.unwrap();
    f.log.record(&evidence("SPID0000000002", "ev-2")).await.unwrap();
    let revoked = IdentityStateChanged {
        spid_code: HOLDER.into(),
        previous: IdentityState::Active as i32,
        current: IdentityState::Revoked as i32,
        ..IdentityStateChanged::default()
    };
    f.clock.advance(Duration::days(1));
    let event = EventBuilder::new("identity-manager", "identity.revoked", HOLDER, &f.clock)
        .actor(actor::Kind::Administrator, "admin-1")
        .payload(&revoked)
        .build();
    f.log.record(&event).await.unwrap();

    let count = |log: &AuditLog| {
        let pool = log.store.db().pool().clone();
        async move { sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_evidence").fetch_one(&pool).await.unwrap() }
    };
    f.clock.advance(Duration::days(365 * 19));
    let r = f.log.apply_retention().await.unwrap();
    assert_eq!(r.evidence_references_removed, 0);
    assert_eq!(count(&f.log).await, 2);
    f.clock.advance(Duration::days(365 * 2));
    let r = f.log.apply_retention().await.unwrap();
    assert_eq!(r.evidence_references_removed, 1, "only the revoked holder's");
    assert_eq!(count(&f.log).await, 1);
    let recorded = f.log.search(&Query { event_type: "audit.retention_applied".into(), ..Query::default() }).await;
    assert_eq!(recorded.unwrap().len(), 1, "the removal is on the record");
}

#[tokio::test]
async fn holders_see_their_authentications() {
    let f = fixture().await;
    f.log.record(&authentication(&f.clock, "https://inps.example.it")).await.unwrap();
    f.clock.advance(Duration::hours(1));
    f.log.record(&saml(&f.clock, 1)).await.unwrap();
    f.log.record(&authentication(&f.clock, "https://regione.example.it")).await.unwrap();
    let all = f.log.authentications(HOLDER, None, None, 0).await.unwrap();
    let sps: Vec<_> = all.iter().map(|(_, a)| a.service_provider.as_str()).collect();
    assert_eq!(sps, vec!["https://inps.example.it", "https://regione.example.it"]);
    let later = f.log.authentications(HOLDER, Some(start() + Duration::minutes(30)), None, 0).await.unwrap();
    assert_eq!(later.len(), 1);
    assert!(f.log.authentications("SPID0000000009", None, None, 0).await.unwrap().is_empty());
    assert_eq!(f.log.authentications("", None, None, 0).await.unwrap_err().code, "query.spid_code_missing");
}

#[tokio::test]
async fn extracts_are_signed_so_that_openssl_verifies_them() {
    let f = fixture().await;
    f.log.record(&authentication(&f.clock, "https://inps.example.it")).await.unwrap();
    f.log.record(&saml(&f.clock, 1)).await.unwrap();
    let other = EventBuilder::new("x", "a.b", "SPID0000000002", &f.clock).build();
    f.log.record(&other).await.unwrap();
    let extract = f.log.extract(HOLDER, None, None).await.unwrap();
    assert_eq!(extract.records, 2);
    let text = String::from_utf8(extract.document.clone()).unwrap();
    assert!(text.starts_with("sequence,occurred_at,recorded_at,event,source,actor,reason,details\r\n"));
    assert!(text.contains("service_provider=https://inps.example.it; level=https://www.spid.gov.it/SpidL2"));
    assert!(!text.contains("AuthnRequest"), "no whole protocol messages in an extract");

    let dir = f.dir.path();
    std::fs::write(dir.join("extract.csv"), &extract.document).unwrap();
    std::fs::write(dir.join("extract.csv.p7s"), &extract.signature).unwrap();
    std::fs::write(dir.join("audit.pem"), &extract.signer_certificate).unwrap();
    let verify = |content: &str| {
        std::process::Command::new("openssl")
            .args(["cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-out", "/dev/null"])
            .arg("-in")
            .arg(dir.join("extract.csv.p7s"))
            .arg("-content")
            .arg(dir.join(content))
            .arg("-CAfile")
            .arg(dir.join("audit.pem"))
            .output()
            .unwrap()
    };
    let ok = verify("extract.csv");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let mut altered = extract.document.clone();
    altered[10] ^= 1;
    std::fs::write(dir.join("altered.csv"), altered).unwrap();
    assert!(!verify("altered.csv").status.success(), "an altered extract must not verify");
}

#[tokio::test]
async fn rotated_keys_keep_old_records_readable() {
    let f = fixture().await;
    f.log.record(&saml(&f.clock, 1)).await.unwrap();
    AuditKeys::rotate(&f.dir.path().join("keys")).unwrap();
    let rotated = open(f.dir.path(), &f.clock).await;
    // The same database: `open` with SQLite reuses the file; with Postgres a
    // new database is made, so only check what the backend allows.
    rotated.record(&saml(&f.clock, 2)).await.unwrap();
    let key_ids: Vec<i32> = sqlx::query_scalar("SELECT key_id FROM audit_records ORDER BY seq")
        .fetch_all(rotated.store.db().pool())
        .await
        .unwrap();
    assert_eq!(key_ids.last(), Some(&2));
    let records = rotated.search(&Query::default()).await.unwrap();
    assert_eq!(records.len(), key_ids.len());
    assert_eq!(rotated.verify(None, None).await.unwrap().broken, None);
}

/// Retention of whole months: on Postgres their partitions are dropped; the
/// next month keeps its records and everything left still verifies.
#[tokio::test]
async fn retention_drops_whole_months() {
    let f = fixture().await;
    f.log.record(&saml(&f.clock, 1)).await.unwrap();
    f.log.record(&saml(&f.clock, 2)).await.unwrap();
    f.clock.set(Utc.with_ymd_and_hms(2026, 4, 15, 9, 0, 0).single().unwrap());
    f.log.record(&saml(&f.clock, 3)).await.unwrap();
    // 24 months after 2026-04-04: all of March 2026 is due, April is not.
    f.clock.set(Utc.with_ymd_and_hms(2028, 4, 5, 12, 0, 0).single().unwrap());
    f.log.seal_days().await.unwrap();
    let r = f.log.apply_retention().await.unwrap();
    assert_eq!((r.records_removed, r.days.first().map(String::as_str)), (2, Some("2026-03-01")));
    assert_eq!(r.days.last().map(String::as_str), Some("2026-04-04"));
    let left: Vec<u64> = f.log.search(&Query::default()).await.unwrap().iter().map(|r| r.sequence).collect();
    assert_eq!(left, vec![3, 4], "April's record and the retention record");
    if f.log.store.db().backend() == spid_db::Backend::Postgres {
        let march: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_class WHERE relname = 'audit_records_p24314'")
            .fetch_one(f.log.store.db().pool())
            .await
            .unwrap();
        assert_eq!(march, 0, "the March partition is dropped");
    }
    let v = f.log.verify(None, None).await.unwrap();
    assert_eq!((v.records_checked, v.broken), (2, None));
}

/// An applicant's upload comes before any spidCode (identity-manager sends
/// it with the request as aggregate): it is recorded, not set aside.
#[tokio::test]
async fn evidence_of_an_applicant_without_a_spid_code_is_recorded() {
    let f = fixture().await;
    let ev = EvidenceRecorded {
        spid_code: String::new(),
        evidence_id: "ev-applicant".into(),
        kind: "identity-document-scan".into(),
        storage_ref: "evidence/ev-applicant".into(),
        content_sha256: "cd".repeat(32),
    };
    let event = EventBuilder::new("identity-manager", "evidence.recorded", "request-1", &f.clock).payload(&ev).build();
    f.log.record(&event).await.unwrap();
    let pool = f.log.store.db().pool().clone();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_evidence").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 1);
}
