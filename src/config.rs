//! Configuration: built-in defaults, then `crm.toml` (or the file named by `--config` /
//! `CRM_CONFIG`), then `CRM_*` environment variables, then `DATABASE_URL`.

use crm_core::db::TenantIsolation;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The largest `uploads.max_bytes` accepted.
pub const MAX_UPLOAD_BYTES: u64 = 1024 * 1024 * 1024;

/// Every setting of the server. `Debug` hides its secrets (see below).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to serve on.
    pub listen: String,
    /// Postgres URL; when absent, `crm serve` runs a private cluster under `data_dir/pg`.
    pub database_url: Option<String>,
    /// Where local state lives (embedded Postgres, later files and mail).
    pub data_dir: PathBuf,
    /// `role` (SET LOCAL ROLE + search_path; default) or `schema` (search_path only, Citus).
    pub tenant_isolation: TenantIsolation,
    /// Connections in the pool.
    pub db_max_connections: u32,
    /// Recycle pooled connections after this many seconds, so backends' per-relation
    /// catalog caches (which grow with every tenant schema touched) stay bounded.
    pub db_max_lifetime_secs: u64,
    /// Session lifetime; it slides forward while the session is used.
    pub session_ttl_minutes: i64,
    /// Longest a session lives from its login, however much it is used (hours).
    pub session_max_hours: i64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Tenants whose casbin enforcer (and the grants of their users) is kept in memory.
    pub authz_cache_tenants: usize,
    /// Tenants whose object schemas (built-in and custom fields) are kept in memory.
    pub schema_cache_tenants: usize,
    /// Tenants whose registry row is cached per server (the cache is kept true by
    /// notifications; a miss reads `platform.tenants`).
    pub tenant_cache_size: usize,
    /// Bearer token `/metrics` asks for; unset, it answers only direct local clients.
    pub metrics_token: Option<String>,
    /// Longest a statement of a request's tenant transaction may run, in milliseconds (503
    /// `request.too_slow` beyond; 0: no limit).
    pub request_statement_timeout_ms: u64,
    /// The same for background jobs (rule runs, schedules, mail), which may read more.
    pub job_statement_timeout_ms: u64,
    /// Failed logins allowed per account and per client IP before locking.
    pub login_max_failures: i32,
    /// Failed (or unfinished) logins from one client address before it is locked: an office
    /// shares one address, so it gets far more than an account.
    pub login_max_failures_per_address: i32,
    /// Companies one client address may sign up in a burst before waiting an hour.
    pub signup_max_per_address: i32,
    /// Tenant schemas kept provisioned ahead of sign-up (the warm pool), refilled in the
    /// background; 0 turns the pool off (every sign-up provisions inline).
    pub signup_pool_size: usize,
    /// First lock after too many failures; doubles with each further failure.
    pub login_lock_secs: i64,
    /// Longest lock.
    pub login_lock_max_secs: i64,
    /// Take the client IP from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// `text` or `json` logs.
    pub log_format: String,
    /// Base64 of the 32-byte master key that wraps each tenant's data key (encrypted fields).
    /// When unset, `data_dir/master.key` is used, created on first start. Back it up: without
    /// it encrypted values cannot be read.
    pub master_key: Option<String>,
    /// Upgrade tenant schemas in the background when the server starts.
    pub auto_migrate_tenants: bool,
    /// Tenants migrated at once by `crm migrate` and the background upgrade.
    pub migrate_parallelism: usize,
    /// Run the durable job worker (reminders, mail) in this server.
    pub jobs_enabled: bool,
    /// How often an idle worker looks for due jobs, in milliseconds.
    pub jobs_poll_ms: u64,
    /// Tenants whose jobs a worker runs at once.
    pub jobs_concurrency: usize,
    /// Long-lived `crm-rules-sandbox` processes evaluating workflow rules (rule evaluations
    /// served at once); 0: one per core.
    pub rules_sandbox_processes: usize,
    /// Sandbox processes one tenant may hold at once; 0: half the pool (at least one).
    pub rules_sandbox_per_tenant: usize,
    /// Longest a rule save, dry run or rule job waits for a sandbox process (503
    /// `rules.sandbox_busy` for a person; a job is tried again later).
    pub rules_sandbox_wait_ms: u64,
    /// Outgoing mail (`[mail]` in crm.toml, `CRM_MAIL__TRANSPORT=smtp`, …).
    pub mail: crm_core::mail::MailSettings,
    /// Where attachments are stored (`[files]` in crm.toml: `kind = "local"` with an optional
    /// `dir`, default `<data_dir>/files`; or `kind = "s3"` with `bucket`, `region`, keys, …).
    #[serde(serialize_with = "serialize_without_nulls")]
    pub files: crm_core::files::FileStoreConfig,
    /// Limits on uploaded files (`[uploads]`: `max_bytes`, `allowed_types`).
    pub uploads: crm_core::files::UploadPolicy,
    /// Custom objects: `[objects]` with `max_per_tenant` (200) and `max_fields` (custom fields
    /// per object, 500).
    pub objects: crm_records::objects::ObjectLimits,
    /// Outbound calls (rule webhooks): `[outbound]` with `allow_http`, `allowed_ports`,
    /// `allow_private_addresses` (development only), `timeout_secs`.
    pub outbound: crm_core::outbound::OutboundPolicy,
    /// The URL users reach the server at, for links in mail (portal sign-in, surveys);
    /// default `http://<listen>`.
    pub public_url: Option<String>,
    /// GraphQL: `[graphql]` with `max_depth` (12), `max_complexity` (5000), `max_records`
    /// (records one request may read, 10000), `max_fields` (fields of a tenant's objects
    /// GraphQL serves, 20000), `schema_cache_tenants` (tenant schemas kept, 256) and
    /// `schema_cache_mb` (their estimated memory, 256).
    pub graphql: GraphqlConfig,
    /// Plugins: `[plugins]` with `tenant_uploads` (true), `package_bytes` (20 MiB),
    /// `cached_components` (compiled packages kept in memory, 64), `disable_after_failures`
    /// (10), `[plugins.defaults]` (an install's limits unless its admin sets them) and
    /// `[plugins.max]` (what no install may exceed). Compiled packages are cached under
    /// `data_dir/plugins/compiled`.
    pub plugins: crm_plugins::PlatformLimits,
    /// Imports: `[imports]` with `max_bytes` (the largest file, 512 MiB) and
    /// `retention_days` (how long an import's files are kept, 30).
    pub imports: crm_imports::ImportLimits,
    /// Exports: `[export]` with `async_rows` (XLSX exports above this many rows run as a job
    /// and answer 202, 10000), `max_rows` (1000000), `retention_hours` (how long a job's file
    /// stays downloadable, 24), `pdf_font` (a font with Chinese glyphs for PDFs, default
    /// Debian's fonts-noto-cjk `/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc`) and
    /// `pdf_font_index` (the face of a `.ttc`; default its Simplified Chinese one).
    #[serde(serialize_with = "serialize_without_nulls")]
    pub export: crm_records::export::ExportSettings,
}

