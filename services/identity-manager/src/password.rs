//! The password rules of REG-6 and how passwords are kept.
//!
//! - [`check`]: 8–16 characters; a lower-case letter, an upper-case letter,
//!   a digit and a special character; never three identical characters in
//!   a row; none of the holder's own data (names, codice fiscale, birth date
//!   in the usual formats, document numbers, e-mail local part, account id).
//!   Every rule broken is reported, each with its own message (Italian and
//!   English).
//! - [`Hasher`]: Argon2id with a random salt per password and configurable
//!   cost (OWASP's recommendation by default), run on dedicated hashing threads (one per core),
//!   never on the async workers.
//! - [`Hasher::reused`]: the last 5 passwords and any set in the last 15
//!   months are refused, and so are their trivial variants (same letters,
//!   other digits, case or symbols): each password is kept with a second
//!   Argon2id hash of its letters only.
//! - [`expires_at`]: 180 days after it was set.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 16;
pub const VALIDITY_DAYS: i64 = 180;
pub const HISTORY_COUNT: usize = 5;
pub const HISTORY_MONTHS: u32 = 15;

/// The holder's own data a password must not contain.
#[derive(Debug, Clone, Default)]
pub struct PersonalData<'a> {
    /// Given names and surnames (each word is checked).
    pub names: Vec<&'a str>,
    pub codice_fiscale: Option<&'a str>,
    pub birth_date: Option<NaiveDate>,
    pub document_numbers: Vec<&'a str>,
    pub email: Option<&'a str>,
    pub account_id: Option<&'a str>,
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    TooShort,
    TooLong,
    NoLowercase,
    NoUppercase,
    NoDigit,
    NoSpecial,
    /// Three identical characters in a row.
    Repeated(char),
    /// Contains the holder's data; names which (`name`, `codice_fiscale`,
    /// `birth_date`, `document_number`, `email`, `account_id`).
    PersonalData(&'static str),
    /// One of the last 5, or set in the last 15 months.
    Reused,
    /// A trivial variant of one of those.
    ReusedVariant,
}

impl Violation {
    /// Stable code for clients (`password.too_short`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort => "password.too_short",
            Self::TooLong => "password.too_long",
            Self::NoLowercase => "password.no_lowercase",
            Self::NoUppercase => "password.no_uppercase",
            Self::NoDigit => "password.no_digit",
            Self::NoSpecial => "password.no_special",
            Self::Repeated(_) => "password.repeated_characters",
            Self::PersonalData(_) => "password.personal_data",
            Self::Reused => "password.reused",
            Self::ReusedVariant => "password.reused_variant",
        }
    }

    pub fn message_en(&self) -> String {
        match self {
            Self::TooShort => format!("Use at least {MIN_LEN} characters."),
            Self::TooLong => format!("Use at most {MAX_LEN} characters."),
            Self::NoLowercase => "Add a lower-case letter.".into(),
            Self::NoUppercase => "Add an upper-case letter.".into(),
            Self::NoDigit => "Add a digit.".into(),
            Self::NoSpecial => "Add a special character, such as ! ? # or %.".into(),
            Self::Repeated(c) => format!("Do not repeat \"{c}\" three times in a row."),
            Self::PersonalData(what) => format!("Do not use your own data ({}).", what_en(what)),
            Self::Reused => "You used this password recently: choose a new one.".into(),
            Self::ReusedVariant => "This is too close to a password you used recently.".into(),
        }
    }

    pub fn message_it(&self) -> String {
        match self {
            Self::TooShort => format!("Usa almeno {MIN_LEN} caratteri."),
            Self::TooLong => format!("Usa al massimo {MAX_LEN} caratteri."),
            Self::NoLowercase => "Aggiungi una lettera minuscola.".into(),
            Self::NoUppercase => "Aggiungi una lettera maiuscola.".into(),
            Self::NoDigit => "Aggiungi una cifra.".into(),
            Self::NoSpecial => "Aggiungi un carattere speciale, come ! ? # o %.".into(),
            Self::Repeated(c) => format!("Non ripetere \"{c}\" tre volte di seguito."),
            Self::PersonalData(what) => format!("Non usare i tuoi dati ({}).", what_it(what)),
            Self::Reused => "Hai usato questa password di recente: scegline una nuova.".into(),
            Self::ReusedVariant => "È troppo simile a una password usata di recente.".into(),
        }
    }
}

