//! Embedded PostgreSQL: a private cluster under the data dir for the zero-config `crm serve`.
//!
//! When no `DATABASE_URL` is configured, `crm serve` runs its own PostgreSQL cluster using the
//! machine's PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`). Layout under the
//! directory given to [`EmbeddedPostgres::start`]:
//!
//! * `cluster/`      the cluster itself (PGDATA)
//! * `run/`          the unix socket directory (mode 0700)
//! * `postgres.log`  the server log
//! * `credentials`   mode 0600, `key=value` lines: `superuser_password` (role `postgres`) and
//!   `app_password` (role `crm`); generated on the first start and re-read on later starts.
//!
//! PostgreSQL refuses to run as root, so when this process runs as root the binaries are run
//! as the `postgres` system user through `runuser`; otherwise they run as the current user.
//! The server only listens on 127.0.0.1 (password authentication, scram-sha-256) and on the
//! unix socket in `run/` (trust authentication, but the directory is private to the owner).
//! The application connects as the non-superuser role `crm`, owner of the database `crm`.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rand::Rng as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::process::Command;

/// Role and database used by the application.
const APP_ROLE: &str = "crm";
const APP_DATABASE: &str = "crm";
/// Bootstrap superuser created by initdb.
const SUPERUSER: &str = "postgres";
/// System user that runs the server when we are root.
const SYSTEM_USER: &str = "postgres";

const NOT_FOUND_MSG: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them \
     (Debian/Ubuntu: `apt-get install postgresql`), or set DATABASE_URL to use an existing server.";

/// Longest usable unix socket path (sun_path is 108 bytes including the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How long `pg_ctl start`/`stop` may wait for the server.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// How long to keep retrying the bootstrap connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const START_ATTEMPTS: usize = 3;
const LOG_TAIL_LINES: usize = 20;

/// A running private PostgreSQL cluster. Stopped by [`EmbeddedPostgres::stop`] or on drop.
pub struct EmbeddedPostgres {
    dir: PathBuf,
    cluster: PathBuf,
    pg_ctl: PathBuf,
    runner: Runner,
    port: u16,
    database_url: String,
    running: bool,
}

