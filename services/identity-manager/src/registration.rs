//! Registration by the applicant (REG-1…10): the request is started with
//! the whole data set, the contacts are verified by code (REG-5), the
//! documents accepted with their versions (REG-8), the document scans
//! uploaded as encrypted evidence (REG-10), and then it is submitted for
//! identification. Each step is refused with its own code when it does
//! not fit, and changes nothing then.
//!
//! The applicant proves each step with the token [`Registrar::start`]
//! returned (only its keyed hash is stored); operators act through
//! the back-office.

use std::sync::Arc;

use chrono::Duration;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use spid_db::Db;
use spid_events::EventBuilder;
use spid_proto::events::v1::{EvidenceRecorded, actor};
use spid_secrets::SecretKey;
use spid_types::{Clock, ErrorKind, ServiceError};
use sqlx::Row;

use crate::application::{Application, Problem};
use crate::evidence::{self, KeyManager};
use crate::notify::{Channel, Message, Messenger};
use crate::password::Hasher;
use crate::request::{Action, Actor, RequestState};
use crate::store::{self, db_err, note};

/// The documents an applicant accepts (REG-8), with their current version.
pub const DOCUMENTS: [(&str, &str); 4] =
    [("membership_form", "2026.1"), ("privacy_notice", "2026.1"), ("risk_notice", "2026.1"), ("terms", "2026.1")];

/// Wrong codes allowed per code sent.
pub const CODE_ATTEMPTS: i64 = 5;
/// Codes sent to one contact before a success; then the help desk.
pub const CODE_SENDS: i64 = 10;
/// Codes sent to one address or number in 24 hours, whatever the request:
/// registrations cannot be used to flood someone with messages (or to
/// pump paid SMS).
pub const CODES_PER_RECIPIENT: u64 = 10;
/// Largest evidence upload through this interface.
pub const MAX_UPLOAD: usize = 10 * 1024 * 1024;

/// The contacts verified by code (REG-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    Email,
    Mobile,
    Pec,
}

impl ContactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Mobile => "mobile",
            Self::Pec => "pec",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Email, Self::Mobile, Self::Pec].into_iter().find(|k| k.as_str() == s)
    }

    fn channel(self) -> Channel {
        match self {
            Self::Email => Channel::Email,
            Self::Mobile => Channel::Sms,
            Self::Pec => Channel::Pec,
        }
    }
}

/// What the applicant uploads (REG-10, REG-2, IDN-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    DocumentFront,
    DocumentBack,
    HealthCardFront,
    HealthCardBack,
    /// Chamber of commerce extract or power of attorney (REG-2).
    RepresentationProof,
}

impl Upload {
    pub const ALL: [Upload; 5] = [
        Self::DocumentFront,
        Self::DocumentBack,
        Self::HealthCardFront,
        Self::HealthCardBack,
        Self::RepresentationProof,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DocumentFront => "document_front",
            Self::DocumentBack => "document_back",
            Self::HealthCardFront => "health_card_front",
            Self::HealthCardBack => "health_card_back",
            Self::RepresentationProof => "representation_proof",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

/// Scans are PDF, JPEG or PNG, recognised by their first bytes.
fn scan_format(content: &[u8]) -> Option<&'static str> {
    if content.starts_with(b"%PDF-") {
        Some("pdf")
    } else if content.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpeg")
    } else if content.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("png")
    } else {
        None
    }
}

/// A request just started: its id and the applicant's token (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub request_id: String,
    pub applicant_token: String,
}

/// Where an applicant's request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub request_id: String,
    pub state: &'static str,
    pub contacts: Vec<ContactStatus>,
    /// Documents still to accept, with the version to accept.
    pub documents_to_accept: Vec<(String, String)>,
    pub uploads_missing: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactStatus {
    pub kind: String,
    pub value: String,
    pub verified: bool,
}

