//! Identification (IDN-1) and verification (VER-1) of a submitted request.
//!
//! The applicant chooses a method; each leaves its evidence:
//!
//! | method | who identifies | evidence |
//! |---|---|---|
//! | (a) counter | counter operator | confirmed appointment (online requests), operator's note |
//! | (b) video | video desk | SMS and e-mail codes read back on camera, the recording |
//! | (c) CNS / TS-CNS | the service | the client certificate, chain checked, codice fiscale matched |
//! | (d) signed form | the service | the `.p7m`, signature and chain checked, codice fiscale matched, no SPID-derived certificate |
//! | (e) existing L2 identity | the service | the attesting identity (professional natural persons only) |
//! | (f) self video + transfer | video desk | the applicant's video, the bank transfer within 10 days |
//!
//! Once identified, the request is checked against the authoritative
//! sources; every call and answer is kept as encrypted evidence. All
//! confirmed: the final documents are offered to the applicant. Anything
//! else: the request waits for a verifier's decision.

use std::sync::Arc;

use spid_codice_fiscale::CodiceFiscale;
use spid_proto::events::v1::actor;
use spid_types::{ErrorKind, ServiceError};
use sqlx::Row;

use crate::backoffice::notify_in;
use crate::notify::Channel;
use crate::registration::Registrar;
use crate::request::{Action, Actor, Method, RequestState};
use crate::signature::TrustList;
use crate::sources::{Sources, Subject, Verdict};
use crate::store::{self, db_err, note};

/// Days the bank transfer of method (f) may take (REG-9).
pub const TRANSFER_DAYS: i64 = 10;
/// Furthest an appointment may be booked.
pub const APPOINTMENT_DAYS: i64 = 30;

fn precondition(code: &str, message: &str) -> ServiceError {
    ServiceError::new(ErrorKind::FailedPrecondition, code, message)
}

/// Recordings are MP4 or WebM.
fn video_format(content: &[u8]) -> bool {
    content.get(4..8) == Some(b"ftyp") || content.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
}

/// Whether two codici fiscali are the same person's (omocodia variants
/// of one code are the same code).
fn same_code(a: &str, b: &str) -> bool {
    match (CodiceFiscale::parse(a), CodiceFiscale::parse(b)) {
        (Ok(a), Ok(b)) => a.without_omocodia() == b.without_omocodia(),
        _ => false,
    }
}

/// A refused signature or certificate is the applicant's to fix; a fault
/// of ours (the trust list, openssl) is not.
fn signature_error(e: crate::signature::SignatureError) -> ServiceError {
    use crate::signature::SignatureError as E;
    match e {
        E::Internal(_) | E::Trust(_) => ServiceError::internal(e),
        e => ServiceError::invalid(e.code(), e.to_string()),
    }
}

pub struct Identification {
    registrar: Arc<Registrar>,
    sources: Sources,
    /// Qualified-signature and CNS certification authorities; `None`:
    /// CNS cards and signed forms are not accepted.
    trust: Option<TrustList>,
    /// The CIE OpenID provider; `None`: CIE is not accepted.
    cie: Option<crate::cie::CieProvider>,
}

impl Identification {
    pub fn new(
        registrar: Arc<Registrar>,
        sources: Sources,
        trust: Option<TrustList>,
        cie: Option<crate::cie::CieProvider>,
    ) -> Self {
        Self { registrar, sources, trust, cie }
    }

    fn db(&self) -> &spid_db::Db {
        &self.registrar.db
    }

    async fn holder_code(&self, holder_id: &str) -> Result<String, ServiceError> {
        sqlx::query_scalar("SELECT codice_fiscale FROM holders WHERE id = $1")
            .bind(holder_id)
            .fetch_one(self.db().pool())
            .await
            .map_err(db_err)
    }