impl fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL holds the password: never print it.
        f.debug_struct("EmbeddedPostgres")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl EmbeddedPostgres {
    /// Initialises (first run) and starts the cluster under `dir` (e.g. `./data/pg`).
    pub async fn start(dir: &Path) -> anyhow::Result<EmbeddedPostgres> {
        let runner = Runner::detect()?;

        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("cannot resolve the data directory {}", dir.display()))?;
        let cluster = dir.join("cluster");
        let run_dir = dir.join("run");
        let log_file = dir.join("postgres.log");
        let initialised = cluster.join("PG_VERSION").is_file();

        let bins = find_binaries(cluster_version(&cluster).as_deref())?;
        tracing::debug!(bin_dir = %bins.dir.display(), "using PostgreSQL server binaries");

        prepare_layout(&runner, &dir, &cluster, &run_dir, &log_file, initialised)?;
        runner.check_traversable(&dir).await?;

        let mut creds = Credentials::load_or_create(&dir.join("credentials"))?;

        if !initialised {
            tracing::info!(
                "initialising the embedded PostgreSQL cluster in {} (first run)",
                cluster.display()
            );
            initdb(&runner, &bins, &dir, &cluster, &mut creds).await?;
        }

        // Unix sockets have a short path limit; without one we bootstrap over TCP.
        let socket_dir = (run_dir.as_os_str().len() + ".s.PGSQL.65535".len() < MAX_SOCKET_PATH)
            .then_some(run_dir.clone());
        if socket_dir.is_none() {
            tracing::warn!(
                "data directory path is too long for a unix socket; the embedded PostgreSQL \
                 only listens on TCP"
            );
        }

        let mut pg = EmbeddedPostgres {
            dir: dir.clone(),
            cluster: cluster.clone(),
            pg_ctl: bins.pg_ctl.clone(),
            runner,
            port: 0,
            database_url: String::new(),
            running: false,
        };

        let (port, socket_dir) = if pg.status().await? {
            let pid = read_postmaster_pid(&cluster)?;
            tracing::info!(
                "embedded PostgreSQL is already running (pid {}), reusing it",
                pid.pid
            );
            (pid.port, pid.socket_dir.or(socket_dir))
        } else {
            let port = pg.start_server(&log_file, socket_dir.as_deref()).await?;
            (port, socket_dir)
        };
        pg.port = port;
        pg.running = true;

        // From here on, dropping `pg` stops the server again if bootstrap fails.
        bootstrap(port, socket_dir.as_deref(), &creds).await?;

        pg.database_url = format!(
            "postgres://{APP_ROLE}:{}@127.0.0.1:{port}/{APP_DATABASE}",
            creds.app_password
        );
        tracing::info!(
            "embedded PostgreSQL running on 127.0.0.1:{port}, data in {} (log: {})",
            dir.display(),
            log_file.display()
        );
        Ok(pg)
    }

    /// Connection URL for the application role (not the superuser), e.g.
    /// postgres://crm:<password>@127.0.0.1:<port>/crm
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Directory holding the cluster.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the cluster (pg_ctl stop -m fast). Idempotent.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        let mut cmd = Command::from(self.stop_command());
        let output = spawn_output(&mut cmd, "pg_ctl stop").await?;
        if !output.status.success() && self.status().await? {
            bail!(
                "could not stop the embedded PostgreSQL in {}: {}",
                self.cluster.display(),
                command_message(&output)
            );
        }
        self.running = false;
        tracing::info!("embedded PostgreSQL stopped");
        Ok(())
    }

    fn stop_command(&self) -> std::process::Command {
        let mut cmd = self.runner.command(&self.pg_ctl, &self.dir);
        cmd.arg("stop").arg("-D").arg(&self.cluster).args([
            "-m",
            "fast",
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
        ]);
        cmd
    }

    /// Whether a server is running on the cluster (`pg_ctl status`).
    async fn status(&self) -> anyhow::Result<bool> {
        let mut cmd = Command::from(self.runner.command(&self.pg_ctl, &self.dir));
        cmd.arg("status").arg("-D").arg(&self.cluster);
        let output = spawn_output(&mut cmd, "pg_ctl status").await?;
        // 0: running, 3: not running, 4: no (accessible) data directory.
        match output.status.code() {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            _ => bail!(
                "cannot check the state of the embedded PostgreSQL in {}: {}",
                self.cluster.display(),
                command_message(&output)
            ),
        }
    }

    /// Starts the server on a free port; returns the port.
    async fn start_server(
        &self,
        log_file: &Path,
        socket_dir: Option<&Path>,
    ) -> anyhow::Result<u16> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let log_offset = std::fs::metadata(log_file).map(|m| m.len()).unwrap_or(0);
            let socket_opt = match socket_dir {
                Some(d) => shell_quote(&d.to_string_lossy()),
                None => "''".to_owned(),
            };
            let options = format!("-p {port} -k {socket_opt} -c listen_addresses=127.0.0.1");

            let mut cmd = Command::from(self.runner.command(&self.pg_ctl, &self.dir));
            cmd.arg("start")
                .arg("-D")
                .arg(&self.cluster)
                .arg("-l")
                .arg(log_file)
                .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, "-o"])
                .arg(&options);
            let output = spawn_output(&mut cmd, "pg_ctl start").await?;
            if output.status.success() {
                return Ok(port);
            }

            let new_log = read_from(log_file, log_offset);
            let port_taken = new_log.contains("Address already in use")
                || new_log.contains("could not create any TCP/IP sockets");
            if port_taken && attempt < START_ATTEMPTS {
                tracing::warn!("port {port} was taken while starting PostgreSQL, retrying");
                continue;
            }
            bail!(
                "the embedded PostgreSQL in {} failed to start: {}\nLast lines of {}:\n{}",
                self.cluster.display(),
                command_message(&output),
                log_file.display(),
                log_tail(log_file, LOG_TAIL_LINES)
            );
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let result = self
            .stop_command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match result {
            Ok(output) if output.status.success() => {
                tracing::info!("embedded PostgreSQL stopped");
            }
            Ok(output) => tracing::warn!(
                "could not stop the embedded PostgreSQL in {}: {}",
                self.cluster.display(),
                command_message(&output)
            ),
            Err(e) => tracing::warn!("could not run pg_ctl stop: {e}"),
        }
        self.running = false;
    }
}

