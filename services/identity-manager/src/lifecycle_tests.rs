//! The lifecycle (LC-1…5, LC-8, MIN-7, REG-6, REG-9) on a real database:
//! every transition with its actor, cause and document; the holder's own
//! requests; the scheduler's rules with a travelling clock; the minors'
//! cascade; the misuse detector.

use std::collections::BTreeMap;

use chrono::Duration;
use spid_types::Clock;

use crate::application::sample;
use crate::holder_requests::{Ask, Contact, HolderRequests, Via};
use crate::identity::{Outcome, Status};
use crate::lifecycle::{Action, ActorKind, Cause, Change, Channel, Lifecycle};
use crate::scheduler::{Scheduler, SchedulerRun};
use crate::tests::{World, count, identify_and_activate, register, world};

/// An active identity for `email`: (identity id, spidCode).
async fn holder(w: &World, email: &str) -> (String, String) {
    let (id, token) = register(w, &sample(email)).await;
    identify_and_activate(w, &id, &token).await
}

fn lifecycle(w: &World) -> Lifecycle {
    Lifecycle::new(w.registrar.db().clone(), w.clock.clone())
}

fn staff(actor: ActorKind, action: Action, cause: Cause) -> Change {
    Change {
        action,
        cause,
        actor,
        actor_id: if actor == ActorKind::Administrator { "admin-1".into() } else { "op-7".into() },
        reason: "motivo".into(),
        justification_ref: "PEC 2026/118".into(),
        channel: Channel::None,
        unchanged_since: None,
    }
}

/// The payloads of type `T` on the outbox's `topic`, in order.
async fn outbox<T: prost::Message + prost::Name + Default>(w: &World, topic: &str) -> Vec<T> {
    let rows = sqlx::query("SELECT payload FROM outbox WHERE topic = $1 ORDER BY id")
        .bind(topic)
        .fetch_all(w.registrar.db().pool())
        .await
        .unwrap();
    rows.iter()
        .filter_map(|r| {
            let bytes: Vec<u8> = sqlx::Row::get(r, "payload");
            let e = <spid_proto::events::v1::Envelope as prost::Message>::decode(bytes.as_slice()).unwrap();
            spid_events::envelope::payload_of::<T>(&e)
        })
        .collect()
}

/// The messages asked of notification, in order: (template, data).
async fn requested(w: &World) -> Vec<(String, BTreeMap<String, String>)> {
    let asked: Vec<spid_proto::events::v1::NotificationRequested> = outbox(w, spid_types::topics::NOTIFICATION).await;
    asked.into_iter().map(|n| (n.template, n.data.into_iter().collect())).collect()
}

async fn sent(w: &World, template: &str) -> usize {
    requested(w).await.iter().filter(|(t, _)| t == template).count()
}

/// The lifecycle events, in order.
async fn lifecycle_events(w: &World) -> Vec<spid_proto::events::v1::IdentityStateChanged> {
    outbox(w, spid_types::topics::LIFECYCLE).await
}

