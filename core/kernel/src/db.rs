//! The only door to tenant data: a [`TenantTx`] that begins with `SET LOCAL ROLE <tenant role>`
//! and `SET LOCAL search_path = <tenant schema>, public`. No tenant table exists outside tenant
//! schemas, so SQL run without this context finds nothing and fails closed.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sqlx::{Executor, PgConnection, PgPool, Postgres, Transaction};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use uuid::Uuid;

/// How a tenant transaction is walled off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantIsolation {
    /// `SET LOCAL ROLE` to the tenant role and set the search path (single node; default).
    #[default]
    Role,
    /// Only the search path: for Citus, which opens worker connections as the current role.
    Schema,
}

impl std::str::FromStr for TenantIsolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "role" => Ok(Self::Role),
            "schema" => Ok(Self::Schema),
            other => Err(format!(
                "tenant_isolation must be 'role' or 'schema', not '{other}'"
            )),
        }
    }
}

/// A tenant schema (and role) name: `t_` followed by the tenant id as 32 lowercase hex digits.
/// Its only constructors derive it from a tenant id or check that exact shape, so it is safe
/// to splice into SQL as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    pub fn for_tenant(id: Uuid) -> Self {
        SchemaName(format!("t_{}", id.simple()))
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let hex = raw.strip_prefix("t_")?;
        (hex.len() == 32
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
        .then(|| SchemaName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which tenant a piece of work belongs to.
#[derive(Debug, Clone)]
pub struct TenantCtx {
    pub id: Uuid,
    pub slug: String,
    pub schema: SchemaName,
}

/// The database handle services receive: the pool plus the isolation mode.
#[derive(Clone)]
pub struct Db {
    pub pool: PgPool,
    pub isolation: TenantIsolation,
    /// `statement_timeout` of every tenant transaction, in milliseconds (0: none): one tenant's
    /// slow query cannot hold a connection for ever.
    pub statement_timeout_ms: u64,
    /// Each tenant's mail quota, carried by its transactions to [`crate::mail::enqueue`].
    pub mail_quota: crate::mail::MailQuota,
}

impl Db {
    pub fn new(pool: PgPool, isolation: TenantIsolation) -> Self {
        Self {
            pool,
            isolation,
            statement_timeout_ms: 0,
            mail_quota: crate::mail::MailQuota::default(),
        }
    }

    /// The same handle with another mail quota on its tenant transactions.
    pub fn with_mail_quota(mut self, quota: crate::mail::MailQuota) -> Self {
        self.mail_quota = quota;
        self
    }

    /// The same handle with a statement timeout on its tenant transactions.
    pub fn with_statement_timeout(mut self, ms: u64) -> Self {
        self.statement_timeout_ms = ms;
        self
    }

    /// Begins a transaction inside `tenant`'s schema (and role).
    pub async fn tenant_tx(&self, tenant: &TenantCtx) -> Result<TenantTx> {
        // BEGIN and the confinement travel in one round trip; if the SETs fail the
        // transaction is aborted and `begin_with` returns the error: nothing runs unconfined.
        let mut sql = format!("BEGIN; {}", confine_sql(tenant, self.isolation));
        if self.statement_timeout_ms > 0 {
            sql.push_str(&format!(
                "; SET LOCAL statement_timeout = {}",
                self.statement_timeout_ms
            ));
        }
        let tx = self.pool.begin_with(sql).await.map_err(unavailable)?;
        Ok(TenantTx {
            tx,
            tenant: tenant.clone(),
            memo: HashMap::new(),
            shared: false,
            mail_quota: self.mail_quota,
        })
    }
}

/// A `LISTEN`ing connection on `channel`, of its own (a one-connection pool with the same
/// options as `pool`, so it never takes one of the request pool's connections).
pub async fn listen(
    pool: &PgPool,
    channel: &str,
) -> std::result::Result<sqlx::postgres::PgListener, sqlx::Error> {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone())
        .await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Maps pool exhaustion / connection failures to 503 instead of a 500.
pub fn unavailable(err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            Error::Unavailable(err.to_string())
        }
        other => Error::Database(other),
    }
}

/// A transaction confined to one tenant. Services take `&mut TenantTx`; there is no other way
/// for them to reach tenant tables.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantCtx,
    /// Per-transaction memos, one per type (see [`TenantTx::memo`]).
    memo: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    shared: bool,
    mail_quota: crate::mail::MailQuota,
}

/// The statements that confine a transaction to `tenant`. The schema name is checked
/// (`t_` + 32 hex digits), so it is safe to splice.
fn confine_sql(tenant: &TenantCtx, isolation: TenantIsolation) -> String {
    let schema = tenant.schema.as_str();
    match isolation {
        TenantIsolation::Role => {
            format!("SET LOCAL ROLE \"{schema}\"; SET LOCAL search_path = \"{schema}\", public")
        }
        TenantIsolation::Schema => format!("SET LOCAL search_path = \"{schema}\", public"),
    }
}

impl TenantTx {
    /// Confines an already open transaction to `tenant` (used by provisioning, which creates
    /// the schema in the same transaction).
    pub async fn enter(
        mut tx: Transaction<'static, Postgres>,
        tenant: &TenantCtx,
        isolation: TenantIsolation,
    ) -> Result<TenantTx> {
        let sql = confine_sql(tenant, isolation);
        (&mut *tx).execute(sqlx::raw_sql(&sql)).await?;
        Ok(TenantTx {
            tx,
            tenant: tenant.clone(),
            memo: HashMap::new(),
            shared: false,
            mail_quota: crate::mail::MailQuota::default(),
        })
    }

    /// The mail quota of the server that opened this transaction.
    pub fn mail_quota(&self) -> crate::mail::MailQuota {
        self.mail_quota
    }

    /// The transaction's memo of type `M`, created empty on first use: what a crate read in
    /// this transaction and may reuse in later work of the same transaction (the job worker
    /// runs several jobs of a tenant in one). Each crate defines its own memo type, so memos
    /// never collide and need no string keys. Only for data the transaction's own work does
    /// not change, or that the memo's owner keeps up to date.
    pub fn memo<M: Default + Send + Sync + 'static>(&mut self) -> &mut M {
        let slot = self
            .memo
            .entry(TypeId::of::<M>())
            .or_insert_with(|| Box::new(M::default()));
        match slot.downcast_mut::<M>() {
            Some(memo) => memo,
            // The map is keyed by the type id of what it holds, so this cannot happen.
            None => unreachable!(
                "a memo of another type under {}",
                std::any::type_name::<M>()
            ),
        }
    }

    /// Marks the transaction as shared by several jobs (see the job worker): if any of them
    /// fails, the whole transaction is rolled back and each job runs again in its own.
    pub fn set_shared(&mut self) {
        self.shared = true;
    }

    /// Whether several jobs share this transaction. Work that would protect part of itself
    /// with a savepoint (to keep going after a failure) may simply fail instead: it will be
    /// run again alone, in a transaction of its own.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    pub fn tenant(&self) -> &TenantCtx {
        &self.tenant
    }

    /// The connection, for running queries inside the tenant context.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