/// How the PostgreSQL binaries are run: directly, or as the `postgres` user when we are root.
#[derive(Clone)]
struct Runner {
    as_postgres: Option<AsPostgres>,
}

#[derive(Clone)]
struct AsPostgres {
    runuser: PathBuf,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

impl Runner {
    fn detect() -> anyhow::Result<Runner> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(Runner { as_postgres: None });
        }
        let user = nix::unistd::User::from_name(SYSTEM_USER)
            .context("cannot look up the `postgres` system user")?
            .ok_or_else(|| {
                anyhow!(
                    "running as root, but there is no `{SYSTEM_USER}` system user to run the \
                     embedded PostgreSQL as (PostgreSQL refuses to run as root). Install the \
                     PostgreSQL server package (Debian/Ubuntu: `apt-get install postgresql`, \
                     which creates it), run crm as an unprivileged user, or set DATABASE_URL to \
                     use an existing server."
                )
            })?;
        let runuser = find_in_path("runuser")
            .or_else(|| {
                ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| is_executable(p))
            })
            .ok_or_else(|| {
                anyhow!(
                    "running as root, but `runuser` (util-linux) was not found; it is needed to \
                     run PostgreSQL as the `{SYSTEM_USER}` user. Install util-linux, run crm as \
                     an unprivileged user, or set DATABASE_URL to use an existing server."
                )
            })?;
        Ok(Runner {
            as_postgres: Some(AsPostgres {
                runuser,
                uid: user.uid,
                gid: user.gid,
            }),
        })
    }

    /// A command running `bin` as the server user, in `cwd`.
    fn command(&self, bin: &Path, cwd: &Path) -> std::process::Command {
        let mut cmd = match &self.as_postgres {
            Some(p) => {
                let mut cmd = std::process::Command::new(&p.runuser);
                cmd.args(["-u", SYSTEM_USER, "--"]).arg(bin);
                cmd
            }
            None => std::process::Command::new(bin),
        };
        // The server user may not be allowed into our working directory (e.g. /root).
        cmd.current_dir(cwd);
        cmd
    }

    /// chown to the server user (root only).
    fn chown(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(p) = &self.as_postgres {
            std::os::unix::fs::chown(path, Some(p.uid.as_raw()), Some(p.gid.as_raw()))
                .with_context(|| {
                    format!(
                        "cannot give {} to the `{SYSTEM_USER}` user (chown)",
                        path.display()
                    )
                })?;
        }
        Ok(())
    }

    /// Checks that the server user can reach `dir` (root only: search permission on all
    /// parents).
    async fn check_traversable(&self, dir: &Path) -> anyhow::Result<()> {
        let Some(p) = &self.as_postgres else {
            return Ok(());
        };
        if self.can_enter(p, dir).await? {
            return Ok(());
        }
        // Find the first directory on the way that blocks it, for a precise message.
        let mut blocking = dir.to_path_buf();
        let mut ancestors: Vec<&Path> = dir.ancestors().collect();
        ancestors.reverse();
        for a in ancestors {
            if !self.can_enter(p, a).await? {
                blocking = a.to_path_buf();
                break;
            }
        }
        let detail = std::fs::metadata(&blocking)
            .map(|m| {
                format!(
                    " (mode {:04o}, owner uid {})",
                    m.permissions().mode() & 0o7777,
                    m.uid()
                )
            })
            .unwrap_or_default();
        bail!(
            "the embedded PostgreSQL runs as the `{SYSTEM_USER}` user, which cannot reach the \
             data directory {}: it may not enter {}{detail}. Put the data directory somewhere \
             it can reach, e.g. CRM_DATA_DIR=/var/lib/crm, or allow traversal with \
             `chmod o+x {}`, or set DATABASE_URL to use an existing server.",
            dir.display(),
            blocking.display(),
            blocking.display()
        )
    }

    async fn can_enter(&self, p: &AsPostgres, dir: &Path) -> anyhow::Result<bool> {
        let status = Command::new(&p.runuser)
            .args(["-u", SYSTEM_USER, "--", "test", "-x"])
            .arg(dir)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .with_context(|| format!("cannot run {}", p.runuser.display()))?;
        Ok(status.success())
    }
}

