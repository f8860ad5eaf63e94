//! The Italian codice fiscale of natural persons (REG-3): format, check
//! character, omocodia substitutions, and consistency with surname, name,
//! birth date, sex and birthplace against the Belfiore code table
//! (`data/belfiore.tsv`, with its source and date in its header).
//!
//! ```
//! use spid_codice_fiscale::{CodiceFiscale, Person, Sex};
//! let cf = CodiceFiscale::parse("RSSMRA80B01H501T").unwrap();
//! let person = Person {
//!     surname: "Rossi",
//!     name: "Mario",
//!     birth_date: chrono::NaiveDate::from_ymd_opt(1980, 2, 1).unwrap(),
//!     sex: Sex::Male,
//!     birthplace: "H501",
//! };
//! cf.check(&person).unwrap();
//! ```

mod places;

use chrono::{Datelike, NaiveDate};

pub use places::{Place, all_places, place, place_on};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

/// What a holder declares, to be checked against their codice fiscale.
#[derive(Debug, Clone)]
pub struct Person<'a> {
    pub surname: &'a str,
    pub name: &'a str,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    /// Belfiore code of the municipality or foreign state of birth.
    pub birthplace: &'a str,
}

/// Why a codice fiscale is refused. Each has its own message, in Italian
/// and English ([`CfError::message_it`], `Display`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CfError {
    #[error("a codice fiscale has 16 characters")]
    Length,
    #[error("character {position} is not allowed there")]
    Format { position: usize },
    #[error("the check character is wrong (expected {expected})")]
    CheckCharacter { expected: char },
    #[error("the birth date in the code does not exist")]
    Date,
    #[error("the birthplace code {0} is not a known municipality or state")]
    UnknownPlace(String),
    #[error("the surname does not match the code")]
    Surname,
    #[error("the name does not match the code")]
    Name,
    #[error("the birth date does not match the code")]
    BirthDate,
    #[error("the sex does not match the code")]
    Sex,
    #[error("the birthplace does not match the code")]
    Birthplace,
    #[error("the birthplace code {0} did not exist on the birth date")]
    PlaceNotValidThen(String),
}

impl CfError {
    /// The same message in Italian.
    pub fn message_it(&self) -> String {
        match self {
            Self::Length => "il codice fiscale ha 16 caratteri".into(),
            Self::Format { position } => format!("il carattere {position} non è ammesso in quella posizione"),
            Self::CheckCharacter { expected } => format!("il carattere di controllo è errato (atteso {expected})"),
            Self::Date => "la data di nascita nel codice non esiste".into(),
            Self::UnknownPlace(c) => format!("il codice catastale {c} non è un comune o uno stato noto"),
            Self::Surname => "il cognome non corrisponde al codice".into(),
            Self::Name => "il nome non corrisponde al codice".into(),
            Self::BirthDate => "la data di nascita non corrisponde al codice".into(),
            Self::Sex => "il sesso non corrisponde al codice".into(),
            Self::Birthplace => "il luogo di nascita non corrisponde al codice".into(),
            Self::PlaceNotValidThen(c) => format!("il codice catastale {c} non esisteva alla data di nascita"),
        }
    }
}

/// Letters replacing digits under omocodia, for 0..=9.
const OMOCODIA: &[u8; 10] = b"LMNPQRSTUV";
/// Positions that hold digits, possibly replaced under omocodia.
const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
const MONTHS: &[u8; 12] = b"ABCDEHLMPRST";

/// A valid codice fiscale (format and check character), with the data it
/// carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodiceFiscale {
    /// As given, upper-cased.
    code: String,
    surname: String,
    name: String,
    /// Two-digit year, month, day (1..=31), sex.
    year: u32,
    month: u32,
    day: u32,
    sex: Sex,
    place: String,
}

fn check_character(first15: &[u8]) -> char {
    // Values of characters in odd (1st, 3rd, ...) positions, for 0-9 and A-Z.
    const ODD: [u32; 26] =
        [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];
    let value = |c: u8, odd: bool| -> u32 {
        let index = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') };
        if odd { ODD[index as usize] } else { index }
    };
    let sum: u32 = first15.iter().enumerate().map(|(i, c)| value(*c, i % 2 == 0)).sum();
    char::from(b'A' + (sum % 26) as u8)
}

