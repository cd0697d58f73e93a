//! Per-tenant backups, continued: tampered archives refused, the two-step restore over the
//! same tenant (and who may do it), and the schedule with its retention.

use crate::backup::{backup, config_file, crm, download, populate};
use crate::helpers::{eventually, id, unique_slug, TestApp, PASSWORD};
use serde_json::{json, Value};
use std::io::{Read, Write};

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
    // A calendar feed link from before the backup, replaced after it.
    let feed_token = format!("/api/v1/users/{}/calendar-token", t.admin_id);
    let old_feed = app.post(&feed_token, &t.token, json!({})).await.expect(201);
    let taken = backup(&app, &t.token).await;
    app.post(&feed_token, &t.token, json!({})).await.expect(201);
    let feed = |token: &Value| {
        format!(
            "/api/v1/users/{}/calendar.ics?token={}",
            t.admin_id,
            token["token"].as_str().expect("feed token")
        )
    };
    app.call(reqwest::Method::GET, &feed(&old_feed), None, None)
        .await
        .expect(401);
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
    // The feed link the backup knew does not come back to life.
    app.call(reqwest::Method::GET, &feed(&old_feed), None, None)
        .await
        .expect(401);
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