/// Creates the directories (private to the server user) and hands them to it when root.
fn prepare_layout(
    runner: &Runner,
    dir: &Path,
    cluster: &Path,
    run_dir: &Path,
    log_file: &Path,
    initialised: bool,
) -> anyhow::Result<()> {
    for d in [dir, run_dir] {
        std::fs::create_dir_all(d)
            .with_context(|| format!("cannot create directory {}", d.display()))?;
        set_mode(d, 0o700)?;
        runner.chown(d)?;
    }
    if !initialised {
        // initdb fills an existing empty directory; it must belong to the server user.
        std::fs::create_dir_all(cluster)
            .with_context(|| format!("cannot create directory {}", cluster.display()))?;
        set_mode(cluster, 0o700)?;
        runner.chown(cluster)?;
    }
    if log_file.exists() {
        runner.chown(log_file)?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set permissions of {}", path.display()))
}

/// Locations of the server binaries.
struct Binaries {
    dir: PathBuf,
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

impl Binaries {
    fn in_dir(dir: &Path) -> Option<Binaries> {
        let initdb = dir.join("initdb");
        let pg_ctl = dir.join("pg_ctl");
        (is_executable(&initdb) && is_executable(&pg_ctl)).then(|| Binaries {
            dir: dir.to_path_buf(),
            initdb,
            pg_ctl,
        })
    }
}

/// `initdb`/`pg_ctl` on PATH, else the highest version under `/usr/lib/postgresql/*/bin`.
/// An existing cluster's own major version (`/usr/lib/postgresql/<PG_VERSION>/bin`) wins,
/// since a server of another major version cannot open it.
fn find_binaries(cluster_version: Option<&str>) -> anyhow::Result<Binaries> {
    let versioned_root = Path::new("/usr/lib/postgresql");
    if let Some(v) = cluster_version {
        if let Some(b) = Binaries::in_dir(&versioned_root.join(v).join("bin")) {
            return Ok(b);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(b) = std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .find_map(|d| Binaries::in_dir(&d))
        {
            return Ok(b);
        }
    }
    let mut candidates: Vec<(Vec<u64>, Binaries)> = std::fs::read_dir(versioned_root)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let entry = e.ok()?;
            let version = parse_version(&entry.file_name().to_string_lossy())?;
            Some((version, Binaries::in_dir(&entry.path().join("bin"))?))
        })
        .collect();
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    candidates
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| anyhow!(NOT_FOUND_MSG))
}

/// "15" -> [15], "9.6" -> [9, 6]; None for anything else.
fn parse_version(name: &str) -> Option<Vec<u64>> {
    name.split('.').map(|p| p.parse().ok()).collect()
}

/// Major version of an existing cluster (contents of PG_VERSION).
fn cluster_version(cluster: &Path) -> Option<String> {
    let v = std::fs::read_to_string(cluster.join("PG_VERSION")).ok()?;
    let v = v.trim();
    parse_version(v).map(|_| v.to_owned())
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_absolute() && is_executable(p))
}

/// Passwords kept in `dir/credentials`.
struct Credentials {
    path: PathBuf,
    superuser_password: Option<String>,
    app_password: String,
}

impl Credentials {
    /// Reads the credentials file, generating (and saving) what is missing.
    fn load_or_create(path: &Path) -> anyhow::Result<Credentials> {
        let mut superuser_password = None;
        let mut app_password = None;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for line in text.lines() {
                    let line = line.trim();
                    if line.starts_with('#') {
                        continue;
                    }
                    if let Some((key, value)) = line.split_once('=') {
                        let value = value.trim();
                        if value.is_empty() {
                            continue;
                        }
                        match key.trim() {
                            "superuser_password" => superuser_password = Some(value.to_owned()),
                            "app_password" => app_password = Some(value.to_owned()),
                            _ => {}
                        }
                    }
                }
                // Keep the file private even if someone loosened it.
                set_mode(path, 0o600)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read the credentials file {}", path.display())
                })
            }
        }
        let missing_app = app_password.is_none();
        let creds = Credentials {
            path: path.to_path_buf(),
            superuser_password,
            app_password: app_password.unwrap_or_else(random_password),
        };
        if missing_app {
            creds.save()?;
        }
        Ok(creds)
    }

    /// Writes the file atomically with mode 0600.
    fn save(&self) -> anyhow::Result<()> {
        let mut text = String::from(
            "# Passwords of the embedded PostgreSQL cluster, generated by crm. Keep private.\n",
        );
        if let Some(pw) = &self.superuser_password {
            text.push_str(&format!("superuser_password={pw}\n"));
        }
        text.push_str(&format!("app_password={}\n", self.app_password));

        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write()
            .with_context(|| format!("cannot write the credentials file {}", self.path.display()))
    }
}

