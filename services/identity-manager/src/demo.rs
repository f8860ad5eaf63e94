//! Demo holders for the development mode (`idp dev --seed-demo`): one with
//! level-1 credentials, one with level 2 (SMS code to a demo mobile). They
//! go through the real registration: application checks, contact codes,
//! document acceptance, uploads, operator steps and activation. Their
//! passwords are drawn at the first start and kept, with the rest, in
//! `<data_dir>/demo-users.json` (the development contract).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use spid_types::ServiceError;

use crate::application::{Application, sample};
use crate::notify::{Message, Messenger};
use crate::registration::{ContactKind, DOCUMENTS, Registrar, StartError, Upload};
use crate::request::{Action, Actor, Method};
use crate::store::{RequestStore, db_err};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoUser {
    pub username: String,
    pub password: String,
    pub level: u8,
    pub spid_code: String,
    pub mobile: String,
    pub email: String,
}

/// Keeps the demo holders' contact codes in memory: they go nowhere.
#[derive(Default)]
struct Codes(Mutex<HashMap<String, String>>);

#[async_trait]
impl Messenger for Codes {
    async fn send(&self, m: Message) -> Result<(), ServiceError> {
        if let (Ok(mut codes), Some(code)) = (self.0.lock(), m.data.get("code")) {
            codes.insert(m.recipient.clone(), code.clone());
        }
        Ok(())
    }
}

impl Codes {
    fn code(&self, recipient: &str) -> String {
        self.0.lock().ok().and_then(|c| c.get(recipient).cloned()).unwrap_or_default()
    }
}

/// A password that keeps REG-6: upper, lower, digits, a symbol, 12
/// characters, no run of three.
fn demo_password(a: &Application) -> String {
    let mut rng = rand::rng();
    loop {
        let upper: Vec<char> = "ABCDEFGHJKLMNPQRSTUVWXYZ".chars().collect();
        let lower: Vec<char> = "abcdefghijkmnopqrstuvwxyz".chars().collect();
        let mut p = String::new();
        for _ in 0..2 {
            p.push(*upper.choose(&mut rng).unwrap_or(&'Q'));
        }
        for _ in 0..5 {
            p.push(*lower.choose(&mut rng).unwrap_or(&'q'));
        }
        p.push(*['#', '!', '%', '?'].choose(&mut rng).unwrap_or(&'#'));
        p.push_str(&format!("{:04}", rng.random_range(0..10_000)));
        let personal = crate::password::PersonalData {
            names: vec![a.surname.as_str(), a.given_name.as_str()],
            codice_fiscale: Some(&a.codice_fiscale),
            email: Some(&a.email),
            ..Default::default()
        };
        if crate::password::check(&p, &personal).is_empty() {
            return p;
        }
    }
}

fn holders() -> Vec<(Application, u8)> {
    let mut l1 = sample("mario.rossi@demo.spid.invalid");
    l1.mobile = "+393330000001".into();
    let mut l2 = sample("giulia.bianchi@demo.spid.invalid");
    l2.surname = "Bianchi".into();
    l2.given_name = "Giulia".into();
    l2.sex = "F".into();
    l2.birth_date = "1985-07-14".into();
    l2.birthplace = "F205".into();
    l2.codice_fiscale = "BNCGLI85L54F205X".into();
    l2.document.number = "CA98765ZX".into();
    l2.mobile = "+393330000002".into();
    vec![(l1, 1), (l2, 2)]
}

/// Creates the demo holders that do not exist yet and writes the file.
pub async fn seed(registrar: &Registrar, requests: &RequestStore, file: &Path) -> Result<Vec<DemoUser>, ServiceError> {
    let mut known: Vec<DemoUser> =
        std::fs::read(file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let codes = Arc::new(Codes::default());
    let quiet = registrar.with_messenger(codes.clone());
    for (mut a, level) in holders() {
        let exists = !registrar.email_available(&a.email).await?;
        if exists && known.iter().any(|u| u.email == a.email) {
            continue;
        }
        if exists {
            // The database outlived the file: the password is lost.
            return Err(ServiceError::internal(format!(
                "demo holder {} exists but is not in {}; delete the data directory to start afresh",
                a.email,
                file.display()
            )));
        }
        a.password = demo_password(&a);
        let started = match quiet.start(&a, false).await {
            Ok(s) => s,
            Err(StartError::Invalid(p)) => return Err(ServiceError::internal(format!("demo application: {p:?}"))),
            Err(StartError::Failed(e)) => return Err(e),
        };
        let (id, token) = (started.request_id.as_str(), started.applicant_token.as_str());
        for (kind, recipient) in [(ContactKind::Email, &a.email), (ContactKind::Mobile, &a.mobile)] {
            quiet.verify_contact(id, token, kind, &codes.code(recipient)).await?;
        }
        let all: Vec<(String, String)> = DOCUMENTS.iter().map(|(d, v)| ((*d).into(), (*v).into())).collect();
        quiet.accept_documents(id, token, &all).await?;
        for side in [Upload::DocumentFront, Upload::DocumentBack] {
            quiet.upload(id, token, side, b"%PDF-1.7 demo document scan").await?;
        }
        quiet.submit(id, token).await?;
        let clock = registrar.clock().as_ref();
        let method = Action::StartIdentification { method: Method::Counter };
        for (action, by) in [
            (method, Actor::Operator),
            (Action::Identify, Actor::Operator),
            (Action::Verify, Actor::Verifier),
            (Action::OfferDocuments, Actor::Verifier),
        ] {
            requests.apply(id, &action, by, "demo-seed", clock).await?;
        }
        let emitted = quiet.activate(id, token).await?;
        if level == 1 {
            sqlx::query("UPDATE identities SET max_level = 1 WHERE id = $1")
                .bind(&emitted.identity_id)
                .execute(registrar.db().pool())
                .await
                .map_err(db_err)?;
        }
        known.retain(|u| u.email != a.email);
        known.push(DemoUser {
            username: a.email.clone(),
            password: a.password.clone(),
            level,
            spid_code: emitted.spid_code,
            mobile: a.mobile.clone(),
            email: a.email.clone(),
        });
    }
    let json = serde_json::to_vec_pretty(&known).map_err(ServiceError::internal)?;
    spid_secrets::write_private(file, &json).map_err(ServiceError::internal)?;
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Outcome;

    #[tokio::test]
    async fn demo_holders_log_in_and_survive_a_restart() {
        let w = crate::tests::world().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("demo-users.json");
        let users = seed(&w.registrar, &w.requests, &file).await.unwrap();
        assert_eq!(users.iter().map(|u| u.level).collect::<Vec<_>>(), [1, 2]);
        for u in &users {
            match w.credentials.check(&u.username, &u.password).await.unwrap() {
                Outcome::Ok(v) => assert_eq!((v.spid_code.as_str(), v.max_level), (u.spid_code.as_str(), u.level)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(w.outbox_len(), 0, "demo codes are not sent anywhere");
        let again = seed(&w.registrar, &w.requests, &file).await.unwrap();
        assert_eq!(again, users, "a second start keeps the same holders");
        let on_disk: Vec<DemoUser> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(on_disk, users);
        std::fs::remove_file(&file).unwrap();
        assert!(seed(&w.registrar, &w.requests, &file).await.is_err(), "passwords lost: said so");
    }
}
