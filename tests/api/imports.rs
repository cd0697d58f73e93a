//! Imports over HTTP against a real PostgreSQL (and, for one test, the real S3 server): a
//! messy 10,000-row GBK CSV with exactly the expected counts and error rows, an XLSX written
//! by a real writer, upsert, dry run, undo back to the tenant as it was (and what undo must
//! leave alone), refusals, and a server killed mid-import that resumes without duplicates.

use crate::helpers::{id, Resp, Tenant, TestApp};
use crate::s3::Moto;
use crm_core::files::FileStoreConfig;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

/// POSTs a file and its options as multipart/form-data to `path`.
pub(crate) async fn send_file(
    app: &TestApp,
    path: &str,
    token: &str,
    file_name: &str,
    bytes: &[u8],
    options: &Value,
) -> Resp {
    let boundary = format!("----crm-import-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"options\"\r\n\r\n{options}\r\n--{boundary}--\r\n"
        )
        .as_bytes(),
    );
    let req = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    app.send(req).await
}

/// Starts an import; returns it as the API answered (201).
pub(crate) async fn start(
    app: &TestApp,
    token: &str,
    file_name: &str,
    bytes: &[u8],
    options: Value,
) -> Value {
    send_file(app, "/api/v1/imports", token, file_name, bytes, &options)
        .await
        .expect(201)
}

