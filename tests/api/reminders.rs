//! Task reminders as durable jobs: in-app notification + mail at `remind_at`, exactly once,
//! across restarts, replicas and a crashed worker; failures visible under /jobs.

use crate::helpers::{eventually, unique_slug, Tenant, TestApp, PASSWORD};
use crate::mail::{eml_files, SmtpServer};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn notifications(app: &TestApp, token: &str) -> Value {
    app.get("/api/v1/notifications", token).await.expect(200)
}

async fn wait_notifications(app: &TestApp, token: &str, n: usize) -> Value {
    eventually(&format!("{n} notifications"), || async {
        let page = notifications(app, token).await;
        (page["items"].as_array().map_or(0, Vec::len) >= n).then_some(page)
    })
    .await
}

async fn task(app: &TestApp, t: &Tenant, body: Value) -> String {
    app.post("/api/v1/tasks", &t.token, body).await.expect(201)["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn jobs_of(app: &TestApp, t: &Tenant, query: &str) -> Vec<Value> {
    app.items(&format!("/api/v1/jobs?{query}"), &t.token).await
}

#[tokio::test]
async fn a_reminder_notifies_the_assignee_in_app_and_by_mail_once() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (user, token) = app.user_with_roles(&t, &["sales"]).await;
    let due = Utc::now() + Duration::hours(2);
    let id = task(
        &app,
        &t,
        json!({"title": "回访张总", "notes": "带上报价单", "due_at": rfc(due),
               "remind_at": rfc(Utc::now() + Duration::milliseconds(500)), "assignee_id": user}),
    )
    .await;

    let page = wait_notifications(&app, &token, 1).await;
    assert_eq!(page["unread"], 1);
    let n = &page["items"][0];
    assert_eq!(n["kind"], "task.reminder");
    assert_eq!(n["title"], "任务提醒：回访张总");
    assert_eq!(n["object"], "tasks");
    assert_eq!(n["record_id"], id.as_str());
    assert!(n["body"].as_str().expect("body").contains("带上报价单"));
    assert!(n.get("read_at").is_none());

    // The mail job runs after the reminder job; the file transport writes one .eml.
    let mails = eventually("the reminder mail", || async {
        let m = eml_files(&app.config.data_dir, &t.slug);
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(mails.len(), 1);
    let me = app.get("/api/v1/me", &token).await.expect(200);
    let email = me["user"]["email"]
        .as_str()
        .or(me["email"].as_str())
        .expect("email");
    assert!(mails[0]["to"].as_str().expect("to").contains(email));
    assert_eq!(mails[0]["subject"], "任务提醒：回访张总");
    let body = mails[0]["body"].as_str().expect("body");
    assert!(
        body.contains("回访张总") && body.contains("截止时间") && body.contains("Asia/Shanghai"),
        "{body}"
    );

    // Nobody else is notified; the event is in the outbox; both jobs are done.
    assert_eq!(
        notifications(&app, &t.token).await["items"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let schema = app.schema_of(&t).await;
    let events: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".outbox WHERE event = 'task.reminder_due' AND record_id = $1::uuid"
    ))
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .expect("outbox");
    assert_eq!(events, 1);
    // The task's jobs (sign-up also mailed the verification link).
    let jobs = eventually("both jobs done", || async {
        let jobs: Vec<Value> = jobs_of(&app, &t, "")
            .await
            .into_iter()
            .filter(|j| j["subject_id"] == id.as_str())
            .collect();
        jobs.iter().all(|j| j["status"] == "done").then_some(jobs)
    })
    .await;
    let kinds: Vec<&str> = jobs.iter().filter_map(|j| j["kind"].as_str()).collect();
    assert_eq!(kinds.len(), 2, "{jobs:#?}");
    assert!(kinds.contains(&"task.reminder") && kinds.contains(&"mail.send"));

    // Reading: one, then all; someone else's notification is not found.
    let nid = n["id"].as_i64().expect("id");
    app.post(
        &format!("/api/v1/notifications/{nid}/read"),
        &t.token,
        json!({}),
    )
    .await
    .expect_problem(404, "notification.not_found");
    let read = app
        .post(
            &format!("/api/v1/notifications/{nid}/read"),
            &token,
            json!({}),
        )
        .await
        .expect(200);
    assert!(read["read_at"].is_string());
    assert_eq!(notifications(&app, &token).await["unread"], 0);
    let unread = app
        .get("/api/v1/notifications?unread=true", &token)
        .await
        .expect(200);
    assert_eq!(unread["items"].as_array().map(Vec::len), Some(0));
    let all = app
        .post("/api/v1/notifications/read-all", &token, json!({}))
        .await
        .expect(200);
    assert_eq!(all["marked"], 0);

    // Jobs are an admin's view.
    app.get("/api/v1/jobs", &token)
        .await
        .expect_problem(403, "auth.forbidden");
    app.get("/api/v1/jobs?status=exploded", &t.token)
        .await
        .expect_problem(422, "validation.failed");
}

#[tokio::test]
async fn reminders_follow_their_task_and_fire_exactly_once_across_restarts() {
    let mut app = TestApp::spawn().await;
    let t = app.signup().await;
    let soon = Utc::now() + Duration::seconds(2);
    let plain = task(
        &app,
        &t,
        json!({"title": "A 按时提醒", "remind_at": rfc(soon)}),
    )
    .await;
    let moved = task(
        &app,
        &t,
        json!({"title": "B 提前提醒", "remind_at": rfc(Utc::now() + Duration::days(3))}),
    )
    .await;
    app.patch(
        &format!("/api/v1/tasks/{moved}"),
        &t.token,
        json!({"remind_at": rfc(soon)}),
    )
    .await
    .expect(200);
    let finished = task(
        &app,
        &t,
        json!({"title": "C 已完成", "remind_at": rfc(soon)}),
    )
    .await;
    app.patch(
        &format!("/api/v1/tasks/{finished}"),
        &t.token,
        json!({"done_at": rfc(Utc::now())}),
    )
    .await
    .expect(200);
    let deleted = task(
        &app,
        &t,
        json!({"title": "D 已删除", "remind_at": rfc(soon)}),
    )
    .await;
    app.delete(&format!("/api/v1/tasks/{deleted}"), &t.token)
        .await
        .expect(204);
    let cleared = task(
        &app,
        &t,
        json!({"title": "E 取消提醒", "remind_at": rfc(soon)}),
    )
    .await;
    app.patch(
        &format!("/api/v1/tasks/{cleared}"),
        &t.token,
        json!({"remind_at": null}),
    )
    .await
    .expect(200);

    // The moved reminder's first job is cancelled; the others' only job is.
    let moved_jobs = jobs_of(&app, &t, &format!("kind=task.reminder&subject_id={moved}")).await;
    let statuses: Vec<&str> = moved_jobs
        .iter()
        .filter_map(|j| j["status"].as_str())
        .collect();
    assert_eq!(statuses, ["pending", "cancelled"], "{moved_jobs:#?}");
    for gone in [&finished, &deleted, &cleared] {
        let jobs = jobs_of(&app, &t, &format!("kind=task.reminder&subject_id={gone}")).await;
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0]["status"], "cancelled");
    }

    // Redeploy before the reminders are due: they fire on the new server.
    app.restart().await;
    let page = wait_notifications(&app, &t.token, 2).await;
    let mut titles: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["title"].as_str())
        .collect();
    titles.sort();
    assert_eq!(titles, ["任务提醒：A 按时提醒", "任务提醒：B 提前提醒"]);
    eventually("two mails", || async {
        (eml_files(&app.config.data_dir, &t.slug).len() == 2).then_some(())
    })
    .await;

    // Again, after they fired: nothing repeats.
    app.restart().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let page = notifications(&app, &t.token).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(eml_files(&app.config.data_dir, &t.slug).len(), 2);
    let fired = jobs_of(&app, &t, &format!("kind=task.reminder&subject_id={plain}")).await;
    assert_eq!(fired[0]["status"], "done");
    assert_eq!(fired[0]["attempts"], 1);

    // Setting a reminder back to a time that already fired does not remind twice.
    let fired_at = fired[0]["run_at"].as_str().expect("run_at").to_owned();
    app.patch(
        &format!("/api/v1/tasks/{plain}"),
        &t.token,
        json!({"remind_at": fired_at}),
    )
    .await
    .expect(200);
    assert_eq!(
        jobs_of(&app, &t, &format!("kind=task.reminder&subject_id={plain}"))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn replicas_share_due_jobs_without_doubling_them() {
    let app = TestApp::spawn().await;
    let peer = app.start_peer().await;
    let tenants = [app.signup().await, app.signup().await];
    let at = Utc::now() + Duration::seconds(1);
    for t in &tenants {
        for i in 0..15 {
            task(
                &app,
                t,
                json!({"title": format!("跟进 {i}"), "remind_at": rfc(at)}),
            )
            .await;
        }
    }
    for t in &tenants {
        eventually("15 mails", || async {
            (eml_files(&app.config.data_dir, &t.slug).len() >= 15).then_some(())
        })
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for t in &tenants {
        let schema = app.schema_of(t).await;
        let (notes, max_attempts): (i64, i32) = sqlx::query_as(&format!(
            "SELECT (SELECT count(*) FROM \"{schema}\".notifications), \
                    (SELECT max(attempts) FROM \"{schema}\".jobs)"
        ))
        .fetch_one(&app.pool)
        .await
        .expect("counts");
        assert_eq!(notes, 15);
        assert_eq!(max_attempts, 1, "no job ran twice");
        assert_eq!(eml_files(&app.config.data_dir, &t.slug).len(), 15);
    }
    peer.stop().await.expect("peer stops");
}

#[tokio::test]
async fn a_job_left_running_by_a_crashed_worker_runs_again_once() {
    let mut app = TestApp::spawn_with(|c| c.jobs_enabled = false).await;
    let t = app.signup().await;
    let id = task(
        &app,
        &t,
        json!({"title": "崩溃后重试", "remind_at": rfc(Utc::now())}),
    )
    .await;
    // As a worker that claimed the job and died: running, lease already expired.
    let schema = app.schema_of(&t).await;
    sqlx::query(&format!(
        "UPDATE \"{schema}\".jobs SET status = 'running', attempts = 1, claim_token = gen_random_uuid(), \
           locked_until = now() - interval '1 second' WHERE subject_id = $1::uuid"
    ))
    .bind(&id)
    .execute(&app.pool)
    .await
    .expect("simulate crash");
    app.stop().await;
    app.config.jobs_enabled = true;
    app.start_again().await;
    wait_notifications(&app, &t.token, 1).await;
    let jobs = eventually("reminder done", || async {
        let jobs = jobs_of(&app, &t, &format!("kind=task.reminder&subject_id={id}")).await;
        (jobs[0]["status"] == "done").then_some(jobs)
    })
    .await;
    assert_eq!(jobs[0]["attempts"], 2);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        notifications(&app, &t.token).await["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn reminder_mail_reaches_a_real_smtp_server_and_failures_are_visible() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = TestApp::spawn_with(|c| {
        c.mail.transport = "smtp".into();
        c.mail.smtp_url = Some(url);
        c.mail.from = "TC CRM <crm@tc-crm.example>".into();
    })
    .await;
    let t = app.signup().await;
    let (user, _) = app.user_with_roles(&t, &["sales"]).await;
    app.patch(
        &format!("/api/v1/users/{user}"),
        &t.token,
        json!({"locale": "en"}),
    )
    .await
    .expect(200);
    let user_email = app
        .get(&format!("/api/v1/users/{user}"), &t.token)
        .await
        .expect(200)["email"]
        .as_str()
        .expect("email")
        .to_owned();
    task(
        &app,
        &t,
        json!({"title": "Call back Mr Zhang", "remind_at": rfc(Utc::now()), "assignee_id": user}),
    )
    .await;
    let got = smtp.wait_for(1).await;
    assert_eq!(got[0]["rcpt_tos"], json!([user_email]));
    assert_eq!(got[0]["mail_from"], "crm@tc-crm.example");
    assert_eq!(got[0]["subject"], "Reminder: Call back Mr Zhang");
    let body = got[0]["body"].as_str().expect("body");
    assert!(
        body.contains("follow up on the task \"Call back Mr Zhang\""),
        "{body}"
    );

    // A recipient the server refuses for good: the job is dead at once, with the reason.
    let email = format!("reject-{}@{}.example.com", unique_slug("u"), t.slug);
    let refused = app
        .post(
            "/api/v1/users",
            &t.token,
            json!({"email": email, "name": "Refused", "password": PASSWORD}),
        )
        .await
        .expect(201);
    task(
        &app,
        &t,
        json!({"title": "Nobody home", "remind_at": rfc(Utc::now()), "assignee_id": refused["id"]}),
    )
    .await;
    let dead = eventually("a dead mail job", || async {
        let dead = jobs_of(&app, &t, "status=dead").await;
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead[0]["kind"], "mail.send");
    assert!(
        dead[0]["last_error"]
            .as_str()
            .expect("error")
            .contains("550"),
        "{dead:#?}"
    );
    let id = dead[0]["id"].as_i64().expect("id");
    let retried = app
        .post(&format!("/api/v1/jobs/{id}/retry"), &t.token, json!({}))
        .await
        .expect(200);
    assert_eq!(retried["status"], "pending");
    assert_eq!(retried["attempts"], 0);
    let done = jobs_of(&app, &t, "status=done&kind=task.reminder").await;
    app.post(
        &format!("/api/v1/jobs/{}/retry", done[0]["id"]),
        &t.token,
        json!({}),
    )
    .await
    .expect_problem(409, "job.not_retryable");
    app.get("/api/v1/jobs/999999", &t.token)
        .await
        .expect_problem(404, "job.not_found");
    assert_eq!(
        smtp.messages().len(),
        1,
        "the refused message was never accepted"
    );
}

#[tokio::test]
async fn sent_mail_bodies_are_dropped_and_old_jobs_pruned() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    task(
        &app,
        &t,
        json!({"title": "第一次回访", "remind_at": rfc(Utc::now())}),
    )
    .await;
    let schema = app.schema_of(&t).await;
    // The reminder's mail (sign-up also mailed the verification link).
    let payload: Value = eventually("the reminder's mail job done", || async {
        sqlx::query_scalar(&format!(
            "SELECT payload FROM \"{schema}\".jobs WHERE kind = 'mail.send' \
             AND status = 'done' AND payload ->> 'purpose' = 'task.reminder'"
        ))
        .fetch_optional(&app.pool)
        .await
        .expect("payload")
    })
    .await;
    assert!(payload.get("text").is_none(), "{payload}");
    assert!(payload["subject"]
        .as_str()
        .is_some_and(|s| s.contains("第一次回访")));
    // Finished a month ago: the next visit of the tenant deletes them.
    sqlx::query(&format!(
        "UPDATE \"{schema}\".jobs SET finished_at = now() - interval '30 days'"
    ))
    .execute(&app.pool)
    .await
    .expect("age");
    task(
        &app,
        &t,
        json!({"title": "第二次回访", "remind_at": rfc(Utc::now())}),
    )
    .await;
    eventually("the old jobs pruned", || async {
        let subjects: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT coalesce(payload ->> 'subject', '') FROM \"{schema}\".jobs ORDER BY id"
        ))
        .fetch_all(&app.pool)
        .await
        .expect("jobs");
        (subjects.len() == 2 && !subjects.iter().any(|s| s.contains("第一次"))).then_some(())
    })
    .await;
}
