//! Assembles the HTTP server: shared state, middleware (request ids, body limit, metrics,
//! panics → 500 problem), the OpenAPI service under /api/v1, docs and operational endpoints.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::portal_pages;
use crate::rest::{
    self,
    error::{panic_response, problem_from_poem, Problem, REQUEST_ID},
};
use crate::webapp;
use crate::wiring;
use crate::worker::{Worker, WorkerSettings};
use chrono::Duration as ChronoDuration;
use crm_core::authz::Authorizer;
use crm_core::db::Db;
use crm_core::files::{FileStore, StoredKey};
use futures::StreamExt;
use poem::http::{header, HeaderValue, StatusCode};
use poem::listener::{Acceptor, TcpAcceptor};
use poem::middleware::CatchPanic;
use poem::{handler, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Wraps tenants' data keys; `None` disables encrypted fields.
    pub master_key: Option<Arc<crm_core::crypto::MasterKey>>,
    pub authz: Arc<Authorizer>,
    /// Object schemas per tenant and metadata version.
    pub schemas: Arc<crm_records::SchemaCache>,
    /// The tenant registry, cached; kept true by `crm_tenant_changed` notifications.
    pub tenants: Arc<crm_tenants::cache::TenantCache>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// The OpenAPI document, rendered once at start-up (the per-tenant one extends it).
    pub base_spec: Arc<std::sync::OnceLock<String>>,
    /// Where attachment bytes live (`[files]`), opened at start-up.
    pub files: Arc<dyn FileStore>,
    /// Runs workflow rules (the rhai sandbox pool), shared with the job worker.
    pub rules: crm_workflows::RuleEngine,
    /// The GraphQL gateway: per-tenant schemas (bounded), subscriptions' hub.
    pub graphql: Arc<crm_graphql::Gateway>,
    /// Runs plugins (one wasmtime engine, compiled packages cached), shared with the worker.
    pub plugins: crm_plugins::PluginHost,
    /// What imports run with (their own database handle, the file store), shared with the
    /// worker.
    pub imports: Arc<crm_imports::Deps>,
    /// Takes and restores per-tenant backups, shared with the worker.
    pub backups: crm_tenants::backup::Backups,
    /// The CJK font of printed PDFs (`[export] pdf_font`), read on first use.
    pub pdf_font: Arc<crm_records::export::pdf::PdfFont>,
}

impl AppState {
    pub fn new(
        config: Config,
        pool: PgPool,
        master_key: Option<Arc<crm_core::crypto::MasterKey>>,
        files: Arc<dyn FileStore>,
        rules: crm_workflows::RuleEngine,
    ) -> Self {
        let schemas = Arc::new(crm_records::SchemaCache::new(config.schema_cache_tenants));
        let db = Db::new(pool, config.tenant_isolation)
            .with_statement_timeout(config.request_statement_timeout_ms)
            .with_mail_quota(config.mail.quota());
        let plugins = crate::plugins::host(&config, db.clone(), master_key.clone(), rules.clone());
        let graphql =
            crate::graphql::gateway(&config, &schemas, master_key.as_ref(), plugins.clone());
        let backups = wiring::backups(&config, &db, files.clone(), master_key.clone());
        let imports = Arc::new(crm_imports::Deps {
            db: Db::new(db.pool.clone(), config.tenant_isolation)
                .with_statement_timeout(config.job_statement_timeout_ms),
            files: files.clone(),
            master: master_key.clone(),
            retention: ChronoDuration::days(i64::from(config.imports.retention_days)),
        });
        let pdf_font = Arc::new(crm_records::export::pdf::PdfFont::new(
            config.export.pdf_font.clone(),
            config.export.pdf_font_index,
        ));
        Self {
            backups,
            imports,
            plugins,
            pdf_font,
            files,
            rules,
            graphql,
            tenants: crm_tenants::cache::TenantCache::new(
                db.pool.clone(),
                config.tenant_cache_size,
            ),
            db,
            master_key,
            authz: Arc::new(Authorizer::new(config.authz_cache_tenants)),
            schemas,
            metrics: Arc::new(Metrics::new()),
            base_spec: Arc::new(std::sync::OnceLock::new()),
            config: Arc::new(config),
        }
    }

