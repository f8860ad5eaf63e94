//! The data an applicant gives (REG-1, REG-2) and every check it must pass
//! before anything is stored: each broken rule is a [`Problem`] naming the
//! field, with a stable code and a message in Italian and English.
//!
//! Checks that need storage (the e-mail already taken, REG-4) are made by
//! [`crate::registration`]; the checks against authoritative sources
//! (VER-1) come later, at verification.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use spid_codice_fiscale::{CfError, CodiceFiscale, Person, Sex};

use crate::password::{self, PersonalData};

/// The three identity types (EMI-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityType {
    Private,
    ProfessionalNatural,
    ProfessionalLegal,
}

impl IdentityType {
    pub const ALL: [IdentityType; 3] = [Self::Private, Self::ProfessionalNatural, Self::ProfessionalLegal];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::ProfessionalNatural => "professional_natural",
            Self::ProfessionalLegal => "professional_legal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_professional(self) -> bool {
        self != Self::Private
    }
}

/// Identity documents accepted for registration (VER-2: issued by an
/// Italian authority, with photo and signature).
pub const DOCUMENT_KINDS: [&str; 5] =
    ["carta_identita", "carta_identita_elettronica", "passaporto", "patente", "tessera_riconoscimento"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityDocument {
    /// One of [`DOCUMENT_KINDS`].
    pub kind: String,
    pub number: String,
    /// The issuing authority (e.g. "Comune di Roma", "Questura di Milano").
    pub issuer: String,
    /// `YYYY-MM-DD`.
    pub issued_on: String,
    /// `YYYY-MM-DD`.
    pub expires_on: String,
}

/// Tessera sanitaria (REG-1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCard {
    /// The 20-digit card number (ISO/IEC 7812: `80380…`, Luhn check digit).
    pub number: String,
    pub expires_on: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub street: String,
    pub postal_code: String,
    pub municipality: String,
    /// Two-letter province; `EE` abroad.
    pub province: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// The organisation of a professional identity (REG-2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    pub company_name: String,
    pub legal_seat: Address,
    /// Partita IVA: 11 digits with its check digit.
    pub vat_number: String,
    /// The company's codice fiscale: 11 digits (usually the VAT number) or
    /// 16 characters for a sole trader.
    pub codice_fiscale: String,
    /// How the applicant's powers are proven: `chamber_of_commerce_extract`
    /// or `power_of_attorney` (the document itself is uploaded as evidence).
    pub representation_proof: String,
}

/// An identity request as the applicant fills it in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub identity_type: IdentityType,
    /// Also the username (REG-1).
    pub email: String,
    pub password: String,
    pub surname: String,
    pub given_name: String,
    /// `M` or `F`.
    pub sex: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// Belfiore code of the municipality or foreign state of birth
    /// (country and province follow from it).
    pub birthplace: String,
    pub codice_fiscale: String,
    pub document: IdentityDocument,
    pub health_card: HealthCard,
    pub domicile: Address,
    /// E.164, e.g. `+393471234567`.
    pub mobile: String,
    pub pec: Option<String>,
    /// Required for professional identities.
    pub organisation: Option<Organisation>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("identity_type", &self.identity_type)
            .field("codice_fiscale", &self.codice_fiscale)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field, as in the JSON of [`Application`] (`document.expires_on`).
    pub field: String,
    /// Stable code (`email.invalid`, `password.too_short`, …).
    pub code: String,
    pub message_it: String,
    pub message_en: String,
}

impl Problem {
    pub fn new(field: &str, code: &str, it: impl Into<String>, en: impl Into<String>) -> Self {
        Self { field: field.into(), code: code.into(), message_it: it.into(), message_en: en.into() }
    }
}

/// What the checks derive from a valid application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub codice_fiscale: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub birth_country: String,
    pub birth_province: String,
    pub birth_municipality: String,
    pub email: String,
}