#[tokio::test]
async fn every_transition_keeps_its_actor_cause_and_document_and_revocation_is_final() {
    let w = world().await;
    let (_, spid_code) = holder(&w, "mario.rossi@example.it").await;
    let lc = lifecycle(&w);
    let events = "SELECT COUNT(*) FROM outbox WHERE topic = 'spid.lifecycle.v1'";
    let before = (count(&w, events).await, requested(&w).await.len());
    use ActorKind::{Administrator, Holder, Operator, Scheduler as Sched};

    // Bad input, illegal transitions and causes out of place change nothing.
    let refused = |change: Change| {
        let lc = &lc;
        let spid_code = spid_code.clone();
        async move { lc.apply(&spid_code, &change).await.unwrap_err() }
    };
    let blank = Change { reason: " ".into(), ..staff(Operator, Action::Suspend, Cause::Other) };
    assert_eq!(refused(blank).await.code, "reason.invalid");
    let err = refused(staff(Operator, Action::Restore, Cause::Other)).await;
    assert_eq!((err.kind, err.code.as_str()), (spid_types::ErrorKind::FailedPrecondition, "transition.illegal"));
    assert_eq!(refused(staff(Operator, Action::Revoke, Cause::Death)).await.code, "cause.not_allowed");
    assert_eq!(refused(staff(Administrator, Action::Revoke, Cause::Inactivity)).await.code, "cause.not_allowed");
    assert_eq!(refused(staff(Operator, Action::Suspend, Cause::DocumentExpired)).await.code, "cause.not_allowed");
    assert_eq!(refused(staff(Sched, Action::Suspend, Cause::ParentEnded)).await.code, "cause.not_allowed");
    assert_eq!(refused(staff(Administrator, Action::Suspend, Cause::Death)).await.code, "cause.not_allowed");
    let undocumented =
        Change { justification_ref: String::new(), ..staff(Administrator, Action::Revoke, Cause::Death) };
    assert_eq!(refused(undocumented).await.code, "justification_ref.required");
    let extinct = staff(Administrator, Action::Revoke, Cause::LegalPersonExtinct);
    assert_eq!(refused(extinct).await.code, "cause.not_applicable", "a private identity is no legal person");
    // A holder's request: only PEC or a signed form proves its origin to
    // an operator; by phone it goes through the code.
    let by_phone = Change { channel: Channel::Phone, ..staff(Operator, Action::Suspend, Cause::HolderRequest) };
    assert_eq!(refused(by_phone).await.code, "origin.unverified");
    let no_channel = staff(Operator, Action::Suspend, Cause::HolderRequest);
    assert_eq!(refused(no_channel).await.code, "channel.invalid");
    let pec_without_id = Change {
        channel: Channel::Pec,
        justification_ref: String::new(),
        ..staff(Operator, Action::Suspend, Cause::HolderRequest)
    };
    assert_eq!(refused(pec_without_id).await.code, "justification_ref.required");
    let not_holders = Change { channel: Channel::Pec, ..staff(Operator, Action::Suspend, Cause::Other) };
    assert_eq!(refused(not_holders).await.code, "channel.invalid");
    assert_eq!(
        lc.apply("XIDPNOSUCHCODE", &staff(Operator, Action::Suspend, Cause::Other)).await.unwrap_err().code,
        "identity.not_found"
    );
    assert_eq!((count(&w, events).await, requested(&w).await.len()), before, "nothing changed");

    // The holder's PEC: suspended at once, and it restores itself (below).
    let pec = Change {
        channel: Channel::Pec,
        reason: "furto del telefono".into(),
        ..staff(Operator, Action::Suspend, Cause::HolderRequest)
    };
    assert_eq!(lc.apply(&spid_code, &pec).await.unwrap().status, Status::Suspended);
    match w.credentials.check("mario.rossi@example.it", &sample("").password).await.unwrap() {
        Outcome::NotActive(v) => assert_eq!(v.status, Status::Suspended),
        other => panic!("{other:?}"),
    }
    // A holder's suspension can be taken over by staff (an investigation):
    // still suspended, now for their cause, and it no longer ends by itself.
    w.clock.advance(Duration::days(1));
    assert_eq!(
        lc.apply(&spid_code, &staff(Operator, Action::Suspend, Cause::Misuse)).await.unwrap().status,
        Status::Suspended
    );
    assert_eq!(refused(staff(Operator, Action::Suspend, Cause::Other)).await.code, "transition.illegal", "once");
    let over = Change::scheduled(Action::Restore, Cause::SuspensionOver, "30 days");
    assert_eq!(refused(over).await.code, "transition.illegal");
    w.clock.advance(Duration::days(1));
    assert_eq!(
        lc.apply(&spid_code, &staff(Operator, Action::Restore, Cause::Other)).await.unwrap().status,
        Status::Active
    );
    let suspicion = staff(Operator, Action::Suspend, Cause::Misuse);
    assert_eq!(lc.apply(&spid_code, &suspicion).await.unwrap().status, Status::Suspended);
    let death = Change {
        justification_ref: "certificato 2026/77".into(),
        ..staff(Administrator, Action::Revoke, Cause::Death)
    };
    assert_eq!(lc.apply(&spid_code, &death).await.unwrap().status, Status::Revoked);
    let err = refused(staff(Operator, Action::Restore, Cause::Other)).await;
    assert!(err.message.contains("revocation is final"), "{}", err.message);
    let holder_restore =
        Change { actor: Holder, channel: Channel::Online, ..staff(Holder, Action::Restore, Cause::HolderRequest) };
    assert_eq!(refused(holder_restore).await.code, "transition.illegal");

    assert_eq!(count(&w, events).await, before.0 + 5, "one lifecycle event per transition");
    let told: Vec<String> = requested(&w).await.into_iter().skip(before.1).map(|(t, _)| t).collect();
    assert_eq!(
        told,
        ["identity-suspended", "identity-suspended", "identity-restored", "identity-suspended", "identity-revoked"]
    );
    let history = lc.history(&spid_code).await.unwrap();
    let steps: Vec<_> =
        history.iter().map(|t| (t.to, t.actor.as_str(), t.cause.as_str(), t.channel.as_str())).collect();
    assert_eq!(
        steps,
        [
            (Status::Suspended, "operator:op-7", "holder_request", "pec"),
            (Status::Suspended, "operator:op-7", "misuse", ""),
            (Status::Active, "operator:op-7", "other", ""),
            (Status::Suspended, "operator:op-7", "misuse", ""),
            (Status::Revoked, "administrator:admin-1", "death", ""),
        ]
    );
    assert_eq!(history[4].justification_ref, "certificato 2026/77");
    assert_eq!(history[0].reason, "furto del telefono");
}