/// Polls an import until it is done, failed or undone (2 minutes at most: a debug build).
pub(crate) async fn finished(app: &TestApp, token: &str, import: &str) -> Value {
    for _ in 0..1200 {
        let now = app
            .get(&format!("/api/v1/imports/{import}"), token)
            .await
            .expect(200);
        if matches!(now["status"].as_str(), Some("done" | "failed" | "undone")) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("import {import} did not finish");
}

async fn field(app: &TestApp, t: &Tenant, body: Value) {
    app.post("/api/v1/objects/customers/fields", &t.token, body)
        .await
        .expect(201);
}

/// The error report as CSV lines (BOM stripped), header first.
async fn report(app: &TestApp, token: &str, import: &str, lang: &str) -> Vec<Vec<String>> {
    let resp = app
        .client
        .get(format!(
            "{}/api/v1/imports/{import}/errors?format=csv&lang={lang}",
            app.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("report");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("report body");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 report");
    let text = text.strip_prefix('\u{feff}').expect("a BOM for Excel");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("report line").iter().map(str::to_owned).collect())
        .collect()
}

async fn customer_count(app: &TestApp, t: &Tenant) -> i64 {
    let schema = app.schema_of(t).await;
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".customers WHERE deleted_at IS NULL"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("count")
}

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GB18030.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}

#[tokio::test]
async fn a_messy_gbk_csv_imports_with_every_row_accounted_for() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    field(
        &app,
        &t,
        json!({"key": "birthday", "label": "生日", "type": "date"}),
    )
    .await;
    field(
        &app,
        &t,
        json!({"key": "vip", "label": "会员等级", "type": "select", "options": ["gold", "silver"],
               "option_labels": {"gold": {"zh-CN": "金卡", "en": "Gold"}, "silver": {"zh-CN": "银卡", "en": "Silver"}}}),
    )
    .await;

    // 10,000 rows: duplicates of the previous row's phone, bad dates, bad phones, rows missing
    // their last columns, rows with a cell too many, an unmapped column.
    const ROWS: usize = 10_000;
    let mut csv = String::from("客户名称,手机,邮箱,省份,城市,生日,会员等级,备注2\n");
    let mut phones: Vec<String> = Vec::with_capacity(ROWS);
    let mut expected_failed: BTreeMap<usize, &str> = BTreeMap::new();
    let mut expected_skipped: BTreeSet<usize> = BTreeSet::new();
    let mut accepted: HashSet<String> = HashSet::new();
    for i in 0..ROWS {
        let phone = if i % 89 == 7 {
            "12345".to_owned()
        } else if i % 50 == 49 {
            phones[i - 1].clone()
        } else {
            format!("138{i:08}")
        };
        phones.push(phone.clone());
        let birthday = if i % 97 == 5 {
            "2025-13-45".to_owned()
        } else {
            format!("1990/{}/{}", i % 12 + 1, i % 28 + 1)
        };
        let vip = if i % 2 == 0 { "金卡" } else { "Silver" };
        let line = if i % 61 == 3 {
            format!("\"客户, {i}\",{phone},c{i}@example.com\n")
        } else if i % 71 == 2 {
            format!("\"客户, {i}\",{phone},c{i}@example.com,广东省,深圳市,{birthday},{vip},备注,多余的格\n")
        } else {
            format!("\"客户, {i}\",{phone},c{i}@example.com,广东省,深圳市,{birthday},{vip},备注\n")
        };
        csv.push_str(&line);
        let row_no = i + 2;
        let date_bad = i % 97 == 5 && i % 61 != 3;
        // A cell the importer cannot read is reported before the engine sees the row.
        if date_bad {
            expected_failed.insert(row_no, "invalid_date");
        } else if phone == "12345" {
            expected_failed.insert(row_no, "invalid_phone");
        } else if !accepted.insert(phone) {
            expected_skipped.insert(row_no);
        }
    }
    let bytes = gbk(&csv);

    // The preview detects the encoding and suggests the mapping from the Chinese headers.
    let preview = send_file(
        &app,
        "/api/v1/imports/preview",
        &t.token,
        "客户名单.csv",
        &bytes,
        &json!({"object": "customers"}),
    )
    .await
    .expect(200);
    assert_eq!(preview["encoding"], "GB18030");
    assert_eq!(preview["separator"], ",");
    assert_eq!(preview["rows"], ROWS);
    assert_eq!(preview["sample"][0][0], "客户, 0");
    let suggested = &preview["suggested_mapping"];
    assert_eq!(suggested["客户名称"], "name");
    assert_eq!(suggested["手机"], "phone");
    assert_eq!(suggested["邮箱"], "email");
    assert_eq!(suggested["省份"], "address.province");
    assert_eq!(suggested["城市"], "address.city");
    assert_eq!(suggested["生日"], "custom.birthday");
    assert_eq!(suggested["会员等级"], "custom.vip");
    assert_eq!(suggested["备注2"], Value::Null);

    // Without a mapping the import waits with the suggestion; confirming it starts it.
    let pending = start(
        &app,
        &t.token,
        "客户名单.csv",
        &bytes,
        json!({"object": "customers"}),
    )
    .await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["options"]["mapping"]["手机"], "phone");
    let import = id(&pending);
    let queued = app
        .post(
            &format!("/api/v1/imports/{import}/start"),
            &t.token,
            json!({}),
        )
        .await
        .expect(202);
    assert_eq!(queued["status"], "queued");
    let done = finished(&app, &t.token, &import).await;
    assert_eq!(done["status"], "done", "{done:#}");
    let created = ROWS - expected_failed.len() - expected_skipped.len();
    assert_eq!(
        done["counts"],
        json!({"total": ROWS, "created": created, "updated": 0, "skipped": expected_skipped.len(), "failed": expected_failed.len()}),
        "{done:#}"
    );
    assert!(done["rows_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(customer_count(&app, &t).await, created as i64);

    // Every refused or skipped row is in the report, under its own row number.
    let lines = report(&app, &t.token, &import, "zh-CN").await;
    assert_eq!(
        &lines[0][..7],
        ["行号", "结果", "列", "值", "字段", "代码", "说明"]
    );
    assert_eq!(
        &lines[0][7..],
        [
            "客户名称",
            "手机",
            "邮箱",
            "省份",
            "城市",
            "生日",
            "会员等级",
            "备注2"
        ]
    );
    let mut failed_rows: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut skipped_rows: BTreeSet<usize> = BTreeSet::new();
    for line in &lines[1..] {
        let row: usize = line[0].parse().unwrap();
        match line[1].as_str() {
            "失败" => failed_rows.entry(row).or_default().push(line[5].clone()),
            "跳过" => {
                skipped_rows.insert(row);
            }
            other => panic!("unexpected outcome {other}"),
        }
    }
    assert_eq!(skipped_rows, expected_skipped);
    assert_eq!(
        failed_rows.keys().copied().collect::<Vec<_>>(),
        expected_failed.keys().copied().collect::<Vec<_>>()
    );
    for (row, code) in &expected_failed {
        assert!(
            failed_rows[row].iter().any(|c| c == code),
            "row {row}: {:?}",
            failed_rows[row]
        );
    }
    let phone_line = lines[1..]
        .iter()
        .find(|l| l[5] == "invalid_phone")
        .expect("a bad phone line");
    assert_eq!(
        (
            phone_line[2].as_str(),
            phone_line[3].as_str(),
            phone_line[4].as_str()
        ),
        ("手机", "12345", "phone")
    );
    assert_eq!(phone_line[8], "12345", "the row's own cells follow");

    // What landed is what the file said, read through the API.
    let found = app
        .get("/api/v1/customers?filter[phone][eq]=13800000010", &t.token)
        .await
        .expect(200);
    let c = &found["items"][0];
    assert_eq!(c["name"], "客户, 10");
    assert_eq!(c["email"], "c10@example.com");
    assert_eq!(c["address"]["city"], "深圳市");
    assert_eq!(c["custom"]["birthday"], "1990-11-11");
    assert_eq!(c["custom"]["vip"], "gold");
    assert_eq!(
        c["owner_id"],
        t.admin_id.as_str(),
        "the importer owns what they import"
    );

    // An English report has English headings.
    let en = report(&app, &t.token, &import, "en").await;
    assert_eq!(en[0][0], "Row");
    assert_eq!(en.len(), lines.len());
}

#[tokio::test]
async fn an_xlsx_from_a_real_writer_imports_and_reports_in_xlsx() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    field(
        &app,
        &t,
        json!({"key": "signed_on", "label": "签约日期", "type": "date"}),
    )
    .await;
    field(
        &app,
        &t,
        json!({"key": "seats", "label": "Seats", "type": "integer"}),
    )
    .await;
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in ["Name", "Mobile", "签约日期", "Seats", "Tags"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let rows = [
        (
            "北京华信科技",
            13911112222_f64,
            (2024, 5, 6),
            "12",
            "VIP、华北",
        ),
        (
            "Acme Trading",
            13922223333_f64,
            (2023, 12, 31),
            "3",
            "export",
        ),
        ("坏座位数", 13933334444_f64, (2024, 1, 1), "many", ""),
    ];
    for (r, (name, phone, (y, m, d), seats, tags)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        sheet.write_string(r, 0, *name).unwrap();
        sheet.write_number(r, 1, *phone).unwrap();
        let dt = rust_xlsxwriter::ExcelDateTime::from_ymd(*y, *m, *d).unwrap();
        sheet.write_datetime_with_format(r, 2, &dt, &date).unwrap();
        sheet.write_string(r, 3, *seats).unwrap();
        sheet.write_string(r, 4, *tags).unwrap();
    }
    let bytes = book.save_to_buffer().unwrap();
    let options = json!({
        "object": "customers",
        "mapping": {"Name": "name", "Mobile": "phone", "签约日期": "custom.signed_on", "Seats": "custom.seats", "Tags": "tags"},
        "tags": ["导入"],
    });
    let import = id(&start(&app, &t.token, "客户.xlsx", &bytes, options).await);
    let done = finished(&app, &t.token, &import).await;
    assert_eq!(done["format"], "xlsx");
    assert_eq!(done["counts"]["created"], 2, "{done:#}");
    assert_eq!(done["counts"]["failed"], 1, "{done:#}");
    let found = app
        .get("/api/v1/customers?filter[name][eq]=北京华信科技", &t.token)
        .await
        .expect(200);
    let c = &found["items"][0];
    assert_eq!(c["custom"]["signed_on"], "2024-05-06");
    assert_eq!(c["custom"]["seats"], 12);
    assert_eq!(c["tags"], json!(["VIP", "华北", "导入"]));
    assert!(c["phone"].as_str().unwrap().contains("13911112222"), "{c}");

    // The report as XLSX reads back with the failed row.
    let resp = app
        .client
        .get(format!(
            "{}/api/v1/imports/{import}/errors?format=xlsx&lang=en",
            app.base
        ))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let xlsx = resp.bytes().await.unwrap().to_vec();
    use calamine::Reader;
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(xlsx)).expect("an XLSX report");
    let range = wb
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("readable");
    let cells: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(cells[0][0], "Row");
    assert_eq!(cells.len(), 2, "{cells:?}");
    assert_eq!(cells[1][0], "4");
    assert_eq!(cells[1][2], "Seats");
    assert_eq!(cells[1][3], "many");

    // The original file is kept for download.
    let original = app
        .client
        .get(format!("{}/api/v1/imports/{import}/file", app.base))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(original.status().as_u16(), 200);
    assert_eq!(original.bytes().await.unwrap().to_vec(), bytes);
}

