//! Identities (EMI-1, EMI-2, LC-5): emission when the applicant accepts the
//! final documents, the credential check the gateway calls at every login,
//! and the SPID attributes it releases.
//!
//! The credential check never tells a wrong username from a wrong
//! password: an unknown username costs the same Argon2id verification as
//! a known one, and both answer [`Outcome::WrongCredentials`]. The state of
//! an identity is told only to whoever gave its password. More than
//! [`LOCK_AFTER`] consecutive wrong passwords lock the credentials, with a
//! lifecycle event, an audit event and a message to the holder.

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;
use serde::Serialize;
use spid_db::Db;
use spid_events::EventBuilder;
use spid_proto::events::v1::{IdentityState, IdentityStateChanged, actor};
use spid_types::{Clock, ErrorKind, ServiceError};
use sqlx::Row;

use crate::notify::{Channel, request_in};
use crate::password::{Hasher, StoredPassword};
use crate::store::{db_err, note};

/// Consecutive wrong passwords tolerated; the next one locks (LC-5).
pub const LOCK_AFTER: i64 = 10;
/// Characters of a spidCode after the IdP code.
pub const SPID_CODE_SUFFIX: usize = 10;
const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Suspended,
    Revoked,
    Expired,
    CredentialsLocked,
}

impl Status {
    pub const ALL: [Status; 5] = [Self::Active, Self::Suspended, Self::Revoked, Self::Expired, Self::CredentialsLocked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::CredentialsLocked => "credentials_locked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn wire(self) -> IdentityState {
        match self {
            Self::Active => IdentityState::Active,
            Self::Suspended => IdentityState::Suspended,
            Self::Revoked => IdentityState::Revoked,
            Self::Expired => IdentityState::Expired,
            Self::CredentialsLocked => IdentityState::CredentialsLocked,
        }
    }
}

/// What the gateway learns about an identity after a right password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityView {
    pub identity_id: String,
    pub spid_code: String,
    pub identity_type: String,
    pub status: Status,
    /// 1 or 2 (level 3 is not issued yet).
    pub max_level: u8,
    /// `sms` (verified mobile) and/or `email` (verified e-mail).
    pub second_factors: Vec<&'static str>,
}

/// See [`Credentials::second_factor_contacts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondFactorContacts {
    pub identity_type: String,
    pub status: Status,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub date_of_birth: Option<String>,
}

/// Why a password change was refused.
#[derive(Debug)]
pub enum ChangeError {
    /// The new password breaks these rules.
    Invalid(Vec<crate::password::Violation>),
    Refused(ServiceError),
}

impl From<ServiceError> for ChangeError {
    fn from(e: ServiceError) -> Self {
        Self::Refused(e)
    }
}

fn wrong_credentials() -> ServiceError {
    ServiceError::new(ErrorKind::Unauthenticated, "credentials.wrong", "wrong username or password")
}

/// An identity as a login finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub view: IdentityView,
    pub password: StoredPassword,
    pub failed_logins: i64,
    /// Microseconds; the last successful password check.
    pub last_used_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(IdentityView),
    /// Unknown username or wrong password: indistinguishable.
    WrongCredentials,
    NotActive(IdentityView),
    PasswordExpired(IdentityView),
}

/// `code` followed by [`SPID_CODE_SUFFIX`] random upper-case letters and
/// digits from the operating system's generator.
pub fn new_spid_code(idp_code: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..SPID_CODE_SUFFIX).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{idp_code}{suffix}")
}

/// An identity just created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Emitted {
    pub identity_id: String,
    pub spid_code: String,
    pub identity_type: String,
}