/// Every rule of REG-1…6 the application breaks, or what it establishes.
/// `today` is the date the request is made.
pub fn check(a: &Application, today: NaiveDate) -> Result<Checked, Vec<Problem>> {
    let mut p = Vec::new();
    let email = normalise_email(&a.email);
    if !valid_email(&email) {
        p.push(Problem::new(
            "email",
            "email.invalid",
            "L'indirizzo e-mail non è valido.",
            "The e-mail address is not valid.",
        ));
    }
    check_name(&mut p, "surname", &a.surname, "il cognome", "the surname");
    check_name(&mut p, "given_name", &a.given_name, "il nome", "the given name");
    let sex = match a.sex.as_str() {
        "M" => Some(Sex::Male),
        "F" => Some(Sex::Female),
        _ => {
            p.push(Problem::new("sex", "sex.invalid", "Indica il sesso: M o F.", "Give the sex: M or F."));
            None
        }
    };
    let birth_date = date(&mut p, "birth_date", &a.birth_date);
    if let Some(d) = birth_date {
        if d > today || d.year() < 1900 {
            p.push(Problem::new(
                "birth_date",
                "birth_date.out_of_range",
                "La data di nascita non è plausibile.",
                "The birth date is not plausible.",
            ));
        } else if age(d, today) < 18 {
            p.push(Problem::new(
                "birth_date",
                "birth_date.minor",
                "Chi non ha 18 anni chiede l'identità con un genitore.",
                "Applicants under 18 apply together with a parent.",
            ));
        }
    }
    let place = birth_date.and_then(|d| spid_codice_fiscale::place_on(&a.birthplace, d));
    if place.is_none() {
        p.push(Problem::new(
            "birthplace",
            "birthplace.unknown",
            "Il luogo di nascita non è un comune o uno stato esistente alla data di nascita.",
            "The birthplace is not a municipality or state that existed on the birth date.",
        ));
    }
    let cf = match CodiceFiscale::parse(&a.codice_fiscale) {
        Ok(cf) => {
            if let (Some(birth_date), Some(sex), Some(place)) = (birth_date, sex, place) {
                let person =
                    Person { surname: &a.surname, name: &a.given_name, birth_date, sex, birthplace: &place.code };
                if let Err(e) = cf.check(&person) {
                    p.push(cf_problem(&e));
                }
            }
            Some(cf)
        }
        Err(e) => {
            p.push(cf_problem(&e));
            None
        }
    };
    check_document(&mut p, &a.document, today);
    check_health_card(&mut p, &a.health_card, today);
    check_address(&mut p, "domicile", &a.domicile);
    if !valid_mobile(&a.mobile) {
        p.push(Problem::new(
            "mobile",
            "mobile.invalid",
            "Il numero di cellulare va scritto con il prefisso internazionale, ad esempio +393471234567.",
            "Write the mobile number with its country code, e.g. +393471234567.",
        ));
    }
    if let Some(pec) = &a.pec
        && !valid_email(&normalise_email(pec))
    {
        p.push(Problem::new("pec", "pec.invalid", "L'indirizzo PEC non è valido.", "The PEC address is not valid."));
    }
    match (&a.organisation, a.identity_type.is_professional()) {
        (Some(o), true) => check_organisation(&mut p, o),
        (None, true) => p.push(Problem::new(
            "organisation",
            "organisation.missing",
            "Per un'identità per uso professionale servono i dati dell'organizzazione.",
            "A professional identity needs the organisation's data.",
        )),
        (Some(_), false) => p.push(Problem::new(
            "organisation",
            "organisation.unexpected",
            "Un'identità per uso personale non ha dati di un'organizzazione.",
            "A private identity has no organisation data.",
        )),
        (None, false) => {}
    }
    let personal = PersonalData {
        names: vec![a.surname.as_str(), a.given_name.as_str()],
        codice_fiscale: Some(&a.codice_fiscale),
        birth_date,
        document_numbers: vec![a.document.number.as_str(), a.health_card.number.as_str()],
        email: Some(&email),
        account_id: None,
    };
    for v in password::check(&a.password, &personal) {
        p.push(Problem::new("password", v.code(), v.message_it(), v.message_en()));
    }
    match (p.is_empty(), cf, birth_date, sex, place) {
        (true, Some(cf), Some(birth_date), Some(sex), Some(place)) => {
            let foreign = place.province == "EE";
            Ok(Checked {
                codice_fiscale: cf.as_str().to_owned(),
                birth_date,
                sex,
                birth_country: if foreign { place.name.clone() } else { "IT".into() },
                birth_province: place.province.clone(),
                birth_municipality: if foreign { String::new() } else { place.name.clone() },
                email,
            })
        }
        _ => Err(p),
    }
}