    pub fn session_ttl(&self) -> ChronoDuration {
        ChronoDuration::minutes(self.config.session_ttl_minutes)
    }

    /// How long a session may live at all, however much it is used.
    pub fn session_max_age(&self) -> ChronoDuration {
        ChronoDuration::hours(self.config.session_max_hours)
    }
}

/// The rule sandbox pool as configured: one process per core unless set, half of them per
/// tenant unless set.
fn sandbox_config(config: &Config) -> crm_workflows::PoolConfig {
    let defaults = crm_workflows::PoolConfig::default();
    let size = match config.rules_sandbox_processes {
        0 => defaults.size,
        n => n,
    };
    let per_tenant = match config.rules_sandbox_per_tenant {
        0 => crm_workflows::PoolConfig::default_share(size),
        n => n.min(size),
    };
    crm_workflows::PoolConfig {
        size,
        per_tenant,
        max_wait: Duration::from_millis(config.rules_sandbox_wait_ms.max(1)),
        ..defaults
    }
}

/// Opens the connection pool.
pub async fn connect(config: &Config, url: &str) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .max_lifetime(Duration::from_secs(config.db_max_lifetime_secs))
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
    Ok(pool)
}

/// The whole HTTP application.
pub fn app(state: AppState) -> impl Endpoint {
    let api = rest::service(state.clone());
    let generated = api.spec();
    let spec = rest::limits::document(&generated);
    // The UI embeds the document verbatim: show it the one that states the limits.
    let docs = api.swagger_ui_html().replacen(&generated, &spec, 1);
    let _ = state.base_spec.set(spec.clone());
    let portal = rest::portal::service(state.clone());
    let portal_spec = rest::limits::portal_document(&portal.spec());
    Route::new()
        .at("/api/v1/ext/:install/*path", crate::ext::call)
        .nest("/api/v1", api.around(rest::auth::cookie_session))
        .at("/portal/api/openapi.json", json_document(portal_spec))
        .nest("/portal/api", portal)
        // The pages the portal mails link to; the API stays under /portal/api.
        .at("/portal", poem::get(portal_pages::portal_page))
        .at("/portal/login", poem::get(portal_pages::portal_page))
        .at("/portal/survey", poem::get(portal_pages::portal_page))
        .at("/api/openapi.json", json_document(spec))
        .nest("/api/docs", Route::new().at("/", swagger_ui(docs)))
        .at(
            "/graphql",
            poem::get(crate::graphql::get).post(crate::graphql::post),
        )
        .at("/graphql/ws", poem::get(crate::graphql::ws))
        .at("/healthz", poem::get(healthz))
        .at("/readyz", poem::get(readyz))
        .at("/metrics", poem::get(prometheus_metrics))
        // The web app: its assets, and its page for every path it routes itself.
        .at("/", webapp::serve)
        .at("/*path", webapp::serve)
        .catch_all_error(|err| async move { problem_from_poem(err) })
        .around(limit_body)
        .with(CatchPanic::new().with_handler(|_| panic_response()))
        .around(observe)
        .data(state)
}

/// The /api/v1 OpenAPI document exactly as [`app`] serves it at `/api/openapi.json` (with the
/// limits stated), built without a database: `crm openapi` prints it for the web app's
/// generated types.
pub fn openapi_document(config: Config) -> anyhow::Result<String> {
    // A pool that never connects and a store that holds nothing: building the service only
    // reads its types, it never calls a handler.
    let pool = PgPoolOptions::new().connect_lazy("postgres://127.0.0.1/unused")?;
    let rules = crm_workflows::RuleEngine {
        pool: Arc::new(crm_workflows::SandboxPool::new(sandbox_config(&config))),
        master: None,
    };
    let state = AppState::new(config, pool, None, Arc::new(NoFiles), rules);
    Ok(rest::limits::document(&rest::service(state).spec()))
}

/// The file store of [`openapi_document`]'s state, which serves no request.
struct NoFiles;