    async fn method(&self, request_id: &str) -> Result<Option<Method>, ServiceError> {
        let m: Option<String> = sqlx::query_scalar("SELECT method FROM identity_requests WHERE id = $1")
            .bind(request_id)
            .fetch_one(self.db().pool())
            .await
            .map_err(db_err)?;
        Ok(m.as_deref().and_then(Method::parse))
    }

    /// The applicant chooses how to be identified; counter and video need
    /// an appointment, which an operator confirms.
    pub async fn choose_method(
        &self,
        request_id: &str,
        token: &str,
        method: Method,
        appointment: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<RequestState, ServiceError> {
        let r = self.registrar.authorize(request_id, token).await?;
        let identity_type: String = sqlx::query_scalar("SELECT identity_type FROM identity_requests WHERE id = $1")
            .bind(request_id)
            .fetch_one(self.db().pool())
            .await
            .map_err(db_err)?;
        if method == Method::ExistingIdentity && identity_type != "professional_natural" {
            return Err(ServiceError::invalid(
                "identification.method_not_allowed",
                "an existing identity identifies only for a professional identity of a natural person",
            ));
        }
        let unavailable = match method {
            Method::ElectronicDocument => self.trust.is_none() && self.cie.is_none(),
            Method::SignedForm => self.trust.is_none(),
            _ => false,
        };
        if unavailable {
            return Err(ServiceError::unavailable(
                "identification.method_unavailable",
                "identification by electronic document or signed form is not available",
            ));
        }
        let now = self.registrar.clock.now();
        let needs_appointment = matches!(method, Method::Counter | Method::Video);
        match appointment {
            Some(at) if needs_appointment && (at <= now || at > now + chrono::Duration::days(APPOINTMENT_DAYS)) => {
                return Err(ServiceError::invalid(
                    "appointment.out_of_range",
                    "choose an appointment within the next 30 days",
                ));
            }
            Some(_) if needs_appointment => {}
            None if needs_appointment => {
                return Err(ServiceError::invalid("appointment.missing", "choose an appointment"));
            }
            Some(_) => {
                return Err(ServiceError::invalid("appointment.unexpected", "this method needs no appointment"));
            }
            None => {}
        }
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        let action = Action::StartIdentification { method };
        let to = store::apply_in(
            &mut tx,
            request_id,
            &action,
            Actor::Applicant,
            &r.holder_id,
            self.registrar.clock.as_ref(),
        )
        .await?;
        if let Some(at) = appointment {
            sqlx::query("INSERT INTO appointments (request_id, scheduled_at, created_at) VALUES ($1, $2, $3)")
                .bind(request_id)
                .bind(at.timestamp_micros())
                .bind(now.timestamp_micros())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(to)
    }

    /// What an operator-driven method must have on record before the
    /// operator may identify.
    pub(crate) async fn operator_requirements(&self, request_id: &str, method: Method) -> Result<(), ServiceError> {
        let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM evidence WHERE request_id = $1")
            .bind(request_id)
            .fetch_all(self.db().pool())
            .await
            .map_err(db_err)?;
        let has = |k: &str| kinds.iter().any(|x| x == k);
        match method {
            Method::Counter => {
                let row = sqlx::query(
                    "SELECT r.channel, a.confirmed_at FROM identity_requests r
                     LEFT JOIN appointments a ON a.request_id = r.id WHERE r.id = $1",
                )
                .bind(request_id)
                .fetch_one(self.db().pool())
                .await
                .map_err(db_err)?;
                let channel: String = row.try_get("channel").map_err(db_err)?;
                let confirmed: Option<i64> = row.try_get("confirmed_at").map_err(db_err)?;
                if channel == "online" && confirmed.is_none() {
                    return Err(precondition(
                        "identification.appointment_unconfirmed",
                        "confirm the appointment first",
                    ));
                }
            }
            Method::Video if !has("video_session") => {
                return Err(precondition(
                    "identification.video_missing",
                    "the video session (codes read back and recording) is not on record",
                ));
            }
            Method::VideoWithTransfer => {
                if !has("self_video") {
                    return Err(precondition("identification.video_missing", "the applicant's video is missing"));
                }
                let row = sqlx::query(
                    "SELECT t.received_at, r.state_since FROM identity_requests r
                     LEFT JOIN bank_transfers t ON t.request_id = r.id WHERE r.id = $1",
                )
                .bind(request_id)
                .fetch_one(self.db().pool())
                .await
                .map_err(db_err)?;
                let received: Option<i64> = row.try_get("received_at").map_err(db_err)?;
                let since: i64 = row.try_get("state_since").map_err(db_err)?;
                let limit = since + chrono::Duration::days(TRANSFER_DAYS).num_microseconds().unwrap_or(i64::MAX);
                match received {
                    None => return Err(precondition("identification.transfer_missing", "no bank transfer yet")),
                    Some(at) if at > limit => {
                        return Err(precondition(
                            "identification.transfer_late",
                            "the bank transfer came more than 10 days after the request",
                        ));
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Method (b): codes to the applicant's verified mobile and e-mail.
    pub(crate) async fn video_challenge(&self, request_id: &str) -> Result<(), ServiceError> {
        let r = self.registrar.request(request_id).await?;
        if r.state != RequestState::AwaitingIdentification {
            return Err(precondition("identification.not_awaiting", "the request is not awaiting identification"));
        }
        for (kind, label, channel) in [("mobile", "video_sms", Channel::Sms), ("email", "video_email", Channel::Email)]
        {
            let to: String = sqlx::query_scalar("SELECT value FROM contacts WHERE holder_id = $1 AND kind = $2")
                .bind(&r.holder_id)
                .bind(kind)
                .fetch_one(self.db().pool())
                .await
                .map_err(db_err)?;
            self.registrar.issue_code(&r.holder_id, label, channel, &to, request_id).await?;
        }
        Ok(())
    }

    /// Method (b): both codes right, the recording kept as evidence.
    pub(crate) async fn video_session(
        &self,
        request_id: &str,
        operator_id: &str,
        sms_code: &str,
        email_code: &str,
        recording: &[u8],
    ) -> Result<(), ServiceError> {
        if !video_format(recording) {
            return Err(ServiceError::invalid("evidence.format", "the recording must be MP4 or WebM"));
        }
        let r = self.registrar.request(request_id).await?;
        self.registrar.check_code(&r.holder_id, "video_sms", sms_code).await?;
        self.registrar.check_code(&r.holder_id, "video_email", email_code).await?;
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        crate::registration::consume_code(&mut tx, &r.holder_id, "video_sms").await?;
        crate::registration::consume_code(&mut tx, &r.holder_id, "video_email").await?;
        tx.commit().await.map_err(db_err)?;
        self.registrar
            .record_evidence(request_id, "video_session", recording, actor::Kind::Operator, operator_id)
            .await?;
        Ok(())
    }

    /// Method (f): the applicant's own recording.
    pub async fn upload_self_video(&self, request_id: &str, token: &str, video: &[u8]) -> Result<String, ServiceError> {
        let r = self.registrar.authorize(request_id, token).await?;
        if r.state != RequestState::AwaitingIdentification
            || self.method(request_id).await? != Some(Method::VideoWithTransfer)
        {
            return Err(precondition(
                "identification.wrong_method",
                "a self-recorded video belongs to the video and bank transfer method",
            ));
        }
        if video.len() > crate::registration::MAX_UPLOAD || !video_format(video) {
            return Err(ServiceError::invalid("evidence.format", "upload an MP4 or WebM video of at most 10 MiB"));
        }
        self.registrar.record_evidence(request_id, "self_video", video, actor::Kind::Holder, &r.holder_id).await
    }

    /// The text of the request form the applicant signs for method (d).
    pub async fn form(&self, request_id: &str, token: &str) -> Result<String, ServiceError> {
        let r = self.registrar.authorize(request_id, token).await?;
        let row = sqlx::query("SELECT codice_fiscale, surname, given_name, birth_date FROM holders WHERE id = $1")
            .bind(&r.holder_id)
            .fetch_one(self.db().pool())
            .await
            .map_err(db_err)?;
        let f = |c: &str| row.try_get::<Option<String>, _>(c).ok().flatten().unwrap_or_default();
        Ok(format!(
            "RICHIESTA DI ADESIONE AL SERVIZIO SPID\nrichiesta: {request_id}\ncognome: {}\nnome: {}\n\
             data di nascita: {}\ncodice fiscale: {}\n\
             Il richiedente chiede il rilascio dell'identità digitale e dichiara veritieri i dati forniti.\n",
            f("surname"),
            f("given_name"),
            f("birth_date"),
            f("codice_fiscale")
        ))
    }

    async fn identified_by_system(
        &self,
        request_id: &str,
        method: Method,
        evidence_kind: &str,
        evidence: &[u8],
        holder_id: &str,
    ) -> Result<RequestState, ServiceError> {
        self.registrar.record_evidence(request_id, evidence_kind, evidence, actor::Kind::Holder, holder_id).await?;
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        store::apply_in(
            &mut tx,
            request_id,
            &Action::Identify,
            Actor::System,
            method.as_str(),
            self.registrar.clock.as_ref(),
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.verify_sources(request_id).await
    }

    async fn awaiting(
        &self,
        request_id: &str,
        token: &str,
        method: Method,
    ) -> Result<store::RequestRecord, ServiceError> {
        let r = self.registrar.authorize(request_id, token).await?;
        if r.state != RequestState::AwaitingIdentification || self.method(request_id).await? != Some(method) {
            return Err(precondition(
                "identification.wrong_method",
                &format!("the request is not awaiting identification by {}", method.as_str()),
            ));
        }
        Ok(r)
    }

    fn trust(&self) -> Result<&TrustList, ServiceError> {
        self.trust.as_ref().ok_or_else(|| {
            ServiceError::unavailable("identification.method_unavailable", "no trust list is configured")
        })
    }

    /// Method (c): the CNS client certificate the ingress passed on.
    pub async fn identify_with_cns(
        &self,
        request_id: &str,
        token: &str,
        certificate: &[u8],
    ) -> Result<RequestState, ServiceError> {
        let r = self.awaiting(request_id, token, Method::ElectronicDocument).await?;
        let card = crate::signature::verify_client_certificate(certificate, self.trust()?, self.registrar.clock.now())
            .map_err(signature_error)?;
        if !same_code(&card.codice_fiscale, &self.holder_code(&r.holder_id).await?) {
            return Err(ServiceError::invalid(
                "identification.codice_fiscale_mismatch",
                "the card belongs to someone else",
            ));
        }
        self.identified_by_system(request_id, Method::ElectronicDocument, "cns_certificate", certificate, &r.holder_id)
            .await
    }

    /// The nonce the front end puts in the CIE authentication request, so
    /// that the ID token belongs to this request and no other.
    pub async fn cie_nonce(&self, request_id: &str, token: &str) -> Result<String, ServiceError> {
        self.registrar.authorize(request_id, token).await?;
        Ok(self.nonce_of(request_id))
    }

    fn nonce_of(&self, request_id: &str) -> String {
        use hmac::Mac;
        hex::encode(self.registrar.mac(&["cie-nonce", request_id]).finalize().into_bytes())
    }

    /// Method (c) by CIE: the ID token of the CIE OpenID provider.
    pub async fn identify_with_cie(
        &self,
        request_id: &str,
        token: &str,
        id_token: &str,
    ) -> Result<RequestState, ServiceError> {
        let r = self.awaiting(request_id, token, Method::ElectronicDocument).await?;
        let cie = self
            .cie
            .as_ref()
            .ok_or_else(|| ServiceError::unavailable("identification.method_unavailable", "CIE is not configured"))?;
        let code =
            cie.verify(id_token, &self.nonce_of(request_id), self.registrar.clock.now()).map_err(|e| match e {
                crate::cie::CieError::Keys(_) => ServiceError::internal(e),
                e => ServiceError::invalid(e.code(), e.to_string()),
            })?;
        if !same_code(&code, &self.holder_code(&r.holder_id).await?) {
            return Err(ServiceError::invalid(
                "identification.codice_fiscale_mismatch",
                "the card belongs to someone else",
            ));
        }
        self.identified_by_system(
            request_id,
            Method::ElectronicDocument,
            "cie_id_token",
            id_token.as_bytes(),
            &r.holder_id,
        )
        .await
    }

    /// Method (d): the request form signed with a qualified signature.
    pub async fn identify_with_signed_form(
        &self,
        request_id: &str,
        token: &str,
        p7m: &[u8],
    ) -> Result<RequestState, ServiceError> {
        let r = self.awaiting(request_id, token, Method::SignedForm).await?;
        let form = crate::signature::verify_signed_form(p7m, self.trust()?, self.registrar.clock.now())
            .map_err(signature_error)?;
        if !same_code(&form.signer_codice_fiscale, &self.holder_code(&r.holder_id).await?) {
            return Err(ServiceError::invalid(
                "identification.codice_fiscale_mismatch",
                "the form is signed by someone else",
            ));
        }
        if form.content != self.form(request_id, token).await?.as_bytes() {
            return Err(ServiceError::invalid(
                "identification.form_mismatch",
                "the signed document is not this request's form",
            ));
        }
        self.identified_by_system(request_id, Method::SignedForm, "signed_form", p7m, &r.holder_id).await
    }

    /// Method (e): an active level-2 identity of ours, of the same person,
    /// attested by the gateway after a level-2 authentication.
    pub async fn identify_with_existing_identity(
        &self,
        request_id: &str,
        token: &str,
        spid_code: &str,
    ) -> Result<RequestState, ServiceError> {
        let r = self.awaiting(request_id, token, Method::ExistingIdentity).await?;
        let row = sqlx::query(
            "SELECT i.status, i.max_level, h.codice_fiscale FROM identities i JOIN holders h ON h.id = i.holder_id
             WHERE i.spid_code = $1",
        )
        .bind(spid_code)
        .fetch_optional(self.db().pool())
        .await
        .map_err(db_err)?
        .ok_or_else(|| ServiceError::invalid("identification.identity_unknown", "no such identity"))?;
        let status: String = row.try_get("status").map_err(db_err)?;
        let level: i64 = row.try_get("max_level").map_err(db_err)?;
        let code: String = row.try_get("codice_fiscale").map_err(db_err)?;
        if status != "active" || level < 2 {
            return Err(ServiceError::invalid(
                "identification.identity_not_eligible",
                "the identity must be active with level-2 credentials",
            ));
        }
        if !same_code(&code, &self.holder_code(&r.holder_id).await?) {
            return Err(ServiceError::invalid(
                "identification.codice_fiscale_mismatch",
                "the identity belongs to someone else",
            ));
        }
        let evidence = serde_json::json!({ "attesting_spid_code": spid_code, "level": level }).to_string();
        self.identified_by_system(
            request_id,
            Method::ExistingIdentity,
            "attesting_identity",
            evidence.as_bytes(),
            &r.holder_id,
        )
        .await
    }

    /// The authoritative-source checks of an identified request (VER-1).
    pub async fn verify_sources(&self, request_id: &str) -> Result<RequestState, ServiceError> {
        let r = self.registrar.request(request_id).await?;
        if r.state != RequestState::Identified {
            return Err(precondition("verification.not_identified", "the request is not identified"));
        }
        let subject = self.subject(&r.holder_id).await?;
        let mut all_confirmed = true;
        let asked = self.sources.list();
        for (source, result) in asked.into_iter().zip(self.sources.check_all(&subject).await) {
            match result {
                Ok(check) => {
                    let evidence = serde_json::to_vec(&check).map_err(ServiceError::internal)?;
                    let kind = format!("source_check.{}", check.source.as_str());
                    let evidence_id = self
                        .registrar
                        .record_evidence(request_id, &kind, &evidence, actor::Kind::Service, crate::SERVICE.as_str())
                        .await?;
                    let (verdict, reasons) = match &check.verdict {
                        Verdict::Confirmed => ("confirmed", String::new()),
                        Verdict::Refused { reasons } => ("refused", reasons.join("; ")),
                    };
                    all_confirmed &= verdict == "confirmed";
                    self.record_check(
                        request_id,
                        check.source.as_str(),
                        verdict,
                        &reasons,
                        &check.reference,
                        Some(&evidence_id),
                    )
                    .await?;
                }
                Err(e) => {
                    all_confirmed = false;
                    self.record_check(request_id, source.as_str(), "unavailable", &e.to_string(), "", None).await?;
                }
            }
        }
        if !all_confirmed {
            // A verifier decides (Backoffice::approve or deny).
            return Ok(RequestState::Identified);
        }
        let clock = self.registrar.clock.as_ref();
        let who = crate::SERVICE.as_str();
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        store::apply_in(&mut tx, request_id, &Action::Verify, Actor::System, who, clock).await?;
        let to = store::apply_in(&mut tx, request_id, &Action::OfferDocuments, Actor::System, who, clock).await?;
        notify_in(&mut tx, &self.registrar, request_id, &r.holder_id, "email", Channel::Email, "final-documents", &[])
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(to)
    }

    async fn record_check(
        &self,
        request_id: &str,
        source: &str,
        verdict: &str,
        reasons: &str,
        reference: &str,
        evidence_id: Option<&str>,
    ) -> Result<(), ServiceError> {
        let mut tx = self.db().pool().begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO source_checks (request_id, source, verdict, reasons, reference, evidence_id, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(request_id)
        .bind(source)
        .bind(verdict)
        .bind(reasons)
        .bind(reference)
        .bind(evidence_id)
        .bind(self.registrar.clock.now().timestamp_micros())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let event = self
            .registrar
            .event("verification.source_checked", request_id, actor::Kind::Service, crate::SERVICE.as_str())
            .payload(&note("verification", &[("source", source), ("verdict", verdict), ("reference", reference)]))
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn subject(&self, holder_id: &str) -> Result<Subject, ServiceError> {
        let h = sqlx::query(
            "SELECT codice_fiscale, surname, given_name, birth_date, sex, birthplace, details FROM holders WHERE id = $1",
        )
        .bind(holder_id)
        .fetch_one(self.db().pool())
        .await
        .map_err(db_err)?;
        let d = sqlx::query(
            "SELECT kind, number, issued_on, expires_on FROM identity_documents WHERE holder_id = $1
             ORDER BY added_at DESC LIMIT 1",
        )
        .bind(holder_id)
        .fetch_one(self.db().pool())
        .await
        .map_err(db_err)?;
        let h_text = |c: &str| h.try_get::<Option<String>, _>(c).ok().flatten().unwrap_or_default();
        let d_text = |c: &str| d.try_get::<String, _>(c).unwrap_or_default();
        let details: serde_json::Value = serde_json::from_str(&h_text("details")).unwrap_or_default();
        let card = |k: &str| details["health_card"][k].as_str().unwrap_or_default().to_owned();
        Ok(Subject {
            codice_fiscale: h_text("codice_fiscale"),
            surname: h_text("surname"),
            given_name: h_text("given_name"),
            birth_date: h_text("birth_date"),
            sex: h_text("sex"),
            birthplace: h_text("birthplace"),
            document_kind: d_text("kind"),
            document_number: d_text("number"),
            document_issued_on: d_text("issued_on"),
            document_expires_on: d_text("expires_on"),
            health_card_number: card("number"),
            health_card_expires_on: card("expires_on"),
        })
    }
}
