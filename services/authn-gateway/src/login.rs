//! The login transaction (SAML-1, SAML-4, SAML-6, SAML-7): from an accepted
//! AuthnRequest through the password, the second factor at level 2 and the
//! consent, to the signed Response — or to the anomaly the user's actions
//! lead to (nr19 after the last wrong password, nr20, nr21, nr22, nr23,
//! nr25). Transport-free: the HTTP handlers only map forms to these calls
//! and [`View`]s to pages.
//!
//! A transaction lives in the shared cache under an unguessable id, for the
//! login timeout; each step takes it, so two submissions of one step
//! cannot both proceed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use spid_cache::Cache;
use spid_events::EventBuilder;
use spid_proto::events::v1::{Authentication, SamlTransaction};
use spid_types::Clock;

use crate::anomaly::ErrorCode;
use crate::level::{IdentityKind, Level, Purpose};
use crate::request::{Binding, Checked, Context, Incoming, Refusal, check, parse_instant};
use crate::response::{Addressee, Authenticated, Built, ResponseBuilder};

/// What the identity-manager answers for a username and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordCheck {
    Ok {
        spid_code: String,
        max_level: Level,
        kind: IdentityKind,
    },
    Wrong,
    /// Suspended, revoked, expired or locked (nr23).
    NotActive,
    Expired,
}

/// What a second-factor check answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Ok,
    Wrong,
    Expired,
    Exhausted,
    /// Push or QR: the app has not answered yet.
    Pending,
    /// Push or QR: the holder refused on the app.
    Refused,
}

/// The second-factor methods, in the order the login offers them (SMS by
/// default).
pub const METHODS: [&str; 5] = ["sms", "email", "totp", "push", "qr"];

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// identity-manager, as the gateway needs it.
#[async_trait]
pub trait Directory: Send + Sync {
    async fn check_password(
        &self,
        username: &str,
        password: &str,
        client_ip: &str,
        transaction_id: &str,
    ) -> Result<PasswordCheck, Unavailable>;
    async fn attributes(&self, spid_code: &str, names: &[String]) -> Result<HashMap<String, String>, Unavailable>;
    /// Whether the identity may log in now (not suspended, revoked,
    /// expired or locked).
    async fn is_active(&self, spid_code: &str) -> Result<bool, Unavailable>;
}

/// A challenge sent for the second factor.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    /// One of [`METHODS`].
    pub method: String,
    /// Where the code went, masked ("+39 3** *** **12"), or the bound
    /// app's name (push).
    pub destination: String,
    /// QR login: what the page shows for the app to scan.
    #[serde(default)]
    pub qr_payload: Option<String>,
}

/// otp-service, as the gateway needs it.
#[async_trait]
pub trait SecondFactor: Send + Sync {
    /// The methods of [`METHODS`] the identity may use now.
    async fn methods(&self, spid_code: &str) -> Result<Vec<String>, Unavailable>;
    /// Starts a challenge of `method` (sends the code, pushes to the app,
    /// or makes the QR payload); `None` when the method is not allowed.
    async fn start(
        &self,
        spid_code: &str,
        transaction_id: &str,
        client_ip: &str,
        service: &str,
        method: &str,
    ) -> Result<Option<Challenge>, Unavailable>;
    async fn verify(
        &self,
        challenge_id: &str,
        transaction_id: &str,
        code: &str,
        client_ip: &str,
    ) -> Result<CodeCheck, Unavailable>;
}

/// Where a transaction stands.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub enum Stage {
    Password,
    Code {
        spid_code: String,
        challenge: Challenge,
        methods: Vec<String>,
        kind: IdentityKind,
    },
    Consent {
        spid_code: String,
        level: Level,
        authn_instant: DateTime<Utc>,
        session_index: Option<String>,
        /// The level-1 session being reused (no new one is made).
        #[serde(default)]
        reused_session: Option<String>,
        kind: IdentityKind,
    },
}