/// Waits for the messages an online start sends after its answer.
async fn settle(w: &World, messages: usize) {
    for _ in 0..200 {
        if w.outbox_len() >= messages {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_holder_suspends_online_with_a_code_on_a_secondary_attribute_and_gets_a_receipt() {
    let w = world().await;
    let (_, spid_code) = holder(&w, "mario.rossi@example.it").await;
    let requests = std::sync::Arc::new(HolderRequests::new(w.registrar.clone()));
    let lc = lifecycle(&w);
    let online = Via::Online { client: Some([198, 51, 100, 7].into()) };
    let ask =
        |who: &str, action| Ask { who: who.into(), action, reason: "smarrimento".into(), contact: Contact::Email };

    // Online, only the emergency: a suspension, with the code by e-mail.
    for action in [Action::Restore, Action::Revoke] {
        assert_eq!(requests.start(&ask(&spid_code, action), &online).await.unwrap_err().code, "action.not_online");
    }
    let by_sms = Ask { contact: Contact::Mobile, ..ask(&spid_code, Action::Suspend) };
    assert_eq!(requests.start(&by_sms, &online).await.unwrap_err().code, "contact.not_online");
    // An unknown username gets the same answer, sends nothing, and its
    // confirmation fails like a wrong code does.
    let sent_before = w.outbox_len();
    let quiet = requests.start(&ask("nessuno@example.it", Action::Suspend), &online).await.unwrap();
    settle(&w, sent_before + 1).await;
    assert_eq!(w.outbox_len(), sent_before);
    let unknown_holder = requests.confirm(&quiet.request_id, "123456", &online).await.unwrap_err();

    let started = requests.start(&ask("Mario.Rossi@example.it", Action::Suspend), &online).await.unwrap();
    assert_eq!((started.sent_to.as_str(), started.expires_at), ("", quiet.expires_at), "the same answer");
    settle(&w, sent_before + 1).await;
    assert_eq!(w.outbox_len(), sent_before + 1);
    let code = w.outbox.code_for("mario.rossi@example.it");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let wrong_code = requests.confirm(&started.request_id, wrong, &online).await.unwrap_err();
    assert_eq!((unknown_holder.code.as_str(), wrong_code.code.as_str()), ("code.refused", "code.refused"));
    assert_eq!(unknown_holder.message, wrong_code.message);
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Active, "a wrong code changes nothing");
    // The help desk cannot confirm an online request.
    let desk = Via::Phone { operator_id: "turno-1".into() };
    assert_eq!(requests.confirm(&started.request_id, &code, &desk).await.unwrap_err().code, "request.unknown");
    w.clock.advance(Duration::minutes(3));
    let receipt = requests.confirm(&started.request_id, &code, &online).await.unwrap();
    assert_eq!(
        (receipt.status, receipt.action, receipt.spid_code.as_str()),
        (Status::Suspended, "suspend", &*spid_code)
    );
    assert!(receipt.receipt_id.starts_with("RIC-"), "{}", receipt.receipt_id);
    assert_eq!(receipt.acted_at - receipt.received_at, Duration::minutes(3));
    assert_eq!(requests.confirm(&started.request_id, &code, &online).await.unwrap_err().code, "code.refused", "once");
    let last = lc.history(&spid_code).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.actor, last.cause.as_str(), last.channel.as_str()),
        (format!("holder:{spid_code}"), "holder_request", "online")
    );
    assert!(last.justification_ref.contains(&receipt.receipt_id));
    let (_, data) = requested(&w).await.into_iter().rev().find(|(t, _)| t == "lifecycle-request-received").unwrap();
    assert_eq!((data["receipt"].as_str(), data["action"].as_str()), (receipt.receipt_id.as_str(), "suspend"));

    // Starts are limited per client network (a /24 here).
    let other = |host: u8| Via::Online { client: Some([192, 0, 2, host].into()) };
    for host in 0..crate::holder_requests::ONLINE_STARTS_PER_HOUR {
        requests.start(&ask("nessuno@example.it", Action::Suspend), &other(host as u8)).await.unwrap();
    }
    let err = requests.start(&ask("nessuno@example.it", Action::Suspend), &other(200)).await.unwrap_err();
    assert_eq!(err.code, "requests.rate_limited");

    // And per identity: starts from many networks send at most 3 codes an
    // hour, on a budget of their own — the holder's other codes still go.
    lc.apply(&spid_code, &staff(ActorKind::Operator, Action::Restore, Cause::Other)).await.unwrap();
    let sent_before = w.outbox_len();
    for net in 1..=6u8 {
        let from = Via::Online { client: Some([198, 18, net, 1].into()) };
        requests.start(&ask(&spid_code, Action::Suspend), &from).await.unwrap();
    }
    // One of this hour's went to the first suspension above.
    let allowed = crate::holder_requests::ONLINE_REQUESTS_PER_IDENTITY as usize - 1;
    settle(&w, sent_before + allowed + 1).await;
    assert_eq!(w.outbox_len() - sent_before, allowed);
    w.backoffice.add_operator(None, "turno-1", "Turno", crate::backoffice::Role::Administrator).await.unwrap();
    let desk = Via::Phone { operator_id: "turno-1".into() };
    let by_phone = requests.start(&ask(&spid_code, Action::Suspend), &desk).await.unwrap();
    assert!(by_phone.sent_to.starts_with("e-mail"), "the help desk still gets a code through");
}