/// E-mail addresses compare lower-cased and trimmed.
pub fn normalise_email(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The shared address check ([`spid_types::contact::is_email`]).
pub fn valid_email(s: &str) -> bool {
    spid_types::contact::is_email(s)
}

/// E.164 ([`spid_types::contact::is_e164`]); Italian mobiles (`+39`)
/// start with 3 and have 9 or 10 digits.
pub fn valid_mobile(s: &str) -> bool {
    spid_types::contact::is_e164(s)
        && match s.strip_prefix("+39") {
            Some(national) => national.starts_with('3') && (9..=10).contains(&national.len()),
            None => true,
        }
}

/// The Luhn check (ISO/IEC 7812) over a string of digits.
fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// Partita IVA: 11 digits, the last a Luhn check digit, office code
/// (digits 8–10) 001–100, 120, 121 or 888/999.
pub fn valid_vat_number(s: &str) -> bool {
    if s.len() != 11 || !s.bytes().all(|b| b.is_ascii_digit()) || s == "00000000000" {
        return false;
    }
    let office: u32 = s[7..10].parse().unwrap_or(0);
    luhn(s) && ((1..=100).contains(&office) || matches!(office, 120 | 121 | 888 | 999))
}

fn age(birth: NaiveDate, today: NaiveDate) -> i32 {
    let mut years = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

/// A date as checked here (`2030-1-5` is read as `2030-01-05`) in its one
/// stored form, `YYYY-MM-DD`, so stored dates compare as strings.
pub(crate) fn iso_date(s: &str) -> String {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| s.to_owned())
}

fn date(p: &mut Vec<Problem>, field: &str, s: &str) -> Option<NaiveDate> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    if d.is_none() {
        p.push(Problem::new(
            field,
            &format!("{field}.invalid"),
            "Scrivi la data come AAAA-MM-GG.",
            "Write the date as YYYY-MM-DD.",
        ));
    }
    d
}

fn check_name(p: &mut Vec<Problem>, field: &str, s: &str, it: &str, en: &str) {
    let t = s.trim();
    if t.is_empty() {
        p.push(Problem::new(field, &format!("{field}.missing"), format!("Indica {it}."), format!("Give {en}.")));
    } else if t.chars().count() > 100
        || !t.chars().all(|c| c.is_alphabetic() || " '-.".contains(c))
        || !t.chars().any(char::is_alphabetic)
    {
        p.push(Problem::new(
            field,
            &format!("{field}.invalid"),
            format!("Per {it} usa solo lettere, spazi, apostrofi e trattini."),
            format!("Use only letters, spaces, apostrophes and hyphens in {en}."),
        ));
    }
}

fn required(p: &mut Vec<Problem>, field: &str, s: &str, max: usize) -> bool {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        p.push(Problem::new(
            field,
            &format!("{field}.invalid"),
            format!("Il campo è obbligatorio (al massimo {max} caratteri)."),
            format!("This field is required (at most {max} characters)."),
        ));
        return false;
    }
    true
}

fn cf_problem(e: &CfError) -> Problem {
    let code = match e {
        CfError::Length | CfError::Format { .. } => "codice_fiscale.format",
        CfError::CheckCharacter { .. } => "codice_fiscale.check_character",
        CfError::Date => "codice_fiscale.date",
        CfError::UnknownPlace(_) => "codice_fiscale.unknown_place",
        CfError::Surname => "codice_fiscale.surname_mismatch",
        CfError::Name => "codice_fiscale.name_mismatch",
        CfError::BirthDate => "codice_fiscale.birth_date_mismatch",
        CfError::Sex => "codice_fiscale.sex_mismatch",
        CfError::Birthplace => "codice_fiscale.birthplace_mismatch",
        CfError::PlaceNotValidThen(_) => "codice_fiscale.place_not_valid_then",
    };
    Problem::new("codice_fiscale", code, e.message_it(), e.to_string())
}

/// The rules of REG-1 for an identity document alone (a new document
/// recorded after emission, LC-4).
pub fn check_identity_document(d: &IdentityDocument, today: NaiveDate) -> Vec<Problem> {
    let mut p = Vec::new();
    check_document(&mut p, d, today);
    p
}