#[async_trait::async_trait]
impl FileStore for NoFiles {
    async fn put(&self, _: &StoredKey, _: &str, _: Vec<u8>) -> crm_core::Result<()> {
        Err(crm_core::Error::internal("no file store"))
    }
    async fn get(&self, _: &StoredKey) -> crm_core::Result<Vec<u8>> {
        Err(crm_core::Error::internal("no file store"))
    }
    async fn delete(&self, _: &StoredKey) -> crm_core::Result<()> {
        Ok(())
    }
    async fn put_file(&self, _: &StoredKey, _: &str, _: &std::path::Path) -> crm_core::Result<()> {
        Err(crm_core::Error::internal("no file store"))
    }
    async fn get_range(&self, _: &StoredKey, _: u64, _: u64) -> crm_core::Result<Vec<u8>> {
        Err(crm_core::Error::internal("no file store"))
    }
    async fn get_to_file(&self, _: &StoredKey, _: &std::path::Path) -> crm_core::Result<u64> {
        Err(crm_core::Error::internal("no file store"))
    }
    fn kind(&self) -> &'static str {
        "none"
    }
}

/// Serves an OpenAPI document prepared at start-up.
fn json_document(document: String) -> impl Endpoint {
    poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json")
            .body(document.clone())
    })
}

/// Serves the Swagger UI page prepared at start-up.
fn swagger_ui(html: String) -> impl Endpoint {
    poem::endpoint::make_sync(move |_| poem::web::Html(html.clone()))
}

/// Request id, structured log line and metrics for every request.
async fn observe<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let request_id = req
        .header("x-request-id")
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let recorder = req.data::<AppState>().map(|s| s.metrics.clone());
    let started = Instant::now();
    let span = tracing::info_span!("request", id = %request_id, %method, %path);
    let result = REQUEST_ID
        .scope(
            request_id.clone(),
            async {
                match ep.call(req).await {
                    Ok(r) => r.into_response(),
                    Err(e) => problem_from_poem(e),
                }
            }
            .instrument(span),
        )
        .await;
    let mut resp = result;
    let status = resp.status();
    let elapsed = started.elapsed();
    tracing::info!(
        request_id = %request_id,
        %method,
        %path,
        status = status.as_u16(),
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    if let Some(m) = recorder {
        m.observe_request(&method, &path, status.as_u16(), elapsed);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}

/// Room for the multipart framing around an uploaded file (boundaries, part headers, fields).
const UPLOAD_OVERHEAD_BYTES: usize = 64 * 1024;

/// Refuses bodies over `max_body_bytes` with 413, whether or not Content-Length is sent. An
/// upload (`POST /api/v1/tickets/{id}/attachments`) may carry `uploads.max_bytes` plus its
/// multipart framing instead, and is refused as `file.too_large`.
async fn limit_body<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    if let Some(max) = req
        .data::<AppState>()
        .filter(|_| is_import_upload(&req))
        .map(|s| s.config.imports.max_bytes)
    {
        return stream_limited(ep, req, max).await;
    }
    let (limit, code, detail) = match req.data::<AppState>() {
        Some(s) if is_plugin_upload(&req) => {
            let max = s.config.plugins.package_bytes;
            (
                max.saturating_add(UPLOAD_OVERHEAD_BYTES),
                "plugin.too_large",
                format!("the package is larger than the limit of {max} bytes"),
            )
        }
        Some(s) if is_upload(&req) => {
            let max = s.config.uploads.max_bytes;
            (
                usize::try_from(max)
                    .unwrap_or(usize::MAX)
                    .saturating_add(UPLOAD_OVERHEAD_BYTES),
                "file.too_large",
                format!("the file is larger than the limit of {max} bytes; upload a smaller one"),
            )
        }
        state => {
            let limit = state.map_or(1024 * 1024, |s| s.config.max_body_bytes);
            (
                limit,
                "request.too_large",
                format!("the request body exceeds {limit} bytes"),
            )
        }
    };
    let too_large =
        || Problem::new(StatusCode::PAYLOAD_TOO_LARGE, code, detail.clone()).into_response();
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(too_large());
    }
    let body = req.take_body();
    match body.into_bytes_limit(limit).await {
        Ok(bytes) => req.set_body(bytes),
        Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large()),
        Err(e) => {
            return Ok(Problem::new(
                StatusCode::BAD_REQUEST,
                "request.invalid",
                format!("could not read the request body: {e}"),
            )
            .into_response())
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// An import's file is streamed to disk by its handler, never held here: the body passes
/// through with its size counted, and stops (the upload fails) past `max` plus framing.
async fn stream_limited<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    max: u64,
) -> poem::Result<Response> {
    let limit = max.saturating_add(UPLOAD_OVERHEAD_BYTES as u64);
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "import.too_large",
            format!("the file is larger than the limit of {max} bytes; split it"),
        )
        .into_response());
    }
    let mut seen = 0u64;
    let stream = req.take_body().into_bytes_stream().map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        if seen > limit {
            return Err(std::io::Error::other(format!(
                "the upload is larger than the limit of {max} bytes"
            )));
        }
        Ok(chunk)
    });
    req.set_body(poem::Body::from_bytes_stream(stream));
    ep.call(req).await.map(IntoResponse::into_response)
}