/// One login, kept in the cache between pages.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Transaction {
    pub id: String,
    pub sp_entity_id: String,
    pub request_id: String,
    pub request_issue_instant: String,
    pub acs_url: String,
    pub relay_state: Option<String>,
    pub level: Level,
    pub attributes: Vec<String>,
    /// The request's `spid:Purpose` (nr30 for identities it excludes).
    #[serde(default)]
    pub purpose: Option<Purpose>,
    pub binding: Binding,
    /// The AuthnRequest, deflated and base64-encoded (AUD-2).
    pub request_deflated: String,
    pub client_ip: String,
    /// The browser the login belongs to (its `spid_browser` cookie): every
    /// step must come from it, so a page cannot be driven from elsewhere
    /// (login CSRF).
    #[serde(default)]
    pub browser: String,
    pub received_at: DateTime<Utc>,
    pub password_failures: u32,
    pub stage: Stage,
}

impl Transaction {
    /// A request as it arrived, before what its checks find is filled in.
    fn arrived(binding: Binding, request_deflated: String, client_ip: &str, browser: &str, now: DateTime<Utc>) -> Self {
        Transaction {
            id: random_token(),
            sp_entity_id: String::new(),
            request_id: String::new(),
            request_issue_instant: String::new(),
            acs_url: String::new(),
            relay_state: None,
            level: Level::L1,
            attributes: Vec::new(),
            purpose: None,
            binding,
            request_deflated,
            client_ip: client_ip.to_owned(),
            browser: browser.to_owned(),
            received_at: now,
            password_failures: 0,
            stage: Stage::Password,
        }
    }
}

/// A message shown on a page, by key (the templates hold the texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    WrongCredentials,
    PasswordExpired,
    WrongCode,
    CodeExpired,
    /// Push or QR: no answer from the app yet.
    Pending,
}

/// What the user sees next.
#[derive(Debug, Clone, PartialEq)]
pub enum View {
    /// An error page (no SAML answer possible).
    Error(ErrorCode),
    Password {
        tx: String,
        sp: String,
        level: Level,
        notice: Option<Notice>,
        attempts_left: u32,
    },
    Code {
        tx: String,
        sp: String,
        challenge: Challenge,
        notice: Option<Notice>,
        /// The other methods the holder may switch to.
        others: Vec<String>,
    },
    Consent {
        tx: String,
        sp: String,
        attributes: Vec<(String, String)>,
    },
    /// The auto-submitting form to the SP's ACS.
    Post {
        acs_url: String,
        saml_response: String,
        relay_state: Option<String>,
    },
}

pub struct Settings {
    pub entity_id: String,
    pub sso_locations: Vec<String>,
    /// The SingleLogoutService location (a LogoutRequest's Destination).
    pub slo_locations: Vec<String>,
    pub request_max_age: Duration,
    pub clock_skew: Duration,
    pub login_timeout: Duration,
    pub password_attempts: u32,
    pub assertion_validity: Duration,
}