#[tokio::test]
async fn the_help_desk_takes_a_holders_call_and_a_stolen_phone_cannot_lift_the_suspension() {
    let w = world().await;
    let (_, spid_code) = holder(&w, "mario.rossi@example.it").await;
    let requests = std::sync::Arc::new(HolderRequests::new(w.registrar.clone()));
    let lc = lifecycle(&w);
    let ask = |action, contact| Ask { who: spid_code.clone(), action, reason: "furto".into(), contact };
    let mobile = sample("").mobile;

    let nobody = Via::Phone { operator_id: "nobody".into() };
    let err = requests.start(&ask(Action::Suspend, Contact::Email), &nobody).await.unwrap_err();
    assert_eq!(err.code, "operator.unknown");
    use crate::backoffice::Role;
    w.backoffice.add_operator(None, "admin", "Admin", Role::Administrator).await.unwrap();
    w.backoffice.add_operator(Some("admin"), "turno-1", "Turno", Role::Counter).await.unwrap();
    let desk = Via::Phone { operator_id: "turno-1".into() };
    let lost = Ask { who: "nessuno@example.it".into(), ..ask(Action::Suspend, Contact::Email) };
    assert_eq!(requests.start(&lost, &desk).await.unwrap_err().code, "identity.not_found");
    let err = requests.start(&ask(Action::Revoke, Contact::Email), &desk).await.unwrap_err();
    assert_eq!(err.code, "action.not_by_phone", "a revocation is final: PEC or a signed form");
    let err = requests.start(&ask(Action::Restore, Contact::Email), &desk).await.unwrap_err();
    assert_eq!(err.code, "transition.illegal", "nothing to restore");

    // The phone was stolen: the holder has the code sent by e-mail.
    let started = requests.start(&ask(Action::Suspend, Contact::Email), &desk).await.unwrap();
    assert_eq!(started.sent_to, "e-mail m***@example.it");
    let code = w.outbox.code_for("mario.rossi@example.it");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let err = requests.confirm(&started.request_id, wrong, &desk).await.unwrap_err();
    assert_eq!(err.code, "contact.code_wrong", "the help desk sees why");
    let other_desk = Via::Phone { operator_id: "admin".into() };
    let err = requests.confirm(&started.request_id, &code, &other_desk).await.unwrap_err();
    assert_eq!(err.code, "request.unknown", "confirmed by the operator who took the call");
    assert_eq!(requests.confirm(&started.request_id, &code, &desk).await.unwrap().status, Status::Suspended);
    let last = lc.history(&spid_code).await.unwrap().pop().unwrap();
    assert_eq!(last.channel, "phone");
    assert!(last.justification_ref.ends_with("phone call taken by turno-1"), "{}", last.justification_ref);

    // Whoever has the phone calls to lift it: the code would go to the
    // phone, which did not confirm the suspension.
    let err = requests.start(&ask(Action::Restore, Contact::Mobile), &desk).await.unwrap_err();
    assert_eq!(err.code, "contact.not_trusted");
    // The holder, on the e-mail that confirmed it, can; a code expires.
    let back = requests.start(&ask(Action::Restore, Contact::Email), &desk).await.unwrap();
    let code = w.outbox.code_for("mario.rossi@example.it");
    w.clock.advance(Duration::minutes(16));
    assert_eq!(requests.confirm(&back.request_id, &code, &desk).await.unwrap_err().code, "request.unknown");
    let back = requests.start(&ask(Action::Restore, Contact::Email), &desk).await.unwrap();
    let code = w.outbox.code_for("mario.rossi@example.it");
    assert_eq!(requests.confirm(&back.request_id, &code, &desk).await.unwrap().status, Status::Active);

    // A code confirms only the request it was sent for.
    let first = requests.start(&ask(Action::Suspend, Contact::Mobile), &desk).await.unwrap();
    let first_code = w.outbox.code_for(&mobile);
    let second = requests.start(&ask(Action::Suspend, Contact::Email), &desk).await.unwrap();
    let second_code = w.outbox.code_for("mario.rossi@example.it");
    if first_code != second_code {
        let err = requests.confirm(&second.request_id, &first_code, &desk).await.unwrap_err();
        assert_eq!(err.code, "contact.code_wrong");
    }
    assert_eq!(requests.confirm(&first.request_id, &first_code, &desk).await.unwrap().status, Status::Suspended);

    // Not a suspension the help desk or the detector made.
    lc.apply(&spid_code, &staff(ActorKind::Operator, Action::Restore, Cause::Other)).await.unwrap();
    lc.apply(&spid_code, &staff(ActorKind::Operator, Action::Suspend, Cause::Other)).await.unwrap();
    let err = requests.start(&ask(Action::Restore, Contact::Email), &desk).await.unwrap_err();
    assert_eq!(err.code, "restore.not_holders");

    // A suspension asked by PEC is lifted the way it came, not by phone.
    lc.apply(&spid_code, &staff(ActorKind::Operator, Action::Restore, Cause::Other)).await.unwrap();
    let pec = Change { channel: Channel::Pec, ..staff(ActorKind::Operator, Action::Suspend, Cause::HolderRequest) };
    lc.apply(&spid_code, &pec).await.unwrap();
    let err = requests.start(&ask(Action::Restore, Contact::Email), &desk).await.unwrap_err();
    assert_eq!(err.code, "restore.by_document");
}

#[tokio::test]
async fn the_scheduler_restores_holders_suspensions_warns_once_per_deadline_and_revokes_unused_identities() {
    let w = world().await;
    let (_, mario) = holder(&w, "mario.rossi@example.it").await;
    let (_, luigi) = holder(&w, "luigi.bianchi@example.it").await;
    let lc = lifecycle(&w);
    let scheduler = Scheduler::new(w.registrar.clone());
    let run = |days: i64| {
        w.clock.advance(Duration::days(days));
        scheduler.run_due(w.clock.now())
    };
    let quiet = |r: SchedulerRun| SchedulerRun { password_reminders: 0, ..r };

    // LC-2: the holder's suspension comes back after 30 days, the other not.
    let pec = Change { channel: Channel::Pec, ..staff(ActorKind::Operator, Action::Suspend, Cause::HolderRequest) };
    lc.apply(&mario, &pec).await.unwrap();
    lc.apply(&luigi, &staff(ActorKind::Operator, Action::Suspend, Cause::Other)).await.unwrap();
    assert_eq!(run(29).await.unwrap(), SchedulerRun::default());
    assert_eq!(run(2).await.unwrap().restored, 1);
    assert_eq!(lc.get(&mario).await.unwrap().status, Status::Active);
    assert_eq!(lc.get(&luigi).await.unwrap().status, Status::Suspended);
    assert_eq!(scheduler.run_due(w.clock.now()).await.unwrap(), SchedulerRun::default(), "once");
    let last = lc.history(&mario).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.cause.as_str(), last.to),
        ("scheduler:scheduler", "suspension_over", Status::Active)
    );

    // LC-3: 24 months without use, for active identities. Luigi is
    // restored (and not used); Mario logs in now.
    lc.apply(&luigi, &staff(ActorKind::Operator, Action::Restore, Cause::Other)).await.unwrap();
    assert!(matches!(
        w.credentials.check("mario.rossi@example.it", &sample("").password).await.unwrap(),
        Outcome::Ok(_)
    ));
    let before = sent(&w, "revocation-warning").await;
    // Luigi's deadline is day 730 (unused since activation), Mario's 761.
    assert_eq!(run(730 - 91).await.unwrap().warned, 1, "day 670: luigi's 90-day warning");
    assert_eq!(run(1).await.unwrap().warned, 1, "day 671: mario's 90-day warning");
    assert_eq!(quiet(scheduler.run_due(w.clock.now()).await.unwrap()), SchedulerRun::default(), "once per deadline");
    assert_eq!(run(30).await.unwrap().warned, 1, "day 701: luigi's 30-day warning");
    assert_eq!(run(24).await.unwrap().warned, 1, "day 725: luigi's 10-day warning");
    // An outage from day 725 to 760: both passed marks unsent. Each gets
    // one message, the latest; Luigi, past his deadline, is revoked only a
    // day after that last warning.
    let r = run(35).await.unwrap();
    assert_eq!((r.warned, r.revoked), (2, 0));
    assert_eq!(quiet(scheduler.run_due(w.clock.now()).await.unwrap()), SchedulerRun::default(), "nothing twice");
    assert_eq!(run(1).await.unwrap().revoked, 2, "day 761: both, each warned the day before");
    assert_eq!(lc.get(&luigi).await.unwrap().status, Status::Revoked);
    assert_eq!(lc.get(&mario).await.unwrap().status, Status::Revoked);
    assert_eq!(lc.history(&mario).await.unwrap().pop().unwrap().cause, "inactivity");
    assert_eq!(sent(&w, "revocation-warning").await - before, 6, "luigi 90, 30, 10, 1; mario 90, 1");
}