fn check_document(p: &mut Vec<Problem>, d: &IdentityDocument, today: NaiveDate) {
    if !DOCUMENT_KINDS.contains(&d.kind.as_str()) {
        p.push(Problem::new(
            "document.kind",
            "document.kind_not_accepted",
            "Sono accettati carta d'identità, passaporto, patente e tessera di riconoscimento italiani.",
            "Accepted: Italian identity card, passport, driving licence or recognition card.",
        ));
    }
    let number_ok = (5..=20).contains(&d.number.len()) && d.number.bytes().all(|b| b.is_ascii_alphanumeric());
    if !number_ok {
        p.push(Problem::new(
            "document.number",
            "document.number_invalid",
            "Il numero del documento ha da 5 a 20 lettere e cifre.",
            "The document number has 5 to 20 letters and digits.",
        ));
    }
    required(p, "document.issuer", &d.issuer, 100);
    let issued = date(p, "document.issued_on", &d.issued_on);
    let expires = date(p, "document.expires_on", &d.expires_on);
    if let Some(i) = issued
        && i > today
    {
        p.push(Problem::new(
            "document.issued_on",
            "document.issued_in_future",
            "La data di rilascio è futura.",
            "The issue date is in the future.",
        ));
    }
    if let Some(e) = expires
        && e <= today
    {
        p.push(Problem::new(
            "document.expires_on",
            "document.expired",
            "Il documento è scaduto.",
            "The document has expired.",
        ));
    }
    if let (Some(i), Some(e)) = (issued, expires)
        && e <= i
    {
        p.push(Problem::new(
            "document.expires_on",
            "document.dates_inconsistent",
            "La scadenza precede il rilascio.",
            "The expiry date is before the issue date.",
        ));
    }
}

fn check_health_card(p: &mut Vec<Problem>, h: &HealthCard, today: NaiveDate) {
    let n = &h.number;
    if n.len() != 20 || !n.bytes().all(|b| b.is_ascii_digit()) || !n.starts_with("80380") || !luhn(n) {
        p.push(Problem::new(
            "health_card.number",
            "health_card.number_invalid",
            "Il numero della tessera sanitaria ha 20 cifre e inizia con 80380.",
            "The health card number has 20 digits and starts with 80380.",
        ));
    }
    if let Some(e) = date(p, "health_card.expires_on", &h.expires_on)
        && e <= today
    {
        p.push(Problem::new(
            "health_card.expires_on",
            "health_card.expired",
            "La tessera sanitaria è scaduta.",
            "The health card has expired.",
        ));
    }
}

fn check_address(p: &mut Vec<Problem>, field: &str, a: &Address) {
    required(p, &format!("{field}.street"), &a.street, 200);
    required(p, &format!("{field}.municipality"), &a.municipality, 100);
    let country_ok = a.country.len() == 2 && a.country.bytes().all(|b| b.is_ascii_uppercase());
    if !country_ok {
        p.push(Problem::new(
            &format!("{field}.country"),
            &format!("{field}.country_invalid"),
            "Indica lo stato con il codice ISO di due lettere (IT).",
            "Give the country as its two-letter ISO code (IT).",
        ));
    }
    if a.country == "IT" {
        if a.postal_code.len() != 5 || !a.postal_code.bytes().all(|b| b.is_ascii_digit()) {
            p.push(Problem::new(
                &format!("{field}.postal_code"),
                &format!("{field}.postal_code_invalid"),
                "Il CAP ha 5 cifre.",
                "An Italian postal code has 5 digits.",
            ));
        }
        if a.province.len() != 2 || !a.province.bytes().all(|b| b.is_ascii_uppercase()) || a.province == "EE" {
            p.push(Problem::new(
                &format!("{field}.province"),
                &format!("{field}.province_invalid"),
                "Indica la sigla della provincia (RM, MI, …).",
                "Give the province abbreviation (RM, MI, …).",
            ));
        }
    } else {
        required(p, &format!("{field}.postal_code"), &a.postal_code, 12);
    }
}

fn check_organisation(p: &mut Vec<Problem>, o: &Organisation) {
    required(p, "organisation.company_name", &o.company_name, 200);
    check_address(p, "organisation.legal_seat", &o.legal_seat);
    if !valid_vat_number(&o.vat_number) {
        p.push(Problem::new(
            "organisation.vat_number",
            "organisation.vat_number_invalid",
            "La partita IVA non è valida (11 cifre con cifra di controllo).",
            "The VAT number is not valid (11 digits with a check digit).",
        ));
    }
    let cf_ok = valid_vat_number(&o.codice_fiscale) || CodiceFiscale::parse(&o.codice_fiscale).is_ok();
    if !cf_ok {
        p.push(Problem::new(
            "organisation.codice_fiscale",
            "organisation.codice_fiscale_invalid",
            "Il codice fiscale dell'organizzazione non è valido.",
            "The organisation's codice fiscale is not valid.",
        ));
    }
    if !matches!(o.representation_proof.as_str(), "chamber_of_commerce_extract" | "power_of_attorney") {
        p.push(Problem::new(
            "organisation.representation_proof",
            "organisation.representation_proof_invalid",
            "Indica la prova dei poteri: visura camerale o procura notarile.",
            "Give the proof of powers: chamber of commerce extract or power of attorney.",
        ));
    }
}