/// Whether `req` uploads a file to import (previews too).
fn is_import_upload(req: &Request) -> bool {
    req.method() == poem::http::Method::POST
        && matches!(
            req.uri().path().trim_end_matches('/'),
            "/api/v1/imports" | "/api/v1/imports/preview"
        )
}

/// Whether `req` uploads an attachment (the one route with its own body limit).
fn is_plugin_upload(req: &Request) -> bool {
    req.method() == poem::http::Method::POST
        && req.uri().path().trim_end_matches('/') == "/api/v1/plugins/packages"
}

fn is_upload(req: &Request) -> bool {
    req.method() == poem::http::Method::POST
        && req
            .uri()
            .path()
            .trim_end_matches('/')
            .strip_prefix("/api/v1/tickets/")
            .and_then(|rest| rest.strip_suffix("/attachments"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

#[handler]
fn healthz() -> poem::web::Json<serde_json::Value> {
    poem::web::Json(serde_json::json!({ "status": "ok" }))
}

#[handler]
async fn readyz(state: poem::web::Data<&AppState>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db.pool),
    )
    .await;
    match ping {
        Ok(Ok(_)) => poem::web::Json(serde_json::json!({ "status": "ready", "database": "ok" }))
            .into_response(),
        Ok(Err(e)) => not_ready(&e.to_string()),
        Err(_) => not_ready("timed out after 3 s"),
    }
}

fn not_ready(why: &str) -> Response {
    tracing::warn!(reason = why, "not ready: database unreachable");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "service.database_unreachable",
        "the database is not reachable; the server will recover when it is",
    )
    .into_response()
}

/// Who may read `/metrics`: with `metrics_token` set, a caller sending it as a bearer token;
/// without one, only a client on this machine talking directly (no `X-Forwarded-For`, so not
/// through a reverse proxy that would expose it to the internet).
fn metrics_refusal(req: &Request, config: &Config) -> Option<Response> {
    match config.metrics_token.as_deref() {
        Some(token) => {
            let sent = req
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            let matches = sent.len() == token.len()
                && sent
                    .bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0;
            (!matches).then(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "metrics.token_required",
                    "send the metrics token (metrics_token) as Authorization: Bearer <token>",
                )
                .into_response()
            })
        }
        None => {
            let local = req
                .remote_addr()
                .as_socket_addr()
                .is_some_and(|a| a.ip().is_loopback());
            let direct = local && req.header("x-forwarded-for").is_none();
            (!direct).then(|| {
                Problem::new(
                    StatusCode::FORBIDDEN,
                    "metrics.local_only",
                    "metrics are served to this machine only; set metrics_token to scrape them from elsewhere",
                )
                .into_response()
            })
        }
    }
}