#[tokio::test]
async fn documents_and_passwords_are_reminded_once_per_mark_and_an_expired_document_suspends() {
    let w = world().await;
    let (identity_id, spid_code) = holder(&w, "mario.rossi@example.it").await;
    let lc = lifecycle(&w);
    let scheduler = Scheduler::new(w.registrar.clone());
    let start = w.clock.now();
    let at = |days: i64| {
        w.clock.set(start + Duration::days(days));
        scheduler.run_due(w.clock.now())
    };
    // The document's last day is day 40 (the deadline: the start of day 41).
    let last_day = (start + Duration::days(40)).date_naive();
    sqlx::query("UPDATE identity_documents SET expires_on = $1")
        .bind(last_day.format("%Y-%m-%d").to_string())
        .execute(w.registrar.db().pool())
        .await
        .unwrap();
    let docs = |r: SchedulerRun| (r.document_reminders, r.document_suspensions);
    assert_eq!(docs(at(10).await.unwrap()), (0, 0), "more than 30 days ahead");
    assert_eq!(docs(at(11).await.unwrap()), (1, 0), "the 30-day reminder");
    assert_eq!(docs(at(11).await.unwrap()), (0, 0), "once");
    assert_eq!(docs(at(33).await.unwrap()), (0, 0));
    assert_eq!(docs(at(34).await.unwrap()), (1, 0), "the 7-day reminder");
    assert_eq!(docs(at(40).await.unwrap()), (0, 0), "the last day is still valid");
    assert_eq!(docs(at(41).await.unwrap()), (0, 1), "suspended at expiry");
    assert_eq!(docs(at(41).await.unwrap()), (0, 0));
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Suspended);
    let last = lc.history(&spid_code).await.unwrap().pop().unwrap();
    assert_eq!((last.actor.as_str(), last.cause.as_str()), ("scheduler:scheduler", "document_expired"));
    let reminders: Vec<_> =
        requested(&w).await.into_iter().filter(|(t, _)| t == "document-expiry-reminder").map(|(_, d)| d).collect();
    assert_eq!(reminders.len(), 2);
    assert_eq!(reminders[0]["expiry_date"], last_day.format("%d/%m/%Y").to_string());
    assert_eq!(sent(&w, "document-expired").await, 1, "the holder told why and when");
    assert_eq!(sent(&w, "identity-suspended").await, 0, "one message, the specific one");
    // The operator cannot restore it before a valid document is recorded.
    let restore = staff(ActorKind::Operator, Action::Restore, Cause::Other);
    assert_eq!(lc.apply(&spid_code, &restore).await.unwrap_err().code, "document.expired");
    w.backoffice.add_operator(None, "op-7", "Turno", crate::backoffice::Role::Administrator).await.unwrap();
    let mut document = sample("").document;
    document.expires_on = "2031-1-5".into();
    document.issued_on = (start + Duration::days(40)).format("%Y-%m-%d").to_string();
    document.number = "CA12345ZZ".into();
    let expired = crate::application::IdentityDocument { expires_on: "2020-01-01".into(), ..document.clone() };
    let err = w.backoffice.record_document("op-7", &spid_code, &expired).await.unwrap_err();
    assert_eq!(err.code, "document.expired");
    w.backoffice.record_document("op-7", &spid_code, &document).await.unwrap();
    let stored = "SELECT COUNT(*) FROM identity_documents WHERE expires_on = '2031-01-05'";
    assert_eq!(count(&w, stored).await, 1, "stored in its one form");
    lc.apply(&spid_code, &restore).await.unwrap();
    assert_eq!(docs(at(42).await.unwrap()), (0, 0));
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Active);

    // REG-6: the password set at registration (day 0) expires on day 180.
    let pw = |r: SchedulerRun| r.password_reminders;
    assert_eq!(pw(at(164).await.unwrap()), 0);
    assert_eq!(pw(at(165).await.unwrap()), 1, "15 days ahead");
    assert_eq!(pw(at(166).await.unwrap()), 0);
    assert_eq!(pw(at(173).await.unwrap()), 1, "7 days ahead");
    assert_eq!(pw(at(179).await.unwrap()), 1, "the day before");
    assert_eq!(pw(at(179).await.unwrap()), 0);
    let reminder = requested(&w).await.into_iter().rev().find(|(t, _)| t == "password-expiry-reminder").unwrap().1;
    assert_eq!(reminder["expiry_date"], (start + Duration::days(180)).format("%d/%m/%Y").to_string());
    // At expiry the login enforces the change; a new password starts a new
    // series and the old one's marks are not sent again.
    assert_eq!(pw(at(181).await.unwrap()), 0);
    let password = sample("").password;
    assert!(matches!(
        w.credentials.check("mario.rossi@example.it", &password).await.unwrap(),
        Outcome::PasswordExpired(_)
    ));
    let expires = w.credentials.change_password("mario.rossi@example.it", &password, "Ciliegia#2031k").await.unwrap();
    assert_eq!(expires, w.clock.now() + Duration::days(180));
    assert_eq!(pw(at(182).await.unwrap()), 0);
    assert_eq!(sent(&w, "password-expiry-reminder").await, 3);
    let notices = format!("SELECT COUNT(*) FROM lifecycle_notices WHERE identity_id = '{identity_id}'");
    assert_eq!(count(&w, &notices).await, 5, "2 document marks, 3 password marks");
}

