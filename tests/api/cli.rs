//! The `crm` binary's tenant and migrate commands against the test database.

use crate::helpers::{TestApp, PASSWORD};
use std::process::Command;

fn crm(app: &TestApp, args: &[&str]) -> (bool, String) {
    let url = app.pool.connect_options();
    let out = Command::new(env!("CARGO_BIN_EXE_crm"))
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
        .env("CRM_ADMIN_PASSWORD", PASSWORD)
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

#[tokio::test]
async fn tenant_commands_create_list_suspend_resume_and_migrate() {
    let app = TestApp::spawn().await;
    let slug = crate::helpers::unique_slug("cli");
    let (ok, out) = crm(
        &app,
        &[
            "tenant",
            "create",
            "--slug",
            &slug,
            "--name",
            "命令行公司",
            "--admin-email",
            "cli@x.com",
            "--admin-name",
            "王芳",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains(&slug), "{out}");
    app.login(&slug, "cli@x.com", PASSWORD).await.expect(200);

    let (ok, out) = crm(
        &app,
        &[
            "tenant",
            "create",
            "--slug",
            &slug,
            "--name",
            "x",
            "--admin-email",
            "a@x.com",
            "--admin-name",
            "x",
        ],
    );
    assert!(!ok && out.contains("taken"), "{out}");
    let (ok, out) = crm(
        &app,
        &[
            "tenant",
            "create",
            "--slug",
            "BAD",
            "--name",
            "x",
            "--admin-email",
            "a@x.com",
            "--admin-name",
            "x",
        ],
    );
    assert!(!ok && out.contains("--slug"), "{out}");

    let (ok, out) = crm(&app, &["tenant", "list"]);
    assert!(ok && out.contains(&slug) && out.contains("active"), "{out}");
    let (ok, out) = crm(&app, &["tenant", "suspend", &slug]);
    assert!(ok, "{out}");
    app.login(&slug, "cli@x.com", PASSWORD)
        .await
        .expect_problem(403, "tenant.suspended");
    let (ok, _) = crm(&app, &["tenant", "resume", &slug]);
    assert!(ok);
    app.login(&slug, "cli@x.com", PASSWORD).await.expect(200);
    let (ok, out) = crm(&app, &["tenant", "suspend", "no-such-tenant"]);
    assert!(!ok && out.contains("no tenant"), "{out}");

    // A registry row that lags its schema is brought level; an up-to-date run changes nothing.
    sqlx::query("UPDATE platform.tenants SET schema_version = 0 WHERE slug = $1")
        .bind(&slug)
        .execute(&app.pool)
        .await
        .expect("lag");
    let (ok, out) = crm(&app, &["migrate"]);
    assert!(ok && out.contains("1 tenant schema(s) upgraded"), "{out}");
    let (ok, out) = crm(&app, &["migrate"]);
    assert!(ok && out.contains("0 tenant schema(s) upgraded"), "{out}");

    let (ok, out) = crm(&app, &["--help"]);
    assert!(
        ok && out.contains("serve") && out.contains("migrate") && out.contains("tenant"),
        "{out}"
    );
}
