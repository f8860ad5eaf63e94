//! The authenticator app (OTP-2): enrolment with a provisioning URI,
//! confirmation with a first code, and code checks that accept each time
//! step once (OTP-8). Tokens are stored without their seed (OTP-7, see
//! [`crate::keys`]).

use std::sync::Arc;

use spid_db::Db;
use spid_secrets::SecretKey;
use spid_types::{Clock, ServiceError};
use sqlx::Row;

use crate::keys::{DERIVATION_KEY_LEN, MasterKey, Seed};
use crate::totp::{self, Totp};

pub struct Authenticators {
    db: Db,
    master: Arc<dyn MasterKey>,
    data_key: SecretKey,
    clock: Arc<dyn Clock>,
    issuer: String,
    totp: Totp,
}

/// A token just enrolled. The URI carries the seed: shown once.
pub struct Enrolment {
    pub token_id: String,
    pub provisioning_uri: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment").field("token_id", &self.token_id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Accepted,
    Wrong,
    /// The identity has no confirmed token.
    NoToken,
}

fn db_err(e: sqlx::Error) -> ServiceError {
    ServiceError::internal(e)
}

impl Authenticators {
    pub fn new(db: Db, master: Arc<dyn MasterKey>, data_key: SecretKey, clock: Arc<dyn Clock>, issuer: &str) -> Self {
        Self { db, master, data_key, clock, issuer: issuer.to_owned(), totp: totp::DEFAULT }
    }

