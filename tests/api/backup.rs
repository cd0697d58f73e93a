//! Per-tenant backups: taken through the API (a job), downloaded, restored into a new tenant
//! by `crm tenant restore` (with the real S3 server), restored over the same tenant after a
//! confirmation, refused when tampered with, and an archive of an older schema version
//! brought to the current one.

use crate::attachments::{file, upload};
use crate::helpers::{eventually, id, unique_slug, Tenant, TestApp, PASSWORD};
use crate::s3::Moto;
use crm_core::files::FileStoreConfig;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR backup test bytes";

/// Runs `crm` with `args` against the test database, configured by `config` (a crm.toml).
fn crm(app: &TestApp, config: &Path, args: &[&str]) -> (bool, String) {
    let url = app.pool.connect_options();
    let out = Command::new(env!("CARGO_BIN_EXE_crm"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env(
            "DATABASE_URL",
            format!(
                "postgres://{}@{}:{}/{}",
                crate::helpers::APP_ROLE,
                url.get_host(),
                url.get_port(),
                app.database
            ),
        )
        .env("RUST_LOG", "warn")
        .output()
        .expect("run crm");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A crm.toml with the test server's data dir, master key and file store.
fn config_file(app: &TestApp) -> PathBuf {
    std::fs::create_dir_all(&app.config.data_dir).expect("data dir");
    let path = app.config.data_dir.join("crm-cli.toml");
    let mut toml = format!(
        "data_dir = {:?}\nmaster_key = {:?}\n",
        app.config.data_dir.display().to_string(),
        app.config.master_key.clone().expect("test master key")
    );
    match &app.config.files {
        FileStoreConfig::S3(s3) => toml.push_str(&format!(
            "[files]\nkind = \"s3\"\nendpoint = {:?}\nregion = {:?}\nbucket = {:?}\n\
             access_key_id = {:?}\nsecret_access_key = {:?}\nforce_path_style = true\n",
            s3.endpoint.clone().unwrap_or_default(),
            s3.region,
            s3.bucket,
            s3.access_key_id,
            s3.secret_access_key
        )),
        FileStoreConfig::Local { .. } => {}
    }
    std::fs::write(&path, toml).expect("write config");
    path
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Takes a backup through the API and waits for the job to finish it.
async fn backup(app: &TestApp, token: &str) -> Value {
    let queued = app
        .post("/api/v1/backups", token, json!({}))
        .await
        .expect(202);
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["trigger"], "manual");
    let path = format!("/api/v1/backups/{}", id(&queued));
    eventually("the backup job", || async {
        let b = app.get(&path, token).await.expect(200);
        assert_ne!(b["status"], "failed", "{b:#}");
        (b["status"] == "done").then_some(b)
    })
    .await
}

async fn download(app: &TestApp, token: &str, backup: &Value) -> Vec<u8> {
    let resp = app
        .client
        .get(format!(
            "{}/api/v1/backups/{}/download",
            app.base,
            id(backup)
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status().as_u16(), 200);
    let header = resp
        .headers()
        .get("x-checksum-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp.bytes().await.expect("archive").to_vec();
    assert_eq!(header.as_deref(), backup["sha256"].as_str());
    assert_eq!(sha256(&bytes), backup["sha256"].as_str().expect("sha256"));
    assert_eq!(Some(bytes.len() as u64), backup["size_bytes"].as_u64());
    bytes
}

/// Customers, contacts, tickets with their comments, history and attachment checksums, as
/// the API shows them: what must be identical after a restore.
async fn snapshot(app: &TestApp, token: &str) -> Value {
    let mut customers = app.items("/api/v1/customers?limit=100", token).await;
    customers.sort_by_key(id);
    let mut history = Vec::new();
    for c in &customers {
        history.push(
            app.get(&format!("/api/v1/customers/{}/history", id(c)), token)
                .await
                .expect(200),
        );
    }
    let mut contacts = app.items("/api/v1/contacts?limit=100", token).await;
    contacts.sort_by_key(id);
    let mut tickets = Vec::new();
    for t in app.items("/api/v1/tickets?limit=100", token).await {
        let path = format!("/api/v1/tickets/{}", id(&t));
        let comments = app
            .get(&format!("{path}/comments"), token)
            .await
            .expect(200);
        let attachments = app
            .get(&format!("{path}/attachments"), token)
            .await
            .expect(200);
        let mut files = Vec::new();
        for a in attachments["items"].as_array().expect("items") {
            let bytes = app
                .client
                .get(format!("{}/api/v1/attachments/{}/content", app.base, id(a)))
                .bearer_auth(token)
                .send()
                .await
                .expect("content")
                .bytes()
                .await
                .expect("bytes");
            assert_eq!(sha256(&bytes), a["sha256"].as_str().expect("sha256"));
            files.push(json!({"name": a["file_name"], "sha256": sha256(&bytes)}));
        }
        tickets.push(
            json!({"ticket": t, "comments": comments, "attachments": attachments, "files": files}),
        );
    }
    json!({"customers": customers, "history": history, "contacts": contacts, "tickets": tickets})
}

/// A tenant with custom fields (one encrypted), customers (one edited: history), a contact,
/// a ticket with a comment and an attachment.
async fn populate(app: &TestApp, t: &Tenant) {
    for field in [
        json!({"key": "vip_note", "label": "VIP 备注", "type": "text"}),
        json!({"key": "id_card", "label": "身份证", "type": "text", "encrypted": true}),
    ] {
        app.post("/api/v1/objects/customers/fields", &t.token, field)
            .await
            .expect(201);
    }
    let acme = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "艾克米贸易", "phone": "13812345678",
                   "custom": {"vip_note": "老客户", "id_card": "110101199003074514"}}),
        )
        .await
        .expect(201);
    app.post("/api/v1/customers", &t.token, json!({"name": "华为技术"}))
        .await
        .expect(201);
    app.patch(
        &format!("/api/v1/customers/{}", id(&acme)),
        &t.token,
        json!({"level": "A", "custom": {"vip_note": "重点客户"}}),
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/contacts",
        &t.token,
        json!({"customer_id": acme["id"], "name": "王芳", "is_primary": true}),
    )
    .await
    .expect(201);
    let ticket = app
        .post(
            "/api/v1/tickets",
            &t.token,
            json!({"subject": "打印机坏了", "customer_id": acme["id"]}),
        )
        .await
        .expect(201);
    app.post(
        &format!("/api/v1/tickets/{}/comments", id(&ticket)),
        &t.token,
        json!({"body": "师傅明天上门", "public": true}),
    )
    .await
    .expect(201);
    upload(
        app,
        &id(&ticket),
        &t.token,
        &[file("截图.png", "image/png", PNG)],
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn a_backup_restores_into_a_new_tenant_with_identical_records_history_and_files() {
    let moto = Moto::start().await;
    let bucket = format!(
        "crm-backup-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let store = moto.bucket(&bucket).await;
    let s3 = moto.config(&bucket);
    let app = TestApp::spawn_with(|c| c.files = FileStoreConfig::S3(s3)).await;
    let t = app.signup().await;
    populate(&app, &t).await;
    let before = snapshot(&app, &t.token).await;

    let started = std::time::Instant::now();
    let taken = backup(&app, &t.token).await;
    let backup_time = started.elapsed();
    assert_eq!(taken["summary"]["rows"]["customers"], 2);
    assert_eq!(taken["summary"]["files"], 1);
    assert!(
        taken["summary"]["rows"].get("backups").is_none(),
        "the register is not archived"
    );
    let archive = download(&app, &t.token, &taken).await;
    let listed = app.get("/api/v1/backups", &t.token).await.expect(200);
    assert_eq!(listed["items"][0]["id"], taken["id"]);

    // Restore into a new tenant from the archive file, with the S3 store of the server.
    let file = app.config.data_dir.join("tenant.tar.zst");
    std::fs::write(&file, &archive).expect("archive file");
    let config = config_file(&app);
    let slug = unique_slug("restored");
    let started = std::time::Instant::now();
    let (ok, out) = crm(
        &app,
        &config,
        &[
            "tenant",
            "restore",
            "--from",
            file.to_str().expect("path"),
            "--as",
            &slug,
        ],
    );
    assert!(ok, "{out}");
    eprintln!(
        "backup of a small tenant: {} bytes, backup {:?}, restore (CLI, incl. process start) {:?}: {out}",
        archive.len(),
        backup_time,
        started.elapsed()
    );
    let token = app.login(&slug, &t.admin_email, PASSWORD).await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let after = snapshot(&app, &token).await;
    assert_eq!(after, before, "the restored tenant shows the same records");
    assert!(
        after["customers"]
            .as_array()
            .expect("customers")
            .iter()
            .any(|c| c["custom"]["id_card"] == "110101199003074514"),
        "the encrypted field reads back: {after:#}"
    );

    // Its files live under keys of its own; the original tenant's are untouched.
    let restored_id: String =
        sqlx::query_scalar("SELECT id::text FROM platform.tenants WHERE slug = $1")
            .bind(&slug)
            .fetch_one(&app.pool)
            .await
            .expect("registry");
    let names = crate::s3::object_names(&store).await;
    let own = restored_id.replace('-', "");
    assert!(names.iter().any(|n| n.starts_with(&own)), "{names:?}");
    // The restore is on the new tenant's audit log; its sessions from the archive are dead.
    let audit = app
        .get("/api/v1/audit?action=backup.restored", &token)
        .await
        .expect(200);
    assert_eq!(audit["items"][0]["detail"]["from_slug"], t.slug);
    app.get("/api/v1/customers", &t.token).await.expect(200);

    // The same backup by id, through the register.
    let again = unique_slug("again");
    let (ok, out) = crm(
        &app,
        &config,
        &[
            "tenant",
            "restore",
            "--from",
            &id(&taken),
            "--tenant",
            &t.slug,
            "--as",
            &again,
        ],
    );
    assert!(ok, "{out}");
    app.login(&again, &t.admin_email, PASSWORD)
        .await
        .expect(200);
}

/// Rewrites the entry `name` of an archive with `edit` (manifest untouched unless asked).
fn repack(archive: &[u8], mut edit: impl FnMut(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let mut tar = tar::Archive::new(zstd::Decoder::new(archive).expect("zstd"));
    let mut out = tar::Builder::new(Vec::new());
    for entry in tar.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read");
        let bytes = edit(&name, bytes);
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        out.append_data(&mut header, &name, bytes.as_slice())
            .expect("append");
    }
    let tar = out.into_inner().expect("tar");
    let mut z = zstd::Encoder::new(Vec::new(), 3).expect("encoder");
    z.write_all(&tar).expect("compress");
    z.finish().expect("finish")
}

#[tokio::test]
async fn a_tampered_archive_is_refused() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    populate(&app, &t).await;
    let taken = backup(&app, &t.token).await;
    let archive = download(&app, &t.token, &taken).await;
    let config = config_file(&app);

    // One changed byte in a table's data, manifest as it was: the entry's checksum fails.
    let mut changed = false;
    let tampered = repack(&archive, |name, mut bytes| {
        if name.starts_with("data/") && !changed && !bytes.is_empty() {
            bytes[0] ^= 1;
            changed = true;
        }
        bytes
    });
    let path = app.config.data_dir.join("tampered.tar.zst");
    std::fs::write(&path, &tampered).expect("write");
    let (ok, out) = crm(
        &app,
        &config,
        &[
            "tenant",
            "restore",
            "--from",
            path.to_str().expect("path"),
            "--as",
            &unique_slug("bad"),
        ],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("does not match its checksum"), "{out}");

    // The stored archive changed behind the register's back: the API refuses to restore it.
    let key: String = sqlx::query_scalar(&format!(
        "SELECT storage_key FROM \"{}\".backups WHERE id = $1::uuid",
        app.schema_of(&t).await
    ))
    .bind(id(&taken))
    .fetch_one(&app.pool)
    .await
    .expect("key");
    let stored = key
        .split('/')
        .fold(app.config.data_dir.join("files"), |p, s| p.join(s));
    std::fs::write(&stored, &tampered).expect("overwrite the stored archive");
    let restore = format!("/api/v1/backups/{}/restore", id(&taken));
    let confirm = app.post(&restore, &t.token, json!({})).await.expect(202);
    app.post(
        &restore,
        &t.token,
        json!({"confirmation_token": confirm["confirmation_token"]}),
    )
    .await
    .expect_problem(400, "backup.checksum_mismatch");
    // Nothing was replaced.
    app.get("/api/v1/customers", &t.token).await.expect(200);
}

#[tokio::test]
async fn a_same_tenant_restore_needs_the_token_and_brings_back_a_deleted_record() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    populate(&app, &t).await;
    let kept = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "要删除的客户"}),
        )
        .await
        .expect(201);
    let taken = backup(&app, &t.token).await;
    app.delete(&format!("/api/v1/customers/{}", id(&kept)), &t.token)
        .await
        .expect(204);
    let later = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "备份之后的客户"}),
        )
        .await
        .expect(201);

    // Not for everyone.
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.post("/api/v1/backups", &sales, json!({}))
        .await
        .expect_problem(403, "auth.forbidden");
    app.get("/api/v1/backups", &sales)
        .await
        .expect_problem(403, "auth.forbidden");
    let restore = format!("/api/v1/backups/{}/restore", id(&taken));
    app.post(&restore, &sales, json!({}))
        .await
        .expect_problem(403, "auth.forbidden");

    // Two steps: a token first, and only that token (once) restores.
    let confirm = app.post(&restore, &t.token, json!({})).await.expect(202);
    let token = confirm["confirmation_token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.post(
        &restore,
        &t.token,
        json!({"confirmation_token": "rst_wrong"}),
    )
    .await
    .expect_problem(403, "backup.invalid_confirmation");
    app.get(&format!("/api/v1/customers/{}", id(&kept)), &t.token)
        .await
        .expect(404);
    let done = app
        .post(&restore, &t.token, json!({"confirmation_token": token}))
        .await
        .expect(200);
    assert_eq!(done["from_schema_version"], done["schema_version"]);

    // Everyone signs in again; the deleted record is back, the later one gone.
    app.get("/api/v1/customers", &t.token).await.expect(401);
    let admin = app
        .login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(200)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.get(&format!("/api/v1/customers/{}", id(&kept)), &admin)
        .await
        .expect(200);
    app.get(&format!("/api/v1/customers/{}", id(&later)), &admin)
        .await
        .expect(404);
    app.post(&restore, &admin, json!({"confirmation_token": token}))
        .await
        .expect_problem(403, "backup.invalid_confirmation");
    // The register and the audit log were kept, and tell what happened.
    let listed = app.get("/api/v1/backups", &admin).await.expect(200);
    assert_eq!(listed["items"][0]["id"], taken["id"]);
    let actions: Vec<String> = app
        .get("/api/v1/audit?action=backup", &admin)
        .await
        .expect(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    for a in [
        "backup.created",
        "backup.restore_requested",
        "backup.restored",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    // Work goes on: a new record, a new backup.
    app.post("/api/v1/customers", &admin, json!({"name": "恢复之后"}))
        .await
        .expect(201);
    backup(&app, &admin).await;
}

#[tokio::test]
async fn an_archive_of_an_older_schema_version_restores_into_the_current_one() {
    use crm_core::db::{Db, TenantIsolation};
    use crm_core::domain::{DisplayName, Email};
    use crm_tenants::migrations::latest_tenant_version;
    use crm_tenants::{provision_tenant_at, NewAdmin, NewTenant, TenantSlug};

    let app = TestApp::spawn().await;
    // A tenant as the server before backups (schema 16) left it, with a customer.
    let old = latest_tenant_version() - 1;
    let slug = unique_slug("old");
    let email = format!("admin@{slug}.example.com");
    let db = Db::new(app.pool.clone(), TenantIsolation::Role);
    let p = provision_tenant_at(
        &db,
        NewTenant {
            slug: TenantSlug::parse("slug", &slug).expect("slug"),
            name: DisplayName::parse("name", "老版本公司").expect("name"),
        },
        NewAdmin {
            email: Email::parse("email", &email).expect("email"),
            name: DisplayName::parse("name", "管理员").expect("name"),
            password_hash: crm_core::identity::hash_password(PASSWORD)
                .await
                .expect("hash"),
        },
        old,
    )
    .await
    .expect("provision at the older version");
    let token = app.login(&slug, &email, PASSWORD).await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let c = app
        .post("/api/v1/customers", &token, json!({"name": "旧客户"}))
        .await
        .expect(201);

    // Its archive, taken by the same code the job runs (the old tenant has no register).
    let files = crm_core::files::open(&app.config.files, &app.config.data_dir)
        .await
        .expect("file store");
    let master = app
        .config
        .master_key(false)
        .expect("master key")
        .map(std::sync::Arc::new);
    let backups = crm::wiring::backups(&app.config, &db, files.clone(), master);
    let taken =
        crm_tenants::backup::dump::take(&backups, &p.tenant.ctx().expect("ctx"), "老版本公司")
            .await
            .expect("backup of the old tenant");
    assert_eq!(taken.schema_version, old);
    let file = app.config.data_dir.join("old.tar.zst");
    files.get_to_file(&taken.key, &file).await.expect("archive");

    let config = config_file(&app);
    let new_slug = unique_slug("upgraded");
    let (ok, out) = crm(
        &app,
        &config,
        &[
            "tenant",
            "restore",
            "--from",
            file.to_str().expect("path"),
            "--as",
            &new_slug,
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "schema version {old} -> {}",
            latest_tenant_version()
        )),
        "{out}"
    );
    let version: i32 =
        sqlx::query_scalar("SELECT schema_version FROM platform.tenants WHERE slug = $1")
            .bind(&new_slug)
            .fetch_one(&app.pool)
            .await
            .expect("registry");
    assert_eq!(version, latest_tenant_version());
    let token = app.login(&new_slug, &email, PASSWORD).await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let back = app
        .get(&format!("/api/v1/customers/{}", id(&c)), &token)
        .await
        .expect(200);
    assert_eq!(back["name"], "旧客户");
    // What the newer version brought works: the administrator may take backups now.
    backup(&app, &token).await;
}