/// `[graphql]` in crm.toml.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_records: usize,
    pub max_fields: usize,
    pub schema_cache_tenants: usize,
    pub schema_cache_mb: usize,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        let limits = crm_graphql::Limits::default();
        GraphqlConfig {
            max_depth: limits.max_depth,
            max_complexity: limits.max_complexity,
            max_records: limits.max_records,
            max_fields: limits.max_fields,
            schema_cache_tenants: 256,
            schema_cache_mb: limits.cache_mb,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: None,
            data_dir: PathBuf::from("./data"),
            tenant_isolation: TenantIsolation::Role,
            db_max_connections: 20,
            db_max_lifetime_secs: 1800,
            session_ttl_minutes: 12 * 60,
            session_max_hours: 7 * 24,
            max_body_bytes: 1024 * 1024,
            authz_cache_tenants: 1024,
            schema_cache_tenants: 1024,
            tenant_cache_size: 10_000,
            metrics_token: None,
            request_statement_timeout_ms: 15_000,
            job_statement_timeout_ms: 120_000,
            login_max_failures: 5,
            login_max_failures_per_address: 50,
            signup_max_per_address: 50,
            signup_pool_size: 5,
            login_lock_secs: 30,
            login_lock_max_secs: 3600,
            trust_forwarded_for: false,
            log_format: "text".into(),
            master_key: None,
            auto_migrate_tenants: true,
            migrate_parallelism: 4,
            jobs_enabled: true,
            jobs_poll_ms: 1000,
            jobs_concurrency: 4,
            rules_sandbox_processes: 0,
            rules_sandbox_per_tenant: 0,
            rules_sandbox_wait_ms: 10_000,
            mail: crm_core::mail::MailSettings::default(),
            files: crm_core::files::FileStoreConfig::default(),
            uploads: crm_core::files::UploadPolicy::default(),
            outbound: crm_core::outbound::OutboundPolicy::default(),
            objects: crm_records::objects::ObjectLimits::default(),
            public_url: None,
            graphql: GraphqlConfig::default(),
            plugins: crm_plugins::PlatformLimits::default(),
            imports: crm_imports::ImportLimits::default(),
            export: crm_records::export::ExportSettings::default(),
        }
    }
}

