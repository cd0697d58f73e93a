//! Attachments over HTTP against both file stores — the local directory (default settings) and
//! a real S3 server (moto) — with the same scenario; then limits, refusals and access.

use crate::helpers::{eventually, id, Resp, Tenant, TestApp};
use crate::s3::{object_bytes, object_names, Moto};
use crm_core::files::{FileStoreConfig, S3Config, S3Store};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A real 1×1 PNG (one red pixel).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90\x77\x53\xde\x00\x00\x00\x0cIDAT\x78\x9c\x63\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xae\x42\x60\x82";
const PNG_SHA256: &str = "b1ff9c8ea3a780bad09b346c423d2d0e46815926879b18e841d928376a946640";
/// A minimal PDF document.
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
const PDF_SHA256: &str = "93e31154c364805a3ef8c904bc257f5ef77600c31b67d392704cd6e1e9cd0657";
/// The start of a Windows program.
const EXE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00";

/// One part of a multipart/form-data body.
pub(crate) struct Part<'a> {
    name: &'a str,
    file_name: Option<&'a str>,
    content_type: Option<&'a str>,
    bytes: &'a [u8],
}

pub(crate) fn file<'a>(file_name: &'a str, content_type: &'a str, bytes: &'a [u8]) -> Part<'a> {
    Part {
        name: "file",
        file_name: Some(file_name),
        content_type: Some(content_type),
        bytes,
    }
}

fn field<'a>(name: &'a str, value: &'a str) -> Part<'a> {
    Part {
        name,
        file_name: None,
        content_type: None,
        bytes: value.as_bytes(),
    }
}

