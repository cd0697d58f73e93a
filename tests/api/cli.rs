//! The `crm` binary's tenant, migrate and bench commands against the test database.

use crate::helpers::{TestApp, PASSWORD};
use std::process::Command;

fn crm(app: &TestApp, args: &[&str]) -> (bool, String) {
    crm_with(app, args, &[])
}

/// [`crm`] with more environment variables.
fn crm_with(app: &TestApp, args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let url = app.pool.connect_options();
    let out = Command::new(env!("CARGO_BIN_EXE_crm"))
        .args(args)
        .envs(envs.iter().copied())
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

/// `crm bench api` on a small fresh tenant: a table row for each of the five operations, each
/// with its API ÷ raw ratio (timings are not checked), and the tenant removed afterwards.
#[tokio::test]
async fn bench_api_prints_every_operation_with_its_ratio() {
    let app = TestApp::spawn().await;
    let data_dir = app.config.data_dir.join("bench-api");
    let (ok, out) = crm_with(
        &app,
        &[
            "bench",
            "api",
            "--customers",
            "50",
            "--seconds",
            "1",
            "--connections",
            "2",
        ],
        &[
            ("CRM_DATA_DIR", data_dir.to_str().expect("utf-8 temp dir")),
            // Its server's pool, beside the raw side's 2 and the test server's: stay small.
            ("CRM_DB_MAX_CONNECTIONS", "4"),
        ],
    );
    assert!(ok, "{out}");
    let header = out
        .lines()
        .find(|l| l.starts_with("| operation"))
        .unwrap_or_else(|| panic!("no table: {out}"));
    assert!(
        header.contains("API req/s") && header.contains("raw TPS") && header.contains("API ÷ raw"),
        "{header}"
    );
    for op in [
        "get by id",
        "list level+city, 20",
        "search q=, 20",
        "create",
        "update",
    ] {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("| {op} ")))
            .unwrap_or_else(|| panic!("no row for {op}: {out}"));
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 8, "{row}");
        let ratio: f64 = cells[7]
            .parse()
            .unwrap_or_else(|_| panic!("{op} has no ratio: {row}"));
        assert!(ratio > 0.0, "{row}");
    }
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM platform.tenants WHERE slug LIKE 'bench-api-%'")
            .fetch_one(&app.pool)
            .await
            .expect("count tenants");
    assert_eq!(left, 0, "the benchmark tenant is removed");
}

#[tokio::test]
async fn plugin_describe_and_run_use_the_servers_host_and_limits() {
    let app = TestApp::spawn().await;
    let probe = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/plugins/tests/fixtures/probe.wasm"
    );
    let data = app.config.data_dir.to_string_lossy().to_string();
    let env = [("CRM_DATA_DIR", data.as_str())];
    let (ok, out) = crm_with(&app, &["plugin", "describe", probe], &env);
    assert!(ok, "{out}");
    assert!(out.contains("\"name\": \"probe\""), "{out}");
    assert!(out.contains("\"wit_version\": \"1.0.0\""), "{out}");
    let event = r#"{"kind":"customers.created","object":"customers","record_id":"r1","data":{"record":{"name":"probe:loop"}}}"#;
    let (ok, out) = crm_with(&app, &["plugin", "run", probe, "--event", event], &env);
    assert!(!ok, "{out}");
    assert!(out.contains("plugin.fuel_exhausted"), "{out}");
    let request = r#"{"method":"POST","path":"echo","body":"{\"hi\":\"你好\"}"}"#;
    let (ok, out) = crm_with(&app, &["plugin", "run", probe, "--request", request], &env);
    assert!(ok, "{out}");
    assert!(out.contains("\"status\": 200"), "{out}");
    assert!(out.contains("你好"), "{out}");
}