impl CodiceFiscale {
    /// Checks format and check character and decodes the code. Spaces are
    /// not ignored; lower case is accepted.
    pub fn parse(input: &str) -> Result<Self, CfError> {
        let code = input.to_ascii_uppercase();
        let b = code.as_bytes();
        if b.len() != 16 || !code.is_ascii() {
            return Err(CfError::Length);
        }
        for (i, c) in b.iter().enumerate() {
            let ok = match i {
                0..=5 | 8 | 11 | 15 => c.is_ascii_uppercase(),
                _ => c.is_ascii_digit() || OMOCODIA.contains(c),
            };
            if !ok {
                return Err(CfError::Format { position: i + 1 });
            }
        }
        if !MONTHS.contains(&b[8]) {
            return Err(CfError::Format { position: 9 });
        }
        let expected = check_character(&b[..15]);
        if char::from(b[15]) != expected {
            return Err(CfError::CheckCharacter { expected });
        }
        // Undo omocodia: letters in digit positions back to digits.
        let mut plain = b.to_vec();
        for &i in &DIGIT_POSITIONS {
            if let Some(d) = OMOCODIA.iter().position(|l| *l == plain[i]) {
                plain[i] = b'0' + d as u8;
            }
        }
        let num = |from: usize| u32::from(plain[from] - b'0') * 10 + u32::from(plain[from + 1] - b'0');
        let month = MONTHS.iter().position(|m| *m == plain[8]).map_or(0, |m| m as u32 + 1);
        let day_field = num(9);
        let (day, sex) = if day_field > 40 { (day_field - 40, Sex::Female) } else { (day_field, Sex::Male) };
        if !(1..=31).contains(&day) {
            return Err(CfError::Date);
        }
        // Is there any century in which that date exists (29 February)?
        let year = num(6);
        let exists = (0..4).any(|c| NaiveDate::from_ymd_opt(1900 + (c * 100 + year) as i32, month, day).is_some());
        if !exists {
            return Err(CfError::Date);
        }
        let place = String::from_utf8_lossy(&plain[11..15]).into_owned();
        if places::place(&place).is_none() {
            return Err(CfError::UnknownPlace(place));
        }
        Ok(Self {
            code,
            surname: String::from_utf8_lossy(&plain[0..3]).into_owned(),
            name: String::from_utf8_lossy(&plain[3..6]).into_owned(),
            year,
            month,
            day,
            sex,
            place,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// The code with omocodia substitutions undone.
    pub fn without_omocodia(&self) -> String {
        let mut plain = self.code.as_bytes().to_vec();
        for &i in &DIGIT_POSITIONS {
            if let Some(d) = OMOCODIA.iter().position(|l| *l == plain[i]) {
                plain[i] = b'0' + d as u8;
            }
        }
        plain[15] = check_character(&plain[..15]) as u8;
        String::from_utf8_lossy(&plain).into_owned()
    }

    pub fn sex(&self) -> Sex {
        self.sex
    }

    /// Belfiore code of the birthplace.
    pub fn birthplace(&self) -> &str {
        &self.place
    }

    /// Checks the code against what the holder declares; the first
    /// mismatch is reported.
    pub fn check(&self, p: &Person<'_>) -> Result<(), CfError> {
        if surname_code(p.surname) != self.surname {
            return Err(CfError::Surname);
        }
        if name_code(p.name) != self.name {
            return Err(CfError::Name);
        }
        let d = p.birth_date;
        if d.year().rem_euclid(100) as u32 != self.year || d.month() != self.month || d.day() != self.day {
            return Err(CfError::BirthDate);
        }
        if p.sex != self.sex {
            return Err(CfError::Sex);
        }
        if !p.birthplace.eq_ignore_ascii_case(&self.place) {
            return Err(CfError::Birthplace);
        }
        if places::place_on(&self.place, d).is_none() {
            return Err(CfError::PlaceNotValidThen(self.place.clone()));
        }
        Ok(())
    }
}

/// Upper-case ASCII letters of `s`, accents folded (À → A), everything
/// else dropped.
fn letters(s: &str) -> Vec<u8> {
    s.chars()
        .filter_map(|c| {
            let base = match c.to_uppercase().next().unwrap_or(c) {
                'À' | 'Á' | 'Â' | 'Ä' | 'Ã' | 'Å' => 'A',
                'È' | 'É' | 'Ê' | 'Ë' => 'E',
                'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
                'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Õ' => 'O',
                'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
                'Ç' => 'C',
                'Ñ' => 'N',
                'Š' => 'S',
                'Ž' => 'Z',
                other => other,
            };
            base.is_ascii_uppercase().then_some(base as u8)
        })
        .collect()
}

fn split(s: &str) -> (Vec<u8>, Vec<u8>) {
    letters(s).into_iter().partition(|c| !b"AEIOU".contains(c))
}

fn pad(mut v: Vec<u8>) -> String {
    v.resize(3, b'X');
    String::from_utf8_lossy(&v[..3]).into_owned()
}

/// The three surname characters: consonants, then vowels, then X.
pub fn surname_code(surname: &str) -> String {
    let (consonants, vowels) = split(surname);
    pad(consonants.into_iter().chain(vowels).take(3).collect())
}

/// The three name characters: the 1st, 3rd and 4th consonant when there
/// are four or more; otherwise as for the surname.
pub fn name_code(name: &str) -> String {
    let (consonants, vowels) = split(name);
    if consonants.len() >= 4 {
        return pad(vec![consonants[0], consonants[2], consonants[3]]);
    }
    pad(consonants.into_iter().chain(vowels).take(3).collect())
}

/// The codice fiscale of a person (without omocodia).
pub fn encode(p: &Person<'_>) -> String {
    let d = p.birth_date;
    let day = d.day() + if p.sex == Sex::Female { 40 } else { 0 };
    let month = MONTHS[d.month0() as usize] as char;
    let first15 = format!(
        "{}{}{:02}{month}{day:02}{}",
        surname_code(p.surname),
        name_code(p.name),
        d.year().rem_euclid(100),
        p.birthplace.to_ascii_uppercase()
    );
    let check = check_character(first15.as_bytes());
    format!("{first15}{check}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn known_codes() {
        // Examples of the Agenzia delle Entrate rules, computed by hand.
        let mario = Person {
            surname: "Rossi",
            name: "Mario",
            birth_date: date(1980, 2, 1),
            sex: Sex::Male,
            birthplace: "H501",
        };
        assert_eq!(encode(&mario), "RSSMRA80B01H501T");
        CodiceFiscale::parse("RSSMRA80B01H501T").unwrap().check(&mario).unwrap();
        assert_eq!(surname_code("Fo"), "FOX");
        assert_eq!(surname_code("D'Annunzio"), "DNN");
        assert_eq!(name_code("Gianfranco"), "GFR");
        assert_eq!(name_code("Niccolò"), "NCL");
        assert_eq!(surname_code("Lù"), "LUX");
    }

    #[test]
    fn every_rule_has_its_error() {
        assert_eq!(CodiceFiscale::parse("RSSMRA80B01H501"), Err(CfError::Length));
        assert_eq!(CodiceFiscale::parse("RSSMRA8AB01H501T"), Err(CfError::Format { position: 8 }));
        assert_eq!(CodiceFiscale::parse("RSSMRA80Z01H501T"), Err(CfError::Format { position: 9 }));
        assert_eq!(CodiceFiscale::parse("RSSMRA80B01H501A"), Err(CfError::CheckCharacter { expected: 'T' }));
        let bad_day = format!("RSSMRA80B32H501{}", check_character(b"RSSMRA80B32H501"));
        assert_eq!(CodiceFiscale::parse(&bad_day), Err(CfError::Date));
        let feb30 = format!("RSSMRA80B30H501{}", check_character(b"RSSMRA80B30H501"));
        assert_eq!(CodiceFiscale::parse(&feb30), Err(CfError::Date));
        let nowhere = format!("RSSMRA80B01Z999{}", check_character(b"RSSMRA80B01Z999"));
        assert_eq!(CodiceFiscale::parse(&nowhere), Err(CfError::UnknownPlace("Z999".into())));

        let cf = CodiceFiscale::parse("RSSMRA80B01H501T").unwrap();
        let ok = Person {
            surname: "Rossi",
            name: "Mario",
            birth_date: date(1980, 2, 1),
            sex: Sex::Male,
            birthplace: "H501",
        };
        assert_eq!(cf.check(&Person { surname: "Bianchi", ..ok.clone() }), Err(CfError::Surname));
        assert_eq!(cf.check(&Person { name: "Maria", ..ok.clone() }), Ok(()), "same letters: MRA");
        assert_eq!(cf.check(&Person { name: "Marco", ..ok.clone() }), Err(CfError::Name));
        assert_eq!(cf.check(&Person { birth_date: date(1980, 2, 2), ..ok.clone() }), Err(CfError::BirthDate));
        assert_eq!(cf.check(&Person { sex: Sex::Female, ..ok.clone() }), Err(CfError::Sex));
        assert_eq!(cf.check(&Person { birthplace: "F205", ..ok.clone() }), Err(CfError::Birthplace));
        assert!(CfError::Surname.message_it().contains("cognome"));
    }

    #[test]
    fn omocodia_is_accepted_and_undone() {
        // 0 -> L in the last digit position, check character recomputed.
        let first15 = b"RSSMRA80B01H50M";
        let omocode = format!("{}{}", String::from_utf8_lossy(first15), check_character(first15));
        let cf = CodiceFiscale::parse(&omocode).unwrap();
        assert_eq!(cf.without_omocodia(), "RSSMRA80B01H501T");
        let p = Person {
            surname: "Rossi",
            name: "Mario",
            birth_date: date(1980, 2, 1),
            sex: Sex::Male,
            birthplace: "H501",
        };
        cf.check(&p).unwrap();
    }

    #[test]
    fn birthplaces_are_checked_against_their_validity() {
        // A001 "Abano" existed until 1924-11-13, then "Abano Terme".
        assert!(place_on("A001", date(1900, 1, 1)).is_some());
        assert_eq!(place_on("A001", date(1990, 1, 1)).map(|p| p.name.as_str()), Some("Abano Terme"));
        assert_eq!(place("Z404").map(|p| p.province.as_str()), Some("EE"));
        assert!(place("Q000").is_none());
    }
}
