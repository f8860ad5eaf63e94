//! Verification of the log: the signed seals form an unbroken, authentic
//! chain of days; every record decrypts, matches its clear columns and
//! extends the hash chain; every sealed day holds exactly the records its
//! seal covers. The first break is reported with the record and the day.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use prost::Message;
use spid_proto::events::v1::Envelope;

use crate::chain::{self, GENESIS, Hash};
use crate::crypto;
use crate::keys::AuditKeys;
use crate::seal::{self, day_of};
use crate::store::{SealRow, StoredRow};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first record found wrong (or the first record of a wrong day).
    pub sequence: u64,
    pub day: Option<NaiveDate>,
    pub problem: String,
}

fn brk(sequence: u64, day: Option<NaiveDate>, problem: String) -> Break {
    Break { sequence, day, problem }
}

fn parse_day(s: &SealRow) -> Result<NaiveDate, Break> {
    s.day().ok_or_else(|| brk(s.first_seq, None, format!("seal with a malformed day \"{}\"", s.day)))
}

/// Checks the seals among themselves. `purge_cutoff`: days before it may
/// have been removed by retention; a purged day after it is a break.
pub fn check_seals(keys: &AuditKeys, seals: &[SealRow], purge_cutoff: NaiveDate) -> Result<(), Break> {
    let mut prior: Option<(&SealRow, NaiveDate)> = None;
    for s in seals {
        let day = parse_day(s)?;
        let at = |problem: String| brk(s.first_seq, Some(day), problem);
        if !seal::seal_is_authentic(keys, s) {
            return Err(at(format!("the seal of {day} is not signed by the audit key or was altered")));
        }
        let expected_previous = prior.map_or(GENESIS.to_vec(), |(p, _)| p.digest.clone());
        if s.previous != expected_previous {
            return Err(at(format!("the seal of {day} does not follow the previous seal")));
        }
        if let Some((p, pday)) = prior {
            if pday.succ_opt() != Some(day) {
                return Err(at(format!("the seals of the days after {pday} up to {day} are missing")));
            }
            if s.first_seq != p.last_seq + 1 {
                return Err(at(format!("the seal of {day} does not start where the seal of {pday} ends")));
            }
            if s.records == 0 && s.chain != p.chain {
                return Err(at(format!("the seal of {day} covers no records but moves the chain")));
            }
            if p.purged_at.is_none() && s.purged_at.is_some() {
                return Err(at(format!("{day} is marked purged after a day that is not")));
            }
        }
        let span = if s.records == 0 { 0 } else { s.last_seq + 1 - s.first_seq };
        if s.last_seq + 1 < s.first_seq || span != s.records {
            return Err(at(format!(
                "the seal of {day} counts {} records for sequences {}..={}",
                s.records, s.first_seq, s.last_seq
            )));
        }
        if s.purged_at.is_some() && day >= purge_cutoff {
            return Err(at(format!("{day} is marked purged but is still within the retention period")));
        }
        prior = Some((s, day));
    }
    Ok(())
}

/// Walks records in sequence order from an anchor (a seal, or the start).
pub struct Walker<'a> {
    keys: &'a AuditKeys,
    seals: BTreeMap<NaiveDate, &'a SealRow>,
    next_seq: u64,
    chain: Hash,
    last_recorded_at: i64,
    /// The day being walked and how many of its records were seen.
    day: Option<NaiveDate>,
    day_records: u64,
    pub records_checked: u64,
    pub seals_checked: u64,
}

impl<'a> Walker<'a> {
    /// Starts after `anchor` (whose day is taken as checked), or at the
    /// first record of the log.
    pub fn new(keys: &'a AuditKeys, seals: &'a [SealRow], anchor: Option<&'a SealRow>) -> Result<Self, Break> {
        let mut by_day = BTreeMap::new();
        for s in seals {
            by_day.insert(parse_day(s)?, s);
        }
        let (next_seq, chain, day) = match anchor {
            Some(a) => {
                let hash = chain::to_hash(&a.chain).ok_or_else(|| {
                    brk(a.last_seq, None, format!("the seal of {} has a malformed chain value", a.day))
                })?;
                // The anchor's day is checked; the walk goes on from the next.
                (a.last_seq + 1, hash, parse_day(a)?.succ_opt())
            }
            None => (1, GENESIS, None),
        };
        Ok(Self {
            keys,
            seals: by_day,
            next_seq,
            chain,
            last_recorded_at: i64::MIN,
            day,
            day_records: 0,
            records_checked: 0,
            seals_checked: 0,
        })
    }

