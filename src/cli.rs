//! The `crm` command line.

use crate::config::Config;
use crate::embedded_pg::EmbeddedPostgres;
use crate::server;
use anyhow::Context;
use clap::{Parser, Subcommand};
use crm_core::db::Db;
use crm_core::domain::{DisplayName, Email, Password};
use crm_tenants::{registry, NewAdmin, NewTenant, TenantSlug};
use sqlx::PgPool;
use std::path::PathBuf;

/// TC CRM: multi-tenant CRM and service desk in one binary.
///
/// Without DATABASE_URL every command runs against a private PostgreSQL cluster kept under
/// $CRM_DATA_DIR/pg (default ./data/pg), created on first use.
#[derive(Parser, Debug)]
#[command(name = "crm", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: ./crm.toml when present). CRM_* variables override it.
    #[arg(long, global = true, env = "CRM_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (REST API, OpenAPI docs at /api/docs).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080; CRM_LISTEN).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Upgrade the platform schema and every tenant schema (resumable; bounded parallelism).
    Migrate {
        /// Tenants upgraded at once.
        #[arg(long)]
        parallelism: Option<usize>,
    },
    /// Manage tenants (companies).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Print the /api/v1 OpenAPI document the server serves (JSON), e.g. for the web app's
    /// generated types (`admin-ui/openapi.json`). Needs no database.
    Openapi,
    /// Plugins: describe a component, or run it locally in the server's host and limits.
    Plugin {
        #[command(subcommand)]
        command: crate::plugin_cli::PluginCommand,
    },
    /// Benchmarks (figures, not pass/fail).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant with its first administrator.
    Create {
        /// 3-40 characters a-z, 0-9, '-'.
        #[arg(long)]
        slug: String,
        /// Company name.
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_name: String,
        /// At least 10 characters (or set CRM_ADMIN_PASSWORD).
        #[arg(long, env = "CRM_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: String,
    },
    /// List tenants.
    List,
    /// Suspend a tenant: its users cannot log in, its tokens and keys are refused.
    Suspend { slug: String },
    /// Resume a suspended tenant.
    Resume { slug: String },
    /// Take a backup of a tenant now (as `POST /api/v1/backups` does, without the worker),
    /// store it in the file store and enter it in the tenant's backup list; with --out, also
    /// write the archive to a local file.
    Backup {
        slug: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Restore a backup into a NEW tenant: a fresh id, schema and role, the data upgraded to
    /// the current schema version, files copied under the new tenant's keys.
    Restore {
        /// An archive file (`.tar.zst`), or the id of a backup of the tenant given by --tenant.
        #[arg(long)]
        from: String,
        /// The tenant whose backup `--from` names by id.
        #[arg(long)]
        tenant: Option<String>,
        /// Slug of the new tenant.
        #[arg(long = "as")]
        as_slug: String,
        /// Company name of the new tenant (default: the archive's).
        #[arg(long)]
        name: Option<String>,
        /// The master key of the server the archive came from, when it is not this server's
        /// (the tenant's data key is re-wrapped under this server's).
        #[arg(long, env = "CRM_ARCHIVE_MASTER_KEY", hide_env_values = true)]
        archive_master_key: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Plugin host costs, no database: compile time, cold start from the compile cache, and
    /// per-call overhead (instantiate + on-event + drop) and events/s of a small component
    /// (default: plugins/tests/fixtures/probe.wasm).
    Plugins {
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 2000)]
        calls: usize,
    },
    /// Provision N tenants one after another and report median/p99 time per 100 tenants
    /// (password hashing excluded). The tenants are removed afterwards unless --keep.
    Provision {
        #[arg(long, default_value_t = 1000)]
        tenants: usize,
        #[arg(long)]
        keep: bool,
    },
    /// Sign N companies up one after another through the sign-up service, with the warm pool
    /// refilled between sign-ups, and report p50/p99 per 100 (password hashing excluded).
    /// The tenants and the pool's entries are removed afterwards unless --keep.
    Signup {
        #[arg(long, default_value_t = 1000)]
        tenants: usize,
        /// Entries kept ready (0: every sign-up provisions inline).
        #[arg(long, default_value_t = 5)]
        pool_size: usize,
        #[arg(long)]
        keep: bool,
    },
    /// Load N customers (or, with `--object policies`, a custom object's records) into a fresh
    /// tenant, serve it, and report p50/p95 HTTP latency of get, filtered list, search and
    /// create; for a custom object also the time to create one (its DDL). The tenant is removed
    /// afterwards unless --keep.
    Records {
        /// How many records to load.
        #[arg(long, alias = "records", default_value_t = 1_000_000)]
        customers: usize,
        /// `customers`, or `policies` (a custom object the benchmark defines).
        #[arg(long, default_value = "customers")]
        object: String,
        /// Requests per operation.
        #[arg(long, default_value_t = 300)]
        requests: usize,
        #[arg(long)]
        keep: bool,
    },
    /// Load N customers into a fresh tenant, serve it, and time their export as CSV and as
    /// XLSX (rows/s, size, peak memory) and one customer's PDF. The tenant is removed
    /// afterwards unless --keep.
    Export {
        #[arg(long, default_value_t = 100_000)]
        customers: usize,
        #[arg(long)]
        keep: bool,
    },
    /// The API against the SQL it stands for: get by id, filtered list, search, create and
    /// update, each driven over HTTP with K connections for S seconds, then run as raw SQL
    /// (one transaction per call, what the design needs) on a pool of K connections; prints
    /// req/s, p50/p99 and API ÷ raw. Starts the server on a fresh tenant of N customers
    /// (removed afterwards unless --keep), or measures the server at --url, whose database
    /// DATABASE_URL must name.
    Api(crate::bench::ApiBench),
    /// GraphQL: schema build time (cold and warm) and resident memory per cached schema for a
    /// tenant with `--fields` custom fields on every built-in object, then a customers
    /// connection against the equivalent REST list over HTTP (req/s, p50/p99, ratio).
    Graphql(crate::bench::GraphqlBench),
    /// Rule evaluation time through the sandbox, then end-to-end rule job throughput: one
    /// enabled rule in each of N tenants, M events committed, then drained by the worker.
    Rules {
        #[arg(long, default_value_t = 100)]
        tenants: usize,
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Tenants the worker serves at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long)]
        keep: bool,
    },
    /// Backup and restore of a tenant of N customers: time to take the backup (snapshot,
    /// archive, file store), archive size, time to restore it into a new tenant.
    Backup {
        #[arg(long, default_value_t = 100_000)]
        customers: usize,
        #[arg(long)]
        keep: bool,
    },
    /// The server's resident memory, read from outside, with N tenants active within a
    /// minute: N tenants are provisioned, `crm serve` starts as a child process on the same
    /// database (DATABASE_URL is required), and every tenant logs in and works a little.
    Tenants {
        #[arg(long, default_value_t = 1000)]
        active: usize,
        #[arg(long)]
        keep: bool,
    },
}