/// Serialises a nested setting without its unset (`null`) keys. The file and the environment
/// are layered over the serialised defaults, and a `dir: null` left from the default local
/// store would be an unknown key once `[files] kind = "s3"` is set.
fn serialize_without_nulls<T: Serialize, S: serde::Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut value = serde_json::to_value(value).map_err(serde::ser::Error::custom)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value.serialize(serializer)
}

impl Config {
    /// Loads the layered configuration. `file` defaults to `./crm.toml` when it exists.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "config file {} not found", path.display());
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("crm.toml")),
        }
        // Only CRM_ variables naming a setting: others (CRM_CONFIG, CRM_ADMIN_PASSWORD) belong
        // to the command line, while unknown keys in the file are still refused as typos.
        // Nested settings use a double underscore: CRM_MAIL__SMTP_URL.
        let known = Config::keys();
        let config: Config = figment
            .merge(
                Env::prefixed("CRM_")
                    .filter(move |key| {
                        let top = key.as_str().split("__").next().unwrap_or_default();
                        known.iter().any(|k| k.eq_ignore_ascii_case(top))
                    })
                    .split("__"),
            )
            .merge(Env::raw().only(&["database_url"]))
            .extract()?;
        config.validate()?;
        Ok(config)
    }

    /// The names of every setting.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.db_max_connections >= 2,
            "db_max_connections must be at least 2"
        );
        anyhow::ensure!(
            self.session_ttl_minutes > 0,
            "session_ttl_minutes must be positive"
        );
        anyhow::ensure!(
            self.session_max_hours > 0,
            "session_max_hours must be positive"
        );
        anyhow::ensure!(
            self.max_body_bytes >= 1024,
            "max_body_bytes must be at least 1024"
        );
        anyhow::ensure!(
            matches!(self.log_format.as_str(), "text" | "json"),
            "log_format must be 'text' or 'json'"
        );
        anyhow::ensure!(self.jobs_poll_ms >= 10, "jobs_poll_ms must be at least 10");
        anyhow::ensure!(
            self.jobs_concurrency >= 1,
            "jobs_concurrency must be at least 1"
        );
        // Excel holds 1,048,576 rows a sheet, the header included.
        anyhow::ensure!(
            (1..=1_048_575).contains(&self.export.max_rows),
            "export.max_rows must be between 1 and 1048575 (a spreadsheet's rows)"
        );
        anyhow::ensure!(
            self.export.retention_hours >= 1,
            "export.retention_hours must be at least 1"
        );
        // Uploads are held in memory while they are checked and stored.
        anyhow::ensure!(
            (1..=MAX_UPLOAD_BYTES).contains(&self.uploads.max_bytes),
            "uploads.max_bytes must be between 1 and {MAX_UPLOAD_BYTES} (1 GiB)"
        );
        Ok(())
    }

    /// The server's public base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The master key: `master_key`, else the key file under the data dir (created when
    /// `create` and missing, mode 0600).
    pub fn master_key(&self, create: bool) -> anyhow::Result<Option<crm_core::crypto::MasterKey>> {
        use crm_core::crypto::MasterKey;
        if let Some(raw) = &self.master_key {
            return Ok(Some(
                MasterKey::parse(raw).map_err(|e| anyhow::anyhow!("master_key: {e}"))?,
            ));
        }
        let path = self.data_dir.join("master.key");
        if path.exists() {
            let raw = std::fs::read_to_string(&path)?;
            return Ok(Some(
                MasterKey::parse(&raw).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            ));
        }
        if !create {
            return Ok(None);
        }
        let key = MasterKey::generate();
        std::fs::create_dir_all(&self.data_dir)?;
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(key.to_base64().as_bytes())?;
        }
        tracing::warn!(path = %path.display(), fingerprint = %key.fingerprint(), "generated a new master key; back it up — encrypted fields cannot be read without it");
        Ok(Some(key))
    }

    pub fn throttle_policy(&self) -> crm_tenants::throttle::ThrottlePolicy {
        crm_tenants::throttle::ThrottlePolicy {
            max_failures: self.login_max_failures,
            max_failures_per_address: self.login_max_failures_per_address,
            base_lock_secs: self.login_lock_secs,
            max_lock_secs: self.login_lock_max_secs,
        }
    }
}

