//! Building a complete tenant schema from an unpacked archive, in the caller's (application
//! role's) transaction: the versioned DDL at the archive's schema version, emptied of its
//! seed rows; the tables and columns the archive describes that the DDL does not make (custom
//! objects and fields); the data loaded with foreign keys off; the constraints, indexes and
//! sequence positions of the archive; then the tenant migrations since its version. Objects
//! are created as the tenant role, so the tenant owns everything, as after provisioning.

use super::catalog;
use super::manifest::{quoted, Manifest, TableEntry};
use super::REGISTER_TABLES;
use crate::migrations::{tenant_script, upgrade_schema_as};
use crm_core::db::SchemaName;
use crm_core::{Error, Result};
use sqlx::{Executor, PgConnection};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

/// What was built.
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    pub tables: usize,
    pub rows: u64,
    /// The schema version after the migrations.
    pub schema_version: i32,
}

/// Where the staged schema goes and who owns it.
pub(crate) struct Target<'a> {
    /// The schema to create.
    pub schema: &'a SchemaName,
    /// The tenant role that owns it.
    pub role: &'a SchemaName,
    /// Whether the role must be created too (a new tenant).
    pub create_role: bool,
}

/// Builds `target.schema` from the archive (`entries`: unpacked entry files by name).
pub(crate) async fn build(
    conn: &mut PgConnection,
    target: &Target<'_>,
    manifest: &Manifest,
    entries: &HashMap<String, PathBuf>,
) -> Result<Staged> {
    let (schema, role) = (target.schema, target.role);
    let started = std::time::Instant::now();
    let mut ddl = String::new();
    if target.create_role {
        ddl.push_str(&format!(
            "CREATE ROLE \"{role}\" NOLOGIN; GRANT \"{role}\" TO CURRENT_USER; "
        ));
    }
    ddl.push_str(&format!(
        "CREATE SCHEMA \"{schema}\" AUTHORIZATION \"{role}\"; \
         SET LOCAL search_path = \"{schema}\", public;\n{}",
        tenant_script(role, 0, manifest.schema_version)
    ));
    conn.execute(sqlx::raw_sql(&ddl)).await?;
    // Index builds over the loaded rows (GIN above all) go faster with more memory.
    conn.execute(
        format!("SET LOCAL ROLE \"{role}\"; SET LOCAL maintenance_work_mem = '256MB'").as_str(),
    )
    .await?;
    empty_seeded_tables(conn, schema).await?;
    add_described_tables(conn, schema, manifest).await?;
    let dropped = drop_foreign_keys(conn, schema).await?;
    // Indexes are built once over the loaded rows, not row by row (GIN ones above all).
    let dropped_indexes = drop_indexes(conn, schema).await?;
    let prepared = started.elapsed();
    let mut rows = 0;
    for table in &manifest.tables {
        rows += copy_in(conn, table, entries).await?;
    }
    let loaded = started.elapsed();
    add_constraints(conn, schema, manifest, &dropped).await?;
    let constrained = started.elapsed();
    add_indexes(conn, schema, manifest, &dropped_indexes).await?;
    let indexed = started.elapsed();
    set_sequences(conn, schema, manifest).await?;
    conn.execute("RESET ROLE").await?;
    let schema_version = upgrade_schema_as(conn, schema, role).await?;
    tracing::info!(
        schema = %schema,
        rows,
        prepare_ms = prepared.as_millis() as u64,
        load_ms = (loaded - prepared).as_millis() as u64,
        constraints_ms = (constrained - loaded).as_millis() as u64,
        indexes_ms = (indexed - constrained).as_millis() as u64,
        migrations_ms = (started.elapsed() - indexed).as_millis() as u64,
        "restore: schema built"
    );
    Ok(Staged {
        tables: manifest.tables.len(),
        rows,
        schema_version,
    })
}