/// The database for a command: the configured URL, or the embedded cluster (started here).
pub struct Database {
    pub pool: PgPool,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    pub async fn open(config: &Config) -> anyhow::Result<Database> {
        let (url, embedded) = match &config.database_url {
            Some(url) => (url.clone(), None),
            None => {
                let dir = config.data_dir.join("pg");
                let pg = EmbeddedPostgres::start(&dir).await.context(
                    "starting the embedded PostgreSQL (set DATABASE_URL to use your own server)",
                )?;
                (pg.database_url().to_owned(), Some(pg))
            }
        };
        let pool = server::connect(config, &url).await?;
        Ok(Database { pool, embedded })
    }

    pub async fn close(mut self) -> anyhow::Result<()> {
        self.pool.close().await;
        if let Some(pg) = self.embedded.as_mut() {
            pg.stop().await?;
        }
        Ok(())
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    crate::wiring::install_record_hooks();
    let mut config = Config::load(cli.config.as_deref())?;
    crate::telemetry::init(&config.log_format);
    match cli.command {
        Command::Serve { listen } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            serve(config).await
        }
        Command::Plugin { command } => crate::plugin_cli::run(&config, command).await,
        Command::Openapi => {
            println!("{}", server::openapi_document(config)?);
            Ok(())
        }
        Command::Migrate { parallelism } => {
            let db = Database::open(&config).await?;
            crm_tenants::migrations::migrate_platform(&db.pool).await?;
            let report = crm_tenants::migrations::migrate_tenants(
                &db.pool,
                parallelism.unwrap_or(config.migrate_parallelism),
                100,
            )
            .await?;
            println!(
                "platform schema up to date; {} tenant schema(s) upgraded, {} failed",
                report.migrated,
                report.failed.len()
            );
            for (slug, error) in &report.failed {
                println!("  {slug}: {error}");
            }
            db.close().await?;
            anyhow::ensure!(
                report.failed.is_empty(),
                "some tenants were not upgraded; run `crm migrate` again after fixing the cause"
            );
            Ok(())
        }
        Command::Tenant { command } => {
            let db = Database::open(&config).await?;
            crm_tenants::migrations::migrate_platform(&db.pool).await?;
            let result = tenant_command(&config, &db.pool, command).await;
            db.close().await?;
            result
        }
        Command::Bench {
            command: BenchCommand::Plugins { file, calls },
        } => crate::bench::plugins(&config.data_dir, file, calls).await,
        Command::Bench { command } => {
            let db = Database::open(&config).await?;
            crm_tenants::migrations::migrate_platform(&db.pool).await?;
            let result = match command {
                BenchCommand::Provision { tenants, keep } => {
                    crate::bench::provision(
                        &Db::new(db.pool.clone(), config.tenant_isolation),
                        tenants,
                        keep,
                    )
                    .await
                }
                BenchCommand::Signup {
                    tenants,
                    pool_size,
                    keep,
                } => {
                    crate::bench::signup(
                        &Db::new(db.pool.clone(), config.tenant_isolation),
                        tenants,
                        pool_size,
                        keep,
                    )
                    .await
                }
                BenchCommand::Records {
                    customers,
                    object,
                    requests,
                    keep,
                } => match object.as_str() {
                    "customers" => {
                        crate::bench::records(&config, &db.pool, customers, requests, keep).await
                    }
                    "policies" => {
                        crate::bench::objects(&config, &db.pool, customers, requests, keep).await
                    }
                    other => Err(anyhow::anyhow!(
                        "--object {other}: the benchmark knows customers and policies"
                    )),
                },
                BenchCommand::Export { customers, keep } => {
                    crate::bench::export(&config, &db.pool, customers, keep).await
                }
                BenchCommand::Api(bench) => crate::bench::api(&config, &db.pool, &bench).await,
                BenchCommand::Graphql(bench) => {
                    crate::bench::graphql(&config, &db.pool, &bench).await
                }
                BenchCommand::Rules {
                    tenants,
                    events,
                    concurrency,
                    keep,
                } => {
                    crate::bench::rules(&config, &db.pool, tenants, events, concurrency, keep).await
                }
                BenchCommand::Backup { customers, keep } => {
                    crate::bench::backup(&config, &db.pool, customers, keep).await
                }
                BenchCommand::Tenants { active, keep } => {
                    crate::bench::tenants(&config, &db.pool, active, keep).await
                }
                BenchCommand::Plugins { .. } => Ok(()),
            };
            db.close().await?;
            result
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let db = Database::open(&config).await?;
    let data_dir = std::path::absolute(&config.data_dir).unwrap_or(config.data_dir.clone());
    let embedded = db.embedded.is_some();
    let mut running = server::start(config, db.pool.clone()).await?;
    tracing::info!(
        url = %format!("http://{}", running.addr),
        docs = %format!("http://{}/api/docs", running.addr),
        data_dir = %data_dir.display(),
        database = if embedded { "embedded (under data_dir/pg)" } else { "DATABASE_URL" },
        "TC CRM is serving"
    );
    let outcome = tokio::select! {
        r = running.wait() => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            running.stop().await
        }
    };
    db.close().await?;
    outcome
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = tokio::signal::unix::SignalKind::terminate();
        let Ok(mut term) = tokio::signal::unix::signal(terminate) else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn tenant_command(
    config: &Config,
    pool: &PgPool,
    command: TenantCommand,
) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create {
            slug,
            name,
            admin_email,
            admin_name,
            admin_password,
        } => {
            let field = |e: crm_core::FieldError| anyhow::anyhow!("{}: {}", e.field, e.message);
            let new = NewTenant {
                slug: TenantSlug::parse("--slug", &slug).map_err(field)?,
                name: DisplayName::parse("--name", &name).map_err(field)?,
            };
            let password = Password::parse("--admin-password", &admin_password).map_err(field)?;
            let password = crm_core::password_policy::PasswordPolicy::default()
                .vet("--admin-password", password.expose(), &[])
                .await?;
            let admin = NewAdmin {
                email: Email::parse("--admin-email", &admin_email).map_err(field)?,
                name: DisplayName::parse("--admin-name", &admin_name).map_err(field)?,
                password_hash: crm_core::identity::hash_password(password.expose()).await?,
            };
            let db = Db::new(pool.clone(), config.tenant_isolation);
            let p = crm_tenants::provision_tenant(&db, new, admin).await?;
            println!(
                "created tenant {} ({}) id {} schema {}; admin {}",
                p.tenant.slug, p.tenant.name, p.tenant.id, p.tenant.schema_name, p.admin.email
            );
        }
        TenantCommand::List => {
            println!(
                "{:<40} {:<10} {:>7}  {:<36}  name",
                "slug", "status", "schema", "id"
            );
            let mut after: Option<String> = None;
            loop {
                let page = registry::list(pool, after.as_deref(), 500).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.slug.clone());
                for t in &page {
                    println!(
                        "{:<40} {:<10} {:>7}  {:<36}  {}",
                        t.slug,
                        t.status,
                        format!("v{}", t.schema_version),
                        t.id,
                        t.name
                    );
                }
            }
        }
        TenantCommand::Suspend { slug } => {
            let t = registry::set_active(pool, &slug, false).await?;
            println!("tenant {} suspended", t.slug);
        }
        TenantCommand::Resume { slug } => {
            let t = registry::set_active(pool, &slug, true).await?;
            println!("tenant {} active", t.slug);
        }
        TenantCommand::Backup { slug, out } => {
            crate::backup_cli::backup(config, pool, &slug, out.as_deref()).await?;
        }
        TenantCommand::Restore {
            from,
            tenant,
            as_slug,
            name,
            archive_master_key,
        } => {
            let request = crate::backup_cli::RestoreRequest {
                from,
                tenant,
                as_slug,
                name,
                archive_master_key,
            };
            crate::backup_cli::restore(config, pool, request).await?;
        }
    }
    Ok(())
}