/// Creates the identity of an activated request inside the activation's
/// transaction; a spidCode that happens to exist already is drawn again.
pub(crate) async fn emit_in(
    conn: &mut sqlx::AnyConnection,
    request_id: &str,
    idp_code: &str,
    clock: &dyn Clock,
) -> Result<Emitted, ServiceError> {
    let row = sqlx::query(
        "SELECT r.holder_id, r.identity_type, c.value AS email FROM identity_requests r
         JOIN contacts c ON c.holder_id = r.holder_id AND c.kind = 'email'
         WHERE r.id = $1",
    )
    .bind(request_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    let holder_id: String = row.try_get("holder_id").map_err(db_err)?;
    let identity_type: String = row.try_get("identity_type").map_err(db_err)?;
    let email: String = row.try_get("email").map_err(db_err)?;
    let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM identities WHERE username = $1")
        .bind(&email)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    if taken > 0 {
        return Err(ServiceError::new(ErrorKind::AlreadyExists, "email.taken", "the e-mail address is in use"));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = clock.now().timestamp_micros();
    for _ in 0..8 {
        let spid_code = new_spid_code(idp_code);
        let inserted = sqlx::query(
            "INSERT INTO identities (id, spid_code, holder_id, request_id, identity_type, username, status, max_level,
                                     failed_logins, created_at, status_changed_at, last_used_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'active', 2, 0, $7, $7, $7)
             ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(&spid_code)
        .bind(&holder_id)
        .bind(request_id)
        .bind(&identity_type)
        .bind(&email)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        if inserted.rows_affected() == 1 {
            let changed = IdentityStateChanged {
                spid_code: spid_code.clone(),
                previous: IdentityState::Unspecified as i32,
                current: IdentityState::Active as i32,
                justification_ref: String::new(),
                cascaded_spid_codes: vec![],
            };
            let lifecycle = EventBuilder::new(crate::SERVICE.as_str(), "identity.activated", &id, clock)
                .actor(actor::Kind::Holder, &holder_id)
                .payload(&changed)
                .build();
            spid_events::outbox::enqueue(conn, spid_types::topics::LIFECYCLE, &lifecycle).await.map_err(db_err)?;
            let audit = EventBuilder::new(crate::SERVICE.as_str(), "identity.activated", &id, clock)
                .actor(actor::Kind::Holder, &holder_id)
                .payload(&note(
                    "identity",
                    &[("spid_code", &spid_code), ("request_id", request_id), ("identity_type", &identity_type)],
                ))
                .build();
            spid_events::outbox::enqueue(conn, spid_types::topics::AUDIT, &audit).await.map_err(db_err)?;
            let data = [("spid_code", spid_code.as_str())];
            request_in(conn, clock, &id, Channel::Email, &email, "identity-activated", &data).await?;
            return Ok(Emitted { identity_id: id, spid_code, identity_type });
        }
    }
    Err(ServiceError::internal("eight spidCode draws all collided"))
}

pub struct Credentials {
    db: Db,
    hasher: Hasher,
    clock: Arc<dyn Clock>,
    /// Verified when the username is unknown, so that both cost the same.
    decoy: StoredPassword,
    /// Fed every check of a known identity (LC-8).
    detector: Option<Arc<crate::misuse::Detector>>,
    /// Wakes the outbox relay after a lock or a password change.
    wake: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Credentials {
    pub async fn new(db: Db, hasher: Hasher, clock: Arc<dyn Clock>) -> Result<Self, ServiceError> {
        let secret = crate::registration::random_token();
        let decoy = hasher.store(&secret, clock.now()).await.map_err(ServiceError::internal)?;
        Ok(Self { db, hasher, clock, decoy, detector: None, wake: None })
    }

    /// The same credentials, waking the outbox relay after their events.
    pub fn with_outbox_wake(mut self, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.wake = Some(wake);
        self
    }

    fn wake(&self) {
        if let Some(wake) = &self.wake {
            wake();
        }
    }

    /// The same credentials, feeding the misuse detector (LC-8).
    pub fn with_detector(mut self, detector: Arc<crate::misuse::Detector>) -> Self {
        self.detector = Some(detector);
        self
    }

    /// An identity by username with its current password: what a login
    /// checks (one round trip).
    pub async fn lookup(&self, username: &str) -> Result<Option<Account>, ServiceError> {
        let username = crate::application::normalise_email(username);
        let row = sqlx::query(
            "SELECT i.id, i.spid_code, i.identity_type, i.status, i.max_level, i.failed_logins, i.last_used_at,
                    c.password_hash, c.skeleton_hash, c.set_at,
                    (SELECT COUNT(*) FROM contacts m WHERE m.holder_id = i.holder_id AND m.kind = 'mobile'
                        AND m.verified_at IS NOT NULL) AS sms,
                    (SELECT COUNT(*) FROM contacts e WHERE e.holder_id = i.holder_id AND e.kind = 'email'
                        AND e.verified_at IS NOT NULL) AS email
             FROM identities i
             JOIN credentials c ON c.holder_id = i.holder_id
             WHERE i.username = $1
             ORDER BY c.seq DESC LIMIT 1",
        )
        .bind(&username)
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let status_text: String = row.try_get("status").map_err(db_err)?;
        let mut second_factors = Vec::new();
        if row.try_get::<i64, _>("sms").map_err(db_err)? > 0 {
            second_factors.push("sms");
        }
        if row.try_get::<i64, _>("email").map_err(db_err)? > 0 {
            second_factors.push("email");
        }
        Ok(Some(Account {
            view: IdentityView {
                identity_id: row.try_get("id").map_err(db_err)?,
                spid_code: row.try_get("spid_code").map_err(db_err)?,
                identity_type: row.try_get("identity_type").map_err(db_err)?,
                status: Status::parse(&status_text).ok_or_else(|| ServiceError::internal("unknown identity status"))?,
                max_level: u8::try_from(row.try_get::<i64, _>("max_level").map_err(db_err)?).unwrap_or(1),
                second_factors,
            },
            password: StoredPassword {
                hash: row.try_get("password_hash").map_err(db_err)?,
                skeleton_hash: row.try_get("skeleton_hash").map_err(db_err)?,
                set_at: crate::store::instant(row.try_get("set_at").map_err(db_err)?),
            },
            failed_logins: row.try_get("failed_logins").map_err(db_err)?,
            last_used_at: row.try_get("last_used_at").map_err(db_err)?,
        }))
    }

    /// The first factor of a login.
    pub async fn check(&self, username: &str, password: &str) -> Result<Outcome, ServiceError> {
        self.check_from(username, password, None).await
    }

    /// [`Credentials::check`] from a client address (misuse detection).
    pub async fn check_from(
        &self,
        username: &str,
        password: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Outcome, ServiceError> {
        let Some(account) = self.lookup(username).await? else {
            let _ = self.hasher.verify(password, &self.decoy).await.map_err(ServiceError::internal)?;
            return Ok(Outcome::WrongCredentials);
        };
        let Account { view, password: stored, failed_logins, last_used_at } = account;
        let right = self.hasher.verify(password, &stored).await.map_err(ServiceError::internal)?;
        if view.status == Status::Active {
            if !right {
                self.count_failure(&view.identity_id).await?;
            }
            if let Some(detector) = &self.detector {
                use crate::misuse::{AuthEvent, Outcome as Seen};
                let event = AuthEvent {
                    identity_id: view.identity_id.clone(),
                    spid_code: view.spid_code.clone(),
                    outcome: if right { Seen::Success } else { Seen::WrongPassword },
                    client_ip,
                    at: self.clock.now(),
                };
                if detector.observe(&event).await.is_some() && right {
                    return Ok(Outcome::NotActive(IdentityView { status: Status::Suspended, ..view }));
                }
            }
        }
        if !right {
            return Ok(Outcome::WrongCredentials);
        }
        if view.status != Status::Active {
            return Ok(Outcome::NotActive(view));
        }
        // A right password resets the failure count and marks the use
        // (LC-3 inactivity), at most once a day: one write, rarely.
        let now = self.clock.now().timestamp_micros();
        let day = 86_400_000_000;
        if failed_logins > 0 || now - last_used_at > day {
            sqlx::query("UPDATE identities SET failed_logins = 0, last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&view.identity_id)
                .execute(self.db.pool())
                .await
                .map_err(db_err)?;
        }
        if crate::password::expires_at(stored.set_at) <= self.clock.now() {
            return Ok(Outcome::PasswordExpired(view));
        }
        Ok(Outcome::Ok(view))
    }

    /// A new password for an active identity (REG-6, LC-7): the current
    /// one must be right (a wrong one counts towards the lock like a
    /// login); the new one must keep every rule and repeat none of the last
    /// 5 passwords nor any set in the last 15 months, nor a trivial
    /// variant of them. Returns when the new password expires.
    pub async fn change_password(
        &self,
        username: &str,
        current: &str,
        new: &str,
    ) -> Result<chrono::DateTime<chrono::Utc>, ChangeError> {
        let view = match self.check(username, current).await? {
            Outcome::Ok(v) | Outcome::PasswordExpired(v) => v,
            Outcome::WrongCredentials => return Err(ChangeError::Refused(wrong_credentials())),
            Outcome::NotActive(_) => {
                return Err(ChangeError::Refused(ServiceError::new(
                    ErrorKind::FailedPrecondition,
                    "identity.not_active",
                    "the identity is not active",
                )));
            }
        };
        let holder = sqlx::query(
            "SELECT h.id, h.surname, h.given_name, h.codice_fiscale, h.birth_date, i.username
             FROM identities i JOIN holders h ON h.id = i.holder_id WHERE i.id = $1",
        )
        .bind(&view.identity_id)
        .fetch_one(self.db.pool())
        .await
        .map_err(db_err)?;
        let text = |c: &str| holder.try_get::<Option<String>, _>(c).ok().flatten().unwrap_or_default();
        let holder_id = text("id");
        let documents: Vec<String> = sqlx::query_scalar("SELECT number FROM identity_documents WHERE holder_id = $1")
            .bind(&holder_id)
            .fetch_all(self.db.pool())
            .await
            .map_err(db_err)?;
        let (surname, given_name, code, email) =
            (text("surname"), text("given_name"), text("codice_fiscale"), text("username"));
        let personal = crate::password::PersonalData {
            names: vec![surname.as_str(), given_name.as_str()],
            codice_fiscale: Some(code.as_str()),
            birth_date: chrono::NaiveDate::parse_from_str(&text("birth_date"), "%Y-%m-%d").ok(),
            document_numbers: documents.iter().map(String::as_str).collect(),
            email: Some(email.as_str()),
            account_id: Some(view.spid_code.as_str()),
        };
        let mut violations = crate::password::check(new, &personal);
        let now = self.clock.now();
        let history: Vec<StoredPassword> = sqlx::query(
            "SELECT password_hash, skeleton_hash, set_at FROM credentials WHERE holder_id = $1 ORDER BY seq DESC",
        )
        .bind(&holder_id)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| {
            Ok(StoredPassword {
                hash: r.try_get("password_hash")?,
                skeleton_hash: r.try_get("skeleton_hash")?,
                set_at: crate::store::instant(r.try_get("set_at")?),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_err)?;
        if violations.is_empty()
            && let Some(v) = self.hasher.reused(new, &history, now).await.map_err(ServiceError::internal)?
        {
            violations.push(v);
        }
        if !violations.is_empty() {
            return Err(ChangeError::Invalid(violations));
        }
        let stored = self.hasher.store(new, now).await.map_err(ServiceError::internal)?;
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO credentials (holder_id, seq, password_hash, skeleton_hash, set_at)
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM credentials WHERE holder_id = $1",
        )
        .bind(&holder_id)
        .bind(&stored.hash)
        .bind(&stored.skeleton_hash)
        .bind(now.timestamp_micros())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let changed = spid_proto::events::v1::CredentialsChanged {
            spid_code: view.spid_code.clone(),
            credential_kind: "password".into(),
        };
        let lifecycle =
            EventBuilder::new(crate::SERVICE.as_str(), "credentials.changed", &view.identity_id, self.clock.as_ref())
                .actor(actor::Kind::Holder, &view.identity_id)
                .payload(&changed)
                .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::LIFECYCLE, &lifecycle).await.map_err(db_err)?;
        let audit =
            EventBuilder::new(crate::SERVICE.as_str(), "credentials.changed", &view.identity_id, self.clock.as_ref())
                .actor(actor::Kind::Holder, &view.identity_id)
                .payload(&note("credentials", &[("spid_code", &view.spid_code), ("kind", "password")]))
                .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &audit).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.wake();
        Ok(crate::password::expires_at(now))
    }

    /// Counts a wrong password; the failure after [`LOCK_AFTER`] locks.
    async fn count_failure(&self, id: &str) -> Result<(), ServiceError> {
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        let failed: i64 = sqlx::query_scalar(
            "UPDATE identities SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if failed > LOCK_AFTER {
            let now = self.clock.now();
            let locked = sqlx::query(
                "UPDATE identities SET status = 'credentials_locked', status_changed_at = $1
                 WHERE id = $2 AND status = 'active'",
            )
            .bind(now.timestamp_micros())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if locked.rows_affected() == 1 {
                self.locked_events(&mut tx, id, failed, now).await?;
                tx.commit().await.map_err(db_err)?;
                self.wake();
                return Ok(());
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn locked_events(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: &str,
        failed: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ServiceError> {
        let row = sqlx::query(
            "SELECT i.spid_code, c.value AS email FROM identities i
             LEFT JOIN contacts c ON c.holder_id = i.holder_id AND c.kind = 'email'
             WHERE i.id = $1",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
        let spid_code: String = row.try_get("spid_code").map_err(db_err)?;
        let email: Option<String> = row.try_get("email").map_err(db_err)?;
        let clock = self.clock.as_ref();
        let reason = format!("{failed} consecutive wrong passwords");
        // LC-1: the lock is a transition too, in the history beside the others.
        sqlx::query(
            "INSERT INTO identity_transitions (id, identity_id, from_status, to_status, actor_kind, actor_id, reason,
                                               justification_ref, at, holder_request, cause, channel)
             VALUES ($1, $2, 'active', 'credentials_locked', 'system', 'credentials-check', $3, '', $4, 0,
                     'wrong_passwords', '')",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(id)
        .bind(&reason)
        .bind(now.timestamp_micros())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        let changed = IdentityStateChanged {
            spid_code: spid_code.clone(),
            previous: IdentityState::Active as i32,
            current: IdentityState::CredentialsLocked as i32,
            justification_ref: String::new(),
            cascaded_spid_codes: vec![],
        };
        let lifecycle = EventBuilder::new(crate::SERVICE.as_str(), "identity.credentials_locked", id, clock)
            .reason(&reason)
            .payload(&changed)
            .build();
        spid_events::outbox::enqueue(conn, spid_types::topics::LIFECYCLE, &lifecycle).await.map_err(db_err)?;
        let audit = EventBuilder::new(crate::SERVICE.as_str(), "identity.credentials_locked", id, clock)
            .reason(&reason)
            .payload(&note("identity", &[("spid_code", &spid_code), ("to", "credentials_locked")]))
            .build();
        spid_events::outbox::enqueue(conn, spid_types::topics::AUDIT, &audit).await.map_err(db_err)?;
        if let Some(email) = email {
            let data = [("spid_code", spid_code.as_str())];
            request_in(conn, clock, id, Channel::Email, &email, "credentials-locked", &data).await?;
        }
        Ok(())
    }

    /// Where second-factor codes may go: the identity's type and status,
    /// its verified mobile and e-mail, its birth date.
    pub async fn second_factor_contacts(&self, spid_code: &str) -> Result<SecondFactorContacts, ServiceError> {
        let row = sqlx::query("SELECT identity_type, status FROM identities WHERE spid_code = $1")
            .bind(spid_code)
            .fetch_optional(self.db.pool())
            .await
            .map_err(db_err)?
            .ok_or_else(|| ServiceError::not_found("identity.not_found", "no such identity"))?;
        let names: Vec<String> = ["mobilePhone", "email", "dateOfBirth"].map(str::to_owned).to_vec();
        let mut attributes = self.attributes(spid_code, &names).await?;
        let status: String = row.try_get("status").map_err(db_err)?;
        Ok(SecondFactorContacts {
            identity_type: row.try_get("identity_type").map_err(db_err)?,
            status: Status::parse(&status).ok_or_else(|| ServiceError::internal("unknown identity status"))?,
            mobile: attributes.remove("mobilePhone"),
            email: attributes.remove("email"),
            date_of_birth: attributes.remove("dateOfBirth"),
        })
    }

    /// The SPID attributes of an identity among `names` (unknown names and
    /// values the identity does not have are left out).
    pub async fn attributes(&self, spid_code: &str, names: &[String]) -> Result<HashMap<String, String>, ServiceError> {
        let row = sqlx::query(
            "SELECT i.holder_id, i.identity_type, h.codice_fiscale, h.vat_number, h.surname, h.given_name,
                    h.company_name, h.birth_date, h.birthplace, h.sex, h.details
             FROM identities i JOIN holders h ON h.id = i.holder_id WHERE i.spid_code = $1",
        )
        .bind(spid_code)
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_err)?
        .ok_or_else(|| ServiceError::not_found("identity.not_found", "no such identity"))?;
        let holder_id: String = row.try_get("holder_id").map_err(db_err)?;
        let text = |c: &str| row.try_get::<Option<String>, _>(c).ok().flatten();
        let details: serde_json::Value =
            text("details").and_then(|d| serde_json::from_str(&d).ok()).unwrap_or(serde_json::Value::Null);
        let contacts: Vec<(String, String)> =
            sqlx::query("SELECT kind, value FROM contacts WHERE holder_id = $1 AND verified_at IS NOT NULL")
                .bind(&holder_id)
                .fetch_all(self.db.pool())
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| Ok((r.try_get("kind")?, r.try_get("value")?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(db_err)?;
        let contact = |k: &str| contacts.iter().find(|(kind, _)| kind == k).map(|(_, v)| v.clone());
        let document: Option<(String, String, String, String, String)> = sqlx::query(
            "SELECT kind, number, issuer, issued_on, expires_on FROM identity_documents
             WHERE holder_id = $1 ORDER BY added_at DESC LIMIT 1",
        )
        .bind(&holder_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_err)?
        .map(|r| {
            Ok::<_, sqlx::Error>((
                r.try_get("kind")?,
                r.try_get("number")?,
                r.try_get("issuer")?,
                r.try_get("issued_on")?,
                r.try_get("expires_on")?,
            ))
        })
        .transpose()
        .map_err(db_err)?;
        let str_at = |path: &[&str]| {
            let mut v = &details;
            for p in path {
                v = v.get(p)?;
            }
            v.as_str().map(str::to_owned)
        };
        let mut out = HashMap::new();
        for name in names {
            let value = match name.as_str() {
                "spidCode" => Some(spid_code.to_owned()),
                "name" => text("given_name"),
                "familyName" => text("surname"),
                "fiscalNumber" => text("codice_fiscale").map(|cf| format!("TINIT-{cf}")),
                "dateOfBirth" => text("birth_date"),
                "placeOfBirth" => text("birthplace"),
                "countyOfBirth" => str_at(&["birth_province"]),
                "gender" => text("sex"),
                "companyName" => text("company_name"),
                "ivaCode" => text("vat_number").map(|v| format!("VATIT-{v}")),
                "companyFiscalNumber" => str_at(&["organisation", "codice_fiscale"]).map(|v| format!("TINIT-{v}")),
                "registeredOffice" => address(&details["organisation"]["legal_seat"]),
                "mobilePhone" => contact("mobile"),
                "email" => contact("email"),
                "digitalAddress" => contact("pec"),
                "address" => address(&details["domicile"]),
                "domicileStreetAddress" => str_at(&["domicile", "street"]),
                "domicilePostalCode" => str_at(&["domicile", "postal_code"]),
                "domicileMunicipality" => str_at(&["domicile", "municipality"]),
                "domicileProvince" => str_at(&["domicile", "province"]),
                "domicileNation" => str_at(&["domicile", "country"]),
                "idCard" => document.as_ref().map(|(k, n, i, from, to)| format!("{k} {n} {i} {from} {to}")),
                "expirationDate" => document.as_ref().map(|d| d.4.clone()),
                _ => None,
            };
            if let Some(v) = value {
                out.insert(name.clone(), v);
            }
        }
        Ok(out)
    }
}

fn address(v: &serde_json::Value) -> Option<String> {
    let f = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
    v.is_object().then(|| {
        format!("{} {} {} {} {}", f("street"), f("postal_code"), f("municipality"), f("province"), f("country"))
            .trim()
            .to_owned()
    })
}
