//! crm-graphql: the GraphQL interface. A schema per tenant, generated from the tenant's
//! metadata with async-graphql's dynamic schema (one type per object, custom fields typed,
//! select options as enums), cached in a bounded LRU per (tenant, metadata version).
//! Resolvers call the record services (and, for the plugins' endpoints under `ext`,
//! `crm_plugins::endpoints`) with the request's `Caller`, in the request's one tenant
//! transaction; permission, scope and masking are the services' business, so this crate has
//! no permission check and no SQL of its own (a savepoint and a `pg_notify` aside).
//! It knows nothing of HTTP: the server authenticates, opens the transaction through a
//! [`Door`] and hands the request to [`Gateway::execute`].

pub mod ext;
pub mod limits;
pub mod loaders;
pub mod model;
pub mod mutate;
pub mod names;
pub mod resolve;
pub mod schema;
pub mod session;
pub mod subscribe;
pub mod types;
pub mod values;

pub use schema::Limits;
pub use session::{Door, Opened, ProblemOf};
pub use subscribe::{ChangeListener, Hub, SubscriberCtx};

use async_graphql::dynamic::Schema;
use async_graphql::{Request, Response, ServerError};
use crm_core::crypto::MasterKey;
use crm_core::db::TenantTx;
use crm_core::Error;
use crm_plugins::PluginHost;
use crm_records::{ObjectKey, SchemaCache};
use ext::ExtModel;
use lru::LruCache;
use model::Model;
use session::{graphql_error, Session};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Gives the errors async-graphql raises itself (syntax, validation, limits) a stable
/// `code` like every other error: `graphql.too_complex` (with the limit in the message) or
/// `graphql.invalid_query` (`graphql.too_deep` comes from [`limits::DepthLimit`]).
fn stable_code(e: &mut ServerError, limits: &Limits) {
    if e.extensions
        .as_ref()
        .is_some_and(|x| x.get("code").is_some())
    {
        return;
    }
    let code = if e.message.contains("too complex") {
        e.message = format!(
            "the query asks for more than {} fields in all; split it or select fewer fields",
            limits.max_complexity
        );
        "graphql.too_complex"
    } else {
        "graphql.invalid_query"
    };
    let ext = e.extensions.get_or_insert_with(Default::default);
    ext.set("code", code);
    ext.set("status", 400);
}

/// Resident memory a built schema keeps per GraphQL field of the tenant's objects (measured
/// by `crm bench graphql`: about 1 MB for the built-in objects alone, 3 MB with 50 custom
/// fields on each): what the cache's memory budget counts.
pub const KB_PER_FIELD: usize = 8;

/// One tenant's built schema.
pub struct TenantSchema {
    pub schema: Schema,
    pub model: Arc<Model>,
    pub metadata_version: i64,
    /// How long building it took (reported by `crm bench graphql`).
    pub build_time: Duration,
    /// Its estimated resident size, in KB.
    pub weight_kb: usize,
}

/// Built schemas, least recently used first out, bounded by count and estimated memory.
struct Cache {
    lru: LruCache<Uuid, Arc<TenantSchema>>,
    weight_kb: usize,
    budget_kb: usize,
}

impl Cache {
    fn put(&mut self, tenant: Uuid, schema: Arc<TenantSchema>) {
        self.weight_kb += schema.weight_kb;
        if let Some((_, out)) = self.lru.push(tenant, schema) {
            self.weight_kb = self.weight_kb.saturating_sub(out.weight_kb);
        }
        while self.weight_kb > self.budget_kb && self.lru.len() > 1 {
            match self.lru.pop_lru() {
                Some((_, out)) => self.weight_kb = self.weight_kb.saturating_sub(out.weight_kb),
                None => break,
            }
        }
    }
}

/// The GraphQL service: the schema cache and what resolvers need besides the request.
pub struct Gateway {
    cache: Mutex<Cache>,
    records: Arc<SchemaCache>,
    master: Option<Arc<MasterKey>>,
    limits: Limits,
    problem: ProblemOf,
    /// Runs plugin endpoints; without it the schema has no `ext`.
    plugins: Option<Arc<PluginHost>>,
    pub hub: Arc<Hub>,
}

impl Gateway {
    /// A gateway caching at most `tenants` schemas, and at most `limits.cache_mb` of them by
    /// estimated size.
    pub fn new(
        tenants: usize,
        records: Arc<SchemaCache>,
        master: Option<Arc<MasterKey>>,
        limits: Limits,
        problem: ProblemOf,
    ) -> Gateway {
        Gateway {
            cache: Mutex::new(Cache {
                lru: LruCache::new(NonZeroUsize::new(tenants.max(1)).unwrap_or(NonZeroUsize::MIN)),
                weight_kb: 0,
                budget_kb: limits.cache_mb.max(1) * 1024,
            }),
            records,
            master,
            limits,
            problem,
            plugins: None,
            hub: Hub::new(),
        }
    }