/// Rows the DDL seeded (settings, default pipeline, …) make way for the archive's. Only the
/// few tables that have rows are truncated (truncating fifty fresh tables costs a second).
async fn empty_seeded_tables(conn: &mut PgConnection, schema: &SchemaName) -> Result<()> {
    let tables: Vec<String> = catalog::tables(conn, schema.as_str())
        .await?
        .into_keys()
        .filter(|t| !REGISTER_TABLES.contains(&t.as_str()))
        .collect();
    if tables.is_empty() {
        return Ok(());
    }
    let probe = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT {n} WHERE EXISTS (SELECT FROM {q})",
                n = literal(t),
                q = quoted(t)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let seeded: Vec<String> = sqlx::query_scalar(&probe).fetch_all(&mut *conn).await?;
    if !seeded.is_empty() {
        let names: Vec<String> = seeded.iter().map(|t| quoted(t)).collect();
        conn.execute(format!("TRUNCATE {} CASCADE", names.join(", ")).as_str())
            .await?;
    }
    Ok(())
}

/// `'name'::text`, for a name [`super::manifest::is_identifier`] would accept.
fn literal(name: &str) -> String {
    format!("'{}'::text", name.replace('\'', "''"))
}

/// Tables and columns of the archive that the versioned DDL did not create.
async fn add_described_tables(
    conn: &mut PgConnection,
    schema: &SchemaName,
    manifest: &Manifest,
) -> Result<()> {
    let existing = catalog::tables(conn, schema.as_str()).await?;
    for table in &manifest.tables {
        let statement = match existing.get(&table.name) {
            None => format!(
                "CREATE TABLE {} ({})",
                quoted(&table.name),
                table
                    .columns
                    .iter()
                    .map(catalog::column_sql)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(columns) => {
                let missing: Vec<String> = table
                    .columns
                    .iter()
                    .filter(|c| !columns.iter().any(|e| e.name == c.name))
                    .map(|c| format!("ADD COLUMN {}", catalog::column_sql(c)))
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                format!("ALTER TABLE {} {}", quoted(&table.name), missing.join(", "))
            }
        };
        conn.execute(statement.as_str())
            .await
            .map_err(|e| Error::internal(format!("restoring table {}: {e}", table.name)))?;
    }
    Ok(())
}

/// Drops every foreign key of the schema (data loads in any order); returns them.
async fn drop_foreign_keys(
    conn: &mut PgConnection,
    schema: &SchemaName,
) -> Result<Vec<super::manifest::ConstraintDef>> {
    let keys: Vec<_> = catalog::constraints(conn, schema.as_str())
        .await?
        .into_iter()
        .filter(|c| c.kind == "f" && !REGISTER_TABLES.contains(&c.table.as_str()))
        .collect();
    for k in &keys {
        conn.execute(
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                quoted(&k.table),
                quoted(&k.name)
            )
            .as_str(),
        )
        .await?;
    }
    Ok(keys)
}

/// Drops the indexes that back no constraint; returns them.
async fn drop_indexes(
    conn: &mut PgConnection,
    schema: &SchemaName,
) -> Result<Vec<super::manifest::IndexDef>> {
    let indexes: Vec<_> = catalog::indexes(conn, schema.as_str())
        .await?
        .into_iter()
        .filter(|i| !REGISTER_TABLES.contains(&i.table.as_str()))
        .collect();
    if !indexes.is_empty() {
        let names: Vec<String> = indexes.iter().map(|i| quoted(&i.name)).collect();
        conn.execute(format!("DROP INDEX {}", names.join(", ")).as_str())
            .await?;
    }
    Ok(indexes)
}

