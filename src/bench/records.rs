//! `crm bench records`: a tenant with many customers, served over HTTP, with latencies per operation.

use super::{ms, percentile};
use crm_core::db::Db;
use crm_core::domain::{DisplayName, Email};
use crm_tenants::{deprovision_tenant, provision_tenant, NewAdmin, NewTenant, Tenant, TenantSlug};
use std::time::{Duration, Instant};

/// Surnames and given-name characters for realistic Chinese names.
const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤";
const GIVEN: &str = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕彬鑫斌宇浩凯健俊帆晨阳欣怡婷雪琳";

/// Builds the i-th request of an operation: method, path under /api/v1, JSON body.
type RequestMaker<'a> =
    Box<dyn Fn(usize) -> (reqwest::Method, String, Option<serde_json::Value>) + 'a>;

/// Loads `count` customers into a fresh tenant, serves it, and reports HTTP latencies.
pub async fn records(
    config: &crate::config::Config,
    pool: &sqlx::PgPool,
    count: usize,
    requests: usize,
    keep: bool,
) -> anyhow::Result<()> {
    let db = Db::new(pool.clone(), config.tenant_isolation);
    let field = |e: crm_core::FieldError| anyhow::anyhow!("{}", e.message);
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let password = "benchmark-password";
    let slug = format!("bench-records-{run}");
    let provisioned = provision_tenant(
        &db,
        NewTenant {
            slug: TenantSlug::parse("slug", &slug).map_err(field)?,
            name: DisplayName::parse("name", "Records bench").map_err(field)?,
        },
        NewAdmin {
            email: Email::parse("email", "admin@bench.example").map_err(field)?,
            name: DisplayName::parse("name", "Bench").map_err(field)?,
            password_hash: crm_core::identity::hash_password(password).await?,
        },
    )
    .await?;
    let tenant = provisioned.tenant.clone();
    let result = records_inner(
        config,
        &db,
        &tenant,
        provisioned.admin.id,
        count,
        requests,
        password,
    )
    .await;
    if !keep {
        println!("removing the benchmark tenant…");
        deprovision_tenant(&db, &tenant).await?;
    } else {
        println!(
            "kept tenant {} (admin@bench.example / {password})",
            tenant.slug
        );
    }
    result
}