/// A valid application, for tests and demo data: Mario Rossi, born in Rome
/// on 1 February 1980.
pub fn sample(email: &str) -> Application {
    Application {
        identity_type: IdentityType::Private,
        email: email.into(),
        password: "Lampone#2026".into(),
        surname: "Rossi".into(),
        given_name: "Mario".into(),
        sex: "M".into(),
        birth_date: "1980-02-01".into(),
        birthplace: "H501".into(),
        codice_fiscale: "RSSMRA80B01H501T".into(),
        document: IdentityDocument {
            kind: "carta_identita_elettronica".into(),
            number: "CA12345AB".into(),
            issuer: "Comune di Roma".into(),
            issued_on: "2021-03-10".into(),
            expires_on: "2032-02-01".into(),
        },
        health_card: HealthCard { number: "80380000001234567896".into(), expires_on: "2030-12-31".into() },
        domicile: Address {
            street: "Via dei Fori Imperiali 1".into(),
            postal_code: "00186".into(),
            municipality: "Roma".into(),
            province: "RM".into(),
            country: "IT".into(),
        },
        mobile: "+393471234567".into(),
        pec: None,
        organisation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    }

    fn codes(a: &Application) -> Vec<String> {
        match check(a, today()) {
            Ok(_) => vec![],
            Err(p) => p.into_iter().map(|p| p.code).collect(),
        }
    }

    fn organisation() -> Organisation {
        Organisation {
            company_name: "Rossi Consulenze S.r.l.".into(),
            legal_seat: sample("x@example.it").domicile,
            vat_number: "12345670017".into(),
            codice_fiscale: "12345670017".into(),
            representation_proof: "chamber_of_commerce_extract".into(),
        }
    }

    #[test]
    fn the_sample_is_valid_and_derives_the_birthplace() {
        let c = check(&sample(" Mario.Rossi@Example.IT "), today()).unwrap();
        assert_eq!(c.email, "mario.rossi@example.it");
        assert_eq!((c.birth_country.as_str(), c.birth_province.as_str()), ("IT", "RM"));
        assert_eq!(c.birth_municipality, "Roma");
        assert_eq!(c.sex, Sex::Male);
    }

    #[test]
    fn each_rule_has_its_own_code() {
        type Change = Box<dyn Fn(&mut Application)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|a| a.email = "mario@".into()), "email.invalid"),
            (Box::new(|a| a.email = "ma rio@example.it".into()), "email.invalid"),
            (Box::new(|a| a.surname = " ".into()), "surname.missing"),
            (Box::new(|a| a.given_name = "M4rio".into()), "given_name.invalid"),
            (Box::new(|a| a.sex = "X".into()), "sex.invalid"),
            (Box::new(|a| a.birth_date = "01/02/1980".into()), "birth_date.invalid"),
            (Box::new(|a| a.birth_date = "2027-01-01".into()), "birth_date.out_of_range"),
            (Box::new(|a| a.birthplace = "Q999".into()), "birthplace.unknown"),
            (Box::new(|a| a.codice_fiscale = "RSSMRA80B01H501A".into()), "codice_fiscale.check_character"),
            (Box::new(|a| a.codice_fiscale = "RSSMRA80B01".into()), "codice_fiscale.format"),
            (Box::new(|a| a.surname = "Bianchi".into()), "codice_fiscale.surname_mismatch"),
            (Box::new(|a| a.given_name = "Luigi".into()), "codice_fiscale.name_mismatch"),
            (Box::new(|a| a.birth_date = "1980-02-02".into()), "codice_fiscale.birth_date_mismatch"),
            (Box::new(|a| a.sex = "F".into()), "codice_fiscale.sex_mismatch"),
            (Box::new(|a| a.birthplace = "F205".into()), "codice_fiscale.birthplace_mismatch"),
            (Box::new(|a| a.document.kind = "tessera_biblioteca".into()), "document.kind_not_accepted"),
            (Box::new(|a| a.document.number = "12".into()), "document.number_invalid"),
            (Box::new(|a| a.document.issuer = "".into()), "document.issuer.invalid"),
            (Box::new(|a| a.document.issued_on = "2027-01-01".into()), "document.issued_in_future"),
            (Box::new(|a| a.document.expires_on = "2026-12-01".into()), "document.expired"),
            (Box::new(|a| a.document.expires_on = "2032-13-01".into()), "document.expires_on.invalid"),
            (Box::new(|a| a.health_card.number = "80380000001234567890".into()), "health_card.number_invalid"),
            (Box::new(|a| a.health_card.expires_on = "2020-01-01".into()), "health_card.expired"),
            (Box::new(|a| a.domicile.postal_code = "0018".into()), "domicile.postal_code_invalid"),
            (Box::new(|a| a.domicile.province = "Roma".into()), "domicile.province_invalid"),
            (Box::new(|a| a.domicile.country = "Italia".into()), "domicile.country_invalid"),
            (Box::new(|a| a.mobile = "3471234567".into()), "mobile.invalid"),
            (Box::new(|a| a.mobile = "+390612345678".into()), "mobile.invalid"),
            (Box::new(|a| a.pec = Some("pec@".into())), "pec.invalid"),
            (Box::new(|a| a.identity_type = IdentityType::ProfessionalLegal), "organisation.missing"),
            (Box::new(|a| a.organisation = Some(organisation())), "organisation.unexpected"),
            (Box::new(|a| a.password = "Corta#1".into()), "password.too_short"),
            (Box::new(|a| a.password = "Rossi#2026abc".into()), "password.personal_data"),
            (Box::new(|a| a.password = "Laaampone#26".into()), "password.repeated_characters"),
        ];
        for (change, code) in cases {
            let mut a = sample("mario.rossi@example.it");
            change(&mut a);
            let got = codes(&a);
            assert!(got.contains(&code.to_owned()), "{code}: got {got:?}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_in_both_languages() {
        let mut a = sample("nope");
        a.mobile = "x".into();
        a.password = "abc".into();
        let problems = check(&a, today()).unwrap_err();
        assert!(problems.len() >= 5, "{problems:?}");
        for p in &problems {
            assert!(!p.message_it.is_empty() && !p.message_en.is_empty() && p.message_it != p.message_en, "{p:?}");
        }
    }

    #[test]
    fn dates_are_stored_in_one_form() {
        assert_eq!(iso_date("2030-1-5"), "2030-01-05");
        assert_eq!(iso_date("2030-01-05"), "2030-01-05");
    }

    #[test]
    fn minors_and_omocodia() {
        let mut a = sample("mario.rossi@example.it");
        // Born 1 February 2010: 16 years old on the test date.
        a.birth_date = "2010-02-01".into();
        a.codice_fiscale = spid_codice_fiscale::encode(&Person {
            surname: "Rossi",
            name: "Mario",
            birth_date: NaiveDate::from_ymd_opt(2010, 2, 1).unwrap(),
            sex: Sex::Male,
            birthplace: "H501",
        });
        assert_eq!(codes(&a), ["birth_date.minor"]);
        // An omocodia variant of the sample's code is accepted.
        let mut b = sample("mario.rossi@example.it");
        b.codice_fiscale = "RSSMRA80B01H50ML".into();
        assert_eq!(check(&b, today()).unwrap().codice_fiscale, "RSSMRA80B01H50ML");
    }

    #[test]
    fn professional_identities_need_a_valid_organisation() {
        let mut a = sample("mario.rossi@example.it");
        a.identity_type = IdentityType::ProfessionalNatural;
        a.organisation = Some(organisation());
        assert_eq!(codes(&a), Vec::<String>::new());
        let mut o = organisation();
        o.vat_number = "12345670010".into();
        o.codice_fiscale = "nope".into();
        o.representation_proof = "word of honour".into();
        a.organisation = Some(o);
        assert_eq!(
            codes(&a),
            [
                "organisation.vat_number_invalid",
                "organisation.codice_fiscale_invalid",
                "organisation.representation_proof_invalid"
            ]
        );
    }

    #[test]
    fn validators() {
        assert!(valid_vat_number("12345670017"));
        assert!(!valid_vat_number("12345670010"), "check digit");
        assert!(!valid_vat_number("01234567897"), "office code 789 does not exist");
        assert!(!valid_vat_number("0123456789"), "length");
        assert!(valid_mobile("+393471234567") && valid_mobile("+4915123456789"));
        assert!(!valid_mobile("+39347") && !valid_mobile("+39 347 1234567"));
        assert!(valid_email("a.b+c@sub.example.it"));
        for bad in ["a@b", "@example.it", "a..b@example.it", "a@-x.it", "a@x.i", "a@x.1t", "a@@x.it"] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(luhn("80380000001234567896") && !luhn("80380000001234567890"));
        let debug = format!("{:?}", sample("x@example.it"));
        assert!(!debug.contains("Lampone"), "{debug}");
    }
}