    /// The sequence the walk expects next; the caller reads from there.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The chain value after the last record walked.
    pub fn chain(&self) -> Hash {
        self.chain
    }

    fn close(&mut self, day: NaiveDate) -> Result<(), Break> {
        let records = std::mem::take(&mut self.day_records);
        let Some(s) = self.seals.get(&day) else { return Ok(()) };
        self.seals_checked += 1;
        let last = self.next_seq - 1;
        let problem = if s.records != records {
            Some(format!("the seal of {day} covers {} records, {records} were found", s.records))
        } else if records > 0 && s.last_seq != last {
            Some(format!("the seal of {day} ends at record {}, the records at {last}", s.last_seq))
        } else if s.chain != self.chain {
            Some(format!("the chain at the end of {day} differs from its seal"))
        } else {
            None
        };
        match problem {
            Some(p) => Err(brk(s.first_seq, Some(day), p)),
            None => Ok(()),
        }
    }

    /// Closes the days from the current one up to (not including) `until`.
    fn close_until(&mut self, until: NaiveDate) -> Result<(), Break> {
        while let Some(day) = self.day {
            if day >= until {
                break;
            }
            self.close(day)?;
            self.day = day.succ_opt();
        }
        Ok(())
    }

    pub fn feed(&mut self, row: &StoredRow) -> Result<(), Break> {
        let day = day_of(row.recorded_at);
        let at = |problem: String| brk(row.seq, Some(day), problem);
        if row.seq > self.next_seq {
            return Err(brk(
                self.next_seq,
                Some(day),
                format!("record {} is missing (the next stored record is {})", self.next_seq, row.seq),
            ));
        }
        if row.seq < self.next_seq {
            return Err(at(format!("record {} is stored twice or out of place", row.seq)));
        }
        if row.recorded_at < self.last_recorded_at {
            return Err(at(format!("record {} is dated before the record preceding it", row.seq)));
        }
        match self.day {
            Some(current) if day < current => {
                return Err(at(format!("record {} is dated {day}, a day already sealed", row.seq)));
            }
            Some(_) => self.close_until(day)?,
            None => self.day = Some(day),
        }
        let plain = crypto::decrypt(self.keys, row.key_id, row.event_id.as_bytes(), &row.sealed)
            .ok_or_else(|| at(format!("record {} was altered: its content does not decrypt", row.seq)))?;
        let event = Envelope::decode(plain.as_slice())
            .map_err(|_| at(format!("record {} was altered: its content is not an event", row.seq)))?;
        let occurred = event.occurred_at.as_ref().and_then(spid_proto::time::from_wire).map(|t| t.timestamp_micros());
        let column = if event.event_id != row.event_id {
            Some("event_id")
        } else if event.r#type != row.event_type {
            Some("event_type")
        } else if event.source != row.source {
            Some("source")
        } else if occurred != Some(row.occurred_at) {
            Some("occurred_at")
        } else {
            None
        };
        if let Some(column) = column {
            return Err(at(format!("record {} was altered: its {column} differs from its sealed content", row.seq)));
        }
        let chained =
            chain::link(&self.chain, &chain::record_digest(row.seq, row.recorded_at, &chain::content_hash(&plain)));
        if chained.as_slice() != row.chain.as_slice() {
            return Err(at(format!(
                "record {} was altered, inserted or moved: the chain does not lead to it",
                row.seq
            )));
        }
        self.chain = chained;
        self.next_seq += 1;
        self.last_recorded_at = row.recorded_at;
        self.day_records += 1;
        self.records_checked += 1;
        Ok(())
    }

    /// Ends the walk: every sealed day up to `until` (inclusive) must have
    /// been seen whole.
    pub fn finish(mut self, until: NaiveDate) -> Result<(u64, u64), Break> {
        let last_sealed = self.seals.keys().next_back().copied();
        if let Some(last_sealed) = last_sealed {
            let end = until.min(last_sealed);
            if self.day.is_none() {
                // Nothing walked: start at the first sealed day.
                self.day = self.seals.keys().next().copied();
            }
            if let Some(end) = end.succ_opt() {
                self.close_until(end)?;
            }
        }
        Ok((self.records_checked, self.seals_checked))
    }
}