fn random_password() -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Runs initdb with a fresh superuser password (saved to the credentials file first).
async fn initdb(
    runner: &Runner,
    bins: &Binaries,
    dir: &Path,
    cluster: &Path,
    creds: &mut Credentials,
) -> anyhow::Result<()> {
    let superuser_password = random_password();
    creds.superuser_password = Some(superuser_password.clone());
    creds.save()?;

    // The password file must be readable by the server user; it lives in the private dir.
    let pwfile = dir.join(".initdb-pwfile");
    let _ = std::fs::remove_file(&pwfile);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&pwfile)
        .and_then(|mut f| f.write_all(format!("{superuser_password}\n").as_bytes()))
        .with_context(|| format!("cannot write {}", pwfile.display()))?;
    runner.chown(&pwfile)?;

    let mut cmd = Command::from(runner.command(&bins.initdb, dir));
    cmd.arg("-D")
        .arg(cluster)
        .args([
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pwfile.display()));
    let result = spawn_output(&mut cmd, "initdb").await;
    let _ = std::fs::remove_file(&pwfile);
    let output = result?;
    if !output.status.success() {
        bail!(
            "initdb failed to create the embedded PostgreSQL cluster in {}: {}\nIf {} is left \
             over from an interrupted first start and holds nothing you need, remove it and \
             try again.",
            cluster.display(),
            command_message(&output),
            cluster.display()
        );
    }
    Ok(())
}

/// Ensures role `crm` (LOGIN CREATEROLE NOSUPERUSER, password from the credentials file) and
/// database `crm` owned by it. Idempotent.
async fn bootstrap(
    port: u16,
    socket_dir: Option<&Path>,
    creds: &Credentials,
) -> anyhow::Result<()> {
    let mut conn = connect_superuser(port, socket_dir, creds).await?;

    let role_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(APP_ROLE)
            .fetch_one(&mut conn)
            .await
            .context("embedded PostgreSQL bootstrap: cannot query roles")?;
    let verb = if role_exists { "ALTER" } else { "CREATE" };
    let sql = format!(
        "{verb} ROLE {APP_ROLE} WITH LOGIN CREATEROLE NOSUPERUSER PASSWORD {}",
        quote_literal(&creds.app_password)
    );
    sqlx::raw_sql(&sql)
        .execute(&mut conn)
        .await
        .with_context(|| format!("embedded PostgreSQL bootstrap: cannot {verb} ROLE {APP_ROLE}"))?;

    let owner: Option<String> = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
    )
    .bind(APP_DATABASE)
    .fetch_optional(&mut conn)
    .await
    .context("embedded PostgreSQL bootstrap: cannot query databases")?;
    let sql = match owner.as_deref() {
        None => Some(format!("CREATE DATABASE {APP_DATABASE} OWNER {APP_ROLE}")),
        Some(o) if o != APP_ROLE => {
            Some(format!("ALTER DATABASE {APP_DATABASE} OWNER TO {APP_ROLE}"))
        }
        Some(_) => None,
    };
    if let Some(sql) = sql {
        sqlx::raw_sql(&sql)
            .execute(&mut conn)
            .await
            .with_context(|| format!("embedded PostgreSQL bootstrap: `{sql}` failed"))?;
    }
    let _ = conn.close().await;
    Ok(())
}

