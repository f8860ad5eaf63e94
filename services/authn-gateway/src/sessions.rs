//! Level-1 single sign-on sessions (SAML-7, SAML-8), in the shared cache.
//!
//! A session is reused only for level-1 requests without ForceAuthn. Every
//! identity has an epoch counter: a session counts only while the epoch it
//! was created in is current, so one increment (a suspension, revocation,
//! expiry or lock reaching the gateway) ends all of that identity's
//! sessions at once, on every replica.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use spid_cache::{Cache, CacheError};

use crate::level::IdentityKind;
use crate::login::is_token;

const SESSION: &str = "saml:sso:";
const BY_INDEX: &str = "saml:sso-index:";
const EPOCH: &str = "saml:sso-epoch:";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SsoSession {
    pub spid_code: String,
    /// The identity's type: a reuse must suit the new request's purpose.
    pub kind: IdentityKind,
    pub authn_instant: DateTime<Utc>,
    pub session_index: String,
    epoch: u64,
}

pub struct Sessions {
    pub cache: Arc<dyn Cache>,
    pub lifetime: Duration,
}

impl Sessions {
    async fn epoch(&self, spid_code: &str) -> Result<u64, CacheError> {
        let raw = self.cache.get(&format!("{EPOCH}{spid_code}")).await?;
        Ok(raw.and_then(|r| String::from_utf8(r).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(0))
    }

    /// A new session; returns the id the browser keeps in a cookie.
    pub async fn create(
        &self,
        spid_code: &str,
        kind: IdentityKind,
        authn_instant: DateTime<Utc>,
        session_index: &str,
    ) -> Result<String, CacheError> {
        let id = crate::login::random_token();
        let session = SsoSession {
            spid_code: spid_code.to_owned(),
            kind,
            authn_instant,
            session_index: session_index.to_owned(),
            epoch: self.epoch(spid_code).await?,
        };
        let bytes = serde_json::to_vec(&session).map_err(|e| CacheError::Unavailable(e.to_string()))?;
        self.cache.set(&format!("{SESSION}{id}"), &bytes, self.lifetime).await?;
        self.cache.set(&format!("{BY_INDEX}{session_index}"), id.as_bytes(), self.lifetime).await?;
        Ok(id)
    }

    /// The live session of a cookie value, if any.
    pub async fn get(&self, id: &str) -> Result<Option<SsoSession>, CacheError> {
        if !is_token(id) {
            return Ok(None);
        }
        let Some(raw) = self.cache.get(&format!("{SESSION}{id}")).await? else { return Ok(None) };
        let Ok(session) = serde_json::from_slice::<SsoSession>(&raw) else { return Ok(None) };
        if session.epoch != self.epoch(&session.spid_code).await? {
            self.end(id).await?;
            return Ok(None);
        }
        Ok(Some(session))
    }

    pub async fn end(&self, id: &str) -> Result<(), CacheError> {
        if let Some(raw) = self.cache.take(&format!("{SESSION}{id}")).await?
            && let Ok(s) = serde_json::from_slice::<SsoSession>(&raw)
        {
            self.cache.delete(&format!("{BY_INDEX}{}", s.session_index)).await?;
        }
        Ok(())
    }

    /// Ends the session a SessionIndex belongs to (single logout); returns
    /// its holder when there was one.
    pub async fn end_by_index(&self, session_index: &str) -> Result<Option<String>, CacheError> {
        let Some(id) = self.cache.take(&format!("{BY_INDEX}{session_index}")).await? else { return Ok(None) };
        let id = String::from_utf8_lossy(&id).into_owned();
        let holder = self.get(&id).await?.map(|s| s.spid_code);
        self.end(&id).await?;
        Ok(holder)
    }

    /// Ends every session of an identity (lifecycle events).
    pub async fn end_identity(&self, spid_code: &str) -> Result<(), CacheError> {
        // The counter outlives every session created before it moved.
        self.cache.increment(&format!("{EPOCH}{spid_code}"), self.lifetime + Duration::from_secs(60)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_end_one_by_one_by_index_and_all_at_once() {
        let s = Sessions { cache: Arc::new(spid_cache::MemoryCache::new()), lifetime: Duration::from_secs(3600) };
        let now = Utc::now();
        let a = s.create("XIDP1", IdentityKind::Private, now, "_i1").await.unwrap();
        let b = s.create("XIDP1", IdentityKind::Private, now, "_i2").await.unwrap();
        let c = s.create("XIDP2", IdentityKind::Private, now, "_i3").await.unwrap();
        assert_eq!(s.get(&a).await.unwrap().unwrap().session_index, "_i1");
        assert!(s.get("not-a-token").await.unwrap().is_none());

        assert_eq!(s.end_by_index("_i1").await.unwrap().as_deref(), Some("XIDP1"));
        assert!(s.get(&a).await.unwrap().is_none());
        assert_eq!(s.end_by_index("_i1").await.unwrap(), None, "once only");

        s.end_identity("XIDP1").await.unwrap();
        assert!(s.get(&b).await.unwrap().is_none(), "the identity's sessions are gone");
        assert!(s.get(&c).await.unwrap().is_some(), "others stay");
        // A session opened after the event is valid.
        let d = s.create("XIDP1", IdentityKind::Private, now, "_i4").await.unwrap();
        assert!(s.get(&d).await.unwrap().is_some());
    }
}