    fn seed(&self, token_id: &str, sealed: &[u8]) -> Result<Seed, ServiceError> {
        let key = self
            .data_key
            .open(token_id.as_bytes(), sealed)
            .ok_or_else(|| ServiceError::internal("a token's derivation key does not open with the data key"))?;
        self.master.derive_seed(&key).map_err(ServiceError::internal)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.clock.now().timestamp()).unwrap_or(0)
    }

    /// A new pending token for `spid_code`; earlier pending ones go.
    pub async fn enrol(&self, spid_code: &str, account: &str) -> Result<Enrolment, ServiceError> {
        if account.is_empty() || account.len() > 128 || account.contains(':') {
            return Err(ServiceError::invalid("account.invalid", "account: 1 to 128 characters, without ':'"));
        }
        let token_id = uuid::Uuid::new_v4().to_string();
        let mut derivation_key = [0u8; DERIVATION_KEY_LEN];
        openssl::rand::rand_bytes(&mut derivation_key).map_err(ServiceError::internal)?;
        let sealed = self.data_key.seal(token_id.as_bytes(), &derivation_key).map_err(ServiceError::internal)?;
        let seed = self.master.derive_seed(&derivation_key).map_err(ServiceError::internal)?;
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        sqlx::query("DELETE FROM totp_tokens WHERE spid_code = $1 AND status = 'pending'")
            .bind(spid_code)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO totp_tokens (id, spid_code, sealed_key, status, created_at) VALUES ($1, $2, $3, 'pending', $4)",
        )
        .bind(&token_id)
        .bind(spid_code)
        .bind(sealed)
        .bind(self.clock.now().timestamp_micros())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let provisioning_uri = self.totp.provisioning_uri(&seed.0, &self.issuer, account);
        Ok(Enrolment { token_id, provisioning_uri })
    }

    /// Confirms a pending token with a code from the app: it becomes the
    /// identity's token, replacing the previous one.
    pub async fn confirm(&self, spid_code: &str, token_id: &str, code: &str) -> Result<bool, ServiceError> {
        let row =
            sqlx::query("SELECT sealed_key FROM totp_tokens WHERE id = $1 AND spid_code = $2 AND status = 'pending'")
                .bind(token_id)
                .bind(spid_code)
                .fetch_optional(self.db.pool())
                .await
                .map_err(db_err)?;
        let Some(row) = row else {
            return Err(ServiceError::not_found("token.not_found", "no pending token with this id"));
        };
        let sealed: Vec<u8> = row.try_get("sealed_key").map_err(db_err)?;
        let seed = self.seed(token_id, &sealed)?;
        let Some(accepted) = self.totp.verify(&seed.0, code, self.now(), None).map_err(ServiceError::internal)? else {
            return Ok(false);
        };
        // The others go, then this one comes in, in one transaction: if it
        // is no longer pending (a concurrent confirmation), nothing changes.
        let mut tx = self.db.pool().begin().await.map_err(db_err)?;
        sqlx::query(
            "UPDATE totp_tokens SET status = 'dropped' WHERE spid_code = $1 AND status = 'active' AND id <> $2",
        )
        .bind(spid_code)
        .bind(token_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let step = i64::try_from(accepted.step).unwrap_or(i64::MAX);
        let confirmed = sqlx::query(
            "UPDATE totp_tokens SET status = 'active', confirmed_at = $1, last_used_step = $2
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(self.clock.now().timestamp_micros())
        .bind(step)
        .bind(token_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if confirmed.rows_affected() != 1 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(false);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    /// Whether the identity has a confirmed token.
    pub async fn has_token(&self, spid_code: &str) -> Result<bool, ServiceError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM totp_tokens WHERE spid_code = $1 AND status = 'active'")
            .bind(spid_code)
            .fetch_one(self.db.pool())
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    /// Checks a code from the app. The accepted step is recorded with a
    /// conditional update, so of two concurrent uses of one code (a replay
    /// racing the holder) exactly one wins.
    pub async fn check(&self, spid_code: &str, code: &str) -> Result<Check, ServiceError> {
        let row = sqlx::query(
            "SELECT id, sealed_key, last_used_step FROM totp_tokens WHERE spid_code = $1 AND status = 'active'",
        )
        .bind(spid_code)
        .fetch_optional(self.db.pool())
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(Check::NoToken) };
        let id: String = row.try_get("id").map_err(db_err)?;
        let sealed: Vec<u8> = row.try_get("sealed_key").map_err(db_err)?;
        let last: i64 = row.try_get("last_used_step").map_err(db_err)?;
        let seed = self.seed(&id, &sealed)?;
        let last = u64::try_from(last).ok();
        let Some(accepted) = self.totp.verify(&seed.0, code, self.now(), last).map_err(ServiceError::internal)? else {
            return Ok(Check::Wrong);
        };
        let step = i64::try_from(accepted.step).unwrap_or(i64::MAX);
        let won = sqlx::query(
            "UPDATE totp_tokens SET last_used_step = $1 WHERE id = $2 AND status = 'active' AND last_used_step < $1",
        )
        .bind(step)
        .bind(&id)
        .execute(self.db.pool())
        .await
        .map_err(db_err)?;
        Ok(if won.rows_affected() == 1 { Check::Accepted } else { Check::Wrong })
    }

    /// Drops every token of the identity (suspension, revocation): the app
    /// must be enrolled again. Returns how many were dropped.
    pub async fn drop_for(&self, spid_code: &str) -> Result<u64, ServiceError> {
        let r = sqlx::query("UPDATE totp_tokens SET status = 'dropped' WHERE spid_code = $1 AND status <> 'dropped'")
            .bind(spid_code)
            .execute(self.db.pool())
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::LocalKeyFile;
    use spid_types::ManualClock;

    pub(crate) async fn authenticators(dir: &std::path::Path) -> (Authenticators, Arc<ManualClock>, Db) {
        let db = spid_server::testkit::database(dir, "otp_service").await.unwrap();
        crate::migrate(&db).await.unwrap();
        let master = Arc::new(LocalKeyFile::open(&dir.join("master.key"), true).unwrap());
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let a = Authenticators::new(db.clone(), master, SecretKey::random().unwrap(), clock.clone(), "SPID XIDP");
        (a, clock, db)
    }

    /// The seed an app would have read from the URI.
    pub(crate) fn seed_of(uri: &str) -> Vec<u8> {
        let secret = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap();
        totp::base32_decode(secret).unwrap()
    }

    fn code(seed: &[u8], clock: &ManualClock) -> String {
        totp::DEFAULT.code_at(seed, clock.now().timestamp() as u64).unwrap()
    }

    #[tokio::test]
    async fn enrol_confirm_and_use_each_step_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, clock, _) = authenticators(dir.path()).await;
        let e = a.enrol("XIDPABCDEFGHIJ", "mario.rossi@example.it").await.unwrap();
        assert!(!format!("{e:?}").contains("secret"), "no seed in Debug output");
        let seed = seed_of(&e.provisioning_uri);
        assert_eq!(seed.len(), 20);
        assert_eq!(a.check("XIDPABCDEFGHIJ", &code(&seed, &clock)).await.unwrap(), Check::NoToken, "not confirmed");
        assert!(!a.confirm("XIDPABCDEFGHIJ", &e.token_id, "000000").await.unwrap() || code(&seed, &clock) == "000000");
        assert!(a.confirm("XIDPABCDEFGHIJ", &e.token_id, &code(&seed, &clock)).await.unwrap());
        // The confirming step is used: the same code cannot log in.
        assert_eq!(a.check("XIDPABCDEFGHIJ", &code(&seed, &clock)).await.unwrap(), Check::Wrong);
        clock.advance(chrono::Duration::seconds(30));
        let next = code(&seed, &clock);
        assert_eq!(a.check("XIDPABCDEFGHIJ", &next).await.unwrap(), Check::Accepted);
        assert_eq!(a.check("XIDPABCDEFGHIJ", &next).await.unwrap(), Check::Wrong, "replay refused");
        assert_eq!(a.check("XIDPOTHERIDENT", &next).await.unwrap(), Check::NoToken);
        assert_eq!(a.drop_for("XIDPABCDEFGHIJ").await.unwrap(), 1);
        clock.advance(chrono::Duration::seconds(30));
        assert_eq!(a.check("XIDPABCDEFGHIJ", &code(&seed, &clock)).await.unwrap(), Check::NoToken, "dropped");
    }

    #[tokio::test]
    async fn the_seed_is_nowhere_in_storage() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _, db) = authenticators(dir.path()).await;
        let e = a.enrol("XIDPABCDEFGHIJ", "mario").await.unwrap();
        let seed = seed_of(&e.provisioning_uri);
        let rows = sqlx::query("SELECT sealed_key FROM totp_tokens").fetch_all(db.pool()).await.unwrap();
        for r in rows {
            let stored: Vec<u8> = r.get("sealed_key");
            assert!(!stored.windows(seed.len()).any(|w| w == seed.as_slice()), "seed in storage");
            assert!(!hex::encode(&stored).contains(&hex::encode(&seed)));
        }
        let err = a.confirm("XIDPABCDEFGHIJ", "no-such-token", "123456").await.unwrap_err();
        assert_eq!(err.code, "token.not_found");
    }
}
