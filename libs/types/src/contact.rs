//! The shape of the addresses messages go to: one check, used where an
//! address is taken (registration) and where a message is sent
//! (notification).

/// An e-mail (or PEC) address: one `@`; a local part of 1–64 characters
/// among letters, digits and ``!#$%&'*+-/=?^_`{|}~.``, not starting or
/// ending with a dot nor with two in a row; a domain of at least two
/// dot-separated labels of letters, digits and inner hyphens, the last
/// alphabetic; at most 254 characters. Spaces, commas and angle brackets
/// are refused, so one address can never smuggle in a second.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    let local_ok = (1..=64).contains(&local.len())
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    s.len() <= 254 && local_ok && domain_ok
}

/// A phone number in E.164 form: `+`, then 8–15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(is_email("a.b+c@sub.example.it") && is_email("mario.rossi@example.it"));
        for bad in [
            "a@b",
            "@example.it",
            "a..b@example.it",
            "a@-x.it",
            "a@x.i",
            "a@x.1t",
            "a@@x.it",
            "a@b@c.it",
            "x y@example.it",
            "victim@example.it,attacker@evil.example",
            "<a@example.it>",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert!(is_e164("+393331234567") && is_e164("+4915123456789"));
        for bad in ["3331234567", "+39 333 1234567", "+0391234567", "+1234567", "+1234567890123456"] {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
