//! audit-log's own metrics, in the service's registry: what an operator
//! alerts on (a broken chain, seals falling behind) and the record rate.

use prometheus::{IntCounter, IntGauge, Opts, Registry};

use crate::integrity::Retention;
use crate::store::SealRow;

#[derive(Clone)]
pub struct AuditMetrics {
    /// New records stored (duplicates not counted).
    pub records: IntCounter,
    /// 1 while the last sealing run found the chain broken.
    pub chain_broken: IntGauge,
    /// Start of the last sealed day (Unix seconds).
    pub last_sealed_day: IntGauge,
    pub retention_removed: IntCounter,
}

impl AuditMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            records: IntCounter::with_opts(Opts::new("audit_records_total", "Audit records stored"))?,
            chain_broken: IntGauge::with_opts(Opts::new(
                "audit_chain_broken",
                "1 while the last sealing run found the audit chain broken",
            ))?,
            last_sealed_day: IntGauge::with_opts(Opts::new(
                "audit_last_sealed_day_timestamp_seconds",
                "Start of the last sealed day, Unix seconds",
            ))?,
            retention_removed: IntCounter::with_opts(Opts::new(
                "audit_retention_removed_total",
                "Audit records removed by retention",
            ))?,
        };
        registry.register(Box::new(m.records.clone()))?;
        registry.register(Box::new(m.chain_broken.clone()))?;
        registry.register(Box::new(m.last_sealed_day.clone()))?;
        registry.register(Box::new(m.retention_removed.clone()))?;
        Ok(m)
    }

    /// After a sealing run: `Ok(all seals)` or the failure.
    pub fn sealed<E>(&self, outcome: &Result<Vec<SealRow>, E>, broken: bool) {
        self.chain_broken.set(i64::from(broken));
        if let Ok(seals) = outcome
            && let Some(last) = seals.last()
            && let Some(day) = last.day()
        {
            self.last_sealed_day.set(crate::seal::start_of(day) / 1_000_000);
        }
    }

    pub fn retained(&self, r: &Retention) {
        self.retention_removed.inc_by(r.records_removed);
    }

    /// After an append: counts the new records.
    pub fn appended(&self, outcome: &[(u64, bool)]) {
        self.records.inc_by(outcome.iter().filter(|(_, new)| *new).count() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_under_the_service_registry() {
        let registry = Registry::new_custom(Some("idp".into()), None).unwrap();
        let m = AuditMetrics::new(&registry).unwrap();
        m.appended(&[(1, true), (1, false), (2, true)]);
        m.sealed::<()>(&Err(()), true);
        let names: Vec<_> = registry.gather().iter().map(|f| f.name().to_owned()).collect();
        assert!(names.contains(&"idp_audit_records_total".to_owned()), "{names:?}");
        assert_eq!(m.records.get(), 2);
        assert_eq!(m.chain_broken.get(), 1);
        m.sealed::<()>(&Ok(vec![]), false);
        assert_eq!(m.chain_broken.get(), 0);
    }
}
