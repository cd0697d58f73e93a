//! What a tenant schema holds, read from the PostgreSQL catalog: its tables and columns,
//! constraints, indexes and sequences. Backups describe a schema with it (so they need to know
//! no table by name: custom fields' columns and custom objects' tables come along), and
//! restores compare an archive's description with a freshly built schema to add what the
//! versioned DDL does not create.

use super::manifest::{ColumnDef, ConstraintDef, IndexDef, SequenceState};
use crm_core::Result;
use sqlx::PgConnection;
use std::collections::BTreeMap;

/// The tables of `schema` with their columns, in name order (columns in table order).
pub async fn tables(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<BTreeMap<String, Vec<ColumnDef>>> {
    type Row = (String, String, String, bool, Option<String>, String, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), \
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, \
                a.attgenerated::text \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') \
         ORDER BY c.relname, a.attnum",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    let mut tables: BTreeMap<String, Vec<ColumnDef>> = BTreeMap::new();
    for (table, name, data_type, not_null, expr, identity, generated) in rows {
        let generated = (!generated.is_empty()).then(|| expr.clone().unwrap_or_default());
        tables.entry(table).or_default().push(ColumnDef {
            name,
            data_type,
            not_null,
            default: if generated.is_some() { None } else { expr },
            identity: (!identity.is_empty()).then_some(identity),
            generated,
        });
    }
    Ok(tables)
}

/// The constraints of `schema`'s tables.
pub async fn constraints(conn: &mut PgConnection, schema: &str) -> Result<Vec<ConstraintDef>> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT c.relname::text, k.conname::text, k.contype::text, pg_get_constraintdef(k.oid) \
         FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND k.contype IN ('p', 'u', 'f', 'c', 'x') \
         ORDER BY c.relname, k.conname",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(table, name, kind, definition)| ConstraintDef {
            table,
            name,
            kind,
            definition,
        })
        .collect())
}

/// The indexes of `schema`'s tables that back no constraint.
pub async fn indexes(conn: &mut PgConnection, schema: &str) -> Result<Vec<IndexDef>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, pg_get_indexdef(i.oid) \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid \
                           AND k.conrelid = x.indrelid) \
         ORDER BY t.relname, i.relname",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(table, name, definition)| IndexDef {
            table,
            name,
            definition,
        })
        .collect())
}

/// The names of `schema`'s sequences (identity columns' included).
pub async fn sequence_names(conn: &mut PgConnection, schema: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'S' ORDER BY c.relname",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?)
}

/// Where each sequence of `schema` stands (the connection's search path must be `schema`).
pub async fn sequences(conn: &mut PgConnection, schema: &str) -> Result<Vec<SequenceState>> {
    let mut states = Vec::new();
    for name in sequence_names(conn, schema).await? {
        if !super::manifest::is_identifier(&name) {
            continue;
        }
        let (last_value, is_called): (i64, bool) = sqlx::query_as(&format!(
            "SELECT last_value, is_called FROM {}",
            super::manifest::quoted(&name)
        ))
        .fetch_one(&mut *conn)
        .await?;
        states.push(SequenceState {
            name,
            last_value,
            is_called,
        });
    }
    Ok(states)
}

/// The column's definition for `CREATE TABLE` / `ADD COLUMN`.
pub fn column_sql(c: &ColumnDef) -> String {
    let mut sql = format!("{} {}", super::manifest::quoted(&c.name), c.data_type);
    if let Some(expr) = &c.generated {
        sql.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
    } else if let Some(identity) = &c.identity {
        let when = if identity == "a" {
            "ALWAYS"
        } else {
            "BY DEFAULT"
        };
        sql.push_str(&format!(" GENERATED {when} AS IDENTITY"));
    } else if let Some(default) = &c.default {
        sql.push_str(&format!(" DEFAULT {default}"));
    }
    if c.not_null {
        sql.push_str(" NOT NULL");
    }
    sql
}

/// A definition read in `old` schema, made relative: qualified names lose their schema, so the
/// statement applies to the search path's (the new) schema.
pub fn unqualified(definition: &str, old: &str) -> String {
    definition
        .replace(&format!("\"{old}\"."), "")
        .replace(&format!("{old}."), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_definitions_read_back_as_sql() {
        let column = |identity: Option<&str>, generated: Option<&str>, default: Option<&str>| {
            column_sql(&ColumnDef {
                name: "cf_x".into(),
                data_type: "text".into(),
                not_null: true,
                default: default.map(Into::into),
                identity: identity.map(Into::into),
                generated: generated.map(Into::into),
            })
        };
        assert_eq!(column(None, None, None), "\"cf_x\" text NOT NULL");
        assert_eq!(
            column(None, None, Some("'{}'::text[]")),
            "\"cf_x\" text DEFAULT '{}'::text[] NOT NULL"
        );
        assert_eq!(
            column(Some("a"), None, None),
            "\"cf_x\" text GENERATED ALWAYS AS IDENTITY NOT NULL"
        );
        assert_eq!(
            column(None, Some("(address ->> 'city'::text)"), None),
            "\"cf_x\" text GENERATED ALWAYS AS ((address ->> 'city'::text)) STORED NOT NULL"
        );
    }

    #[test]
    fn definitions_lose_the_old_schema() {
        let old = "t_0123456789abcdef0123456789abcdef";
        assert_eq!(
            unqualified(
                &format!("CREATE INDEX x ON {old}.customers USING btree (cf_a)"),
                old
            ),
            "CREATE INDEX x ON customers USING btree (cf_a)"
        );
        assert_eq!(
            unqualified(
                &format!("FOREIGN KEY (a) REFERENCES \"{old}\".users(id)"),
                old
            ),
            "FOREIGN KEY (a) REFERENCES users(id)"
        );
    }
}