/// Connects as the superuser: over the unix socket (trust) if there is one, else over TCP
/// with the superuser password. Retries while the server is still coming up.
async fn connect_superuser(
    port: u16,
    socket_dir: Option<&Path>,
    creds: &Credentials,
) -> anyhow::Result<PgConnection> {
    let base = || {
        PgConnectOptions::new_without_pgpass()
            .port(port)
            .username(SUPERUSER)
            .database("postgres")
            .ssl_mode(PgSslMode::Disable)
            .application_name("crm-embedded-bootstrap")
            .disable_statement_logging()
    };
    let mut attempts: Vec<(&str, PgConnectOptions)> = Vec::new();
    if let Some(s) = socket_dir {
        attempts.push(("unix socket", base().socket(s)));
    }
    if let Some(pw) = &creds.superuser_password {
        attempts.push(("TCP", base().host("127.0.0.1").password(pw)));
    }
    if attempts.is_empty() {
        bail!(
            "cannot bootstrap the embedded PostgreSQL: there is no unix socket and the \
             superuser password is missing from {}",
            creds.path.display()
        );
    }

    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let mut errors = Vec::new();
        for (how, opts) in &attempts {
            match PgConnection::connect_with(opts).await {
                Ok(conn) => return Ok(conn),
                Err(e) => errors.push(format!("via {how}: {e}")),
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "cannot connect to the embedded PostgreSQL on port {port} as superuser \
                 `{SUPERUSER}` ({}). If {} was edited or replaced, restore it, or remove the \
                 data directory to start afresh.",
                errors.join("; "),
                creds.path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Fields of `postmaster.pid` we use.
struct PostmasterPid {
    pid: String,
    port: u16,
    socket_dir: Option<PathBuf>,
}

fn read_postmaster_pid(cluster: &Path) -> anyhow::Result<PostmasterPid> {
    let path = cluster.join("postmaster.pid");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let port = lines.get(3).and_then(|l| l.parse().ok()).ok_or_else(|| {
        anyhow!(
            "cannot find the port of the running embedded PostgreSQL in {}; stop it \
                 (`pg_ctl stop -D {}`) and try again",
            path.display(),
            cluster.display()
        )
    })?;
    Ok(PostmasterPid {
        pid: lines.first().copied().unwrap_or_default().to_owned(),
        port,
        socket_dir: lines.get(4).filter(|l| !l.is_empty()).map(PathBuf::from),
    })
}

/// A TCP port on 127.0.0.1 that is free right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("cannot find a free TCP port on 127.0.0.1 for the embedded PostgreSQL")?;
    Ok(listener.local_addr()?.port())
}

/// Spawns, waits and captures the output; errors only if the command cannot be run.
async fn spawn_output(cmd: &mut Command, what: &str) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .with_context(|| format!("cannot run {what}"))
}

/// stderr (or stdout) of a failed command, for error messages.
fn command_message(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    if text.is_empty() {
        format!("exited with {}", output.status)
    } else {
        text.to_owned()
    }
}

/// The last `n` lines of a file ("(empty)" if there is nothing to show).
fn log_tail(path: &Path, n: usize) -> String {
    let text = read_from(path, 0);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(n)..].join("\n");
    if tail.trim().is_empty() {
        "(empty)".to_owned()
    } else {
        tail
    }
}

