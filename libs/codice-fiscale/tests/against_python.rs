//! Property test against an independent implementation: the
//! `python-codicefiscale` package from PyPI (installed by
//! `deploy/dev/ensure-test-env.sh`). Random persons — names with accents,
//! apostrophes, few or many consonants; both sexes; birth dates across a
//! century; birthplaces valid on those dates — are encoded by both; every
//! omocodia variant Python lists must parse here, undo to the same code and
//! match the person; and a changed check character is refused by both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::NaiveDate;
use spid_codice_fiscale::{CodiceFiscale, Person, Sex, all_places, encode, place_on};

const CASES: usize = 400;

const SURNAMES: &[&str] = &[
    "Rossi",
    "D'Annunzio",
    "Fo",
    "Lù",
    "De Santis",
    "Öztürk",
    "Bianchi",
    "Xu",
    "Aiello",
    "Scarpellini",
    "Dell'Orto",
    "Ng",
];
const NAMES: &[&str] = &[
    "Mario",
    "Gianfranco",
    "Niccolò",
    "Bo",
    "Anna Maria",
    "Eleonora",
    "Jürgen",
    "Ai",
    "Cristoforo",
    "Zoe",
    "Francesca",
];

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

fn python(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python-codicefiscale failed (install it: pip install python-codicefiscale==0.12.1):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const SCRIPT: &str = r#"
import json, sys
from codicefiscale import codicefiscale as cf
out = []
for p in json.load(sys.stdin):
    code = cf.encode(lastname=p["surname"], firstname=p["name"], gender=p["sex"], birthdate=p["date"], birthplace=p["place"])
    out.append({"code": code, "omocodes": cf.decode(code)["omocodes"], "valid": cf.is_valid(code)})
print(json.dumps(out))
"#;

#[test]
fn agrees_with_python_codicefiscale() {
    let mut rng = Rng(0x5eed_c0de_f15c_a1e5);
    // Italian municipalities in use, and foreign states.
    let mut places: Vec<&str> = all_places().filter(|p| p.valid_until.is_none()).map(|p| p.code.as_str()).collect();
    places.sort_unstable();
    places.dedup();
    let mut persons = Vec::new();
    while persons.len() < CASES {
        let date = NaiveDate::from_ymd_opt(
            1930 + (rng.next() % 90) as i32,
            1 + (rng.next() % 12) as u32,
            1 + (rng.next() % 28) as u32,
        )
        .unwrap();
        let place = rng.pick(&places);
        if place_on(place, date).is_none() {
            continue;
        }
        let sex = if rng.next().is_multiple_of(2) { Sex::Male } else { Sex::Female };
        persons.push((rng.pick(SURNAMES), rng.pick(NAMES), date, sex, place));
    }
    let input = serde_json::Value::Array(
        persons
            .iter()
            .map(|(s, n, d, x, p)| {
                serde_json::json!({"surname": s, "name": n, "date": d.format("%Y-%m-%d").to_string(),
                    "sex": if *x == Sex::Male { "M" } else { "F" }, "place": p})
            })
            .collect(),
    );
    let answers = python(SCRIPT, &input);
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), CASES);
    let mut omocodes_checked = 0;
    for ((surname, name, birth_date, sex, birthplace), answer) in persons.iter().zip(answers) {
        let person = Person { surname, name, birth_date: *birth_date, sex: *sex, birthplace };
        let theirs = answer["code"].as_str().unwrap();
        assert_eq!(encode(&person), theirs, "{person:?}");
        assert_eq!(answer["valid"], true);
        for variant in answer["omocodes"].as_array().unwrap().iter().step_by(13) {
            let variant = variant.as_str().unwrap();
            let cf = CodiceFiscale::parse(variant).unwrap_or_else(|e| panic!("{variant}: {e}"));
            assert_eq!(cf.without_omocodia(), theirs);
            cf.check(&person).unwrap_or_else(|e| panic!("{variant} vs {person:?}: {e}"));
            omocodes_checked += 1;
        }
        // Any other check character is refused.
        let last = theirs.as_bytes()[15];
        let wrong = format!("{}{}", &theirs[..15], char::from(if last == b'Z' { b'A' } else { last + 1 }));
        assert!(CodiceFiscale::parse(&wrong).is_err(), "{wrong}");
    }
    assert!(omocodes_checked > CASES * 5, "{omocodes_checked}");
}