/// Loads one table's entry with `COPY … FROM STDIN`; returns the rows loaded.
async fn copy_in(
    conn: &mut PgConnection,
    table: &TableEntry,
    entries: &HashMap<String, PathBuf>,
) -> Result<u64> {
    let path = entries.get(&table.entry).ok_or_else(|| {
        Error::bad_request(
            "backup.invalid_archive",
            format!("the archive lacks the data of table {}", table.name),
        )
    })?;
    let columns: Vec<String> = table.copied_columns().map(|c| quoted(&c.name)).collect();
    let sql = format!(
        "COPY {} ({}) FROM STDIN",
        quoted(&table.name),
        columns.join(", ")
    );
    let local = |e: std::io::Error| Error::internal(format!("reading {}: {e}", path.display()));
    let mut file = tokio::fs::File::open(path).await.map_err(local)?;
    let mut copy = conn.copy_in_raw(&sql).await?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(local)?;
        if n == 0 {
            break;
        }
        if let Err(e) = copy.send(&buf[..n]).await {
            let _ = copy.abort("reading the archive failed").await;
            return Err(e.into());
        }
    }
    let rows = copy
        .finish()
        .await
        .map_err(|e| Error::internal(format!("loading table {}: {e}", table.name)))?;
    Ok(rows)
}

/// Which constraints go first: keys before the foreign keys that need them.
fn constraint_order(kind: &str) -> u8 {
    match kind {
        "p" => 0,
        "u" | "x" => 1,
        "c" => 2,
        _ => 3,
    }
}

/// The archive's constraints the schema lacks, then the foreign keys dropped for the load.
async fn add_constraints(
    conn: &mut PgConnection,
    schema: &SchemaName,
    manifest: &Manifest,
    dropped: &[super::manifest::ConstraintDef],
) -> Result<()> {
    let mut present: HashSet<(String, String)> = catalog::constraints(conn, schema.as_str())
        .await?
        .into_iter()
        .map(|c| (c.table, c.name))
        .collect();
    let old = manifest.tenant.schema.as_str();
    let mut wanted: Vec<_> = manifest
        .constraints
        .iter()
        .map(|c| (c, catalog::unqualified(&c.definition, old)))
        .chain(dropped.iter().map(|c| (c, c.definition.clone())))
        .collect();
    wanted.sort_by_key(|(c, _)| constraint_order(&c.kind));
    for (c, definition) in wanted {
        if !present.insert((c.table.clone(), c.name.clone())) {
            continue;
        }
        conn.execute(
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {definition}",
                quoted(&c.table),
                quoted(&c.name)
            )
            .as_str(),
        )
        .await
        .map_err(|e| {
            Error::bad_request(
                "backup.inconsistent_data",
                format!(
                    "the archive's data breaks constraint {} of table {}: {e}",
                    c.name, c.table
                ),
            )
        })?;
    }
    Ok(())
}

/// The archive's indexes the schema lacks, then those dropped for the load.
async fn add_indexes(
    conn: &mut PgConnection,
    schema: &SchemaName,
    manifest: &Manifest,
    dropped: &[super::manifest::IndexDef],
) -> Result<()> {
    let mut present: HashSet<String> = catalog::indexes(conn, schema.as_str())
        .await?
        .into_iter()
        .map(|i| i.name)
        .collect();
    let old = manifest.tenant.schema.as_str();
    let wanted = manifest
        .indexes
        .iter()
        .map(|i| (i, catalog::unqualified(&i.definition, old)))
        .chain(
            dropped
                .iter()
                .map(|i| (i, catalog::unqualified(&i.definition, schema.as_str()))),
        );
    for (index, definition) in wanted {
        if !present.insert(index.name.clone()) {
            continue;
        }
        conn.execute(definition.as_str())
            .await
            .map_err(|e| Error::internal(format!("restoring index {}: {e}", index.name)))?;
    }
    Ok(())
}

/// Sequences continue where they stood.
async fn set_sequences(
    conn: &mut PgConnection,
    schema: &SchemaName,
    manifest: &Manifest,
) -> Result<()> {
    let present: HashSet<String> = catalog::sequence_names(conn, schema.as_str())
        .await?
        .into_iter()
        .collect();
    for s in manifest
        .sequences
        .iter()
        .filter(|s| present.contains(&s.name))
    {
        sqlx::query("SELECT setval($1::regclass, $2, $3)")
            .bind(quoted(&s.name))
            .bind(s.last_value)
            .bind(s.is_called)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