#[tokio::test]
async fn locked_credentials_unlock_after_a_day_and_pending_requests_lapse() {
    let w = world().await;
    let (_, spid_code) = holder(&w, "mario.rossi@example.it").await;
    let lc = lifecycle(&w);
    let scheduler = Scheduler::new(w.registrar.clone());
    for _ in 0..11 {
        w.credentials.check("mario.rossi@example.it", "Sbagliata#1").await.unwrap();
    }
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::CredentialsLocked);
    // An application left unidentified.
    let (pending, _) = register(&w, &sample("luigi.bianchi@example.it")).await;

    w.clock.advance(Duration::hours(23));
    assert_eq!(scheduler.run_due(w.clock.now()).await.unwrap().unlocked, 0);
    w.clock.advance(Duration::hours(2));
    assert_eq!(scheduler.run_due(w.clock.now()).await.unwrap().unlocked, 1);
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Active);
    let last = lc.history(&spid_code).await.unwrap().pop().unwrap();
    assert_eq!((last.from, last.cause.as_str()), (Status::CredentialsLocked, "lock_over"));
    assert!(matches!(
        w.credentials.check("mario.rossi@example.it", &sample("").password).await.unwrap(),
        Outcome::Ok(_)
    ));
    // The count started again: one wrong password does not lock.
    w.credentials.check("mario.rossi@example.it", "Sbagliata#1").await.unwrap();
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Active);

    w.clock.advance(Duration::days(30));
    assert_eq!(scheduler.run_due(w.clock.now()).await.unwrap().lapsed, 1, "REG-9: 30 days without identification");
    assert_eq!(w.registrar.request(&pending).await.unwrap().state, crate::request::RequestState::Lapsed);
}

#[tokio::test]
async fn one_replica_at_a_time_holds_the_jobs_and_a_dead_ones_lease_passes_on() {
    let w = world().await;
    let (a, b) = (Scheduler::new(w.registrar.clone()), Scheduler::new(w.registrar.clone()));
    let now = w.clock.now();
    assert!(a.lease(now).await.unwrap());
    assert!(!b.lease(now).await.unwrap());
    assert!(a.lease(now + Duration::minutes(5)).await.unwrap(), "renewed");
    assert!(!b.lease(now + Duration::minutes(14)).await.unwrap(), "still a's");
    // a stops renewing (a crash): ten minutes after its last renewal, b.
    assert!(b.lease(now + Duration::minutes(16)).await.unwrap());
    assert!(!a.lease(now + Duration::minutes(17)).await.unwrap());
}

