//! Which channels a message goes out on when the requester leaves the
//! choice to us and gives the holder's contacts (NOT-1, MIN-8):
//!
//! - every message goes by e-mail;
//! - the ones about the identity's state (suspension, revocation and its
//!   warnings, lock, expiry) also by SMS, so that a holder whose mailbox
//!   is taken over still hears of it;
//! - revocation and the provider's cessation also by PEC when the holder
//!   has one (they have legal weight);
//! - codes go by SMS;
//! - without a mobile (minors, MIN-8), what would go by SMS goes by e-mail.

use crate::domain::Channel;

/// The holder's verified contacts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contacts {
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub pec: Option<String>,
}

const ALSO_BY_SMS: &[&str] = &[
    "identity-suspended",
    "identity-restored",
    "revocation-warning",
    "identity-revoked",
    "document-expired",
    "credentials-locked",
    "minor-suspended",
    "attribute-changed",
];

const ALSO_BY_PEC: &[&str] = &["identity-revoked", "idp-cessation"];

const ONLY_BY_SMS: &[&str] = &["otp-code"];

/// The (channel, recipient) pairs for `template`; empty when the holder
/// has no contact the message can go to.
pub fn channels(template: &str, contacts: &Contacts) -> Vec<(Channel, String)> {
    let mut wanted = Vec::new();
    if !ONLY_BY_SMS.contains(&template) {
        wanted.push(Channel::Email);
    }
    if ONLY_BY_SMS.contains(&template) || ALSO_BY_SMS.contains(&template) {
        wanted.push(Channel::Sms);
    }
    if ALSO_BY_PEC.contains(&template) {
        wanted.push(Channel::Pec);
    }
    let mut out: Vec<(Channel, String)> = Vec::new();
    for channel in wanted {
        let (channel, recipient) = match channel {
            Channel::Email => (Channel::Email, contacts.email.clone()),
            Channel::Sms => match &contacts.mobile {
                Some(m) => (Channel::Sms, Some(m.clone())),
                None => (Channel::Email, contacts.email.clone()),
            },
            Channel::Pec => (Channel::Pec, contacts.pec.clone()),
        };
        if let Some(r) = recipient.filter(|r| !r.is_empty())
            && !out.iter().any(|(c, _)| *c == channel)
        {
            out.push((channel, r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contacts(mobile: bool, pec: bool) -> Contacts {
        Contacts {
            email: Some("mario.rossi@example.it".into()),
            mobile: mobile.then(|| "+393331234567".into()),
            pec: pec.then(|| "mario.rossi@pec.example.it".into()),
        }
    }

    fn kinds(v: &[(Channel, String)]) -> Vec<Channel> {
        v.iter().map(|(c, _)| *c).collect()
    }

    #[test]
    fn channels_follow_the_message_and_the_contacts() {
        assert_eq!(kinds(&channels("identity-activated", &contacts(true, true))), [Channel::Email]);
        assert_eq!(kinds(&channels("identity-suspended", &contacts(true, true))), [Channel::Email, Channel::Sms]);
        assert_eq!(
            kinds(&channels("identity-revoked", &contacts(true, true))),
            [Channel::Email, Channel::Sms, Channel::Pec]
        );
        assert_eq!(kinds(&channels("identity-revoked", &contacts(true, false))), [Channel::Email, Channel::Sms]);
        let sms = channels("otp-code", &contacts(true, false));
        assert_eq!(sms, [(Channel::Sms, "+393331234567".to_owned())]);
    }

    #[test]
    fn without_a_mobile_sms_messages_go_by_email_once() {
        let minor = contacts(false, false);
        assert_eq!(channels("otp-code", &minor), [(Channel::Email, "mario.rossi@example.it".to_owned())]);
        assert_eq!(kinds(&channels("identity-suspended", &minor)), [Channel::Email], "not twice");
        assert!(channels("identity-activated", &Contacts::default()).is_empty());
    }
}
