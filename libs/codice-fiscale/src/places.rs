//! The Belfiore code table, embedded from `data/belfiore.tsv`.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::NaiveDate;

/// One period of a Belfiore code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub code: String,
    pub name: String,
    /// Province abbreviation; `EE` for foreign states.
    pub province: String,
    pub valid_from: Option<NaiveDate>,
    /// The last day, inclusive; `None` while the code is in use.
    pub valid_until: Option<NaiveDate>,
}

static TABLE: LazyLock<HashMap<String, Vec<Place>>> = LazyLock::new(|| {
    let mut table: HashMap<String, Vec<Place>> = HashMap::new();
    for line in include_str!("../data/belfiore.tsv").lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let [code, from, until, province, name] = f[..] else { continue };
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        table.entry(code.to_owned()).or_default().push(Place {
            code: code.to_owned(),
            name: name.to_owned(),
            province: province.to_owned(),
            valid_from: day(from),
            valid_until: day(until),
        });
    }
    table
});

/// The latest period of a code, if the code exists.
pub fn place(code: &str) -> Option<&'static Place> {
    TABLE.get(&code.to_ascii_uppercase())?.iter().max_by_key(|p| p.valid_from)
}

/// The period of a code that covers `date`.
pub fn place_on(code: &str, date: NaiveDate) -> Option<&'static Place> {
    TABLE
        .get(&code.to_ascii_uppercase())?
        .iter()
        .find(|p| p.valid_from.is_none_or(|f| f <= date) && p.valid_until.is_none_or(|u| date <= u))
}

/// Every period of every code (e.g. for choosing a birthplace).
pub fn all_places() -> impl Iterator<Item = &'static Place> {
    TABLE.values().flatten()
}