/// Links `minor` to `parent` as MIN-1 will, with one live and one ended
/// authorisation.
async fn link_minor(w: &World, minor: &str, parent: &str) {
    let pool = w.registrar.db().pool();
    let now = w.clock.now().timestamp_micros();
    sqlx::query("INSERT INTO guardianships (minor_identity_id, parent_identity_id, created_at) VALUES ($1, $2, $3)")
        .bind(minor)
        .bind(parent)
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    for (id, ended) in [("auth-live", None), ("auth-ended", Some(now))] {
        sqlx::query(
            "INSERT INTO minor_authorisations (id, minor_identity_id, sp_entity_id, granted_at, expires_at, ended_at)
             VALUES ($1, $2, 'https://scuola.example.it', $3, $4, $5)",
        )
        .bind(format!("{id}-{minor}"))
        .bind(minor)
        .bind(now)
        .bind(now + 86_400_000_000 * 90)
        .bind(ended)
        .execute(pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn suspending_or_revoking_a_parent_suspends_the_minors_and_ends_their_authorisations() {
    let w = world().await;
    let (parent_id, parent) = holder(&w, "mario.rossi@example.it").await;
    let (minor_id, minor) = holder(&w, "giulia.rossi@example.it").await;
    let (_, stranger) = holder(&w, "luigi.bianchi@example.it").await;
    link_minor(&w, &minor_id, &parent_id).await;
    let lc = lifecycle(&w);
    let live = "SELECT COUNT(*) FROM minor_authorisations WHERE ended_at IS NULL";
    assert_eq!(count(&w, live).await, 1);

    lc.apply(&parent, &staff(ActorKind::Operator, Action::Suspend, Cause::Other)).await.unwrap();
    assert_eq!(lc.get(&minor).await.unwrap().status, Status::Suspended);
    assert_eq!(lc.get(&stranger).await.unwrap().status, Status::Active);
    assert_eq!(count(&w, live).await, 0, "every authorisation ended");
    let ended = "SELECT COUNT(*) FROM minor_authorisations WHERE ended_reason = 'parent_ended'";
    assert_eq!(count(&w, ended).await, 1, "the one already ended keeps its own end");
    let event = lifecycle_events(&w).await.pop().unwrap();
    assert_eq!((event.spid_code.as_str(), event.cascaded_spid_codes.clone()), (parent.as_str(), vec![minor.clone()]));
    assert_eq!(spid_events::lifecycle::ended_identities_of(event.clone()), [parent.clone(), minor.clone()]);
    let last = lc.history(&minor).await.unwrap().pop().unwrap();
    assert_eq!((last.actor.as_str(), last.cause.as_str()), ("operator:op-7", "parent_ended"));
    assert!(last.reason.contains("suspended (MIN-7)"), "{}", last.reason);
    let (_, told) = requested(&w).await.into_iter().rev().find(|(t, _)| t == "minor-suspended").unwrap();
    assert!(told["minor_name"].len() > 3, "{told:?}");

    // Restoring the parent does not restore the minor.
    lc.apply(&parent, &staff(ActorKind::Operator, Action::Restore, Cause::Other)).await.unwrap();
    assert_eq!(lc.get(&minor).await.unwrap().status, Status::Suspended);
    assert_eq!(lifecycle_events(&w).await.pop().unwrap().cascaded_spid_codes, Vec::<String>::new());
    lc.apply(&minor, &staff(ActorKind::Operator, Action::Restore, Cause::Other)).await.unwrap();

    // Revoking the parent suspends (not revokes) the minor.
    let illicit = staff(ActorKind::Administrator, Action::Revoke, Cause::IllicitUse);
    lc.apply(&parent, &illicit).await.unwrap();
    assert_eq!(lc.get(&minor).await.unwrap().status, Status::Suspended);
    let last = lc.history(&minor).await.unwrap().pop().unwrap();
    assert!(last.reason.contains("revoked (MIN-7)"), "{}", last.reason);
    assert_eq!(lifecycle_events(&w).await.pop().unwrap().cascaded_spid_codes, vec![minor.clone()]);
}

#[tokio::test]
async fn wrong_passwords_from_many_addresses_suspend_the_identity() {
    let w = world().await;
    let (_, spid_code) = holder(&w, "mario.rossi@example.it").await;
    let (_, other) = holder(&w, "luigi.bianchi@example.it").await;
    let cache = std::sync::Arc::new(spid_cache::MemoryCache::new());
    let detector = crate::misuse::Detector::standard(cache, lifecycle(&w));
    let credentials =
        crate::identity::Credentials::new(w.registrar.db().clone(), crate::tests::test_hasher(), w.clock.clone())
            .await
            .unwrap()
            .with_detector(std::sync::Arc::new(detector));
    let lc = lifecycle(&w);
    // Distinct /24 networks; two addresses of one network count once.
    let from = |i: u8| Some(std::net::IpAddr::from([203, 0, i, 7]));
    let password = sample("").password;

    // Four networks, some twice, one through two addresses, and right
    // passwords between: below the mark. Another identity's failures
    // count for it alone.
    let mario = "mario.rossi@example.it";
    for i in [1, 2, 2, 3, 4, 4] {
        assert_eq!(credentials.check_from(mario, "Sbagliata#1", from(i)).await.unwrap(), Outcome::WrongCredentials);
    }
    let same_network = Some(std::net::IpAddr::from([203, 0, 4, 200]));
    credentials.check_from(mario, "Sbagliata#1", same_network).await.unwrap();
    assert!(matches!(credentials.check_from(mario, &password, from(9)).await.unwrap(), Outcome::Ok(_)));
    credentials.check_from("luigi.bianchi@example.it", "Sbagliata#1", from(5)).await.unwrap();
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Active);
    // The fifth network.
    credentials.check_from(mario, "Sbagliata#1", from(5)).await.unwrap();
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Suspended);
    assert_eq!(lc.get(&other).await.unwrap().status, Status::Active);
    let last = lc.history(&spid_code).await.unwrap().pop().unwrap();
    assert_eq!((last.actor.as_str(), last.cause.as_str()), ("system:misuse:many-addresses", "misuse"));
    assert!(last.reason.contains("5 different networks"), "{}", last.reason);
    let (_, told) = requested(&w).await.into_iter().rev().find(|(t, _)| t == "identity-suspended").unwrap();
    assert_eq!(told["cause"], last.reason);
    match credentials.check_from(mario, &password, from(9)).await.unwrap() {
        Outcome::NotActive(v) => assert_eq!(v.status, Status::Suspended),
        other => panic!("{other:?}"),
    }
    // The help desk restores it; the count starts again, so the next
    // wrong password does not suspend it at once.
    lc.apply(&spid_code, &staff(ActorKind::Operator, Action::Restore, Cause::Other)).await.unwrap();
    credentials.check_from(mario, "Sbagliata#1", from(6)).await.unwrap();
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Active);
}

#[tokio::test]
async fn a_document_found_already_expired_is_reminded_a_week_before_the_suspension() {
    let w = world().await;
    let (_, spid_code) = holder(&w, "mario.rossi@example.it").await;
    let lc = lifecycle(&w);
    let scheduler = Scheduler::new(w.registrar.clone());
    // Expired yesterday, and the scheduler never saw it (an outage, the
    // first run after an upgrade).
    let yesterday = (w.clock.now() - Duration::days(1)).date_naive().format("%Y-%m-%d").to_string();
    sqlx::query("UPDATE identity_documents SET expires_on = $1")
        .bind(&yesterday)
        .execute(w.registrar.db().pool())
        .await
        .unwrap();
    let r = scheduler.run_due(w.clock.now()).await.unwrap();
    assert_eq!((r.document_reminders, r.document_suspensions), (1, 0), "reminded first");
    let (_, told) = requested(&w).await.into_iter().rev().find(|(t, _)| t == "document-expiry-reminder").unwrap();
    let in_a_week = (w.clock.now() + Duration::days(7)).format("%d/%m/%Y").to_string();
    assert_eq!(told["suspension_date"], in_a_week, "the holder is told when");
    w.clock.advance(Duration::days(6));
    let r = scheduler.run_due(w.clock.now()).await.unwrap();
    assert_eq!((r.document_reminders, r.document_suspensions), (0, 0));
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Active);
    w.clock.advance(Duration::days(1));
    let r = scheduler.run_due(w.clock.now()).await.unwrap();
    assert_eq!((r.document_reminders, r.document_suspensions), (0, 1), "a week after the reminder");
    assert_eq!(sent(&w, "document-expiry-reminder").await, 1, "one reminder for the marks missed");
}

