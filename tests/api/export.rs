//! Exports: a filtered list read back as CSV and as XLSX (calamine), in the exporter's scope,
//! masked as they see it, custom fields included, headers in zh-CN or en; `fields=`; the
//! export permission; a large XLSX written by a job and downloaded; PDFs read back with
//! pdftotext (poppler-utils, which test.sh installs).

use crate::access::role;
use crate::helpers::{eventually, id, unique_slug, Tenant, TestApp, PASSWORD};
use calamine::{Data, Reader, Xlsx};
use reqwest::StatusCode;
use serde_json::json;

/// A custom field on customers with labels in both languages.
async fn vip_field(app: &TestApp, t: &Tenant) {
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "vip", "label": "VIP level", "labels": {"zh-CN": "会员等级", "en": "VIP level"},
               "type": "text"}),
    )
    .await
    .expect(201);
}

/// A GET that answers a file: status, headers, bytes.
async fn fetch(
    app: &TestApp,
    path: &str,
    token: &str,
    language: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(l) = language {
        req = req.header("Accept-Language", l);
    }
    let resp = req.send().await.expect("export answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

/// A file that must come with 200 and `content_type`.
async fn file(
    app: &TestApp,
    path: &str,
    token: &str,
    language: Option<&str>,
    content_type: &str,
) -> Vec<u8> {
    let (status, headers, bytes) = fetch(app, path, token, language).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(ct.starts_with(content_type), "content type {ct}");
    bytes
}

/// RFC 4180 rows of a CSV text (BOM dropped).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

/// The first sheet of an XLSX file as text cells.
fn xlsx_rows(bytes: Vec<u8>) -> Vec<Vec<String>> {
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("an XLSX file");
    let sheet = book
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    sheet
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::Empty => String::new(),
                    Data::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// The column named `header` of `rows` (header row first).
fn column(rows: &[Vec<String>], header: &str) -> Vec<String> {
    let i = rows[0]
        .iter()
        .position(|h| h == header)
        .unwrap_or_else(|| panic!("no column {header} in {:?}", rows[0]));
    rows[1..].iter().map(|r| r[i].clone()).collect()
}

#[tokio::test]
async fn a_filtered_list_exports_as_csv_and_xlsx_in_scope_masked_in_the_callers_language() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    vip_field(&app, &t).await;
    role(
        &app,
        &t,
        "exporter",
        &["customers:read", "customers:create", "customers:export"],
        "own",
    )
    .await;
    let (exporter_id, exporter) = app.user_with_roles(&t, &["exporter"]).await;
    for (name, phone, level, vip) in [
        ("华夏科技", "13812345678", "A", "金卡"),
        ("长江贸易", "13912345678", "A", "银卡"),
        ("黄河物流", "13712345678", "B", "铜卡"),
    ] {
        app.post(
            "/api/v1/customers",
            &exporter,
            json!({"name": name, "phone": phone, "level": level, "custom": {"vip": vip}}),
        )
        .await
        .expect(201);
    }
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "别人的客户", "phone": "13600001111", "level": "A"}),
    )
    .await
    .expect(201);

    // CSV, headers in the company's language (the exporter chose none, the client asks none).
    let csv = file(
        &app,
        "/api/v1/customers/export?filter[level]=A&sort=name",
        &exporter,
        None,
        "text/csv",
    )
    .await;
    let rows = csv_rows(&String::from_utf8(csv).expect("UTF-8"));
    assert_eq!(
        rows.len(),
        3,
        "header + the exporter's two level-A customers: {rows:?}"
    );
    for header in [
        "编号",
        "名称",
        "电话",
        "级别",
        "会员等级",
        "负责人",
        "创建时间",
    ] {
        assert!(
            rows[0].contains(&header.to_owned()),
            "{header} in {:?}",
            rows[0]
        );
    }
    let mut names = column(&rows, "名称");
    names.sort();
    assert_eq!(names, ["华夏科技", "长江贸易"], "other scope absent");
    assert!(
        column(&rows, "电话").iter().all(|p| p.contains("****")),
        "masked: {rows:?}"
    );
    let mut vips = column(&rows, "会员等级");
    vips.sort();
    assert_eq!(vips, ["金卡", "银卡"], "custom field present");

    // The same as XLSX, headers in English as the client asks.
    let xlsx = file(
        &app,
        "/api/v1/records/customers/export?filter[level]=A&format=xlsx",
        &exporter,
        Some("en-US,en;q=0.9,zh-CN;q=0.5"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    .await;
    let sheet = xlsx_rows(xlsx);
    assert_eq!(sheet.len(), 3, "{sheet:?}");
    let mut names = column(&sheet, "Name");
    names.sort();
    assert_eq!(names, ["华夏科技", "长江贸易"]);
    assert!(column(&sheet, "Phone").iter().all(|p| p.contains("****")));
    assert!(column(&sheet, "VIP level").contains(&"金卡".to_owned()));

    // The user's own locale wins over the client's language.
    app.patch(
        &format!("/api/v1/users/{exporter_id}"),
        &t.token,
        json!({"locale": "en"}),
    )
    .await
    .expect(200);
    let csv = file(
        &app,
        "/api/v1/customers/export",
        &exporter,
        Some("zh-CN"),
        "text/csv",
    )
    .await;
    let rows = csv_rows(&String::from_utf8(csv).expect("UTF-8"));
    assert!(rows[0].contains(&"Name".to_owned()), "{:?}", rows[0]);
    assert_eq!(rows.len(), 4, "all three of the exporter's own: {rows:?}");

    // `fields=` chooses and orders the columns; `headers=keys` names them by API path.
    let csv = file(
        &app,
        "/api/v1/customers/export?fields=custom.vip,name&headers=keys&filter[level]=B",
        &exporter,
        None,
        "text/csv",
    )
    .await;
    let rows = csv_rows(&String::from_utf8(csv).expect("UTF-8"));
    assert_eq!(rows, [vec!["custom.vip", "name"], vec!["铜卡", "黄河物流"]]);
    let unknown = app
        .get("/api/v1/customers/export?fields=name,planet", &exporter)
        .await
        .expect_problem(422, "export.unknown_field");
    assert!(
        unknown["detail"].as_str().unwrap().contains("'planet'"),
        "{unknown}"
    );
    app.get("/api/v1/customers/export?format=docx", &exporter)
        .await
        .expect_problem(422, "validation.failed");

    // No export permission: refused, whatever the format.
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    for format in ["csv", "xlsx"] {
        app.get(
            &format!("/api/v1/customers/export?format={format}"),
            &viewer,
        )
        .await
        .expect_problem(403, "auth.forbidden");
    }

    let audit = app
        .items("/api/v1/audit?action=customers.exported", &t.token)
        .await;
    let formats: Vec<&str> = audit
        .iter()
        .filter_map(|e| e["detail"]["format"].as_str())
        .collect();
    assert!(
        formats.contains(&"csv") && formats.contains(&"xlsx"),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|e| e["detail"]["format"] == "xlsx" && e["detail"]["rows"] == 2),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_large_xlsx_export_is_written_by_a_job_and_downloaded_by_whoever_asked() {
    let app = TestApp::spawn_with(|c| c.export.async_rows = 2).await;
    let t = app.signup().await;
    for i in 0..3 {
        app.post(
            "/api/v1/customers",
            &t.token,
            json!({"name": format!("客户{i}"), "level": "A"}),
        )
        .await
        .expect(201);
    }
    // CSV streams whatever its size.
    let csv = file(&app, "/api/v1/customers/export", &t.token, None, "text/csv").await;
    assert_eq!(csv_rows(&String::from_utf8(csv).unwrap()).len(), 4);

    let resp = app
        .get(
            "/api/v1/customers/export?format=xlsx&headers=keys",
            &t.token,
        )
        .await;
    let location = resp
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let queued = resp.expect(202);
    assert_eq!(location.as_deref(), queued["status_url"].as_str());
    assert!(
        matches!(queued["status"].as_str(), Some("queued" | "running")),
        "{queued}"
    );
    let status_url = queued["status_url"].as_str().unwrap().to_owned();

    let done = eventually("the export job", || {
        let (app, url, token) = (&app, status_url.clone(), t.token.clone());
        async move {
            let s = app.get(&url, &token).await.expect(200);
            (s["status"] == "done").then_some(s)
        }
    })
    .await;
    assert_eq!(done["rows"], 3, "{done}");
    assert!(done["expires_at"].is_string(), "{done}");
    let download = done["download_url"]
        .as_str()
        .expect("download url")
        .to_owned();
    let sheet = xlsx_rows(
        file(
            &app,
            &download,
            &t.token,
            None,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        .await,
    );
    assert_eq!(sheet.len(), 4, "{sheet:?}");
    let mut names = column(&sheet, "name");
    names.sort();
    assert_eq!(names, ["客户0", "客户1", "客户2"]);

    // Nobody else sees it, not even another administrator.
    let email = format!("{}@{}.example.com", unique_slug("a"), t.slug);
    app.post(
        "/api/v1/users",
        &t.token,
        json!({"email": email, "name": "王芳", "password": PASSWORD, "roles": ["admin"]}),
    )
    .await
    .expect(201);
    let other = app.login(&t.slug, &email, PASSWORD).await.expect(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get(&status_url, &other)
        .await
        .expect_problem(404, "export.not_found");
    app.get(&download, &other)
        .await
        .expect_problem(404, "export.not_found");

    let audit = app
        .items("/api/v1/audit?action=customers.exported", &t.token)
        .await;
    assert!(
        audit
            .iter()
            .any(|e| e["detail"]["format"] == "xlsx" && e["detail"]["rows"] == 3),
        "{audit:?}"
    );

    // The retention period ends (brought forward here): the file goes, the export says so.
    let schema = app.schema_of(&t).await;
    let run_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(&format!(
        "SELECT run_at FROM \"{schema}\".jobs WHERE kind = 'export.expire' AND status = 'pending'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("the expiry is armed");
    assert!(
        run_at > chrono::Utc::now() + chrono::Duration::hours(23),
        "{run_at}"
    );
    sqlx::query(&format!(
        "UPDATE \"{schema}\".jobs SET run_at = now() WHERE kind = 'export.expire'"
    ))
    .execute(&app.pool)
    .await
    .expect("due");
    sqlx::query("UPDATE platform.job_hints SET next_run_at = now() WHERE tenant_id = $1::uuid")
        .bind(&t.id)
        .execute(&app.pool)
        .await
        .expect("hint");
    eventually("the export's expiry", || async {
        let s = app.get(&status_url, &t.token).await.expect(200);
        (s["status"] == "expired").then_some(())
    })
    .await;
    app.get(&download, &t.token)
        .await
        .expect_problem(404, "export.expired");
}

/// The text of a PDF, as pdftotext (poppler-utils) reads it.
fn pdf_text(bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("crm-pdf-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("page.pdf");
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext runs (poppler-utils; ./test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout).expect("UTF-8 text")
}

#[tokio::test]
async fn a_customer_and_the_reports_print_as_pdfs_with_chinese_text() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let customer = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "北京华夏科技有限公司", "phone": "13812345678", "level": "A",
                   "stage": "prospect", "address": {"province": "北京市", "city": "北京市",
                   "district": "海淀区", "street": "中关村大街1号"}}),
        )
        .await
        .expect(201);
    let cid = id(&customer);
    for path in [
        format!("/api/v1/customers/{cid}/pdf"),
        format!("/api/v1/records/customers/{cid}/pdf"),
    ] {
        let pdf = file(&app, &path, &t.token, None, "application/pdf").await;
        assert!(pdf.starts_with(b"%PDF-"), "a PDF file");
        // A subset of the CJK font, not all of its 20 MB.
        assert!(pdf.len() < 300_000, "{} bytes", pdf.len());
        let text = pdf_text(&pdf);
        for expected in [
            "北京华夏科技有限公司",
            "名称",
            "潜在客户",
            "中关村大街1号",
            "张伟",
        ] {
            assert!(text.contains(expected), "{expected} in: {text}");
        }
    }
    let english = pdf_text(
        &file(
            &app,
            &format!("/api/v1/customers/{cid}/pdf"),
            &t.token,
            Some("en"),
            "application/pdf",
        )
        .await,
    );
    assert!(
        english.contains("Name") && english.contains("Prospect"),
        "{english}"
    );
    assert!(english.contains("北京华夏科技有限公司"), "{english}");

    // Printing is exporting: the permission, the audit.
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    app.get(&format!("/api/v1/customers/{cid}/pdf"), &viewer)
        .await
        .expect_problem(403, "auth.forbidden");
    let audit = app
        .items("/api/v1/audit?action=customers.exported", &t.token)
        .await;
    assert!(
        audit.iter().any(|e| e["detail"]["format"] == "pdf"),
        "{audit:?}"
    );

    // The reports, with an opportunity and a ticket in them.
    app.post(
        "/api/v1/opportunities",
        &t.token,
        json!({"name": "年度软件采购", "customer_id": cid, "amount": 120000, "currency": "CNY"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/tickets",
        &t.token,
        json!({"subject": "打印机无法连接", "customer_id": cid, "priority": "high"}),
    )
    .await
    .expect(201);
    let sales_pdf = file(
        &app,
        "/api/v1/reports/sales/pdf",
        &t.token,
        None,
        "application/pdf",
    )
    .await;
    let sales = pdf_text(&sales_pdf);
    assert!(
        sales.contains("销售报表")
            && sales.contains("销售漏斗")
            && sales.contains("CNY 120,000.00"),
        "{sales}"
    );
    let service_pdf = file(
        &app,
        "/api/v1/reports/service/pdf",
        &t.token,
        None,
        "application/pdf",
    )
    .await;
    let service = pdf_text(&service_pdf);
    assert!(
        service.contains("服务报表") && service.contains("按优先级") && service.contains("高"),
        "{service}"
    );
}

#[tokio::test]
async fn without_a_cjk_font_pdfs_are_refused_with_what_to_install() {
    let app = TestApp::spawn_with(|c| c.export.pdf_font = "/nonexistent/font.ttc".into()).await;
    let t = app.signup().await;
    let customer = app
        .post("/api/v1/customers", &t.token, json!({"name": "华夏科技"}))
        .await
        .expect(201);
    let problem = app
        .get(
            &format!("/api/v1/customers/{}/pdf", id(&customer)),
            &t.token,
        )
        .await
        .expect_problem(503, "export.pdf_font_missing");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("fonts-noto-cjk"),
        "{problem}"
    );
    // Nothing was exported, so nothing is audited.
    let audit = app
        .items("/api/v1/audit?action=customers.exported", &t.token)
        .await;
    assert!(audit.is_empty(), "{audit:?}");
}
