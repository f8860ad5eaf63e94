//! The operators' side of the SP registry (`idpctl sp add|remove|refresh`):
//! changes are stored (so every replica applies them and they survive
//! reloads of the sources), audited with the operator's name, and a
//! generation counter tells the other replicas to reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use spid_events::EventBuilder;
use spid_proto::events::v1::{AuditNote, actor};
use spid_types::Clock;
use sqlx::Row;

use crate::registry::{Override, Registry, ReloadReport, ServiceProvider, Sources, parse_metadata};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("no service provider {0}")]
    NotFound(String),
    #[error("storage: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> AdminError {
    AdminError::Storage(e.to_string())
}

pub struct SpAdmin {
    pub db: spid_db::Db,
    pub registry: Arc<Registry>,
    pub sources: Sources,
    pub http: reqwest::Client,
    pub clock: Arc<dyn Clock>,
    pub relay_wake: Arc<dyn Fn() + Send + Sync>,
    /// The generation this replica last loaded.
    seen: AtomicI64,
    /// One reload at a time: an older snapshot never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
}

fn operator_ok(operator: &str) -> Result<(), AdminError> {
    let ok = !operator.trim().is_empty() && operator.len() <= 64 && !operator.chars().any(char::is_control);
    if ok { Ok(()) } else { Err(AdminError::Invalid("operator: 1 to 64 printable characters".into())) }
}

impl SpAdmin {
    pub fn new(
        db: spid_db::Db,
        registry: Arc<Registry>,
        sources: Sources,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
        relay_wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        SpAdmin {
            db,
            registry,
            sources,
            http,
            clock,
            relay_wake,
            seen: AtomicI64::new(-1),
            reloading: Default::default(),
        }
    }

    async fn generation(&self) -> Result<i64, AdminError> {
        let row = sqlx::query("SELECT generation FROM sp_registry_generation WHERE id = 1")
            .fetch_one(self.db.pool())
            .await
            .map_err(storage)?;
        row.try_get::<i64, _>("generation").map_err(storage)
    }

    async fn overrides(&self) -> Result<Vec<Override>, AdminError> {
        let rows = sqlx::query("SELECT entity_id, metadata, removed FROM sp_overrides ORDER BY changed_at")
            .fetch_all(self.db.pool())
            .await
            .map_err(storage)?;
        let mut out = Vec::new();
        for r in rows {
            let entity_id: String = r.try_get("entity_id").map_err(storage)?;
            let removed: i64 = r.try_get("removed").map_err(storage)?;
            let metadata: Option<String> = r.try_get("metadata").map_err(storage)?;
            match (removed, metadata) {
                (0, Some(xml)) => match parse_metadata(xml.as_bytes(), None, "idpctl") {
                    Ok(sps) => out.extend(sps.into_iter().map(|sp| Override::Add(Arc::new(sp)))),
                    Err(e) => tracing::warn!(entity_id, error = %e, "stored SP metadata no longer parses"),
                },
                _ => out.push(Override::Remove(entity_id)),
            }
        }
        Ok(out)
    }

    /// Reads the sources and the stored changes, and swaps the registry.
    pub async fn reload(&self) -> Result<ReloadReport, AdminError> {
        let _one_at_a_time = self.reloading.lock().await;
        let generation = self.generation().await?;
        let overrides = self.overrides().await?;
        let report = self.registry.reload(&self.sources, &self.http, &overrides).await;
        self.seen.store(generation, Ordering::SeqCst);
        Ok(report)
    }

    /// Stores a change, bumps the generation and audits, in one transaction.
    async fn change(
        &self,
        operator: &str,
        entity_id: &str,
        metadata: Option<&str>,
        action: &str,
    ) -> Result<(), AdminError> {
        let now = self.clock.now();
        let mut tx = self.db.pool().begin().await.map_err(storage)?;
        if action != "refreshed" {
            sqlx::query(
                "INSERT INTO sp_overrides (entity_id, metadata, removed, operator, changed_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (entity_id) DO UPDATE SET metadata = excluded.metadata, removed = excluded.removed,
                 operator = excluded.operator, changed_at = excluded.changed_at",
            )
            .bind(entity_id)
            .bind(metadata)
            .bind(i64::from(metadata.is_none()))
            .bind(operator)
            .bind(now.timestamp_micros())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        }
        sqlx::query("UPDATE sp_registry_generation SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        let note = AuditNote {
            category: "sp_registry".into(),
            fields: [("entity_id".to_owned(), entity_id.to_owned()), ("action".to_owned(), action.to_owned())].into(),
        };
        let event = EventBuilder::new(crate::SERVICE.as_str(), &format!("sp.{action}"), entity_id, &*self.clock)
            .actor(actor::Kind::Operator, operator)
            .payload(&note)
            .build();
        spid_events::outbox::enqueue(&mut tx, spid_types::topics::AUDIT, &event).await.map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        (self.relay_wake)();
        Ok(())
    }

    /// Registers one SP from its metadata.
    pub async fn add(&self, operator: &str, metadata: &str) -> Result<Arc<ServiceProvider>, AdminError> {
        operator_ok(operator)?;
        let mut sps =
            parse_metadata(metadata.as_bytes(), None, "idpctl").map_err(|e| AdminError::Invalid(e.to_string()))?;
        let sp = match (sps.pop(), sps.is_empty()) {
            (Some(sp), true) => sp,
            _ => return Err(AdminError::Invalid("give the metadata of exactly one service provider".into())),
        };
        self.change(operator, &sp.entity_id, Some(metadata), "added").await?;
        self.reload().await?;
        self.registry.get(&sp.entity_id).ok_or_else(|| AdminError::Storage("the SP vanished after its addition".into()))
    }

    /// Removes an SP until it is added again.
    pub async fn remove(&self, operator: &str, entity_id: &str) -> Result<(), AdminError> {
        operator_ok(operator)?;
        if self.registry.get(entity_id).is_none() {
            return Err(AdminError::NotFound(entity_id.to_owned()));
        }
        self.change(operator, entity_id, None, "removed").await?;
        self.reload().await?;
        Ok(())
    }

    /// Reloads every source now, here and (through the generation) on
    /// every other replica.
    pub async fn refresh(&self, operator: &str) -> Result<ReloadReport, AdminError> {
        operator_ok(operator)?;
        self.change(operator, "sp-registry", None, "refreshed").await?;
        self.reload().await
    }

    /// Reloads on schedule (`every`), and within `poll` of a change made
    /// through another replica.
    pub async fn run(self: Arc<Self>, every: Duration, poll: Duration, shutdown: spid_server::CancellationToken) {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(poll) => {}
            }
            let changed = match self.generation().await {
                Ok(g) => g != self.seen.load(Ordering::SeqCst),
                Err(e) => {
                    tracing::warn!(error = %e, "SP registry generation unreadable");
                    false
                }
            };
            if changed || last.elapsed() >= every {
                match self.reload().await {
                    Ok(r) => {
                        tracing::info!(service_providers = r.loaded, errors = r.errors.len(), "SP registry reloaded")
                    }
                    Err(e) => tracing::warn!(error = %e, "SP registry reload failed"),
                }
                last = tokio::time::Instant::now();
            }
        }
    }
}