#[tokio::test]
async fn the_schedule_takes_daily_backups_and_prunes_by_retention() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let off = app
        .get("/api/v1/backups/schedule", &t.token)
        .await
        .expect(200);
    assert_eq!(
        off,
        json!({"enabled": false, "time_of_day": "02:00", "timezone": "UTC",
               "keep_daily": 7, "keep_weekly": 4})
    );
    app.call(
        reqwest::Method::PUT,
        "/api/v1/backups/schedule",
        Some(&t.token),
        Some(json!({"timezone": "Mars/Olympus"})),
    )
    .await
    .expect(422);
    let on = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/backups/schedule",
            Some(&t.token),
            Some(json!({"enabled": true, "time_of_day": "03:30", "timezone": "Asia/Shanghai"})),
        )
        .await
        .expect(200);
    assert_eq!(on["enabled"], true);
    let pending = app
        .get(
            "/api/v1/jobs?kind=backup.scheduled&status=pending",
            &t.token,
        )
        .await
        .expect(200);
    let due: chrono::DateTime<chrono::Utc> = pending["items"][0]["run_at"]
        .as_str()
        .expect("run_at")
        .parse()
        .expect("rfc3339");
    // 03:30 in Shanghai is 19:30 UTC.
    assert_eq!(due.format("%H:%M").to_string(), "19:30");
    assert!(due > chrono::Utc::now() && due < chrono::Utc::now() + chrono::Duration::days(1));

    // Thirty days of earlier scheduled backups (one a day), then the job falls due now.
    let schema = app.schema_of(&t).await;
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".backups (id, status, trigger, created_at) \
         SELECT gen_random_uuid(), 'done', 'scheduled', now() - make_interval(days => d, hours => 1) \
         FROM generate_series(1, 30) d"
    ))
    .execute(&app.pool)
    .await
    .expect("older backups");
    sqlx::query(&format!(
        "UPDATE \"{schema}\".jobs SET run_at = now() WHERE kind = 'backup.scheduled' AND status = 'pending'"
    ))
    .execute(&app.pool)
    .await
    .expect("due now");
    sqlx::query("UPDATE platform.job_hints SET next_run_at = now() WHERE tenant_id = $1::uuid")
        .bind(&t.id)
        .execute(&app.pool)
        .await
        .expect("hint");
    let listed = eventually("the scheduled backup", || async {
        let l = app
            .get("/api/v1/backups?limit=100", &t.token)
            .await
            .expect(200);
        let items = l["items"].as_array().expect("items").clone();
        items
            .iter()
            .any(|b| b["status"] == "done" && b["size_bytes"].as_i64().is_some())
            .then_some(items)
    })
    .await;
    let older: Vec<&Value> = listed
        .iter()
        .filter(|b| b["size_bytes"].is_null())
        .collect();
    // Kept: the newest of each of 7 days, plus the newest of each of 4 weeks (some of which
    // are among those days).
    assert!(
        (7..=11).contains(&older.len()),
        "{} kept: {older:#?}",
        older.len()
    );
    let ages: Vec<i64> = older
        .iter()
        .map(|b| {
            let at: chrono::DateTime<chrono::Utc> = b["created_at"]
                .as_str()
                .expect("at")
                .parse()
                .expect("rfc3339");
            (chrono::Utc::now() - at).num_days()
        })
        .collect();
    for day in 1..=7 {
        assert!(ages.contains(&day), "day {day} kept: {ages:?}");
    }
    assert!(
        ages.iter().all(|a| *a <= 28),
        "nothing older than four weeks: {ages:?}"
    );
    // The next one is queued for tomorrow, and the pruning is on record.
    let next = app
        .get(
            "/api/v1/jobs?kind=backup.scheduled&status=pending",
            &t.token,
        )
        .await
        .expect(200);
    assert_eq!(next["items"].as_array().map(Vec::len), Some(1), "{next:#}");
    let audit = app
        .get("/api/v1/audit?action=backup.pruned", &t.token)
        .await
        .expect(200);
    assert!(audit["items"][0]["detail"]["backups"]
        .as_array()
        .is_some_and(|b| !b.is_empty()));
}
