//! The test harness: `TestApp::spawn()` starts the real server in-process on a random port
//! against a fresh database cloned from a migrated template (milliseconds per test), connected
//! as a NON-superuser role, and drops the database and the tenants' roles afterwards.

use crm::config::Config;
use crm::server::{self, Running};
use crm_core::db::TenantIsolation;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::OnceCell;

/// The application role the server runs as in tests: CREATEROLE, not superuser.
pub const APP_ROLE: &str = "crm_test_app";
pub const PASSWORD: &str = "correct horse battery";

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn url_for(database: &str, user: &str) -> String {
    let admin = admin_url();
    let mut url = reqwest::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{database}"));
    if url.username() != user {
        // The app role logs in without a password (local trust auth, as on CI machines).
        let _ = url.set_username(user);
        let _ = url.set_password(None);
    }
    url.to_string()
}

/// The superuser of TEST_DATABASE_URL (`postgres` by default).
fn admin_user() -> String {
    reqwest::Url::parse(&admin_url())
        .map(|u| u.username().to_owned())
        .unwrap_or_else(|_| "postgres".to_owned())
}

/// Hash of the platform migrations: a changed migration gets a new template.
fn template_name() -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tenants/migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut h = DefaultHasher::new();
    for f in files {
        std::fs::read(&f).expect("migration readable").hash(&mut h);
    }
    format!("crm_tpl_{:016x}", h.finish())
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut admin = PgConnection::connect(&admin_url()).await.expect("connect as postgres (is PostgreSQL running on 127.0.0.1:5432? set TEST_DATABASE_URL otherwise)");
            // Serialise template creation across test processes.
            admin.execute("SELECT pg_advisory_lock(72201)").await.expect("lock");
            let role_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(APP_ROLE)
                .fetch_one(&mut admin)
                .await
                .expect("role lookup");
            if !role_exists {
                admin
                    .execute(format!("CREATE ROLE {APP_ROLE} LOGIN CREATEROLE NOSUPERUSER").as_str())
                    .await
                    .expect("create app role");
            }
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .expect("template lookup");
            if !exists {
                let building = format!("{name}_build");
                admin.execute(format!("DROP DATABASE IF EXISTS {building}").as_str()).await.expect("drop stale");
                admin
                    .execute(format!("CREATE DATABASE {building} OWNER {APP_ROLE}").as_str())
                    .await
                    .expect("create template");
                let pool = PgPool::connect(&url_for(&building, APP_ROLE)).await.expect("connect template");
                crm_tenants::migrations::migrate_platform(&pool).await.expect("migrate template");
                pool.close().await;
                admin
                    .execute(format!("ALTER DATABASE {building} RENAME TO {name}").as_str())
                    .await
                    .expect("publish template");
            }
            admin.execute("SELECT pg_advisory_unlock(72201)").await.expect("unlock");
            name
        })
        .await
}

/// The `tce_…` token in a confirmation mail's body.
pub fn confirmation_token_in(body: &str) -> Option<String> {
    let start = body.find("token=tce_")? + "token=".len();
    Some(
        body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect(),
    )
}

/// The `id` of a JSON record.
pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Polls `probe` every 100 ms until it returns `Some` (20 s at most): for effects of the
/// background job worker (mail, reminders, SLA timers).
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A signed-up tenant and its administrator's session.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub admin_id: String,
    pub admin_email: String,
    pub token: String,
}

/// A response: status, headers, JSON body (Null when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {:#}",
            self.body
        );
        self.body
    }

    /// Asserts a problem+json with the status and code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Value {
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = self.expect(status);
        assert_eq!(
            ct, "application/problem+json",
            "content type; body {body:#}"
        );
        assert_eq!(body["code"], code, "problem code; body {body:#}");
        assert_eq!(body["status"], status);
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "detail present"
        );
        body
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// A pool connected like the server (as the app role) for direct SQL checks.
    pub pool: PgPool,
    pub database: String,
    /// The server's configuration (its own data dir under the system temp dir).
    pub config: Config,
    running: Option<Running>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A slug unique across the test run.
