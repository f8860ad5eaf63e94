//! Idempotent consumers: a handler records the event id in the same
//! transaction as its state change; a redelivered event is then skipped.

use spid_db::sqlx::{self, AnyConnection};

/// Records that `consumer` processes `event_id` now. Returns `false` when it
/// was already processed (the caller skips it). Call inside the handler's
/// transaction so the mark and the state change commit together.
pub async fn first_delivery(
    conn: &mut AnyConnection,
    consumer: &str,
    event_id: &str,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let result =
        sqlx::query("INSERT INTO inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(consumer)
            .bind(event_id)
            .bind(now_micros)
            .execute(&mut *conn)
            .await?;
    Ok(result.rows_affected() == 1)
}