/// The settings as JSON with the master key, passwords in URLs and the S3 secret replaced,
/// so a logged or printed configuration never carries a secret.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = serde_json::to_value(self).unwrap_or_default();
        if self.master_key.is_some() {
            shown["master_key"] = "<redacted>".into();
        }
        if self.metrics_token.is_some() {
            shown["metrics_token"] = "<redacted>".into();
        }
        if let Some(url) = self.mail.smtp_url.as_deref() {
            shown["mail"]["smtp_url"] = crm_core::mail::mask_url(url).into();
        }
        if let Some(url) = self.database_url.as_deref() {
            shown["database_url"] = crm_core::mail::mask_url(url).into();
        }
        if shown["files"].get("secret_access_key").is_some() {
            shown["files"]["secret_access_key"] = "<redacted>".into();
        }
        write!(f, "Config {shown}")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its own large error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_file_then_env_then_database_url() {
        Jail::expect_with(|jail| {
            jail.create_file("crm.toml", "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/crm\"\ntenant_isolation = \"schema\"\n")?;
            jail.set_env("CRM_DATA_DIR", "/var/lib/crm");
            jail.set_env("CRM_ADMIN_PASSWORD", "not a setting");
            jail.set_env("DATABASE_URL", "postgres://u@h/db");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.listen, "0.0.0.0:9000");
            assert_eq!(c.data_dir, PathBuf::from("/var/lib/crm"));
            assert_eq!(c.tenant_isolation, TenantIsolation::Schema);
            assert_eq!(c.database_url.as_deref(), Some("postgres://u@h/db"));
            assert_eq!(c.session_ttl_minutes, 720);
            Ok(())
        });
    }

    #[test]
    fn file_store_and_upload_limits_come_from_the_file_and_env() {
        use crm_core::files::{FileStoreConfig, DEFAULT_MAX_BYTES};
        Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.files, FileStoreConfig::Local { dir: None });
            assert_eq!(c.uploads.max_bytes, DEFAULT_MAX_BYTES);
            jail.create_file(
                "crm.toml",
                "[files]\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"cn-north-1\"\n\
                 bucket = \"crm\"\naccess_key_id = \"AK\"\nforce_path_style = true\n\
                 [uploads]\nmax_bytes = 1048576\nallowed_types = [\"image/png\"]\n",
            )?;
            jail.set_env("CRM_FILES__SECRET_ACCESS_KEY", "from-env");
            jail.set_env(
                "CRM_UPLOADS__ALLOWED_TYPES",
                r#"["image/png", "application/pdf"]"#,
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            let FileStoreConfig::S3(s3) = &c.files else {
                panic!("expected s3: {:?}", c.files);
            };
            assert_eq!(s3.bucket, "crm");
            assert_eq!(s3.secret_access_key, "from-env");
            assert!(s3.force_path_style);
            assert_eq!(c.uploads.max_bytes, 1_048_576);
            assert_eq!(c.uploads.allowed_types, ["image/png", "application/pdf"]);
            assert!(!format!("{c:?}").contains("from-env"), "secret redacted");

            jail.clear_env();
            jail.create_file(
                "crm.toml",
                "[files]\nkind = \"local\"\ndir = \"/srv/files\"\n",
            )?;
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.files,
                FileStoreConfig::Local {
                    dir: Some(PathBuf::from("/srv/files"))
                }
            );
            jail.create_file("crm.toml", "[uploads]\nmax_bytes = 0\n")?;
            assert!(Config::load(None).is_err_and(|e| e.to_string().contains("uploads.max_bytes")));
            jail.create_file("crm.toml", "[files]\nkind = \"ftp\"\n")?;
            assert!(Config::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn the_example_config_in_deploy_is_valid() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/crm.example.toml");
        Jail::expect_with(|_| {
            let config = Config::load(Some(Path::new(example))).expect("example loads");
            assert_eq!(config.mail.transport, "file");
            assert!(config.jobs_enabled);
            // The example states the plugin defaults as they are.
            assert_eq!(config.plugins, crm_plugins::PlatformLimits::default());
            assert_eq!(config.imports, crm_imports::ImportLimits::default());
            Ok(())
        });
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        Jail::expect_with(|jail| {
            jail.create_file("crm.toml", "lisen = \"0.0.0.0:9000\"\n")?;
            assert!(Config::load(None).is_err_and(|e| e.to_string().contains("lisen")));
            jail.create_file("crm.toml", "tenant_isolation = \"none\"\n")?;
            assert!(Config::load(None).is_err());
            jail.create_file("crm.toml", "log_format = \"xml\"\n")?;
            assert!(Config::load(None).is_err());
            assert!(Config::load(Some(Path::new("missing.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn debug_output_carries_no_secret() {
        let mut config = Config {
            master_key: Some("bWFzdGVyLWtleS1zZWNyZXQtYnl0ZXMtMDEyMzQ1Njc4OQ==".into()),
            database_url: Some("postgres://crm:db-secret-pw@db.internal/crm".into()),
            ..Config::default()
        };
        config.mail.smtp_url = Some("smtp://mailer:smtp-secret-pw@smtp.example.com:587".into());
        let shown = format!("{config:?}");
        for secret in ["bWFzdGVyLWtleS1zZWNyZXQ", "db-secret-pw", "smtp-secret-pw"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("smtp.example.com"), "{shown}");
    }
}
