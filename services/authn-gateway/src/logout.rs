//! Single logout for level-1 sessions (SAML-8): a service provider's signed
//! LogoutRequest (either binding) ends the session its SessionIndex names,
//! and a signed LogoutResponse goes back by HTTP-POST to the SP's
//! SingleLogoutService. Logging out is idempotent: a session already gone
//! is a success. Other SPs of the same session are not called
//! (propagation is not implemented).

use sha2::Digest;
use spid_xml::ns::{SAML, SAMLP};

use crate::anomaly::ErrorCode;
use crate::login::{Login, LoginError, View};
use crate::registry::HTTP_POST;
use crate::request::{Context, Incoming, authenticate, fresh, is_ncname};

impl Login {
    /// The view to send, and whether the browser's session cookie goes.
    pub async fn logout(&self, incoming: Result<Incoming, ErrorCode>) -> Result<(View, bool), LoginError> {
        let incoming = match incoming {
            Ok(i) => i,
            Err(code) => return Ok((View::Error(code), false)),
        };
        let ctx = Context {
            registry: &self.registry,
            entity_id: &self.settings.entity_id,
            sso_locations: &self.settings.slo_locations,
            now: self.clock.now(),
            max_age: chrono::Duration::from_std(self.settings.request_max_age).unwrap_or(chrono::Duration::MAX),
            skew: chrono::Duration::from_std(self.settings.clock_skew).unwrap_or(chrono::Duration::MAX),
        };
        let (root, sp) = match authenticate(&incoming, &ctx) {
            Ok(found) => found,
            Err(code) => return Ok((View::Error(code), false)),
        };
        // Any other signed message of the SP (an AuthnRequest replayed
        // here, say) is not a logout.
        if !root.is(SAMLP, "LogoutRequest") {
            return Ok((View::Error(ErrorCode::Nr04), false));
        }
        let Some(endpoint) = sp.logout.iter().find(|e| e.binding == HTTP_POST) else {
            return Ok((View::Error(ErrorCode::Nr06), false));
        };
        let destination = endpoint.response_location.clone().unwrap_or_else(|| endpoint.location.clone());
        let id = root.attribute("ID").filter(|i| is_ncname(i));
        let dest = root.attribute("Destination").unwrap_or_default();
        let indexes: Vec<String> = root
            .children_named(SAMLP, "SessionIndex")
            .filter_map(|i| i.text_content())
            .map(|t| t.trim().to_owned())
            .collect();
        let mut acceptable = root.attribute("Version") == Some("2.0")
            && id.is_some()
            && fresh(root.attribute("IssueInstant").unwrap_or_default(), &ctx)
            && (dest == self.settings.entity_id || self.settings.slo_locations.iter().any(|l| l == dest))
            && root.first(SAML, "NameID").and_then(|n| n.text_content()).is_some_and(|n| !n.trim().is_empty())
            && !indexes.is_empty();
        if let (true, Some(id)) = (acceptable, id) {
            // Each LogoutRequest once (a replay is answered Requester).
            let key = format!("saml:logout:{}", hex::encode(sha2::Sha256::digest(format!("{}\n{id}", sp.entity_id))));
            let ttl = self.settings.request_max_age + self.settings.clock_skew + std::time::Duration::from_secs(60);
            acceptable =
                self.cache.set_if_absent(&key, b"1", ttl).await.map_err(|e| LoginError::Internal(e.to_string()))?;
        }
        if acceptable {
            for index in &indexes {
                if let Some(spid_code) =
                    self.sessions.end_by_index(index).await.map_err(|e| LoginError::Internal(e.to_string()))?
                {
                    tracing::info!(spid_code, sp = %sp.entity_id, "level-1 session ended by single logout");
                }
            }
        }
        let built = self
            .builder()
            .logout_response(&destination, id, acceptable, self.clock.now())
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        use base64::Engine;
        let view = View::Post {
            acs_url: destination,
            saml_response: base64::engine::general_purpose::STANDARD.encode(built.xml.as_bytes()),
            relay_state: incoming.relay_state,
        };
        Ok((view, acceptable))
    }
}