/// File contents from byte `offset` on (lossy), empty if unreadable.
fn read_from(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Single-quotes for /bin/sh (pg_ctl passes `-o` through the shell).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An SQL string literal.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row as _;

    /// A fresh directory under /tmp that the `postgres` user can traverse.
    fn temp_dir(tag: &str) -> PathBuf {
        let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join(format!("crm-{tag}-XXXXXX")))
            .expect("mkdtemp");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }

    async fn check_app_connection(url: &str) {
        let mut conn = PgConnection::connect(url).await.expect("connect as crm");
        let row = sqlx::query(
            "SELECT current_user::text, current_database()::text, \
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        )
        .fetch_one(&mut conn)
        .await
        .expect("query");
        let user: String = row.get(0);
        let db: String = row.get(1);
        let superuser: bool = row.get(2);
        assert_eq!(user, "crm");
        assert_eq!(db, "crm");
        assert!(!superuser, "crm must not be a superuser");
        // The application owns its database: it can create tables in it.
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS t (id int); DROP TABLE t;")
            .execute(&mut conn)
            .await
            .expect("create table as crm");
        conn.close().await.expect("close");
    }

    #[tokio::test]
    async fn start_connect_stop_restart() {
        let base = temp_dir("embpg");
        let dir = base.join("data").join("pg");

        let mut pg = EmbeddedPostgres::start(&dir).await.expect("first start");
        let url = pg.database_url().to_owned();
        assert!(url.starts_with("postgres://crm:"), "{url}");
        assert!(url.ends_with("/crm"), "{url}");
        assert_eq!(pg.data_dir(), std::fs::canonicalize(&dir).unwrap());
        assert!(format!("{pg:?}").contains("EmbeddedPostgres"));
        assert!(!format!("{pg:?}").contains(url.split(['@', ':']).nth(2).unwrap()));
        check_app_connection(&url).await;

        let creds_path = dir.join("credentials");
        let meta = std::fs::metadata(&creds_path).expect("credentials file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let creds = std::fs::read_to_string(&creds_path).unwrap();
        assert!(creds.contains("superuser_password="));
        assert!(creds.contains("app_password="));
        assert!(!dir.join(".initdb-pwfile").exists());

        // The superuser password from the credentials file works over TCP.
        let su_pw = creds
            .lines()
            .find_map(|l| l.strip_prefix("superuser_password="))
            .unwrap();
        let port = url.rsplit(':').next().unwrap().split('/').next().unwrap();
        let su_url = format!("postgres://postgres:{su_pw}@127.0.0.1:{port}/postgres");
        PgConnection::connect(&su_url)
            .await
            .expect("superuser over TCP")
            .close()
            .await
            .unwrap();

        pg.stop().await.expect("stop");
        pg.stop().await.expect("second stop is a no-op");
        assert!(
            PgConnection::connect(&url).await.is_err(),
            "server still up"
        );

        // Second start: existing cluster, same credentials.
        let version_before = std::fs::metadata(dir.join("cluster/PG_VERSION"))
            .unwrap()
            .modified()
            .unwrap();
        let mut pg2 = EmbeddedPostgres::start(&dir).await.expect("second start");
        let url2 = pg2.database_url().to_owned();
        let pw = |u: &str| u.split(['@']).next().unwrap().to_owned();
        assert_eq!(pw(&url), pw(&url2), "password must be reused");
        assert_eq!(std::fs::read_to_string(&creds_path).unwrap(), creds);
        let version_after = std::fs::metadata(dir.join("cluster/PG_VERSION"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            version_before, version_after,
            "cluster must not be re-initialised"
        );
        check_app_connection(&url2).await;

        // A third start while it runs reuses the running server (crash leftover case).
        let pg3 = EmbeddedPostgres::start(&dir)
            .await
            .expect("start while running");
        assert_eq!(pg3.database_url(), url2);
        std::mem::forget(pg3); // pg2 owns the server in this test

        pg2.stop().await.expect("stop again");

        // Drop stops a running cluster too.
        let pg4 = EmbeddedPostgres::start(&dir).await.expect("fourth start");
        let url4 = pg4.database_url().to_owned();
        check_app_connection(&url4).await;
        drop(pg4);
        assert!(
            PgConnection::connect(&url4).await.is_err(),
            "drop must stop"
        );

        std::fs::remove_dir_all(&base).expect("cleanup");
    }

    #[tokio::test]
    async fn unreachable_data_dir_is_reported() {
        if !nix::unistd::geteuid().is_root() {
            return; // only root hands the directory to another user
        }
        let base = temp_dir("embpg-private");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = EmbeddedPostgres::start(&base.join("pg"))
            .await
            .expect_err("postgres cannot traverse a 0700 root directory");
        let msg = format!("{err:#}");
        assert!(msg.contains("cannot reach the data directory"), "{msg}");
        assert!(msg.contains("CRM_DATA_DIR"), "{msg}");
        assert!(msg.contains(&base.display().to_string()), "{msg}");
        std::fs::remove_dir_all(&base).expect("cleanup");
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("main"), None);
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(quote_literal("a'b"), "'a''b'");
        let pw = random_password();
        assert_eq!(pw.len(), 32);
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(NOT_FOUND_MSG.contains("apt-get install postgresql"));
    }
}
