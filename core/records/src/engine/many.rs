//! Inserting many records of one object in a few statements (an import batch): one multi-row
//! `INSERT` per few thousand values, then their history rows and events together
//! ([`history::log_many`]). Each record is what [`super::insert`] would have written for the
//! same input; the caller has vetted the inputs as `service::create` does.

use super::{after_values, columns, constraint_error, Access, Input};
use crate::history::{self, Change};
use crate::schema::ObjectSchema;
use crate::values::SqlValue;
use crm_core::db::TenantTx;
use crm_core::error::Result;
use serde_json::{json, Map, Value};
use sqlx::QueryBuilder;
use uuid::Uuid;

/// Bind parameters per statement, well under PostgreSQL's 65,535.
const MAX_BINDS: usize = 30_000;

/// Inserts one record per `(id, input)`, with their history and events. A constraint
/// violation fails the whole call (mapped as a single insert maps it): callers run it in a
/// savepoint and fall back to one record at a time to tell which record it was.
pub async fn insert_many(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    rows: &[(Uuid, &Input<'_>)],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let created_by = access.user_id.map_or(SqlValue::Null, SqlValue::Uuid);
    let mut written: Vec<Vec<(String, SqlValue)>> = Vec::with_capacity(rows.len());
    let mut names: Vec<String> = Vec::new();
    for (_, input) in rows {
        let mut cols = columns(schema, access, input)?;
        cols.push(("created_by".into(), created_by.clone()));
        for (c, _) in &cols {
            if !names.contains(c) {
                names.push(c.clone());
            }
        }
        written.push(cols);
    }
    let per_statement = (MAX_BINDS / (names.len() + 1)).max(1);
    for (ids, values) in rows
        .chunks(per_statement)
        .zip(written.chunks(per_statement))
    {
        let mut q = QueryBuilder::new(format!("INSERT INTO {} (id", schema.object.table()));
        for c in &names {
            q.push(format!(", \"{c}\""));
        }
        q.push(") VALUES ");
        for (n, ((id, _), cols)) in ids.iter().zip(values).enumerate() {
            q.push(if n == 0 { "(" } else { ", (" });
            q.push_bind(*id);
            for c in &names {
                q.push(", ");
                match cols.iter().find(|(name, _)| name == c) {
                    Some((_, v)) => v.push_bind(&mut q),
                    None => {
                        q.push("DEFAULT");
                    }
                }
            }
            q.push(")");
        }
        q.build()
            .persistent(false)
            .execute(tx.conn())
            .await
            .map_err(|e| constraint_error(schema, e))?;
    }
    let changes = rows
        .iter()
        .map(|(id, input)| {
            let after = after_values(input);
            let diff: Map<String, Value> = after
                .iter()
                .map(|(k, v)| (k.clone(), json!({ "after": v })))
                .collect();
            Change {
                record_id: *id,
                changes: Value::Object(diff),
                payload: json!({ "fields": after }),
            }
        })
        .collect();
    history::log_many(tx, schema.object, "created", access.actor, changes).await
}