    /// Serves the endpoints of the tenants' plugins under `ext`, run by `host`.
    pub fn with_plugins(mut self, host: PluginHost) -> Gateway {
        self.plugins = Some(Arc::new(host));
        self
    }

    /// Schemas held now, and their estimated size in KB.
    pub fn cached(&self) -> (usize, usize) {
        self.cache
            .lock()
            .map_or((0, 0), |c| (c.lru.len(), c.weight_kb))
    }

    /// The tenant's schema at `metadata_version`: cached, or built from its objects and its
    /// enabled plugin installs read in `tx` (a field change, and an install whose endpoints
    /// appear or go, bumps the version, so only that tenant's schema is rebuilt, on its next
    /// request).
    pub async fn schema_for(
        &self,
        tx: &mut TenantTx,
        metadata_version: i64,
    ) -> Result<Arc<TenantSchema>, Error> {
        let tenant = tx.tenant().id;
        if let Ok(mut cache) = self.cache.lock() {
            if let Some(hit) = cache
                .lru
                .get(&tenant)
                .filter(|s| s.metadata_version == metadata_version)
            {
                return Ok(hit.clone());
            }
        }
        let started = Instant::now();
        let mut schemas = Vec::new();
        for object in ObjectKey::ALL {
            schemas.push(self.records.get(tx, *object, metadata_version).await?);
        }
        for def in crm_core::objects::list(tx).await? {
            schemas.push(
                self.records
                    .get(tx, ObjectKey::Custom(def.key), metadata_version)
                    .await?,
            );
        }
        let fields: usize = schemas
            .iter()
            .map(|s| s.all().count() + model::SYSTEM_FIELD_COUNT)
            .sum();
        if fields > self.limits.max_fields {
            return Err(Error::bad_request(
                "graphql.schema_too_large",
                format!(
                    "this company's objects have {fields} fields in all, more than GraphQL serves ({}); use the REST API, or remove unused fields and objects",
                    self.limits.max_fields
                ),
            ));
        }
        let ext = match self.plugins {
            Some(_) => ExtModel::build(&crm_plugins::installs::served(tx).await?),
            None => ExtModel::default(),
        };
        let model = Arc::new(Model::build(schemas, &mut names::Registry::default()));
        let weight_kb = (model
            .objects
            .iter()
            .map(|o| o.all_fields().count())
            .sum::<usize>()
            + ext.len())
            * KB_PER_FIELD;
        let schema = schema::build(model.clone(), &ext, self.limits)
            .map_err(|e| Error::internal(format!("GraphQL schema of tenant {tenant}: {e}")))?;
        let built = Arc::new(TenantSchema {
            schema,
            model,
            metadata_version,
            build_time: started.elapsed(),
            weight_kb,
        });
        if let Ok(mut cache) = self.cache.lock() {
            let newer = cache
                .lru
                .peek(&tenant)
                .is_some_and(|s| s.metadata_version > metadata_version);
            if !newer {
                cache.put(tenant, built.clone());
            }
        }
        Ok(built)
    }

    /// Runs a query or mutation in the tenant transaction `opened` holds, then commits it.
    /// The response's `extensions.dbCalls` says how many database calls the resolvers made.
    pub async fn execute(&self, mut opened: Opened, request: Request) -> Response {
        let version = opened.ctx.principal.metadata_version;
        let compiled = match self.schema_for(&mut opened.tx, version).await {
            Ok(s) => s,
            Err(e) => return self.failed(e),
        };
        let session = Arc::new(Session::new(
            opened,
            compiled.model.clone(),
            self.plugins.clone(),
            self.master.clone(),
            self.records.clone(),
            self.problem.clone(),
            self.limits.max_records,
        ));
        let mut response = compiled.schema.execute(request.data(session.clone())).await;
        for e in &mut response.errors {
            stable_code(e, &self.limits);
        }
        response.extensions.insert(
            "dbCalls".into(),
            async_graphql::Value::from(session.calls() as u64),
        );
        if let Some(tx) = session.take_tx().await {
            if let Err(e) = tx.commit().await {
                return self.failed(e);
            }
        }
        response
    }

    /// A response carrying one error, as the REST problem would say it.
    pub fn failed_with(&self, err: Error) -> ServerError {
        let e = graphql_error(&self.problem, err);
        ServerError {
            message: e.message,
            source: None,
            locations: Vec::new(),
            path: Vec::new(),
            extensions: e.extensions,
        }
    }

    /// A response carrying one error, as the REST problem would say it.
    pub fn failed(&self, err: Error) -> Response {
        Response::from_errors(vec![self.failed_with(err)])
    }

    /// What a subscription over WebSocket needs: it opens its own transactions per event.
    pub fn subscriber(&self, door: Arc<dyn Door>, tenant: Uuid) -> Arc<SubscriberCtx> {
        Arc::new(SubscriberCtx {
            door,
            tenant,
            hub: self.hub.clone(),
            schemas: self.records.clone(),
            master: self.master.clone(),
            problem: self.problem.clone(),
        })
    }
}