async fn records_inner(
    config: &crate::config::Config,
    db: &Db,
    tenant: &Tenant,
    admin: uuid::Uuid,
    count: usize,
    requests: usize,
    password: &str,
) -> anyhow::Result<()> {
    use serde_json::{json, Value};
    let ctx = tenant.ctx()?;
    println!("loading {count} customers into {} …", tenant.slug);
    let started = Instant::now();
    // Bulk load the way a migration or import job would: indexes off, rows in, indexes on.
    let indexes: Vec<(String, String)> = {
        let mut tx = db.tenant_tx(&ctx).await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename = 'customers' AND indexname <> 'customers_pkey'",
        )
        .fetch_all(tx.conn())
        .await?;
        for (name, _) in &rows {
            sqlx::query(&format!("DROP INDEX \"{name}\""))
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await?;
        rows
    };
    let batch = 100_000usize;
    let mut done = 0usize;
    while done < count {
        let n = batch.min(count - done);
        let mut tx = db.tenant_tx(&ctx).await?;
        sqlx::query(
            "INSERT INTO customers (id, name, kind, phone, email, region, industry, source, level, stage, owner_id, tags, name_grams, created_by, address) \
             SELECT gen_random_uuid(), n, CASE WHEN i % 3 = 0 THEN 'company' ELSE 'person' END, \
                    '+86138' || lpad(((i * 7919) % 100000000)::text, 8, '0'), \
                    'user' || i || '@example' || (i % 50) || '.com', \
                    (ARRAY['华北','华东','华南','西南','东北'])[1 + i % 5], (ARRAY['软件','制造','零售','金融','教育'])[1 + (i / 5) % 5], \
                    (ARRAY['展会','官网','转介绍','电话'])[1 + i % 4], (ARRAY['A','B','C','D'])[1 + i % 4], \
                    (ARRAY['lead','prospect','customer','churned'])[1 + (i / 4) % 4], $3, \
                    CASE WHEN i % 10 = 0 THEN ARRAY['VIP'] ELSE ARRAY[]::text[] END, \
                    (SELECT array_agg(DISTINCT g) FROM ( \
                        SELECT substr(lower(n), k, 1) AS g FROM generate_series(1, char_length(n)) k \
                        UNION ALL SELECT substr(lower(n), k, 2) FROM generate_series(1, char_length(n) - 1) k) s), \
                    $3, jsonb_build_object('city', (ARRAY['北京','上海','深圳','成都','杭州'])[1 + i % 5]) \
             FROM (SELECT i, CASE WHEN i % 5 = 0 THEN 'Company' || lpad(i::text, 7, '0') \
                       ELSE substr($4, (1 + i % char_length($4))::int, 1) || substr($5, (1 + (i / 97) % char_length($5))::int, 1) \
                            || CASE WHEN i % 2 = 0 THEN substr($5, (1 + (i / 7) % char_length($5))::int, 1) ELSE '' END END AS n \
                   FROM generate_series($1::bigint, $2::bigint) i) src",
        )
        .bind(done as i64)
        .bind((done + n - 1) as i64)
        .bind(admin)
        .bind(SURNAMES)
        .bind(GIVEN)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        done += n;
        println!("  {done} rows ({:.0} s)", started.elapsed().as_secs_f64());
    }
    {
        let mut tx = db.tenant_tx(&ctx).await?;
        for (_, def) in &indexes {
            sqlx::query(def).execute(tx.conn()).await?;
        }
        sqlx::query("ANALYZE customers").execute(tx.conn()).await?;
        tx.commit().await?;
    }
    println!(
        "loaded and indexed in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let sample: Vec<uuid::Uuid> = {
        let mut tx = db.tenant_tx(&ctx).await?;
        let ids = sqlx::query_scalar("SELECT id FROM customers TABLESAMPLE SYSTEM (1) LIMIT $1")
            .bind(requests as i64)
            .fetch_all(tx.conn())
            .await?;
        tx.commit().await?;
        ids
    };
    let mut server_config = config.clone();
    server_config.listen = "127.0.0.1:0".into();
    server_config.auto_migrate_tenants = false;
    let running = crate::server::start(server_config, db.pool.clone()).await?;
    let base = format!("http://{}/api/v1", running.addr);
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"tenant": tenant.slug, "email": "admin@bench.example", "password": password}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("login failed: {login}"))?
        .to_owned();

    let surnames: Vec<char> = SURNAMES.chars().collect();
    let given: Vec<char> = GIVEN.chars().collect();
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9}",
        "operation (HTTP, sequential)", "requests", "p50 ms", "p95 ms", "max ms"
    );
    let ops: Vec<(&str, RequestMaker<'_>)> = vec![
        (
            "get by id",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!("/customers/{}", sample[i % sample.len().max(1)]),
                    None,
                )
            }),
        ),
        (
            "list, filter level+city, 50",
            Box::new(|i| {
                (reqwest::Method::GET, format!("/customers?filter[level]={}&filter[address.city]=%E4%B8%8A%E6%B5%B7&limit=50", ["A", "B", "C", "D"][i % 4]), None)
            }),
        ),
        (
            "list, tag VIP, sort -updated_at",
            Box::new(|_| {
                (
                    reqwest::Method::GET,
                    "/customers?tag=VIP&sort=-updated_at&limit=50".into(),
                    None,
                )
            }),
        ),
        (
            "search q=<2-char Chinese name>",
            Box::new(|i| {
                let q: String = [surnames[i % surnames.len()], given[(i * 7) % given.len()]]
                    .iter()
                    .collect();
                (
                    reqwest::Method::GET,
                    format!(
                        "/customers?q={}&limit=20",
                        form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
                    ),
                    None,
                )
            }),
        ),
        (
            "search q=Company00<5 digits>",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!(
                        "/customers?q=Company{:07}&limit=20",
                        (i * 5 * 131) % 1_000_000
                    ),
                    None,
                )
            }),
        ),
        (
            "search q=<7 phone digits>",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!("/customers?q=138{:04}&limit=20", (i * 37) % 10_000),
                    None,
                )
            }),
        ),
        (
            "create",
            Box::new(|i| {
                (
                    reqwest::Method::POST,
                    "/customers?allow_duplicate=true".into(),
                    Some(json!({"name": format!("压测客户{i}"), "level": "B"})),
                )
            }),
        ),
    ];
    for (name, make) in &ops {
        let mut times = Vec::with_capacity(requests);
        for i in 0..requests {
            let (method, path, body) = make(i);
            let mut req = client
                .request(method, format!("{base}{path}"))
                .bearer_auth(&token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let t0 = Instant::now();
            let resp = req.send().await?;
            let status = resp.status();
            let _ = resp.bytes().await?;
            times.push(t0.elapsed());
            anyhow::ensure!(status.is_success(), "{name}: HTTP {status} for {path}");
        }
        times.sort();
        println!(
            "{:<34} {:>8} {:>9} {:>9} {:>9}",
            name,
            requests,
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 95.0)),
            ms(*times.last().unwrap_or(&Duration::ZERO))
        );
    }
    running.stop().await?;
    Ok(())
}