pub struct Registrar {
    pub(crate) db: Db,
    hasher: Hasher,
    keys: Arc<dyn KeyManager>,
    /// Keys the hashes of codes and applicant tokens.
    mac_key: SecretKey,
    pub(crate) messenger: Arc<dyn Messenger>,
    pub(crate) clock: Arc<dyn Clock>,
    settings: Settings,
    /// Wakes the outbox relay after lifecycle changes.
    outbox_wake: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// The registrar's policies.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a contact verification code is valid.
    pub code_validity: Duration,
    /// The IdP's 4-letter code, first part of every spidCode.
    pub idp_code: String,
    /// Counts the codes sent to each address and number across requests
    /// (Redis in production): [`CODES_PER_RECIPIENT`] a day at most.
    pub cache: Arc<dyn spid_cache::Cache>,
}

fn invalid(code: &str, message: &str) -> ServiceError {
    ServiceError::invalid(code, message)
}

fn precondition(code: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorKind::FailedPrecondition, code, message)
}

/// The problems of an application as one error (for gRPC; the HTTP
/// interface shows the list).
pub fn problems_error(problems: &[Problem]) -> ServiceError {
    let code = problems.first().map(|p| p.code.as_str()).unwrap_or("application.invalid");
    let message: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.message_en)).collect();
    ServiceError::invalid(code, message.join("; "))
}

/// The message carrying a code: its template (which gets `code` and
/// `minutes`), more data, and the daily budget per recipient it counts
/// against ([`CODES_PER_RECIPIENT`] a day; `None`: none, for codes an
/// operator asks for on the holder's call).
pub(crate) struct CodeMessage<'a> {
    pub template: &'static str,
    pub data: &'a [(&'a str, &'a str)],
    pub budget: Option<&'static str>,
}

/// Why a start was refused: the rules broken, or another failure.
#[derive(Debug)]
pub enum StartError {
    Invalid(Vec<Problem>),
    Failed(ServiceError),
}

impl From<ServiceError> for StartError {
    fn from(e: ServiceError) -> Self {
        Self::Failed(e)
    }
}

impl Registrar {
    pub fn new(
        db: Db,
        hasher: Hasher,
        keys: Arc<dyn KeyManager>,
        mac_key: SecretKey,
        messenger: Arc<dyn Messenger>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        Self { db, hasher, keys, mac_key, messenger, clock, settings, outbox_wake: None }
    }

    /// The same registrar, waking the outbox relay after lifecycle changes.
    pub fn with_outbox_wake(self, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        Self { outbox_wake: Some(wake), ..self }
    }

    /// The lifecycle state machine over this registrar's database and clock.
    pub fn lifecycle(&self) -> crate::lifecycle::Lifecycle {
        let lifecycle = crate::lifecycle::Lifecycle::new(self.db.clone(), self.clock.clone());
        match &self.outbox_wake {
            Some(wake) => lifecycle.waking(wake.clone()),
            None => lifecycle,
        }
    }

    /// The same registrar, sending its messages elsewhere.
    pub fn with_messenger(&self, messenger: Arc<dyn Messenger>) -> Self {
        Self {
            db: self.db.clone(),
            hasher: self.hasher.clone(),
            keys: self.keys.clone(),
            mac_key: self.mac_key.clone(),
            messenger,
            clock: self.clock.clone(),
            settings: self.settings.clone(),
            outbox_wake: self.outbox_wake.clone(),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The shared cache (Redis in production): rate limits.
    pub(crate) fn cache(&self) -> &Arc<dyn spid_cache::Cache> {
        &self.settings.cache
    }

    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    pub(crate) fn mac(&self, parts: &[&str]) -> Hmac<Sha256> {
        // HMAC pads a short key with zeros to the block size: the same MAC,
        // through the constructor that cannot fail.
        let mut block = [0u8; 64];
        block[..spid_secrets::KEY_LEN].copy_from_slice(self.mac_key.bytes());
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        mac
    }

    /// REG-4: whether an e-mail address is free (checked while typing).
    pub async fn email_available(&self, email: &str) -> Result<bool, ServiceError> {
        let email = crate::application::normalise_email(email);
        if !crate::application::valid_email(&email) {
            return Err(invalid("email.invalid", "the e-mail address is not valid"));
        }
        let used: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM contacts WHERE kind = 'email' AND lower(value) = $1)
                  + (SELECT COUNT(*) FROM identities WHERE username = $1)",
        )
        .bind(&email)
        .fetch_one(self.db.pool())
        .await
        .map_err(db_err)?;
        Ok(used == 0)
    }

