//! One GraphQL request against one tenant: the request's single tenant transaction (shared by
//! every resolver, one at a time), the [`Caller`] built in it, and the per-request loaders.
//! Resolvers never see a pool: they lock [`Session::tx`] and call the record services with
//! [`Session::access`], which check permission, scope and masking themselves.

use crate::model::Model;
use async_graphql::ErrorExtensions;
use crm_core::audit::Actor;
use crm_core::authz::Caller;
use crm_core::context::RequestCtx;
use crm_core::crypto::{DataKey, MasterKey};
use crm_core::db::TenantTx;
use crm_core::read_limit::{self, ReadVerdict, Via};
use crm_core::Error;
use crm_plugins::PluginHost;
use crm_records::engine::Access;
use crm_records::{ObjectKey, ObjectSchema, SchemaCache};
use serde_json::Value;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{MappedMutexGuard, MutexGuard, OnceCell};
use uuid::Uuid;

/// Turns a service error into the problem document REST would answer (status, code, detail,
/// field errors …), so GraphQL errors carry the same `code`.
pub type ProblemOf = Arc<dyn Fn(Error) -> Value + Send + Sync>;

/// A tenant transaction opened for a credential, with the caller built inside it.
pub struct Opened {
    pub tx: TenantTx,
    pub caller: Caller,
    pub ctx: RequestCtx,
}

/// How the crate gets a tenant transaction for a request's credential: the server opens it
/// exactly as for REST (session or API key checked inside it). Subscriptions open one per
/// event, so a revoked session stops receiving.
#[async_trait::async_trait]
pub trait Door: Send + Sync {
    async fn open(&self) -> Result<Opened, Error>;
}

/// The state of one request.
pub struct Session {
    tx: tokio::sync::Mutex<Option<TenantTx>>,
    pub caller: Caller,
    pub ctx: RequestCtx,
    pub actor: Actor,
    pub model: Arc<Model>,
    /// Runs the plugins whose endpoints the schema's `ext` fields name.
    pub plugins: Option<Arc<PluginHost>>,
    master: Option<Arc<MasterKey>>,
    schemas: Arc<SchemaCache>,
    key: OnceCell<Option<DataKey>>,
    problem: ProblemOf,
    /// Per-request loaders by (kind, object, …); see `loaders.rs`.
    pub(crate) loaders: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
    /// Database calls made (a list, a batch, a mutation): reported as `dbCalls` in the
    /// response's extensions, so a client sees what a query cost.
    calls: AtomicUsize,
    /// Records read so far, against `max_records`.
    records: AtomicUsize,
    max_records: usize,
}

impl Session {
    pub(crate) fn new(
        opened: Opened,
        model: Arc<Model>,
        plugins: Option<Arc<PluginHost>>,
        master: Option<Arc<MasterKey>>,
        schemas: Arc<SchemaCache>,
        problem: ProblemOf,
        max_records: usize,
    ) -> Session {
        Session {
            actor: Actor::of(&opened.ctx),
            tx: tokio::sync::Mutex::new(Some(opened.tx)),
            caller: opened.caller,
            ctx: opened.ctx,
            model,
            plugins,
            master,
            schemas,
            key: OnceCell::new(),
            problem,
            loaders: Mutex::new(HashMap::new()),
            calls: AtomicUsize::new(0),
            records: AtomicUsize::new(0),
            max_records,
        }
    }

    /// Counts `n` records read; past the request's budget, fails with
    /// `graphql.too_many_records` (one tenant's nested lists must not load without end).
    pub fn spend(&self, n: usize) -> async_graphql::Result<()> {
        let total = self.records.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.max_records {
            return Err(self.fail(Error::bad_request(
                "graphql.too_many_records",
                format!(
                    "the query reads more than {} records in all; ask for fewer (a smaller first, fewer nested lists) or page with after",
                    self.max_records
                ),
            )));
        }
        Ok(())
    }

    pub(crate) fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Counts the customers a resolver hands out against the tenant's read limit, as REST
    /// does (`crm_core::read_limit`); a read over the limit freezes the user (committed with
    /// the request) and fails with `user.frozen`.
    pub async fn account(
        &self,
        tx: &mut TenantTx,
        object: ObjectKey,
        via: Via,
        ids: &[Uuid],
    ) -> async_graphql::Result<()> {
        if object != ObjectKey::Customers {
            return Ok(());
        }
        read_limit::account(tx, &self.caller, &self.ctx.meta, via, ids)
            .await
            .and_then(ReadVerdict::admit)
            .map_err(|e| self.fail(e))
    }

    /// The request's transaction, held until the guard drops (resolvers take turns).
    pub async fn tx(&self) -> Result<MappedMutexGuard<'_, TenantTx>, Error> {
        let guard = self.tx.lock().await;
        MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| Error::internal("the GraphQL request's transaction is already closed"))
    }

    /// One database call of a resolver: the transaction (counted in `dbCalls`) and `object`'s
    /// schema, errors already in GraphQL form.
    pub async fn begin(
        &self,
        object: ObjectKey,
    ) -> async_graphql::Result<(MappedMutexGuard<'_, TenantTx>, Arc<ObjectSchema>)> {
        let mut tx = self.tx().await.map_err(|e| self.fail(e))?;
        self.count_call();
        let schema = self
            .schema(&mut tx, object)
            .await
            .map_err(|e| self.fail(e))?;
        Ok((tx, schema))
    }

    /// Takes the transaction out to commit it; later resolvers fail.
    pub(crate) async fn take_tx(&self) -> Option<TenantTx> {
        self.tx.lock().await.take()
    }

    /// `object`'s schema at the request's metadata version, with the data key loaded when
    /// the object has encrypted fields.
    pub async fn schema(
        &self,
        tx: &mut TenantTx,
        object: ObjectKey,
    ) -> Result<Arc<ObjectSchema>, Error> {
        let schema = self
            .schemas
            .get(tx, object, self.ctx.principal.metadata_version)
            .await?;
        if schema.has_encrypted() && self.key.get().is_none() {
            let key = crm_core::keys::data_key(tx, self.master.as_deref(), false).await?;
            let _ = self.key.set(key);
        }
        Ok(schema)
    }

    /// How this request's caller reads and writes `object`.
    pub fn access(&self, object: ObjectKey) -> Access<'_> {
        Access::of_caller(
            &self.caller,
            &self.actor,
            object,
            self.key.get().and_then(Option::as_ref),
        )
    }

    /// The GraphQL error for a service error: the REST problem's detail as the message; its
    /// `code`, `status` and details (field errors, the existing record) in `extensions`.
    pub fn fail(&self, err: Error) -> async_graphql::Error {
        graphql_error(&self.problem, err)
    }
}

/// [`Session::fail`] where no session exists yet (authentication, schema loading).
pub fn graphql_error(problem: &ProblemOf, err: Error) -> async_graphql::Error {
    let doc = problem(err);
    let message = doc["detail"]
        .as_str()
        .unwrap_or("the request failed")
        .to_owned();
    async_graphql::Error::new(message).extend_with(|_, ext| {
        if let Some(map) = doc.as_object() {
            for (k, v) in map {
                if matches!(k.as_str(), "detail" | "type" | "title" | "instance") {
                    continue;
                }
                if let Ok(v) = async_graphql::Value::from_json(v.clone()) {
                    ext.set(k.as_str(), v);
                }
            }
        }
    })
}