/// Three customers made through the API, by phone.
async fn three_customers(app: &TestApp, t: &Tenant) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, phone) in [
        ("甲公司", "13500000001"),
        ("乙公司", "13500000002"),
        ("丙公司", "13500000003"),
    ] {
        let c = app
            .post(
                "/api/v1/customers",
                &t.token,
                json!({"name": name, "phone": phone, "level": "C", "industry": "制造"}),
            )
            .await
            .expect(201);
        ids.push(id(&c));
    }
    ids
}

#[tokio::test]
async fn upsert_updates_the_matching_records_and_creates_the_rest() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let ids = three_customers(&app, &t).await;
    let csv = "手机,级别,行业,客户名称\n13500000001,A,软件,甲公司\n135 0000 0002,B,,乙公司\n13500000009,A,零售,新公司\n";
    let options = json!({
        "object": "customers", "mode": "upsert", "match_key": "phone",
        "mapping": {"手机": "phone", "级别": "level", "行业": "industry", "客户名称": "name"},
    });
    let import = id(&start(&app, &t.token, "upsert.csv", csv.as_bytes(), options).await);
    let done = finished(&app, &t.token, &import).await;
    assert_eq!(done["counts"]["updated"], 2, "{done:#}");
    assert_eq!(done["counts"]["created"], 1, "{done:#}");
    let first = app
        .get(&format!("/api/v1/customers/{}", ids[0]), &t.token)
        .await
        .expect(200);
    assert_eq!(
        (first["level"].as_str(), first["industry"].as_str()),
        (Some("A"), Some("软件"))
    );
    let second = app
        .get(&format!("/api/v1/customers/{}", ids[1]), &t.token)
        .await
        .expect(200);
    assert_eq!(second["level"], "B");
    assert_eq!(
        second["industry"], "制造",
        "an empty cell leaves the field as it was"
    );
    let third = app
        .get(&format!("/api/v1/customers/{}", ids[2]), &t.token)
        .await
        .expect(200);
    assert_eq!(third["level"], "C", "a record no row matched is untouched");
    assert_eq!(customer_count(&app, &t).await, 4);
    let history = app
        .get(&format!("/api/v1/customers/{}/history", ids[0]), &t.token)
        .await
        .expect(200);
    assert_eq!(
        history["items"][0]["request_id"],
        format!("import:{import}")
    );

    // Update mode: a row that matches nothing fails with what to do.
    let csv = "手机,级别\n13500000003,D\n13999999999,A\n";
    let options = json!({"object": "customers", "mode": "update", "match_key": "phone", "mapping": {"手机": "phone", "级别": "level"}});
    let import = id(&start(&app, &t.token, "update.csv", csv.as_bytes(), options).await);
    let done = finished(&app, &t.token, &import).await;
    assert_eq!(
        (
            done["counts"]["updated"].as_i64(),
            done["counts"]["failed"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let lines = report(&app, &t.token, &import, "en").await;
    assert_eq!(lines[1][5], "import.no_match");
}

#[tokio::test]
async fn dry_run_validates_everything_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let csv = "Name,Phone\nAlpha,13700000001\nBeta,not a phone\n";
    let options = json!({"object": "customers", "dry_run": true, "mapping": {"Name": "name", "Phone": "phone"}});
    let import = id(&start(&app, &t.token, "dry.csv", csv.as_bytes(), options).await);
    let done = finished(&app, &t.token, &import).await;
    assert_eq!(done["dry_run"], true);
    assert_eq!(
        (
            done["counts"]["created"].as_i64(),
            done["counts"]["failed"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(customer_count(&app, &t).await, 0);
    app.post(
        &format!("/api/v1/imports/{import}/undo"),
        &t.token,
        json!({}),
    )
    .await
    .expect_problem(409, "import.dry_run");
}

/// The tenant's customers as rows of their business columns (no versions or timestamps).
async fn customers_dump(app: &TestApp, t: &Tenant) -> Vec<String> {
    let schema = app.schema_of(t).await;
    sqlx::query_scalar(&format!(
        "SELECT (to_jsonb(c) - 'version' - 'updated_at' - 'name_grams')::text FROM \"{schema}\".customers c ORDER BY id"
    ))
    .fetch_all(&app.pool)
    .await
    .expect("dump")
}

#[tokio::test]
async fn undo_puts_the_tenant_back_as_it_was() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let ids = three_customers(&app, &t).await;
    let before = customers_dump(&app, &t).await;
    let mut csv = String::from(
        "手机,级别,客户名称,标签\n13500000001,A,甲公司（新）,重点\n13500000002,B,乙公司,\n",
    );
    for i in 0..300 {
        csv.push_str(&format!("136{i:08},D,新客户{i},导入\n"));
    }
    let options = json!({
        "object": "customers", "mode": "upsert", "match_key": "phone",
        "mapping": {"手机": "phone", "级别": "level", "客户名称": "name", "标签": "tags"},
    });
    let import = id(&start(&app, &t.token, "batch.csv", csv.as_bytes(), options).await);
    let done = finished(&app, &t.token, &import).await;
    assert_eq!(
        (
            done["counts"]["created"].as_i64(),
            done["counts"]["updated"].as_i64()
        ),
        (Some(300), Some(2)),
        "{done:#}"
    );
    assert_ne!(customers_dump(&app, &t).await, before);

    app.post(
        &format!("/api/v1/imports/{import}/undo"),
        &t.token,
        json!({"mode": "bogus"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    let undoing = app
        .post(
            &format!("/api/v1/imports/{import}/undo"),
            &t.token,
            json!({"mode": "purge"}),
        )
        .await
        .expect(202);
    assert_eq!(undoing["status"], "undoing");
    let undone = finished(&app, &t.token, &import).await;
    assert_eq!(undone["status"], "undone", "{undone:#}");
    assert_eq!(undone["undo"]["deleted"], 300);
    assert_eq!(undone["undo"]["restored"], 2);
    assert_eq!(undone["undo"]["left"], 0);
    assert_eq!(
        customers_dump(&app, &t).await,
        before,
        "the records are exactly as before"
    );
    let first = app
        .get(&format!("/api/v1/customers/{}", ids[0]), &t.token)
        .await
        .expect(200);
    assert_eq!(first["name"], "甲公司");
    assert_eq!(first["tags"], json!([]));
    app.post(
        &format!("/api/v1/imports/{import}/undo"),
        &t.token,
        json!({}),
    )
    .await
    .expect_problem(409, "import.not_finished");
}

#[tokio::test]
async fn undo_leaves_alone_what_changed_since_and_says_so() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let ids = three_customers(&app, &t).await;
    let csv = "手机,级别,行业,客户名称\n13500000001,A,软件,甲公司\n13500000008,B,零售,丁公司\n13500000007,B,零售,戊公司\n";
    let options = json!({
        "object": "customers", "mode": "upsert", "match_key": "phone",
        "mapping": {"手机": "phone", "级别": "level", "行业": "industry", "客户名称": "name"},
    });
    let import = id(&start(&app, &t.token, "later.csv", csv.as_bytes(), options).await);
    finished(&app, &t.token, &import).await;
    // After the import: someone edits the level of the updated customer, and one created one.
    app.patch(
        &format!("/api/v1/customers/{}", ids[0]),
        &t.token,
        json!({"level": "D"}),
    )
    .await
    .expect(200);
    let created = app
        .get("/api/v1/customers?filter[name][eq]=丁公司", &t.token)
        .await
        .expect(200);
    let ding = id(&created["items"][0]);
    app.patch(
        &format!("/api/v1/customers/{ding}"),
        &t.token,
        json!({"industry": "物流"}),
    )
    .await
    .expect(200);

    app.post(
        &format!("/api/v1/imports/{import}/undo"),
        &t.token,
        json!({}),
    )
    .await
    .expect(202);
    let undone = finished(&app, &t.token, &import).await;
    assert_eq!(undone["undo"]["deleted"], 1, "{undone:#}");
    assert_eq!(undone["undo"]["restored"], 1, "{undone:#}");
    assert_eq!(undone["undo"]["left"], 2, "{undone:#}");
    let first = app
        .get(&format!("/api/v1/customers/{}", ids[0]), &t.token)
        .await
        .expect(200);
    assert_eq!(first["level"], "D", "changed since: kept");
    assert_eq!(first["industry"], "制造", "unchanged since: restored");
    app.get(&format!("/api/v1/customers/{ding}"), &t.token)
        .await
        .expect(200);
    let lines = report(&app, &t.token, &import, "en").await;
    let undo_lines: Vec<&Vec<String>> = lines.iter().filter(|l| l[1] == "not undone").collect();
    assert_eq!(undo_lines.len(), 2, "{lines:?}");
    assert!(undo_lines
        .iter()
        .any(|l| l[4] == "level" && l[5] == "import.changed_since"));
    assert!(undo_lines
        .iter()
        .any(|l| l[3] == ding && l[5] == "import.changed_since"));
    // The created customer nobody touched went to the recycle bin.
    let wu = app
        .get("/api/v1/customers?filter[name][eq]=戊公司", &t.token)
        .await
        .expect(200);
    assert_eq!(wu["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn refusals_are_clear_and_imports_are_private() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let csv = b"Name,Phone\nAlpha,13700000001\n";
    let bad_mapping = json!({"object": "customers", "mapping": {"Name": "name", "Nope": "phone", "Phone": "colour"}});
    let problem = send_file(
        &app,
        "/api/v1/imports",
        &t.token,
        "a.csv",
        csv,
        &bad_mapping,
    )
    .await
    .expect_problem(422, "import.invalid_mapping");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"mapping.Nope") && fields.contains(&"mapping.Phone"),
        "{problem:#}"
    );
    send_file(
        &app,
        "/api/v1/imports",
        &t.token,
        "a.csv",
        csv,
        &json!({"object": "planets"}),
    )
    .await
    .expect_problem(404, "object.not_found");
    send_file(
        &app,
        "/api/v1/imports",
        &t.token,
        "a.csv",
        csv,
        &json!({"object": "customers", "mode": "update", "mapping": {"Name": "name"}}),
    )
    .await
    .expect_problem(422, "validation.failed");
    send_file(
        &app,
        "/api/v1/imports",
        &t.token,
        "a.xlsx",
        b"PK\x03\x04 not really a workbook",
        &json!({"object": "customers"}),
    )
    .await
    .expect_problem(400, "import.unreadable");
    send_file(
        &app,
        "/api/v1/imports",
        &t.token,
        "a.csv",
        b"",
        &json!({"object": "customers"}),
    )
    .await
    .expect_problem(400, "import.empty");

    // A viewer may not import; another user does not see the admin's import.
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    send_file(
        &app,
        "/api/v1/imports",
        &viewer,
        "a.csv",
        csv,
        &json!({"object": "customers", "mapping": {"Name": "name"}}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    let import = id(&start(
        &app,
        &t.token,
        "a.csv",
        csv,
        json!({"object": "customers", "mapping": {"Name": "name", "Phone": "phone"}}),
    )
    .await);
    finished(&app, &t.token, &import).await;
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.get(&format!("/api/v1/imports/{import}"), &sales)
        .await
        .expect_problem(404, "import.not_found");
    assert_eq!(
        app.get("/api/v1/imports", &sales).await.expect(200)["items"],
        json!([])
    );
    assert_eq!(
        app.get("/api/v1/imports", &t.token).await.expect(200)["items"][0]["id"],
        import.as_str()
    );
    // Nor does another company's administrator, by id or by undo.
    let other = app.signup().await;
    app.get(&format!("/api/v1/imports/{import}"), &other.token)
        .await
        .expect_problem(404, "import.not_found");
    app.post(
        &format!("/api/v1/imports/{import}/undo"),
        &other.token,
        json!({}),
    )
    .await
    .expect_problem(404, "import.not_found");
    assert_eq!(
        app.get("/api/v1/imports", &other.token).await.expect(200)["items"],
        json!([])
    );
}

#[tokio::test]
async fn rules_can_let_imported_records_pass() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    for (name, imports) in [("欢迎（导入也发）", true), ("欢迎（导入不发）", false)]
    {
        app.post(
            "/api/v1/rules",
            &t.token,
            json!({
                "name": name, "object": "customers",
                "trigger": {"event": "customer.created", "imports": imports},
                "script": format!("create_task(#{{title: \"{name}\", due_in: \"1d\"}});"),
            }),
        )
        .await
        .expect(201);
    }
    let csv = "Name\n甲\n乙\n";
    let import = id(&start(
        &app,
        &t.token,
        "r.csv",
        csv.as_bytes(),
        json!({"object": "customers", "mapping": {"Name": "name"}}),
    )
    .await);
    finished(&app, &t.token, &import).await;
    let schema = app.schema_of(&t).await;
    let mut titles: Vec<String> = Vec::new();
    for _ in 0..300 {
        titles = sqlx::query_scalar(&format!(
            "SELECT title FROM \"{schema}\".tasks ORDER BY title"
        ))
        .fetch_all(&app.pool)
        .await
        .unwrap();
        if !titles.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs: Vec<(String, String, Option<String>)> = sqlx::query_as(&format!(
        "SELECT kind, status, to_jsonb(j) ->> 'last_error' FROM \"{schema}\".jobs j ORDER BY id"
    ))
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(!titles.is_empty(), "no task; jobs: {jobs:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".tasks"))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(again, 2, "{titles:?}");
    assert!(titles.iter().all(|t| t == "欢迎（导入也发）"), "{titles:?}");
}

#[tokio::test]
async fn imports_run_on_the_s3_file_store() {
    let moto = Moto::start().await;
    moto.bucket("crm-imports").await;
    let config = moto.config("crm-imports");
    let app = TestApp::spawn_with(|c| c.files = FileStoreConfig::S3(config)).await;
    let t = app.signup().await;
    let mut csv = String::from("名称;电话\n");
    for i in 0..2_000 {
        csv.push_str(&format!("客户{i};137{i:08}\n"));
    }
    let options = json!({"object": "customers", "mapping": {"名称": "name", "电话": "phone"}});
    let import = id(&start(&app, &t.token, "s3.csv", csv.as_bytes(), options).await);
    let done = finished(&app, &t.token, &import).await;
    assert_eq!(done["separator"], ";");
    assert_eq!(done["counts"]["created"], 2_000, "{done:#}");
    assert_eq!(customer_count(&app, &t).await, 2_000);
}

#[tokio::test]
async fn a_server_killed_mid_import_resumes_without_duplicates() {
    // The in-process server only sets the tenant up; the real binary runs the import.
    let app = TestApp::spawn_with(|c| c.jobs_enabled = false).await;
    let t = app.signup().await;
    const ROWS: usize = 60_000;
    let mut csv = String::from("客户名称,手机\n");
    for i in 0..ROWS {
        csv.push_str(&format!("断点客户{i},139{i:08}\n"));
    }
    let options = json!({"object": "customers", "mapping": {"客户名称": "name", "手机": "phone"}});
    let import = id(&start(&app, &t.token, "big.csv", csv.as_bytes(), options).await);
    let schema = app.schema_of(&t).await;
    let count = |sql: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&sql)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };

    let mut server = crate::rules_crash::Server::start(&app).await;
    // Kill -9 once some chunks have committed and more are to come.
    let mut at_kill = 0;
    for _ in 0..6000 {
        at_kill = count(format!(
            "SELECT created FROM \"{schema}\".imports WHERE id = '{import}'"
        ))
        .await;
        if at_kill > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    assert!(
        at_kill > 0 && (at_kill as usize) < ROWS,
        "killed at {at_kill} rows"
    );
    let committed = count(format!(
        "SELECT created FROM \"{schema}\".imports WHERE id = '{import}'"
    ))
    .await;
    assert_eq!(
        count(format!("SELECT count(*) FROM \"{schema}\".customers")).await,
        committed,
        "only whole chunks are written"
    );

    // Start again; the killed run's lease would run out after minutes: end it now.
    let server = crate::rules_crash::Server::start(&app).await;
    sqlx::query(&format!(
        "UPDATE \"{schema}\".jobs SET locked_until = now() WHERE status = 'running'"
    ))
    .execute(&app.pool)
    .await
    .expect("expire leases");
    sqlx::query("UPDATE platform.job_hints SET next_run_at = now() WHERE tenant_id = $1::uuid")
        .bind(&t.id)
        .execute(&app.pool)
        .await
        .expect("wake the tenant");
    let client = reqwest::Client::new();
    let mut status = Value::Null;
    for _ in 0..3000 {
        status = client
            .get(format!("{}/api/v1/imports/{import}", server.base))
            .bearer_auth(&t.token)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        if status["status"] == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "done", "{status:#}");
    assert_eq!(status["counts"]["created"], ROWS, "{status:#}");
    assert_eq!(status["counts"]["failed"], 0, "{status:#}");
    assert_eq!(
        count(format!("SELECT count(*) FROM \"{schema}\".customers")).await,
        ROWS as i64
    );
    assert_eq!(
        count(format!(
            "SELECT count(DISTINCT phone) FROM \"{schema}\".customers"
        ))
        .await,
        ROWS as i64,
        "no row was written twice"
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) FROM \"{schema}\".import_rows WHERE import_id = '{import}'"
        ))
        .await,
        ROWS as i64
    );
}