#[tokio::test]
async fn scheduled_changes_apply_only_to_the_state_they_were_chosen_in() {
    let w = world().await;
    let (_, spid_code) = holder(&w, "mario.rossi@example.it").await;
    let lc = lifecycle(&w);
    for _ in 0..11 {
        w.credentials.check("mario.rossi@example.it", "Sbagliata#1").await.unwrap();
    }
    let locked = lc.get(&spid_code).await.unwrap();
    assert_eq!(locked.status, Status::CredentialsLocked);
    // LC-1: the lock is in the history, by the credential check.
    let last = lc.history(&spid_code).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.from, last.to, last.actor.as_str(), last.cause.as_str()),
        (Status::Active, Status::CredentialsLocked, "system:credentials-check", "wrong_passwords")
    );
    // The unlock job chose the locked identity; meanwhile an operator
    // suspended it. The unlock does not lift the suspension.
    let unlock =
        Change::scheduled(Action::Restore, Cause::LockOver, "unlock").if_unchanged_since(locked.status_changed_at);
    w.clock.advance(Duration::minutes(1));
    lc.apply(&spid_code, &staff(ActorKind::Operator, Action::Suspend, Cause::Misuse)).await.unwrap();
    assert_eq!(lc.apply(&spid_code, &unlock).await.unwrap_err().code, "identity.changed");
    let fresh = Change::scheduled(Action::Restore, Cause::LockOver, "unlock");
    assert_eq!(lc.apply(&spid_code, &fresh).await.unwrap_err().code, "transition.illegal", "only a lock unlocks");
    let over = Change::scheduled(Action::Restore, Cause::SuspensionOver, "30 days");
    assert_eq!(lc.apply(&spid_code, &over).await.unwrap_err().code, "transition.illegal", "not the holder's");
    assert_eq!(lc.get(&spid_code).await.unwrap().status, Status::Suspended);
}

#[tokio::test]
async fn a_minor_already_suspended_follows_the_parent_not_their_own_30_days() {
    let w = world().await;
    let (parent_id, parent) = holder(&w, "mario.rossi@example.it").await;
    let (minor_id, minor) = holder(&w, "giulia.rossi@example.it").await;
    link_minor(&w, &minor_id, &parent_id).await;
    let lc = lifecycle(&w);
    let scheduler = Scheduler::new(w.registrar.clone());
    let pec = Change { channel: Channel::Pec, ..staff(ActorKind::Operator, Action::Suspend, Cause::HolderRequest) };
    lc.apply(&minor, &pec).await.unwrap();
    w.clock.advance(Duration::days(1));
    lc.apply(&parent, &staff(ActorKind::Operator, Action::Suspend, Cause::Other)).await.unwrap();
    let last = lc.history(&minor).await.unwrap().pop().unwrap();
    assert_eq!((last.from, last.to, last.cause.as_str()), (Status::Suspended, Status::Suspended, "parent_ended"));
    w.clock.advance(Duration::days(31));
    assert_eq!(scheduler.run_due(w.clock.now()).await.unwrap().restored, 0);
    assert_eq!(lc.get(&minor).await.unwrap().status, Status::Suspended);
    let holder_restore = Change {
        actor: ActorKind::Holder,
        channel: Channel::Online,
        ..staff(ActorKind::Holder, Action::Restore, Cause::HolderRequest)
    };
    assert_eq!(lc.apply(&minor, &holder_restore).await.unwrap_err().code, "restore.not_holders");
}

#[tokio::test]
async fn a_stopped_replica_gives_its_lease_up() {
    let w = world().await;
    let (a, b) = (Scheduler::new(w.registrar.clone()), Scheduler::new(w.registrar.clone()));
    let now = w.clock.now();
    assert!(a.lease(now).await.unwrap());
    assert!(!b.lease(now + Duration::minutes(1)).await.unwrap());
    a.release().await.unwrap();
    assert!(b.lease(now + Duration::minutes(1)).await.unwrap(), "at once, not after the lease's 10 minutes");
}

#[tokio::test]
async fn committed_changes_and_locks_wake_the_outbox_relay_and_refusals_do_not() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let w = world().await;
    let (_, spid_code) = holder(&w, "mario.rossi@example.it").await;
    let woken = std::sync::Arc::new(AtomicUsize::new(0));
    let wake = {
        let woken = woken.clone();
        std::sync::Arc::new(move || {
            woken.fetch_add(1, Ordering::SeqCst);
        }) as std::sync::Arc<dyn Fn() + Send + Sync>
    };
    let registrar = w.registrar.with_messenger(w.outbox.clone()).with_outbox_wake(wake.clone());
    let suspend = staff(ActorKind::Operator, Action::Suspend, Cause::Other);
    registrar.lifecycle().apply(&spid_code, &suspend).await.unwrap();
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    assert!(registrar.lifecycle().apply(&spid_code, &suspend).await.is_err());
    assert_eq!(woken.load(Ordering::SeqCst), 1, "a refusal commits nothing");
    let restore = staff(ActorKind::Operator, Action::Restore, Cause::Other);
    registrar.lifecycle().apply(&spid_code, &restore).await.unwrap();
    assert_eq!(woken.load(Ordering::SeqCst), 2);
    let credentials =
        crate::identity::Credentials::new(w.registrar.db().clone(), crate::tests::test_hasher(), w.clock.clone())
            .await
            .unwrap()
            .with_outbox_wake(wake);
    for _ in 0..11 {
        credentials.check("mario.rossi@example.it", "Sbagliata#1").await.unwrap();
    }
    assert_eq!(woken.load(Ordering::SeqCst), 3, "the lock, not each wrong password");
}