pub fn unique_slug(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}-{}-{n}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_isolation(isolation: TenantIsolation) -> TestApp {
        Self::spawn_with(|c| c.tenant_isolation = isolation).await
    }

    /// Starts a server whose configuration `adjust` may change.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let template = template().await;
        let database = format!("crm_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("connect admin");
        admin
            .execute(
                format!("CREATE DATABASE {database} TEMPLATE {template} OWNER {APP_ROLE}").as_str(),
            )
            .await
            .expect("clone template");
        admin.close().await.ok();
        let url = url_for(&database, APP_ROLE);
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            database_url: Some(url.clone()),
            data_dir: std::env::temp_dir().join(&database),
            db_max_connections: 5,
            auto_migrate_tenants: false,
            master_key: Some(crm_core::crypto::MasterKey::generate().to_base64()),
            jobs_poll_ms: 100,
            // No warm pool unless a test asks (tests/api/signup_pool.rs): every test server
            // would otherwise provision five spare tenants in the background.
            signup_pool_size: 0,
            ..Config::default()
        };
        adjust(&mut config);
        let pool = server::connect(&config, &url)
            .await
            .expect("connect app pool");
        let running = server::start(config.clone(), pool.clone())
            .await
            .expect("server starts");
        TestApp {
            base: format!("http://{}", running.addr),
            client: reqwest::Client::new(),
            pool,
            database,
            config,
            running: Some(running),
        }
    }

    /// Stops the server (letting its worker finish the jobs in hand) and starts a new one on
    /// the same database and data dir, as after a redeploy; `base` follows the new address.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Stops the server and its worker.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("server stops cleanly");
        }
    }

    /// Starts the server again after [`TestApp::stop`].
    pub async fn start_again(&mut self) {
        let running = self.start_peer().await;
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    /// Another server on the same database (a second replica).
    pub async fn start_peer(&self) -> Running {
        let pool = server::connect(
            &self.config,
            self.config.database_url.as_deref().expect("url"),
        )
        .await
        .expect("connect app pool");
        server::start(self.config.clone(), pool)
            .await
            .expect("server starts")
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// The `items` of a page read with GET (expects 200).
    pub async fn items(&self, path: &str, token: &str) -> Vec<Value> {
        self.get(path, token).await.expect(200)["items"]
            .as_array()
            .expect("items")
            .clone()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Signs a new tenant up; returns its admin session.
    pub async fn signup(&self) -> Tenant {
        let slug = unique_slug("t");
        let email = format!("admin@{slug}.example.com");
        let body = self
            .call(
                Method::POST,
                "/api/v1/signup",
                None,
                Some(json!({
                    "tenant_slug": slug,
                    "tenant_name": "测试公司 Test Co",
                    "admin_email": email,
                    "admin_password": PASSWORD,
                    "admin_name": "张伟",
                })),
            )
            .await
            .expect(201);
        Tenant {
            id: body["tenant"]["id"].as_str().expect("tenant id").to_owned(),
            slug,
            admin_id: body["user"]["id"].as_str().expect("user id").to_owned(),
            admin_email: email,
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    /// Verifies a tenant the way its administrator does: opens the link of the verification
    /// mail sent at sign-up (the worker must be running and mail going to files).
    pub async fn verify(&self, t: &Tenant) {
        let token = self.confirmation_token(t, &t.admin_email).await;
        let done = self
            .call(
                Method::GET,
                &format!("/api/v1/auth/verify-email?token={token}"),
                None,
                None,
            )
            .await
            .expect(200);
        assert_eq!(done["verified"], true, "{done}");
    }

    /// A signed-up tenant, verified ([`TestApp::verify`]).
    pub async fn signup_verified(&self) -> Tenant {
        let t = self.signup().await;
        self.verify(&t).await;
        t
    }

    /// The token of the newest confirmation link mailed (file transport) to `to`.
    pub async fn confirmation_token(&self, t: &Tenant, to: &str) -> String {
        let (dir, slug, to) = (self.config.data_dir.clone(), t.slug.clone(), to.to_owned());
        eventually("a confirmation mail", || {
            let (dir, slug, to) = (dir.clone(), slug.clone(), to.clone());
            async move {
                crate::mail::account_mail(&dir, &slug)
                    .iter()
                    .filter(|m| m["to"].as_str().is_some_and(|a| a.contains(&to)))
                    .filter_map(|m| confirmation_token_in(m["body"].as_str()?))
                    .next_back()
            }
        })
        .await
    }

    pub async fn login(&self, tenant: &str, email: &str, password: &str) -> Resp {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "tenant": tenant, "email": email, "password": password })),
        )
        .await
    }

    /// Creates a user with `roles` in `tenant`, logs them in; returns (user id, token).
    pub async fn user_with_roles(&self, tenant: &Tenant, roles: &[&str]) -> (String, String) {
        let email = format!("{}@{}.example.com", unique_slug("u"), tenant.slug);
        let user = self
            .post(
                "/api/v1/users",
                &tenant.token,
                json!({ "email": email, "name": "李娜", "password": PASSWORD, "roles": roles }),
            )
            .await
            .expect(201);
        let token = self.login(&tenant.slug, &email, PASSWORD).await.expect(200)["token"]
            .as_str()
            .expect("token")
            .to_owned();
        (user["id"].as_str().expect("id").to_owned(), token)
    }

    /// The schema name of a tenant, from the registry.
    pub async fn schema_of(&self, tenant: &Tenant) -> String {
        sqlx::query_scalar("SELECT schema_name FROM platform.tenants WHERE slug = $1")
            .bind(&tenant.slug)
            .fetch_one(&self.pool)
            .await
            .expect("tenant row")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let database = self.database.clone();
        let _ = std::fs::remove_dir_all(&self.config.data_dir);
        let running = self.running.take();
        drop(running);
        // Cleanup needs async I/O but Drop is sync: do it on a thread with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url()).await.ok()?;
                let mut db = PgConnection::connect(&url_for(&database, &admin_user()))
                    .await
                    .ok()?;
                // Tenants' roles and the unclaimed sign-up pool's (same naming).
                let roles: Vec<String> = sqlx::query_scalar(
                    "SELECT schema_name FROM platform.tenants \
                     UNION ALL SELECT 't_' || replace(id::text, '-', '') FROM platform.tenant_pool",
                )
                .fetch_all(&mut db)
                .await
                .unwrap_or_default();
                db.close().await.ok();
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                for role in roles {
                    let _ = admin
                        .execute(format!("DROP ROLE IF EXISTS \"{role}\"").as_str())
                        .await;
                }
                Some(())
            })
        });
        let _ = cleanup.join();
    }
}