/// POSTs `parts` as multipart/form-data, the way browsers do (raw UTF-8 file names).
pub(crate) async fn upload(app: &TestApp, ticket: &str, token: &str, parts: &[Part<'_>]) -> Resp {
    let boundary = format!("----crm-test-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", p.name);
        if let Some(f) = p.file_name {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = p.content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(p.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let req = app
        .client
        .post(format!("{}/api/v1/tickets/{ticket}/attachments", app.base))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    app.send(req).await
}

/// A download: status, headers and the raw bytes.
async fn download(app: &TestApp, attachment: &str, token: &str) -> reqwest::Response {
    app.client
        .get(format!(
            "{}/api/v1/attachments/{attachment}/content",
            app.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("download sent")
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("header {name} missing: {:?}", resp.headers()))
}

async fn ticket(app: &TestApp, t: &Tenant, body: Value) -> String {
    id(&app
        .post("/api/v1/tickets", &t.token, body)
        .await
        .expect(201))
}

async fn storage_key(app: &TestApp, t: &Tenant, attachment: &str) -> String {
    let schema = app.schema_of(t).await;
    sqlx::query_scalar(&format!(
        "SELECT storage_key FROM \"{schema}\".ticket_attachments WHERE id = $1::uuid"
    ))
    .bind(attachment)
    .fetch_one(&app.pool)
    .await
    .expect("attachment row")
}

/// The server's file store, as the test can inspect it without going through the server.
enum Backend {
    Local(PathBuf),
    S3(S3Store),
}

impl Backend {
    /// Every stored object's key.
    async fn keys(&self) -> Vec<String> {
        match self {
            Backend::Local(dir) => {
                let mut keys = Vec::new();
                walk(dir, dir, &mut keys);
                keys.sort();
                keys
            }
            Backend::S3(store) => object_names(store).await,
        }
    }

    async fn bytes(&self, key: &str) -> Vec<u8> {
        match self {
            Backend::Local(dir) => std::fs::read(dir.join(key)).expect("stored file readable"),
            Backend::S3(store) => object_bytes(store, key).await,
        }
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// Upload, list, download, attach to a comment, refuse, delete and purge: the same for every
/// store.
async fn scenario(app: &TestApp, backend: &Backend) {
    let t = app.signup().await;
    let tk = ticket(app, &t, json!({"subject": "屏幕显示异常"})).await;

    // A PNG with a Chinese name (and the path some browsers send along).
    let png = upload(
        app,
        &tk,
        &t.token,
        &[file("C:\\Users\\张伟\\客户截图 2024.png", "image/png", PNG)],
    )
    .await
    .expect(201);
    let png_id = id(&png);
    assert_eq!(png["ticket_id"], tk);
    assert_eq!(png["file_name"], "客户截图 2024.png");
    assert_eq!(png["content_type"], "image/png");
    assert_eq!(png["size_bytes"], PNG.len());
    assert_eq!(png["sha256"], PNG_SHA256);
    assert_eq!(png["uploaded_by_kind"], "user");
    assert_eq!(png["uploaded_by"], t.admin_id.as_str());
    assert!(png.get("comment_id").is_none(), "{png}");
    assert_eq!(
        png["download_url"],
        format!("/api/v1/attachments/{png_id}/content")
    );

    // Stored under a generated key of the tenant, never under the user's name.
    let png_key = storage_key(app, &t, &png_id).await;
    let tenant_hex = t.id.replace('-', "");
    assert!(png_key.starts_with(&format!("{tenant_hex}/")), "{png_key}");
    assert!(!png_key.contains(".png"));
    assert_eq!(backend.keys().await, vec![png_key.clone()]);
    assert_eq!(backend.bytes(&png_key).await, PNG);

    let list = app
        .get(&format!("/api/v1/tickets/{tk}/attachments"), &t.token)
        .await
        .expect(200);
    assert_eq!(list["items"], json!([png.clone()]));

    let got = download(app, &png_id, &t.token).await;
    assert_eq!(got.status(), 200);
    assert_eq!(header(&got, "content-type"), "image/png");
    assert_eq!(header(&got, "content-length"), PNG.len().to_string());
    assert_eq!(
        header(&got, "content-disposition"),
        "attachment; filename=\"____ 2024.png\"; \
         filename*=UTF-8''%E5%AE%A2%E6%88%B7%E6%88%AA%E5%9B%BE%202024.png"
    );
    assert_eq!(header(&got, "x-content-type-options"), "nosniff");
    assert_eq!(got.bytes().await.expect("body").as_ref(), PNG);

    // A PDF sent with an internal note.
    let note = app
        .post(
            &format!("/api/v1/tickets/{tk}/comments"),
            &t.token,
            json!({"body": "附上检测报告", "public": false}),
        )
        .await
        .expect(201);
    let pdf = upload(
        app,
        &tk,
        &t.token,
        &[
            field("comment_id", &id(&note)),
            file("检测报告.pdf", "application/pdf", PDF),
        ],
    )
    .await
    .expect(201);
    assert_eq!(pdf["comment_id"], id(&note));
    assert_eq!(pdf["content_type"], "application/pdf");
    assert_eq!(pdf["size_bytes"], PDF.len());
    assert_eq!(pdf["sha256"], PDF_SHA256);
    let list = app
        .get(&format!("/api/v1/tickets/{tk}/attachments"), &t.token)
        .await
        .expect(200);
    assert_eq!(
        list["items"],
        json!([png.clone(), pdf.clone()]),
        "oldest first"
    );
    let got = download(app, &id(&pdf), &t.token).await;
    assert_eq!(header(&got, "content-type"), "application/pdf");
    assert_eq!(got.bytes().await.expect("body").as_ref(), PDF);

    // A comment of another ticket, or no comment id at all, is refused.
    let other = ticket(app, &t, json!({"subject": "另一个工单"})).await;
    let elsewhere = app
        .post(
            &format!("/api/v1/tickets/{other}/comments"),
            &t.token,
            json!({"body": "x", "public": true}),
        )
        .await
        .expect(201);
    let body = upload(
        app,
        &tk,
        &t.token,
        &[
            field("comment_id", &id(&elsewhere)),
            file("a.png", "image/png", PNG),
        ],
    )
    .await
    .expect_problem(422, "validation.failed");
    assert_eq!(body["errors"][0]["field"], "comment_id");
    assert_eq!(body["errors"][0]["code"], "not_of_ticket");
    let body = upload(
        app,
        &tk,
        &t.token,
        &[field("comment_id", "42"), file("a.png", "image/png", PNG)],
    )
    .await
    .expect_problem(422, "validation.failed");
    assert_eq!(body["errors"][0]["code"], "invalid_uuid");

    // Refused files: nothing is stored.
    let body = upload(app, &tk, &t.token, &[file("cat.png", "image/png", EXE)])
        .await
        .expect_problem(422, "file.content_mismatch");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Windows executable")),
        "{body}"
    );
    upload(
        app,
        &tk,
        &t.token,
        &[file("setup.exe", "application/x-msdownload", EXE)],
    )
    .await
    .expect_problem(422, "file.type_not_allowed");
    let body = upload(app, &tk, &t.token, &[field("comment_id", &id(&note))])
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(body["errors"][0]["field"], "file");
    let body = upload(
        app,
        &tk,
        &t.token,
        &[file("bad\u{202E}gnp.exe", "image/png", PNG)],
    )
    .await
    .expect_problem(422, "validation.failed");
    assert_eq!(body["errors"][0]["code"], "invalid_file_name");
    let pdf_key = storage_key(app, &t, &id(&pdf)).await;
    let mut both = vec![png_key.clone(), pdf_key.clone()];
    both.sort();
    assert_eq!(backend.keys().await, both);

    // Delete: the row, then the object.
    app.delete(&format!("/api/v1/attachments/{png_id}"), &t.token)
        .await
        .expect(204);
    app.get(&format!("/api/v1/attachments/{png_id}/content"), &t.token)
        .await
        .expect_problem(404, "attachment.not_found");
    app.delete(&format!("/api/v1/attachments/{png_id}"), &t.token)
        .await
        .expect_problem(404, "attachment.not_found");
    assert_eq!(backend.keys().await, vec![pdf_key.clone()]);
    let list = app
        .get(&format!("/api/v1/tickets/{tk}/attachments"), &t.token)
        .await
        .expect(200);
    assert_eq!(list["items"], json!([pdf.clone()]));

    // The ticket's history announces both changes.
    let schema = app.schema_of(&t).await;
    let events: Vec<(String, Value)> = sqlx::query_as(&format!(
        "SELECT event, payload FROM \"{schema}\".outbox WHERE record_id = $1::uuid \
         AND event LIKE 'ticket.attachment%' ORDER BY id"
    ))
    .bind(&tk)
    .fetch_all(&app.pool)
    .await
    .expect("outbox");
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "ticket.attachment_added",
            "ticket.attachment_added",
            "ticket.attachment_deleted"
        ]
    );
    assert_eq!(events[0].1["attachment_id"], png_id);
    assert_eq!(events[0].1["file_name"], "客户截图 2024.png");
    assert_eq!(events[1].1["comment_id"], id(&note));
    assert_eq!(events[2].1["attachment_id"], png_id);

    // Purging the ticket removes its rows (cascade) and, through a job, its objects.
    app.delete(&format!("/api/v1/tickets/{tk}?purge=true"), &t.token)
        .await
        .expect(204);
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".ticket_attachments"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(count, 0);
    eventually("the purged ticket's objects to be deleted", || async {
        backend.keys().await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn attachments_on_the_local_store() {
    let app = TestApp::spawn().await;
    assert_eq!(app.config.files, FileStoreConfig::Local { dir: None });
    scenario(&app, &Backend::Local(app.config.data_dir.join("files"))).await;
}

#[tokio::test]
async fn attachments_on_s3() {
    let moto = Moto::start().await;
    let store = moto.bucket("crm-attachments").await;
    let config = moto.config("crm-attachments");
    let app = TestApp::spawn_with(|c| c.files = FileStoreConfig::S3(config)).await;
    scenario(&app, &Backend::S3(store)).await;
    assert!(
        !app.config.data_dir.join("files").exists(),
        "nothing is written locally when S3 is configured"
    );
}

#[tokio::test]
async fn uploads_over_the_limit_are_413_and_larger_than_ordinary_bodies_are_fine() {
    let app = TestApp::spawn_with(|c| c.uploads.max_bytes = 1000).await;
    let t = app.signup().await;
    let tk = ticket(&app, &t, json!({"subject": "大文件"})).await;
    let just_over = vec![b'a'; 1001];
    let body = upload(
        &app,
        &tk,
        &t.token,
        &[file("big.txt", "text/plain", &just_over)],
    )
    .await
    .expect_problem(413, "file.too_large");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("limit is 1000 bytes")),
        "{body}"
    );
    // Far over the limit: refused while reading the body, with the same code.
    let far_over = vec![b'a'; 300_000];
    upload(
        &app,
        &tk,
        &t.token,
        &[file("huge.txt", "text/plain", &far_over)],
    )
    .await
    .expect_problem(413, "file.too_large");
    let at_limit = vec![b'a'; 1000];
    upload(
        &app,
        &tk,
        &t.token,
        &[file("ok.txt", "text/plain", &at_limit)],
    )
    .await
    .expect(201);
    let stored = {
        let mut keys = Vec::new();
        let dir = app.config.data_dir.join("files");
        walk(&dir, &dir, &mut keys);
        keys
    };
    assert_eq!(stored.len(), 1, "only the accepted file is stored");

    // With the default 20 MiB limit an upload may exceed max_body_bytes (1 MiB); other
    // routes keep that limit.
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let tk = ticket(&app, &t, json!({"subject": "扫描件"})).await;
    let mut big_pdf = PDF.to_vec();
    big_pdf.resize(3 * 1024 * 1024, b' ');
    let a = upload(
        &app,
        &tk,
        &t.token,
        &[file("扫描件.pdf", "application/pdf", &big_pdf)],
    )
    .await
    .expect(201);
    assert_eq!(a["size_bytes"], big_pdf.len());
    let got = download(&app, &id(&a), &t.token).await;
    assert_eq!(got.bytes().await.expect("body").len(), big_pdf.len());
    let long = "x".repeat(2 * 1024 * 1024);
    app.post(
        &format!("/api/v1/tickets/{tk}/comments"),
        &t.token,
        json!({"body": long, "public": false}),
    )
    .await
    .expect_problem(413, "request.too_large");
}

#[tokio::test]
async fn attachments_follow_the_tickets_permissions_and_scope() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "service-own", "permissions": ["tickets:read", "tickets:update"],
               "scopes": {"tickets": "own"}}),
    )
    .await
    .expect(201);
    let (own_id, own) = app.user_with_roles(&t, &["service-own"]).await;
    let theirs = ticket(
        &app,
        &t,
        json!({"subject": "别人的工单", "assignee_id": t.admin_id}),
    )
    .await;
    let mine = ticket(
        &app,
        &t,
        json!({"subject": "我的工单", "assignee_id": own_id}),
    )
    .await;
    let secret = upload(
        &app,
        &theirs,
        &t.token,
        &[file("合同.pdf", "application/pdf", PDF)],
    )
    .await
    .expect(201);
    let secret_id = id(&secret);

    // Outside the own scope: the ticket and its files do not exist.
    app.get(&format!("/api/v1/tickets/{theirs}/attachments"), &own)
        .await
        .expect_problem(404, "record.not_found");
    app.get(&format!("/api/v1/attachments/{secret_id}/content"), &own)
        .await
        .expect_problem(404, "attachment.not_found");
    app.delete(&format!("/api/v1/attachments/{secret_id}"), &own)
        .await
        .expect_problem(404, "attachment.not_found");
    upload(&app, &theirs, &own, &[file("x.png", "image/png", PNG)])
        .await
        .expect_problem(404, "record.not_found");
    // Inside it, everything works, and the upload is theirs.
    let a = upload(&app, &mine, &own, &[file("x.png", "image/png", PNG)])
        .await
        .expect(201);
    assert_eq!(a["uploaded_by"], own_id.as_str());
    let list = app
        .get(&format!("/api/v1/tickets/{mine}/attachments"), &own)
        .await
        .expect(200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(download(&app, &id(&a), &own).await.status(), 200);

    // Reading is not changing: a viewer lists and downloads but cannot upload or delete.
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    let body = upload(&app, &theirs, &viewer, &[file("x.png", "image/png", PNG)])
        .await
        .expect_problem(403, "auth.forbidden");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("tickets:update")),
        "{body}"
    );
    app.delete(&format!("/api/v1/attachments/{secret_id}"), &viewer)
        .await
        .expect_problem(403, "auth.forbidden");
    let got = download(&app, &secret_id, &viewer).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("body").as_ref(), PDF);

    // Another tenant never sees the attachment, whatever its role.
    let other = app.signup().await;
    app.get(
        &format!("/api/v1/attachments/{secret_id}/content"),
        &other.token,
    )
    .await
    .expect_problem(404, "attachment.not_found");
    app.delete(&format!("/api/v1/attachments/{secret_id}"), &other.token)
        .await
        .expect_problem(404, "attachment.not_found");
    app.get(
        &format!("/api/v1/tickets/{theirs}/attachments"),
        &other.token,
    )
    .await
    .expect_problem(404, "record.not_found");

    // A row whose key names another tenant's object is never served, even to its tenant.
    let other_ticket = ticket(&app, &other, json!({"subject": "其他公司"})).await;
    let foreign = upload(
        &app,
        &other_ticket,
        &other.token,
        &[file("foreign.png", "image/png", PNG)],
    )
    .await
    .expect(201);
    let foreign_key = storage_key(&app, &other, &id(&foreign)).await;
    let schema = app.schema_of(&t).await;
    sqlx::query(&format!(
        "UPDATE \"{schema}\".ticket_attachments SET storage_key = $1 WHERE id = $2::uuid"
    ))
    .bind(&foreign_key)
    .bind(&secret_id)
    .execute(&app.pool)
    .await
    .expect("tamper with the key");
    let got = download(&app, &secret_id, &t.token).await;
    assert_eq!(got.status(), 500);
    let text = got.text().await.expect("body");
    assert!(text.contains("\"code\":\"internal\""), "{text}");
    assert!(!text.contains("IHDR"), "the foreign bytes are not served");
}