fn what_en(what: &str) -> &'static str {
    match what {
        "name" => "your name",
        "codice_fiscale" => "your codice fiscale",
        "birth_date" => "your birth date",
        "document_number" => "a document number",
        "email" => "your e-mail address",
        _ => "your account id",
    }
}

fn what_it(what: &str) -> &'static str {
    match what {
        "name" => "il tuo nome",
        "codice_fiscale" => "il tuo codice fiscale",
        "birth_date" => "la tua data di nascita",
        "document_number" => "il numero di un documento",
        "email" => "il tuo indirizzo e-mail",
        _ => "il tuo identificativo",
    }
}

/// Lower-case letters and digits only: what personal data is compared on.
fn fold(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// The birth date as people write it: 01021980, 19800201, 010280, 1980.
fn date_forms(d: NaiveDate) -> Vec<String> {
    let (y, m, day) = (d.year(), d.month(), d.day());
    vec![
        format!("{day:02}{m:02}{y}"),
        format!("{y}{m:02}{day:02}"),
        format!("{day:02}{m:02}{:02}", y.rem_euclid(100)),
        format!("{m:02}{day:02}{y}"),
        format!("{y}"),
    ]
}

/// Every rule of REG-6 that `password` breaks (empty: acceptable), reuse
/// aside (see [`Hasher::reused`]).
pub fn check(password: &str, personal: &PersonalData<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let len = password.chars().count();
    if len < MIN_LEN {
        out.push(Violation::TooShort);
    }
    if len > MAX_LEN {
        out.push(Violation::TooLong);
    }
    if !password.chars().any(char::is_lowercase) {
        out.push(Violation::NoLowercase);
    }
    if !password.chars().any(char::is_uppercase) {
        out.push(Violation::NoUppercase);
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        out.push(Violation::NoDigit);
    }
    if !password.chars().any(|c| !c.is_alphanumeric() && !c.is_whitespace()) {
        out.push(Violation::NoSpecial);
    }
    let chars: Vec<char> = password.chars().collect();
    if let Some(w) = chars.windows(3).find(|w| w[0] == w[1] && w[1] == w[2]) {
        out.push(Violation::Repeated(w[0]));
    }
    let folded = fold(password);
    let contains = |value: &str, min: usize| {
        let v = fold(value);
        v.chars().count() >= min && folded.contains(&v)
    };
    let words = personal.names.iter().flat_map(|n| n.split([' ', '\'', '-']));
    let mut personal_hit = None;
    if words.clone().any(|w| contains(w, 3)) {
        personal_hit = Some("name");
    } else if let Some(cf) = personal.codice_fiscale
        && (contains(cf, 3) || cf.get(..6).is_some_and(|part| contains(part, 6)))
    {
        personal_hit = Some("codice_fiscale");
    } else if personal.birth_date.is_some_and(|d| date_forms(d).iter().any(|f| folded.contains(f.as_str()))) {
        personal_hit = Some("birth_date");
    } else if personal.document_numbers.iter().any(|n| contains(n, 4)) {
        personal_hit = Some("document_number");
    } else if personal.email.and_then(|e| e.split('@').next()).is_some_and(|local| contains(local, 3)) {
        personal_hit = Some("email");
    } else if personal.account_id.is_some_and(|a| contains(a, 4)) {
        personal_hit = Some("account_id");
    }
    if let Some(what) = personal_hit {
        out.push(Violation::PersonalData(what));
    }
    out
}

/// The letters of a password, lower-cased: equal for trivial variants
/// (`Primavera1!`, `primavera2?`, `PRIMAVERA#3`).
fn skeleton(password: &str) -> String {
    password.chars().filter(|c| c.is_alphabetic()).flat_map(char::to_lowercase).collect()
}

fn hash_with(argon: &Argon2<'static>, secret: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon.hash_password(secret.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

/// Whether `secret` matches the PHC string `hash` (constant-time
/// comparison inside argon2).
fn verify_with(argon: &Argon2<'static>, secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| argon.verify_password(secret.as_bytes(), &h).is_ok())
}

/// When a password set at `set_at` expires.
pub fn expires_at(set_at: DateTime<Utc>) -> DateTime<Utc> {
    set_at + Duration::days(VALIDITY_DAYS)
}

/// A stored password: its hash, the hash of its skeleton, when it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPassword {
    pub hash: String,
    pub skeleton_hash: String,
    pub set_at: DateTime<Utc>,
}

/// Argon2id cost. Defaults: OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Cost {
    fn default() -> Self {
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

#[derive(Clone)]
pub struct Hasher {
    argon: Argon2<'static>,
    workers: std::sync::Arc<Workers>,
}

type Job = Box<dyn FnOnce() + Send>;

/// One hashing thread per core, off the async runtime. Long-lived threads
/// keep their `memory_kib` of working memory warm between hashes, and no
/// more hashes run at once than there are cores: more would only thrash
/// the caches and stretch every latency. The threads end with the last
/// clone of the hasher.
struct Workers {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

impl Workers {
    fn start() -> Result<Self, HashError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        let cores = std::thread::available_parallelism().map(std::num::NonZeroUsize::get).unwrap_or(1);
        for n in 0..cores {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| HashError(format!("cannot start the hashing threads: {e}")))?;
        }
        Ok(Self { jobs: std::sync::Mutex::new(jobs) })
    }
}

impl Hasher {
    pub fn new(cost: Cost) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| HashError(e.to_string()))?;
        Ok(Self {
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            workers: std::sync::Arc::new(Workers::start()?),
        })
    }

    /// Runs `f` with the Argon2id instance on a hashing thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let argon = self.argon.clone();
        let job: Job = Box::new(move || {
            let _ = done.send(f(&argon));
        });
        let sent = self.workers.jobs.lock().map_err(|e| HashError(e.to_string()))?.send(job);
        sent.map_err(|_| HashError("the hashing threads have stopped".into()))?;
        result.await.map_err(|_| HashError("a hashing thread failed".into()))
    }

    /// Hashes a new password (and its skeleton) off the async workers.
    pub async fn store(&self, password: &str, now: DateTime<Utc>) -> Result<StoredPassword, HashError> {
        let password = password.to_owned();
        self.blocking(move |h| {
            Ok(StoredPassword {
                hash: hash_with(h, &password)?,
                skeleton_hash: hash_with(h, &skeleton(&password))?,
                set_at: now,
            })
        })
        .await?
    }

    pub async fn verify(&self, password: &str, stored: &StoredPassword) -> Result<bool, HashError> {
        let (password, hash) = (password.to_owned(), stored.hash.clone());
        self.blocking(move |h| verify_with(h, &password, &hash)).await
    }

    /// Whether `password` repeats (or trivially varies) one of `history`
    /// (newest first) that still counts: the last 5, and any set within 15
    /// months of `now`.
    pub async fn reused(
        &self,
        password: &str,
        history: &[StoredPassword],
        now: DateTime<Utc>,
    ) -> Result<Option<Violation>, HashError> {
        let window = now.checked_sub_months(Months::new(HISTORY_MONTHS)).unwrap_or(now);
        let relevant: Vec<StoredPassword> = history
            .iter()
            .enumerate()
            .filter(|(i, p)| *i < HISTORY_COUNT || p.set_at >= window)
            .map(|(_, p)| p.clone())
            .collect();
        let password = password.to_owned();
        self.blocking(move |h| {
            let skeleton = skeleton(&password);
            for p in &relevant {
                if verify_with(h, &password, &p.hash) {
                    return Some(Violation::Reused);
                }
                if !skeleton.is_empty() && verify_with(h, &skeleton, &p.skeleton_hash) {
                    return Some(Violation::ReusedVariant);
                }
            }
            None
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mario() -> PersonalData<'static> {
        PersonalData {
            names: vec!["Mario", "De Rossi"],
            codice_fiscale: Some("DRSMRA80B01H501X"),
            birth_date: NaiveDate::from_ymd_opt(1980, 2, 1),
            document_numbers: vec!["CA12345AB"],
            email: Some("m.derossi@example.it"),
            account_id: Some("holder-7781"),
        }
    }

    #[test]
    fn each_rule_has_its_own_violation_and_messages() {
        let p = mario();
        assert!(check("Tramonto#42", &p).is_empty());
        let cases: [(&str, Violation); 11] = [
            ("Ab1!xyz", Violation::TooShort),
            ("Abcdefgh1!ijklmno", Violation::TooLong),
            ("TRAMONTO#42", Violation::NoLowercase),
            ("tramonto#42", Violation::NoUppercase),
            ("Tramonto#xy", Violation::NoDigit),
            ("Tramonto42x", Violation::NoSpecial),
            ("Tramooonto#42", Violation::Repeated('o')),
            ("Mario#Sole42", Violation::PersonalData("name")),
            ("Sole#01021980a", Violation::PersonalData("birth_date")),
            ("Ca12345ab#x", Violation::PersonalData("document_number")),
            ("Derossi#Sole1", Violation::PersonalData("name")),
        ];
        for (password, expected) in cases {
            let found = check(password, &p);
            assert!(found.contains(&expected), "{password}: {found:?}");
            assert!(!expected.message_it().is_empty() && !expected.message_en().is_empty());
        }
        assert!(check("Sole#drsmra80x", &p).contains(&Violation::PersonalData("codice_fiscale")));
        assert!(
            check("M.derossi#1x", &PersonalData { names: vec![], ..mario() })
                .contains(&Violation::PersonalData("email"))
        );
        assert!(check("Holder-7781#a", &p).contains(&Violation::PersonalData("account_id")));
        // Several rules at once are all reported.
        assert_eq!(check("aaa", &p).len(), 5, "{:?}", check("aaa", &p));
        let codes: std::collections::BTreeSet<_> = cases_codes();
        assert_eq!(codes.len(), 10, "each violation its own code");
    }

    fn cases_codes() -> std::collections::BTreeSet<&'static str> {
        [
            Violation::TooShort,
            Violation::TooLong,
            Violation::NoLowercase,
            Violation::NoUppercase,
            Violation::NoDigit,
            Violation::NoSpecial,
            Violation::Repeated('a'),
            Violation::PersonalData("name"),
            Violation::Reused,
            Violation::ReusedVariant,
        ]
        .iter()
        .map(Violation::code)
        .collect()
    }

    fn cheap() -> Hasher {
        // Tests use a low cost; production uses Cost::default().
        Hasher::new(Cost { memory_kib: 1024, iterations: 1, parallelism: 1 }).unwrap()
    }

    #[tokio::test]
    async fn argon2id_with_a_salt_per_password() {
        let h = cheap();
        let now = Utc::now();
        let a = h.store("Tramonto#42", now).await.unwrap();
        let b = h.store("Tramonto#42", now).await.unwrap();
        assert!(a.hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{}", a.hash);
        assert_ne!(a.hash, b.hash, "salted");
        assert!(!a.hash.contains("Tramonto"));
        assert!(h.verify("Tramonto#42", &a).await.unwrap());
        assert!(!h.verify("Tramonto#43", &a).await.unwrap());
        assert_eq!(Cost::default(), Cost { memory_kib: 19_456, iterations: 2, parallelism: 1 });
        assert_eq!(expires_at(now) - now, Duration::days(180));
    }

    #[tokio::test]
    async fn the_last_five_and_fifteen_months_cannot_be_reused_nor_varied() {
        let h = cheap();
        let now = Utc::now();
        let mut history = Vec::new();
        // Newest first: one per 4 months back, 7 in all (28 months).
        for (i, pw) in
            ["Primavera#1", "Estate#22", "Autunno#33", "Inverno#44", "Nebbia#55", "Pioggia#66", "Grandine#77"]
                .iter()
                .enumerate()
        {
            history.push(h.store(pw, now - Duration::days(120 * i as i64)).await.unwrap());
        }
        assert_eq!(h.reused("Primavera#1", &history, now).await.unwrap(), Some(Violation::Reused));
        assert_eq!(h.reused("PRIMAVERA?9x", &history, now).await.unwrap(), None, "an extra letter is not trivial");
        assert_eq!(h.reused("primaVERA-2", &history, now).await.unwrap(), Some(Violation::ReusedVariant));
        // The 5th is refused by count even though older than 15 months.
        assert_eq!(h.reused("Nebbia#55", &history, now).await.unwrap(), Some(Violation::Reused));
        // The 6th and 7th: neither among the last 5 nor within 15 months.
        assert_eq!(h.reused("Pioggia#66", &history, now).await.unwrap(), None);
        assert_eq!(h.reused("Grandine#77", &history, now).await.unwrap(), None);
        assert_eq!(h.reused("Tramonto#42", &history, now).await.unwrap(), None);
    }
}