#[handler]
fn prometheus_metrics(req: &Request, state: poem::web::Data<&AppState>) -> Response {
    if let Some(refused) = metrics_refusal(req, &state.config) {
        return refused;
    }
    state.metrics.set_authz_cached(state.authz.cached_tenants());
    state
        .metrics
        .set_cached("schemas", state.schemas.cached_tenants());
    state.metrics.set_cached("registry", state.tenants.len());
    state
        .metrics
        .set_cached("plugin_components", state.plugins.runtime.loaded_count());
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// A server running in the background (tests, `crm serve`).
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    worker: Option<Worker>,
    /// Listens for tenant changes for the registry cache.
    tenant_listener: JoinHandle<()>,
    /// Hears committed record changes for GraphQL subscriptions.
    change_listener: JoinHandle<()>,
    /// Keeps the sign-up pool filled (none with `signup_pool_size = 0`).
    signup_pool: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (10 s at most), then returns.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = (&mut self.task).await;
        if let Some(worker) = self.worker.take() {
            worker.stop().await;
        }
        self.tenant_listener.abort();
        self.change_listener.abort();
        if let Some(refill) = self.signup_pool.take() {
            refill.abort();
        }
        served??;
        Ok(())
    }

    /// Waits until the server ends by itself (it does not, unless it fails).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }
}

/// Migrates the platform schema, starts the background tenant upgrade if configured, binds
/// `config.listen` and serves.
pub async fn start(config: Config, pool: PgPool) -> anyhow::Result<Running> {
    wiring::install_record_hooks();
    crm_tenants::migrations::migrate_platform(&pool).await?;
    if config.auto_migrate_tenants {
        let pool = pool.clone();
        let parallelism = config.migrate_parallelism;
        tokio::spawn(async move {
            match crm_tenants::migrations::migrate_tenants(&pool, parallelism, 100).await {
                Ok(r) if r.migrated > 0 || !r.failed.is_empty() => tracing::info!(
                    migrated = r.migrated,
                    failed = r.failed.len(),
                    "tenant schemas upgraded"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "tenant schema upgrade failed"),
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or_else(|| anyhow::anyhow!("listener has no socket address"))?;
    let master_key = config.master_key(true)?.map(Arc::new);
    let files = crm_core::files::open(&config.files, &config.data_dir)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the attachment file store ([files]): {e}"))?;
    let rules = crm_workflows::RuleEngine {
        pool: Arc::new(crm_workflows::SandboxPool::new(sandbox_config(&config))),
        master: master_key.clone(),
    };
    let state = AppState::new(config, pool, master_key, files, rules);
    let config = state.config.clone();
    let worker = if config.jobs_enabled {
        Some(Worker::spawn(
            Db::new(state.db.pool.clone(), config.tenant_isolation)
                .with_statement_timeout(config.job_statement_timeout_ms)
                .with_mail_quota(config.mail.quota()),
            wiring::job_handlers(
                &config,
                state.master_key.clone(),
                &state.rules,
                Some(state.files.clone()),
                Some(state.plugins.clone()),
                Some(state.imports.clone()),
                Some(state.backups.clone()),
            )?,
            WorkerSettings {
                poll: Duration::from_millis(config.jobs_poll_ms),
                concurrency: config.jobs_concurrency,
                batch: 50,
                job_lease: ChronoDuration::minutes(5),
                tenant_lease: ChronoDuration::minutes(2),
            },
        ))
    } else {
        None
    };
    let tenant_listener = tokio::spawn(state.tenants.clone().listen());
    let change_listener = tokio::spawn(state.graphql.hub.clone().listen(state.db.pool.clone()));
    let signup_pool = (state.config.signup_pool_size > 0).then(|| {
        crate::signup_pool::spawn(
            Db::new(state.db.pool.clone(), state.config.tenant_isolation),
            state.config.signup_pool_size,
            state.metrics.clone(),
        )
    });
    let endpoint = app(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(
        poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            endpoint,
            async move {
                let _ = rx.await;
            },
            Some(Duration::from_secs(10)),
        ),
    );
    Ok(Running {
        addr,
        state,
        shutdown: Some(tx),
        task,
        worker,
        tenant_listener,
        change_listener,
        signup_pool,
    })
}