pub struct Login {
    pub settings: Settings,
    pub keys: Arc<crate::keys::IdpKeys>,
    pub registry: Arc<crate::registry::Registry>,
    pub cache: Arc<dyn Cache>,
    pub sessions: Arc<crate::sessions::Sessions>,
    pub directory: Arc<dyn Directory>,
    pub second_factor: Arc<dyn SecondFactor>,
    pub db: spid_db::Db,
    pub relay_wake: Arc<dyn Fn() + Send + Sync>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("a service did not answer: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Unavailable> for LoginError {
    fn from(e: Unavailable) -> Self {
        LoginError::Unavailable(e.0)
    }
}

fn internal(e: impl std::fmt::Display) -> LoginError {
    LoginError::Internal(e.to_string())
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

const TX_PREFIX: &str = "saml:tx:";

/// Constant-time comparison of two browser ids.
fn same_browser(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

/// Whether `v` has the shape of [`random_token`]'s identifiers (checked
/// before any cache lookup with a value from a browser).
pub(crate) fn is_token(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A random 128-bit identifier, hex.
pub fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Login {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn builder(&self) -> ResponseBuilder<'_> {
        ResponseBuilder {
            entity_id: &self.settings.entity_id,
            key: &self.keys.current,
            assertion_validity: chrono_duration(self.settings.assertion_validity),
        }
    }

    /// An AuthnRequest arrives: checks, replay, then the first page (or an
    /// immediate answer). `sso` is the browser's L1 session cookie.
    pub async fn receive(
        &self,
        incoming: Result<Incoming, ErrorCode>,
        client_ip: &str,
        sso: Option<&str>,
        browser: &str,
    ) -> Result<View, LoginError> {
        let incoming = match incoming {
            Ok(i) => i,
            Err(code) => return Ok(View::Error(code)),
        };
        let now = self.now();
        let ctx = Context {
            registry: &self.registry,
            entity_id: &self.settings.entity_id,
            sso_locations: &self.settings.sso_locations,
            now,
            max_age: chrono_duration(self.settings.request_max_age),
            skew: chrono_duration(self.settings.clock_skew),
        };
        let request_deflated = spid_events::registry::deflate_base64(&incoming.xml);
        let checked = match check(&incoming, &ctx) {
            Ok(c) => c,
            Err(Refusal::Page(code)) => return Ok(View::Error(code)),
            Err(Refusal::ToSp { code, sp, acs_url, request_id, relay_state }) => {
                let tx = Transaction {
                    sp_entity_id: sp.entity_id.clone(),
                    request_id: request_id.unwrap_or_default(),
                    acs_url,
                    relay_state,
                    ..Transaction::arrived(incoming.binding, request_deflated, client_ip, browser, now)
                };
                return self.fail(&tx, code, None).await;
            }
        };
        let replay_ttl = self.settings.request_max_age + self.settings.clock_skew + Duration::from_secs(60);
        let fresh = self.cache.set_if_absent(&checked.replay_key(), b"1", replay_ttl).await.map_err(internal)?;
        let tx = self.transaction(&checked, &incoming, request_deflated, client_ip, browser, now);
        if !fresh {
            return self.fail(&tx, ErrorCode::Nr11, None).await;
        }
        if checked.level == Level::L3 {
            // Not offered (yet): answered at once, without a login page.
            return self.fail(&tx, ErrorCode::Nr20, None).await;
        }
        // A level-1 session is reused for level-1 requests unless the SP
        // forces a new authentication; level 2 always authenticates again.
        let reusable = checked.level == Level::L1 && !checked.force_authn;
        if reusable
            && let Some(session) = self.sso_session(sso).await?
            && Purpose::accepts(checked.purpose, session.kind)
        {
            let mut tx = tx;
            tx.stage = Stage::Consent {
                spid_code: session.spid_code,
                level: Level::L1,
                authn_instant: session.authn_instant,
                session_index: Some(session.session_index),
                reused_session: sso.map(str::to_owned),
                kind: session.kind,
            };
            return self.consent_view(tx).await;
        }
        self.store(&tx).await?;
        Ok(self.password_view(&tx, None))
    }

    fn transaction(
        &self,
        c: &Checked,
        incoming: &Incoming,
        request_deflated: String,
        client_ip: &str,
        browser: &str,
        now: DateTime<Utc>,
    ) -> Transaction {
        Transaction {
            sp_entity_id: c.sp.entity_id.clone(),
            request_id: c.request_id.clone(),
            request_issue_instant: c.issue_instant.clone(),
            acs_url: c.acs_url.clone(),
            relay_state: c.relay_state.clone(),
            level: c.level,
            attributes: c.attributes.clone(),
            purpose: c.purpose,
            ..Transaction::arrived(incoming.binding, request_deflated, client_ip, browser, now)
        }
    }

    /// The browser's live level-1 session, if the identity is still
    /// active (a lifecycle event may not have arrived yet).
    async fn sso_session(&self, id: Option<&str>) -> Result<Option<crate::sessions::SsoSession>, LoginError> {
        let Some(id) = id else { return Ok(None) };
        let Some(session) = self.sessions.get(id).await.map_err(internal)? else { return Ok(None) };
        if !self.directory.is_active(&session.spid_code).await? {
            self.sessions.end(id).await.map_err(internal)?;
            return Ok(None);
        }
        Ok(Some(session))
    }

    async fn store(&self, tx: &Transaction) -> Result<(), LoginError> {
        let bytes = serde_json::to_vec(tx).map_err(internal)?;
        self.cache
            .set(&format!("{TX_PREFIX}{}", tx.id), &bytes, self.settings.login_timeout + Duration::from_secs(60))
            .await
            .map_err(internal)
    }

    /// Takes the transaction for one step: unknown (or already used) → the
    /// page of a request that can no longer be answered; past the login
    /// timeout → nr21 to the SP.
    async fn take(&self, id: &str, browser: &str) -> Result<Result<Transaction, View>, LoginError> {
        if !is_token(id) {
            return Ok(Err(View::Error(ErrorCode::Nr04)));
        }
        let Some(raw) = self.cache.take(&format!("{TX_PREFIX}{id}")).await.map_err(internal)? else {
            return Ok(Err(View::Error(ErrorCode::Nr21)));
        };
        let tx: Transaction = serde_json::from_slice(&raw).map_err(internal)?;
        if !same_browser(&tx.browser, browser) {
            // Not this browser's login: refused, left for its owner.
            self.store(&tx).await?;
            return Ok(Err(View::Error(ErrorCode::Nr04)));
        }
        if self.now() - tx.received_at > chrono_duration(self.settings.login_timeout) {
            return Ok(Err(self.fail(&tx, ErrorCode::Nr21, None).await?));
        }
        Ok(Ok(tx))
    }

    fn password_view(&self, tx: &Transaction, notice: Option<Notice>) -> View {
        View::Password {
            tx: tx.id.clone(),
            sp: tx.sp_entity_id.clone(),
            level: tx.level,
            notice,
            attempts_left: self.settings.password_attempts.saturating_sub(tx.password_failures),
        }
    }

    /// The user gives up (nr25), from any page.
    pub async fn cancel(&self, tx_id: &str, browser: &str) -> Result<View, LoginError> {
        match self.take(tx_id, browser).await? {
            Ok(tx) => self.fail(&tx, ErrorCode::Nr25, None).await,
            Err(view) => Ok(view),
        }
    }

    pub async fn password(
        &self,
        tx_id: &str,
        browser: &str,
        username: &str,
        password: &str,
    ) -> Result<View, LoginError> {
        let mut tx = match self.take(tx_id, browser).await? {
            Ok(tx) => tx,
            Err(view) => return Ok(view),
        };
        if tx.stage != Stage::Password {
            self.store(&tx).await?;
            return Ok(View::Error(ErrorCode::Nr04));
        }
        if username.is_empty() || password.is_empty() || username.len() > 256 || password.len() > 256 {
            self.store(&tx).await?;
            return Ok(self.password_view(&tx, Some(Notice::WrongCredentials)));
        }
        match self.directory.check_password(username, password, &tx.client_ip, &tx.id).await? {
            PasswordCheck::Wrong => {
                tx.password_failures += 1;
                if tx.password_failures >= self.settings.password_attempts {
                    return self.fail(&tx, ErrorCode::Nr19, None).await;
                }
                self.store(&tx).await?;
                Ok(self.password_view(&tx, Some(Notice::WrongCredentials)))
            }
            PasswordCheck::Expired => {
                self.store(&tx).await?;
                Ok(self.password_view(&tx, Some(Notice::PasswordExpired)))
            }
            PasswordCheck::NotActive => self.fail(&tx, ErrorCode::Nr23, None).await,
            PasswordCheck::Ok { spid_code, max_level, kind } => {
                if !Purpose::accepts(tx.purpose, kind) {
                    return self.fail(&tx, ErrorCode::Nr30, Some(&spid_code)).await;
                }
                if max_level < tx.level {
                    return self.fail(&tx, ErrorCode::Nr20, Some(&spid_code)).await;
                }
                let now = self.now();
                if tx.level == Level::L1 {
                    tx.stage = Stage::Consent {
                        spid_code,
                        level: Level::L1,
                        authn_instant: now,
                        session_index: Some(crate::response::new_id()),
                        reused_session: None,
                        kind,
                    };
                    return self.consent_view(tx).await;
                }
                let methods = self.second_factor.methods(&spid_code).await?;
                let Some(first) = METHODS.iter().find(|m| methods.iter().any(|x| x == *m)) else {
                    return self.fail(&tx, ErrorCode::Nr20, Some(&spid_code)).await;
                };
                self.start_challenge(tx, spid_code, kind, methods.clone(), first).await
            }
        }
    }

    /// Starts a challenge of `method` and shows its page.
    async fn start_challenge(
        &self,
        mut tx: Transaction,
        spid_code: String,
        kind: IdentityKind,
        methods: Vec<String>,
        method: &str,
    ) -> Result<View, LoginError> {
        match self.second_factor.start(&spid_code, &tx.id, &tx.client_ip, &tx.sp_entity_id, method).await? {
            None => self.fail(&tx, ErrorCode::Nr20, Some(&spid_code)).await,
            Some(challenge) => {
                tx.stage = Stage::Code { spid_code, challenge: challenge.clone(), methods, kind };
                self.store(&tx).await?;
                Ok(self.code_view(&tx, None).unwrap_or(View::Error(ErrorCode::Nr04)))
            }
        }
    }

    fn code_view(&self, tx: &Transaction, notice: Option<Notice>) -> Option<View> {
        let Stage::Code { challenge, methods, .. } = &tx.stage else { return None };
        Some(View::Code {
            tx: tx.id.clone(),
            sp: tx.sp_entity_id.clone(),
            challenge: challenge.clone(),
            notice,
            others: methods.iter().filter(|m| **m != challenge.method).cloned().collect(),
        })
    }

    /// The holder picks another of the methods offered.
    pub async fn switch_method(&self, tx_id: &str, browser: &str, method: &str) -> Result<View, LoginError> {
        let tx = match self.take(tx_id, browser).await? {
            Ok(tx) => tx,
            Err(view) => return Ok(view),
        };
        let Stage::Code { spid_code, methods, kind, .. } = tx.stage.clone() else {
            self.store(&tx).await?;
            return Ok(View::Error(ErrorCode::Nr04));
        };
        if !methods.iter().any(|m| m == method) {
            self.store(&tx).await?;
            return Ok(View::Error(ErrorCode::Nr04));
        }
        self.start_challenge(tx, spid_code, kind, methods, method).await
    }

    /// The current page again (a language change).
    pub async fn show(&self, tx_id: &str, browser: &str) -> Result<View, LoginError> {
        let tx = match self.take(tx_id, browser).await? {
            Ok(tx) => tx,
            Err(view) => return Ok(view),
        };
        match &tx.stage {
            Stage::Password => {
                self.store(&tx).await?;
                Ok(self.password_view(&tx, None))
            }
            Stage::Code { .. } => {
                self.store(&tx).await?;
                Ok(self.code_view(&tx, None).unwrap_or(View::Error(ErrorCode::Nr04)))
            }
            Stage::Consent { .. } => self.consent_view(tx).await,
        }
    }

    pub async fn code(&self, tx_id: &str, browser: &str, code: &str) -> Result<View, LoginError> {
        let mut tx = match self.take(tx_id, browser).await? {
            Ok(tx) => tx,
            Err(view) => return Ok(view),
        };
        let Stage::Code { spid_code, challenge, kind, .. } = tx.stage.clone() else {
            self.store(&tx).await?;
            return Ok(View::Error(ErrorCode::Nr04));
        };
        let code: String = code.chars().filter(|c| !c.is_whitespace()).take(16).collect();
        match self.second_factor.verify(&challenge.id, &tx.id, &code, &tx.client_ip).await? {
            CodeCheck::Ok => {
                tx.stage = Stage::Consent {
                    spid_code,
                    level: Level::L2,
                    authn_instant: self.now(),
                    session_index: None,
                    reused_session: None,
                    kind,
                };
                self.consent_view(tx).await
            }
            CodeCheck::Wrong | CodeCheck::Pending => {
                let notice = if challenge.method == "push" || challenge.method == "qr" {
                    Notice::Pending
                } else {
                    Notice::WrongCode
                };
                self.store(&tx).await?;
                Ok(self.code_view(&tx, Some(notice)).unwrap_or(View::Error(ErrorCode::Nr04)))
            }
            CodeCheck::Expired => {
                // Back to the password: a new challenge starts after it.
                tx.stage = Stage::Password;
                self.store(&tx).await?;
                Ok(self.password_view(&tx, Some(Notice::CodeExpired)))
            }
            CodeCheck::Exhausted => self.fail(&tx, ErrorCode::Nr19, Some(&spid_code)).await,
            // The holder said no on the app: the login is cancelled.
            CodeCheck::Refused => self.fail(&tx, ErrorCode::Nr25, Some(&spid_code)).await,
        }
    }

    async fn consent_view(&self, tx: Transaction) -> Result<View, LoginError> {
        let Stage::Consent { spid_code, .. } = &tx.stage else { return Ok(View::Error(ErrorCode::Nr04)) };
        let values = if tx.attributes.is_empty() {
            HashMap::new()
        } else {
            self.directory.attributes(spid_code, &tx.attributes).await?
        };
        // Exactly what will be sent: attributes the holder lacks are left out.
        let attributes = tx
            .attributes
            .iter()
            .filter_map(|n| values.get(n).filter(|v| !v.trim().is_empty()).map(|v| (n.clone(), v.clone())))
            .collect();
        self.store(&tx).await?;
        Ok(View::Consent { tx: tx.id.clone(), sp: tx.sp_entity_id.clone(), attributes })
    }

    /// The user's answer on the consent page; `sso_out` receives the id of
    /// a new L1 session to set as a cookie.
    pub async fn consent(
        &self,
        tx_id: &str,
        browser: &str,
        accept: bool,
        sso_out: &mut Option<String>,
    ) -> Result<View, LoginError> {
        let tx = match self.take(tx_id, browser).await? {
            Ok(tx) => tx,
            Err(view) => return Ok(view),
        };
        let Stage::Consent { spid_code, level, authn_instant, session_index, reused_session, kind } = tx.stage.clone()
        else {
            self.store(&tx).await?;
            return Ok(View::Error(ErrorCode::Nr04));
        };
        if !accept {
            return self.fail(&tx, ErrorCode::Nr22, Some(&spid_code)).await;
        }
        // Suspended, revoked or locked since the password: nothing is sent.
        if !self.directory.is_active(&spid_code).await? {
            return self.fail(&tx, ErrorCode::Nr23, Some(&spid_code)).await;
        }
        // A reused session logged out meanwhile: authenticate again.
        if let Some(id) = &reused_session
            && self.sessions.get(id).await.map_err(internal)?.is_none()
        {
            let mut tx = tx;
            tx.stage = Stage::Password;
            self.store(&tx).await?;
            return Ok(self.password_view(&tx, None));
        }
        // The values are read again: what is sent is what the holder has now.
        let values = if tx.attributes.is_empty() {
            HashMap::new()
        } else {
            self.directory.attributes(&spid_code, &tx.attributes).await?
        };
        // An attribute the holder does not have is left out, not sent empty.
        let attributes: Vec<(String, String)> = tx
            .attributes
            .iter()
            .filter_map(|n| values.get(n).filter(|v| !v.trim().is_empty()).map(|v| (n.clone(), v.clone())))
            .collect();
        if let (Level::L1, Some(index), None) = (level, &session_index, &reused_session) {
            *sso_out = Some(self.sessions.create(&spid_code, kind, authn_instant, index).await.map_err(internal)?);
        }
        let to = Addressee {
            sp_entity_id: &tx.sp_entity_id,
            acs_url: &tx.acs_url,
            in_response_to: Some(tx.request_id.as_str()).filter(|r| !r.is_empty()),
        };
        let auth =
            Authenticated { level, authn_instant, attributes: &attributes, session_index: session_index.as_deref() };
        let built = self.builder().success(&to, &auth, self.now()).map_err(internal)?;
        self.record(&tx, &built, Some(&spid_code), "success", level).await?;
        Ok(self.post(&tx, &built))
    }

    fn post(&self, tx: &Transaction, built: &Built) -> View {
        use base64::Engine;
        View::Post {
            acs_url: tx.acs_url.clone(),
            saml_response: base64::engine::general_purpose::STANDARD.encode(built.xml.as_bytes()),
            relay_state: tx.relay_state.clone(),
        }
    }

    /// A failure Response to the SP, recorded in the transaction registry.
    async fn fail(&self, tx: &Transaction, code: ErrorCode, spid_code: Option<&str>) -> Result<View, LoginError> {
        let to = Addressee {
            sp_entity_id: &tx.sp_entity_id,
            acs_url: &tx.acs_url,
            in_response_to: Some(tx.request_id.as_str()).filter(|r| !r.is_empty()),
        };
        let built = self.builder().failure(&to, code, self.now()).map_err(internal)?;
        self.record(tx, &built, spid_code, &format!("nr{:02}", code.number()), tx.level).await?;
        Ok(self.post(tx, &built))
    }

    /// AUD-2 (and AUD-1's authentication record when the holder is known),
    /// through the outbox in one transaction.
    async fn record(
        &self,
        tx: &Transaction,
        built: &Built,
        spid_code: Option<&str>,
        outcome: &str,
        level: Level,
    ) -> Result<(), LoginError> {
        let to_wire = |t: DateTime<Utc>| Some(spid_proto::time::to_wire(t));
        let registry = SamlTransaction {
            received_at: to_wire(tx.received_at),
            client_ip: tx.client_ip.clone(),
            authn_request: tx.request_deflated.clone(),
            authn_request_id: tx.request_id.clone(),
            authn_request_issuer: tx.sp_entity_id.clone(),
            authn_request_issue_instant: parse_instant(&tx.request_issue_instant).and_then(to_wire),
            binding: tx.binding.name().to_owned(),
            response: spid_events::registry::deflate_base64(built.xml.as_bytes()),
            response_id: built.response_id.clone(),
            response_issue_instant: parse_instant(&built.issue_instant).and_then(to_wire),
            spid_code: spid_code.unwrap_or_default().to_owned(),
            assertion_id: built.assertion_id.clone().unwrap_or_default(),
            subject_name_id: built.name_id.clone().unwrap_or_default(),
            subject_name_qualifier: if built.name_id.is_some() {
                self.settings.entity_id.clone()
            } else {
                String::new()
            },
        };
        let source = crate::SERVICE.as_str();
        let clock = &*self.clock;
        let mut events =
            vec![EventBuilder::new(source, "saml.transaction", &tx.sp_entity_id, clock).payload(&registry).build()];
        if let Some(code) = spid_code {
            let authentication = Authentication {
                spid_code: code.to_owned(),
                service_provider: tx.sp_entity_id.clone(),
                level: level.uri().to_owned(),
                outcome: outcome.to_owned(),
                protocol: "saml".into(),
                client_ip: tx.client_ip.clone(),
            };
            events.push(EventBuilder::new(source, "authentication", code, clock).payload(&authentication).build());
        }
        let mut db_tx = self.db.pool().begin().await.map_err(internal)?;
        for event in &events {
            spid_events::outbox::enqueue(&mut db_tx, spid_types::topics::AUDIT, event).await.map_err(internal)?;
        }
        db_tx.commit().await.map_err(internal)?;
        (self.relay_wake)();
        Ok(())
    }
}