#[tokio::test]
async fn the_server_does_not_start_without_a_usable_file_store() {
    let app = TestApp::spawn().await;
    std::fs::create_dir_all(&app.config.data_dir).expect("data dir");
    let blocker = app.config.data_dir.join("a-file");
    std::fs::write(&blocker, b"not a directory").expect("blocker");
    let incomplete = S3Config {
        endpoint: Some("http://127.0.0.1:9".into()),
        region: "us-east-1".into(),
        bucket: " ".into(),
        access_key_id: "a".into(),
        secret_access_key: "s".into(),
        force_path_style: true,
        prefix: None,
    };
    for (files, says) in [
        (
            FileStoreConfig::Local {
                dir: Some(blocker.join("files")),
            },
            "cannot create the file directory",
        ),
        (FileStoreConfig::S3(incomplete), "bucket"),
    ] {
        let config = crm::config::Config {
            files,
            ..app.config.clone()
        };
        let url = config.database_url.clone().expect("url");
        let pool = crm::server::connect(&config, &url).await.expect("pool");
        let Err(err) = crm::server::start(config, pool).await else {
            panic!("the server started with an unusable file store");
        };
        let message = format!("{err:#}");
        assert!(
            message.contains("cannot open the attachment file store ([files])")
                && message.contains(says),
            "{message}"
        );
    }
}