    /// Starts a request with the applicant's data; on success the codes
    /// for the contacts are on their way.
    pub async fn start(&self, a: &Application, assisted: bool) -> Result<Started, StartError> {
        let now = self.clock.now();
        let checked = crate::application::check(a, now.date_naive()).map_err(StartError::Invalid)?;
        if !self.email_available(&checked.email).await? {
            return Err(StartError::Invalid(vec![email_taken()]));
        }
        let password = self.hasher.store(&a.password, now).await.map_err(ServiceError::internal)?;
        let holder_id = uuid::Uuid::now_v7().to_string();
        let request_id = uuid::Uuid::now_v7().to_string();
        let token = random_token();
        let token_hash = hex::encode(self.mac(&["applicant", &request_id, &token]).finalize().into_bytes());
        let details = serde_json::json!({
            "birth_country": checked.birth_country,
            "birth_province": checked.birth_province,
            "birth_municipality": checked.birth_municipality,
            "health_card": a.health_card,
            "domicile": a.domicile,
            "organisation": a.organisation,
        });
        let at = now.timestamp_micros();
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let org = a.organisation.as_ref();
        sqlx::query(
            "INSERT INTO holders (id, kind, codice_fiscale, vat_number, surname, given_name, company_name,
                                  birth_date, birthplace, sex, created_at, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&holder_id)
        .bind(if a.identity_type == crate::application::IdentityType::ProfessionalLegal { "legal" } else { "natural" })
        .bind(&checked.codice_fiscale)
        .bind(org.map(|o| o.vat_number.clone()))
        .bind(a.surname.trim())
        .bind(a.given_name.trim())
        .bind(org.map(|o| o.company_name.clone()))
        .bind(checked.birth_date.to_string())
        .bind(a.birthplace.to_ascii_uppercase())
        .bind(&a.sex)
        .bind(at)
        .bind(details.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO identity_requests (id, holder_id, identity_type, channel, state, state_since, created_at,
                                            version, applicant_token_hash)
             VALUES ($1, $2, $3, $4, 'draft', $5, $5, 0, $6)",
        )
        .bind(&request_id)
        .bind(&holder_id)
        .bind(a.identity_type.as_str())
        .bind(if assisted { "counter" } else { "online" })
        .bind(at)
        .bind(&token_hash)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut contacts = vec![("email", checked.email.clone()), ("mobile", a.mobile.clone())];
        if let Some(pec) = &a.pec {
            contacts.push(("pec", crate::application::normalise_email(pec)));
        }
        for (kind, value) in &contacts {
            let inserted = sqlx::query("INSERT INTO contacts (holder_id, kind, value) VALUES ($1, $2, $3)")
                .bind(&holder_id)
                .bind(*kind)
                .bind(value)
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {}
                // Another request took the address between the check and now.
                Err(e) if is_unique_violation(&e) => return Err(StartError::Invalid(vec![email_taken()])),
                Err(e) => return Err(db_err(e).into()),
            }
        }
        sqlx::query(
            "INSERT INTO credentials (holder_id, seq, password_hash, skeleton_hash, set_at) VALUES ($1, 1, $2, $3, $4)",
        )
        .bind(&holder_id)
        .bind(&password.hash)
        .bind(&password.skeleton_hash)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_document_in(&mut tx, &holder_id, &a.document, at).await?;
        let event = self
            .event("identity_request.draft", &request_id, actor::Kind::Holder, &holder_id)
            .payload(&note(
                "identity_request",
                &[
                    ("to", "draft"),
                    ("holder_id", &holder_id),
                    ("identity_type", a.identity_type.as_str()),
                    ("channel", if assisted { "counter" } else { "online" }),
                ],
            ))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        for (kind, _) in &contacts {
            if let Some(k) = ContactKind::parse(kind) {
                // A failure here leaves the request in place: the applicant
                // asks for the code again.
                if let Err(e) = self.send_code(&request_id, &token, k).await {
                    tracing::warn!(request_id, contact = kind, code = e.code, "verification code not sent");
                }
            }
        }
        Ok(Started { request_id, applicant_token: token })
    }

    pub(crate) fn event(&self, kind: &str, aggregate: &str, actor: actor::Kind, actor_id: &str) -> EventBuilder {
        EventBuilder::new(crate::SERVICE.as_str(), kind, aggregate, self.clock.as_ref()).actor(actor, actor_id)
    }

    /// The request's holder, if `token` is the applicant's (constant-time).
    pub async fn authorize(&self, request_id: &str, token: &str) -> Result<store::RequestRecord, ServiceError> {
        let denied = || ServiceError::new(ErrorKind::Unauthenticated, "request.token_invalid", "not your request");
        let stored: Option<Option<String>> =
            sqlx::query_scalar("SELECT applicant_token_hash FROM identity_requests WHERE id = $1")
                .bind(request_id)
                .fetch_optional(self.db.pool())
                .await
                .map_err(db_err)?;
        let expected = stored.flatten().and_then(|h| hex::decode(h).ok()).ok_or_else(denied)?;
        self.mac(&["applicant", request_id, token]).verify_slice(&expected).map_err(|_| denied())?;
        let mut conn = self.db.pool().acquire().await.map_err(db_err)?;
        store::get_in(&mut conn, request_id).await
    }

    /// A request by id, for the service's own steps (no token).
    pub(crate) async fn request(&self, request_id: &str) -> Result<store::RequestRecord, ServiceError> {
        let mut conn = self.db.pool().acquire().await.map_err(db_err)?;
        store::get_in(&mut conn, request_id).await
    }

    async fn contact(&self, holder_id: &str, kind: ContactKind) -> Result<(String, bool), ServiceError> {
        let row = sqlx::query("SELECT value, verified_at FROM contacts WHERE holder_id = $1 AND kind = $2")
            .bind(holder_id)
            .bind(kind.as_str())
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_err)?
            .ok_or_else(|| invalid("contact.none", "the request has no such contact"))?;
        let verified: Option<i64> = row.try_get("verified_at").map_err(db_err)?;
        Ok((row.try_get("value").map_err(db_err)?, verified.is_some()))
    }

    /// Sends a fresh code to a contact of a draft request (REG-5).
    pub async fn send_code(&self, request_id: &str, token: &str, kind: ContactKind) -> Result<(), ServiceError> {
        let r = self.authorize(request_id, token).await?;
        if r.state != RequestState::Draft {
            return Err(precondition("request.not_draft", "contacts are verified before the request is submitted"));
        }
        let (value, verified) = self.contact(&r.holder_id, kind).await?;
        if verified {
            return Err(precondition("contact.already_verified", "this contact is already verified"));
        }
        self.issue_code(&r.holder_id, kind.as_str(), kind.channel(), &value, request_id).await
    }

    /// Draws a 6-digit code for `label` (a contact, a video challenge),
    /// keeps its keyed hash and sends it through the notification service.
    pub(crate) async fn issue_code(
        &self,
        holder_id: &str,
        label: &str,
        channel: Channel,
        recipient: &str,
        subject_id: &str,
    ) -> Result<(), ServiceError> {
        let message = CodeMessage { template: "contact-verification", data: &[], budget: Some("codes-to") };
        self.issue_code_as(holder_id, label, (channel, recipient), subject_id, message).await
    }

    /// [`Registrar::issue_code`] with another message.
    pub(crate) async fn issue_code_as(
        &self,
        holder_id: &str,
        label: &str,
        (channel, recipient): (Channel, &str),
        subject_id: &str,
        CodeMessage { template, data, budget }: CodeMessage<'_>,
    ) -> Result<(), ServiceError> {
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let hash = self.mac(&["code", holder_id, label, &code]).finalize().into_bytes().to_vec();
        let expires = self.clock.now() + self.settings.code_validity;
        // A new code replaces the pending one and counts one more send:
        // each code brings its own attempts, so the sends are capped too.
        let sends: Option<i64> =
            sqlx::query_scalar("SELECT sends FROM contact_codes WHERE holder_id = $1 AND kind = $2")
                .bind(holder_id)
                .bind(label)
                .fetch_optional(self.db.pool())
                .await
                .map_err(db_err)?;
        if sends.is_some_and(|n| n >= CODE_SENDS) {
            return Err(ServiceError::new(
                ErrorKind::RateLimited,
                "contact.too_many_codes",
                "too many codes for this contact: contact the help desk",
            ));
        }
        if let Some(budget) = budget {
            // The key names the recipient by a digest: no address in the cache.
            let key = format!("{budget}:{}", hex::encode(Sha256::digest(recipient.to_lowercase().as_bytes())));
            let sent =
                self.settings.cache.increment(&key, std::time::Duration::from_secs(24 * 3600)).await.map_err(|e| {
                    tracing::warn!(error = %e, "cache unavailable: no code sent");
                    ServiceError::unavailable("contact.unavailable", "codes cannot be sent now; try again later")
                })?;
            if sent > CODES_PER_RECIPIENT {
                return Err(ServiceError::new(
                    ErrorKind::RateLimited,
                    "contact.recipient_rate_limited",
                    "too many codes to this address or number today: try again tomorrow",
                ));
            }
        }
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        sqlx::query("DELETE FROM contact_codes WHERE holder_id = $1 AND kind = $2")
            .bind(holder_id)
            .bind(label)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO contact_codes (holder_id, kind, code_hash, expires_at, attempts, sends)
             VALUES ($1, $2, $3, $4, 0, $5)",
        )
        .bind(holder_id)
        .bind(label)
        .bind(hash)
        .bind(expires.timestamp_micros())
        .bind(sends.unwrap_or(0) + 1)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let minutes = self.settings.code_validity.num_minutes().to_string();
        self.messenger
            .send(Message {
                channel,
                recipient: recipient.to_owned(),
                template,
                locale: "it",
                data: [("code".to_owned(), code), ("minutes".to_owned(), minutes)]
                    .into_iter()
                    .chain(data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
                    .collect(),
                idempotency_key: uuid::Uuid::now_v7().to_string(),
                subject_id: subject_id.to_owned(),
            })
            .await
    }

    /// Checks a code drawn by [`Registrar::issue_code`]: within its
    /// validity and its attempts, compared in constant time. A wrong code
    /// counts an attempt at once; a right one stays until the caller
    /// consumes it ([`consume_code`]) with what it proves.
    pub(crate) async fn check_code(&self, holder_id: &str, label: &str, code: &str) -> Result<(), ServiceError> {
        let row =
            sqlx::query("SELECT code_hash, expires_at, attempts FROM contact_codes WHERE holder_id = $1 AND kind = $2")
                .bind(holder_id)
                .bind(label)
                .fetch_optional(self.db.pool())
                .await
                .map_err(db_err)?
                .ok_or_else(|| precondition("contact.no_code", "ask for a code first"))?;
        let hash: Vec<u8> = row.try_get("code_hash").map_err(db_err)?;
        let expires: i64 = row.try_get("expires_at").map_err(db_err)?;
        let attempts: i64 = row.try_get("attempts").map_err(db_err)?;
        if attempts >= CODE_ATTEMPTS {
            return Err(precondition("contact.code_exhausted", "too many wrong codes: ask for a new one"));
        }
        if self.clock.now().timestamp_micros() > expires {
            return Err(precondition("contact.code_expired", "the code has expired: ask for a new one"));
        }
        if self.mac(&["code", holder_id, label, code.trim()]).verify_slice(&hash).is_err() {
            sqlx::query("UPDATE contact_codes SET attempts = attempts + 1 WHERE holder_id = $1 AND kind = $2")
                .bind(holder_id)
                .bind(label)
                .execute(self.db.pool())
                .await
                .map_err(db_err)?;
            return Err(invalid("contact.code_wrong", "the code is not right"));
        }
        Ok(())
    }

    /// Checks a code the applicant typed; the contact is verified when it
    /// matches, within its validity and its attempts.
    pub async fn verify_contact(
        &self,
        request_id: &str,
        token: &str,
        kind: ContactKind,
        code: &str,
    ) -> Result<(), ServiceError> {
        let r = self.authorize(request_id, token).await?;
        self.check_code(&r.holder_id, kind.as_str(), code).await?;
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        consume_code(&mut tx, &r.holder_id, kind.as_str()).await?;
        sqlx::query("UPDATE contacts SET verified_at = $1 WHERE holder_id = $2 AND kind = $3")
            .bind(self.clock.now().timestamp_micros())
            .bind(&r.holder_id)
            .bind(kind.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let event = self
            .event("contact.verified", request_id, actor::Kind::Holder, &r.holder_id)
            .payload(&note("contact", &[("kind", kind.as_str()), ("holder_id", &r.holder_id)]))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    /// Records the acceptance of documents (REG-8): each must be one of
    /// [`DOCUMENTS`] in its current version.
    pub async fn accept_documents(
        &self,
        request_id: &str,
        token: &str,
        accepted: &[(String, String)],
    ) -> Result<(), ServiceError> {
        let r = self.authorize(request_id, token).await?;
        if r.state != RequestState::Draft {
            return Err(precondition("request.not_draft", "documents are accepted before the request is submitted"));
        }
        for (doc, version) in accepted {
            match DOCUMENTS.iter().find(|(d, _)| d == doc) {
                None => return Err(invalid("documents.unknown", &format!("no document called {doc}"))),
                Some((_, current)) if current != version => {
                    return Err(invalid(
                        "documents.version_outdated",
                        &format!("{doc} is now at version {current}: read it again"),
                    ));
                }
                Some(_) => {}
            }
        }
        let now = self.clock.now();
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        for (doc, version) in accepted {
            sqlx::query("DELETE FROM acceptances WHERE request_id = $1 AND document = $2")
                .bind(request_id)
                .bind(doc)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query("INSERT INTO acceptances (request_id, document, version, accepted_at) VALUES ($1, $2, $3, $4)")
                .bind(request_id)
                .bind(doc)
                .bind(version)
                .bind(now.timestamp_micros())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let event = self
                .event("documents.accepted", request_id, actor::Kind::Holder, &r.holder_id)
                .payload(&note("acceptance", &[("document", doc), ("version", version)]))
                .build();
            spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    /// Stores an upload as encrypted evidence (REG-10, EMI-3).
    pub async fn upload(
        &self,
        request_id: &str,
        token: &str,
        kind: Upload,
        content: &[u8],
    ) -> Result<String, ServiceError> {
        let r = self.authorize(request_id, token).await?;
        if r.state.is_final() {
            return Err(precondition("request.closed", "the request is closed"));
        }
        if content.len() > MAX_UPLOAD {
            return Err(invalid("evidence.too_large", "at most 10 MiB per file"));
        }
        if scan_format(content).is_none() {
            return Err(invalid("evidence.format", "upload a PDF, JPEG or PNG file"));
        }
        self.record_evidence(request_id, kind.as_str(), content, actor::Kind::Holder, &r.holder_id).await
    }

    /// Encrypts and stores a piece of evidence with its audit event.
    pub async fn record_evidence(
        &self,
        request_id: &str,
        kind: &str,
        content: &[u8],
        by: actor::Kind,
        actor_id: &str,
    ) -> Result<String, ServiceError> {
        let id = uuid::Uuid::now_v7().to_string();
        let sealed = evidence::seal(self.keys.as_ref(), &id, content).await.map_err(ServiceError::internal)?;
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO evidence (id, request_id, kind, kek, wrapped_key, ciphertext, content_sha256, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(request_id)
        .bind(kind)
        .bind(&sealed.kek)
        .bind(sealed.wrapped_key)
        .bind(sealed.ciphertext)
        .bind(&sealed.content_sha256)
        .bind(self.clock.now().timestamp_micros())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let event = self
            .event("evidence.recorded", request_id, by, actor_id)
            .payload(&EvidenceRecorded {
                spid_code: String::new(),
                evidence_id: id.clone(),
                kind: kind.to_owned(),
                storage_ref: format!("identity-manager:evidence/{id}"),
                content_sha256: sealed.content_sha256,
            })
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(id)
    }

    /// Reads a piece of evidence back (operators, verification).
    pub async fn open_evidence(&self, evidence_id: &str) -> Result<(String, Vec<u8>), ServiceError> {
        let row = sqlx::query("SELECT kind, kek, wrapped_key, ciphertext, content_sha256 FROM evidence WHERE id = $1")
            .bind(evidence_id)
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_err)?
            .ok_or_else(|| ServiceError::not_found("evidence.not_found", "no such evidence"))?;
        let sealed = evidence::SealedEvidence {
            kek: row.try_get("kek").map_err(db_err)?,
            wrapped_key: row.try_get("wrapped_key").map_err(db_err)?,
            ciphertext: row.try_get("ciphertext").map_err(db_err)?,
            content_sha256: row.try_get("content_sha256").map_err(db_err)?,
        };
        let content = evidence::open(self.keys.as_ref(), evidence_id, &sealed).await.map_err(ServiceError::internal)?;
        Ok((row.try_get("kind").map_err(db_err)?, content))
    }

    /// Where the request stands: what is still missing before submission.
    pub async fn progress(&self, request_id: &str, token: &str) -> Result<Progress, ServiceError> {
        let r = self.authorize(request_id, token).await?;
        self.progress_of(&r).await
    }

    async fn progress_of(&self, r: &store::RequestRecord) -> Result<Progress, ServiceError> {
        let rows = sqlx::query("SELECT kind, value, verified_at FROM contacts WHERE holder_id = $1 ORDER BY kind")
            .bind(&r.holder_id)
            .fetch_all(self.db.pool())
            .await
            .map_err(db_err)?;
        let mut contacts = Vec::new();
        for row in rows {
            contacts.push(ContactStatus {
                kind: row.try_get("kind").map_err(db_err)?,
                value: row.try_get("value").map_err(db_err)?,
                verified: row.try_get::<Option<i64>, _>("verified_at").map_err(db_err)?.is_some(),
            });
        }
        let accepted: Vec<(String, String)> =
            sqlx::query("SELECT document, version FROM acceptances WHERE request_id = $1")
                .bind(&r.id)
                .fetch_all(self.db.pool())
                .await
                .map_err(db_err)?
                .iter()
                .map(|row| Ok((row.try_get("document")?, row.try_get("version")?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(db_err)?;
        let documents_to_accept = DOCUMENTS
            .iter()
            .filter(|(d, v)| !accepted.iter().any(|(ad, av)| ad == d && av == v))
            .map(|(d, v)| ((*d).to_owned(), (*v).to_owned()))
            .collect();
        let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM evidence WHERE request_id = $1")
            .bind(&r.id)
            .fetch_all(self.db.pool())
            .await
            .map_err(db_err)?;
        let identity_type: String = sqlx::query_scalar("SELECT identity_type FROM identity_requests WHERE id = $1")
            .bind(&r.id)
            .fetch_one(self.db.pool())
            .await
            .map_err(db_err)?;
        let mut needed = vec![Upload::DocumentFront, Upload::DocumentBack];
        if identity_type != "private" {
            needed.push(Upload::RepresentationProof);
        }
        let uploads_missing =
            needed.into_iter().filter(|u| !kinds.iter().any(|k| k == u.as_str())).map(Upload::as_str).collect();
        Ok(Progress {
            request_id: r.id.clone(),
            state: r.state.as_str(),
            contacts,
            documents_to_accept,
            uploads_missing,
        })
    }

    /// Submits a complete draft for identification.
    pub async fn submit(&self, request_id: &str, token: &str) -> Result<RequestState, ServiceError> {
        let r = self.authorize(request_id, token).await?;
        let p = self.progress_of(&r).await?;
        if r.state == RequestState::Draft {
            if let Some(c) = p.contacts.iter().find(|c| !c.verified) {
                return Err(precondition("submit.contact_unverified", format!("verify the {} first", c.kind)));
            }
            if let Some((d, _)) = p.documents_to_accept.first() {
                return Err(precondition("submit.documents_not_accepted", format!("accept the {d} first")));
            }
            if let Some(u) = p.uploads_missing.first() {
                return Err(precondition("submit.upload_missing", format!("upload the {u} first")));
            }
        }
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let to =
            store::apply_in(&mut tx, request_id, &Action::Submit, Actor::Applicant, &r.holder_id, self.clock.as_ref())
                .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(to)
    }
}

impl Registrar {
    /// The applicant accepts the final documents (EMI-1): the request
    /// becomes active and the identity is created, in one transaction.
    pub async fn activate(&self, request_id: &str, token: &str) -> Result<crate::identity::Emitted, ServiceError> {
        let r = self.authorize(request_id, token).await?;
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        store::apply_in(&mut tx, request_id, &Action::Accept, Actor::Applicant, &r.holder_id, self.clock.as_ref())
            .await?;
        let emitted =
            crate::identity::emit_in(&mut tx, request_id, &self.settings.idp_code, self.clock.as_ref()).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(emitted)
    }
}

/// Stores a holder's identity document (checked already), its dates in
/// their one form; `at` (microseconds) orders the holder's documents.
pub(crate) async fn insert_document_in(
    conn: &mut sqlx::AnyConnection,
    holder_id: &str,
    d: &crate::application::IdentityDocument,
    at: i64,
) -> Result<(), ServiceError> {
    sqlx::query(
        "INSERT INTO identity_documents (id, holder_id, kind, number, issuer, issued_on, expires_on, added_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(holder_id)
    .bind(&d.kind)
    .bind(d.number.trim().to_ascii_uppercase())
    .bind(d.issuer.trim())
    .bind(crate::application::iso_date(&d.issued_on))
    .bind(crate::application::iso_date(&d.expires_on))
    .bind(at)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Uses up a code [`Registrar::check_code`] accepted, inside the
/// transaction that records what it proves; a code used meanwhile by a
/// concurrent call is refused.
pub(crate) async fn consume_code(
    tx: &mut sqlx::AnyConnection,
    holder_id: &str,
    label: &str,
) -> Result<(), ServiceError> {
    let deleted = sqlx::query("DELETE FROM contact_codes WHERE holder_id = $1 AND kind = $2")
        .bind(holder_id)
        .bind(label)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    if deleted.rows_affected() != 1 {
        return Err(precondition("contact.no_code", "the code was already used: ask for a new one"));
    }
    Ok(())
}

fn email_taken() -> Problem {
    Problem::new(
        "email",
        "email.taken",
        "Questo indirizzo e-mail è già usato da un'altra identità: scegline un altro.",
        "This e-mail address is already used by another identity: choose another.",
    )
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

/// 32 random bytes, URL-safe base64.
pub(crate) fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
