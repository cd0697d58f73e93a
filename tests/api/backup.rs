//! Per-tenant backups: taken through the API (a job), downloaded, restored into a new tenant
//! by `crm tenant restore` (with the real S3 server, records, history and files compared),
//! and an archive of an older schema version brought to the current one. The helpers here
//! serve `backup_same_tenant` too.

use crate::attachments::{file, upload};
use crate::helpers::{eventually, id, unique_slug, Tenant, TestApp, PASSWORD};
use crate::s3::Moto;
use crm_core::files::FileStoreConfig;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR backup test bytes";

/// Runs `crm` with `args` against the test database, configured by `config` (a crm.toml).
pub(crate) fn crm(app: &TestApp, config: &Path, args: &[&str]) -> (bool, String) {
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
pub(crate) fn config_file(app: &TestApp) -> PathBuf {
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

pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Takes a backup through the API and waits for the job to finish it.
pub(crate) async fn backup(app: &TestApp, token: &str) -> Value {
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

pub(crate) async fn download(app: &TestApp, token: &str, backup: &Value) -> Vec<u8> {
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
pub(crate) async fn populate(app: &TestApp, t: &Tenant) {
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

#[tokio::test]
async fn an_archive_of_an_older_schema_version_restores_into_the_current_one() {
    use crm_core::db::{Db, TenantIsolation};
    use crm_core::domain::{DisplayName, Email};
    use crm_tenants::migrations::latest_tenant_version;
    use crm_tenants::{provision_tenant_at, NewAdmin, NewTenant, TenantSlug};

    let app = TestApp::spawn().await;
    // A tenant as the server before backups (the version before the latest) left it, with a
    // customer.
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
