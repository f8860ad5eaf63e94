//! Reading the lifecycle topic: which identities a delivery makes
//! unusable — suspended, revoked, expired or with locked credentials —
//! with the minors' identities the change cascades to. The consumers that
//! drop what those identities had (otp-service's challenges and tokens,
//! authn-gateway's sessions) share this one reading.

use prost::Message;
use spid_proto::events::v1::{Envelope, IdentityState, IdentityStateChanged};

use crate::{Delivery, HandlerError};

/// The spidCodes that stopped being usable with this delivery; empty for
/// any other lifecycle event. Bytes that are not an envelope are poison.
pub fn ended_identities(delivery: &Delivery) -> Result<Vec<String>, HandlerError> {
    let event = Envelope::decode(delivery.payload.as_slice())
        .map_err(|e| HandlerError::Poison(format!("not an event envelope: {e}")))?;
    Ok(crate::envelope::payload_of::<IdentityStateChanged>(&event).map(ended_identities_of).unwrap_or_default())
}

/// The spidCodes one state change makes unusable: the identity and its
/// cascade, unless the new state is active.
pub fn ended_identities_of(changed: IdentityStateChanged) -> Vec<String> {
    // Any state but active — unknown ones included — ends what the
    // identity had: the safe side.
    if changed.current == IdentityState::Active as i32 {
        return Vec::new();
    }
    std::iter::once(changed.spid_code).chain(changed.cascaded_spid_codes).filter(|c| !c.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(payload: Vec<u8>) -> Delivery {
        Delivery { topic: "t".into(), partition: 0, offset: 0, key: String::new(), payload, headers: Vec::new() }
    }

    #[test]
    fn suspensions_and_their_cascade_end_identities_restores_do_not() {
        let clock = spid_types::SystemClock;
        let event = |current: IdentityState| {
            let changed = IdentityStateChanged {
                spid_code: "XIDPPARENT0001".into(),
                current: current as i32,
                cascaded_spid_codes: vec!["XIDPMINOR00001".into()],
                ..Default::default()
            };
            delivery(
                crate::EventBuilder::new("t", "identity.changed", "XIDPPARENT0001", &clock)
                    .payload(&changed)
                    .build()
                    .encode_to_vec(),
            )
        };
        assert_eq!(ended_identities(&event(IdentityState::Suspended)).unwrap(), ["XIDPPARENT0001", "XIDPMINOR00001"]);
        assert!(ended_identities(&event(IdentityState::Active)).unwrap().is_empty());
        assert!(matches!(ended_identities(&delivery(vec![0xff, 1])), Err(HandlerError::Poison(_))));
    }
}
