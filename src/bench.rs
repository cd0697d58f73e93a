//! `crm bench provision`: how long sign-up's database work takes as tenants accumulate.

use crm_core::db::Db;
use crm_core::domain::{DisplayName, Email};
use crm_tenants::{deprovision_tenant, provision_tenant, NewAdmin, NewTenant, Tenant, TenantSlug};
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Provisions `count` tenants sequentially and prints median and p99 per block of 100.
pub async fn provision(db: &Db, count: usize, keep: bool) -> anyhow::Result<()> {
    let field = |e: crm_core::FieldError| anyhow::anyhow!("{}", e.message);
    let hash = crm_core::identity::hash_password("benchmark-password").await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.tenants")
        .fetch_one(&db.pool)
        .await?;
    println!("provisioning {count} tenants (database already holds {existing}); password hashing excluded");
    println!(
        "{:>13} {:>10} {:>10} {:>10}",
        "tenants", "median ms", "p99 ms", "max ms"
    );
    let mut created: Vec<Tenant> = Vec::with_capacity(count);
    let mut block: Vec<Duration> = Vec::with_capacity(100);
    let mut all: Vec<Duration> = Vec::with_capacity(count);
    for i in 0..count {
        let slug = TenantSlug::parse("slug", &format!("bench-{}-{i}", &run[..8])).map_err(field)?;
        let new = NewTenant {
            slug,
            name: DisplayName::parse("name", &format!("Bench {i}")).map_err(field)?,
        };
        let admin = NewAdmin {
            email: Email::parse("email", "admin@bench.example").map_err(field)?,
            name: DisplayName::parse("name", "Bench Admin").map_err(field)?,
            password_hash: hash.clone(),
        };
        let started = Instant::now();
        let p = provision_tenant(db, new, admin).await?;
        let took = started.elapsed();
        created.push(p.tenant);
        block.push(took);
        all.push(took);
        if block.len() == 100 || i + 1 == count {
            block.sort();
            println!(
                "{:>6}-{:<6} {:>10} {:>10} {:>10}",
                i + 2 - block.len(),
                i + 1,
                ms(percentile(&block, 50.0)),
                ms(percentile(&block, 99.0)),
                ms(*block.last().unwrap_or(&Duration::ZERO))
            );
            block.clear();
        }
    }
    all.sort();
    println!(
        "all {count}: median {} ms, p99 {} ms",
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0))
    );
    if !keep {
        println!("removing the {} benchmark tenants…", created.len());
        for t in &created {
            deprovision_tenant(db, t).await?;
        }
    }
    Ok(())
}

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

/// `crm bench rules`: rule evaluation time through the sandbox (compiled, cached), then the
/// end-to-end throughput of rule jobs: `events` customers are created across `tenants`
/// tenants, each with one enabled rule on `customer.created`, with the worker stopped; then
/// the worker starts and the clock runs until every event's run is logged (commit to effect).
pub async fn rules(
    config: &crate::config::Config,
    pool: &sqlx::PgPool,
    tenants: usize,
    events: usize,
    concurrency: usize,
    keep: bool,
) -> anyhow::Result<()> {
    use crm_records::engine::Access;
    use crm_records::meta::ObjectKey;
    use crm_records::schema::ObjectSchema;
    use crm_records::service::{self, CreateOptions};
    use serde_json::json;
    let engine = crm_workflows::RuleEngine {
        pool: std::sync::Arc::new(crm_workflows::SandboxPool::new(crm_workflows::PoolConfig {
            size: config.rules_sandbox_processes.max(1),
            ..crm_workflows::PoolConfig::default()
        })),
        master: None,
    };
    let condition = r#"record.level == "A" && record.name != """#;
    let script = r#"notify("owner", "新的 A 级客户：" + record.name);"#;

    // 1. Evaluation: one cached rule, sequential round trips.
    let request = |n: usize| crm_workflows::EvalRequest {
        condition: Some(condition.into()),
        script: script.into(),
        record: json!({"id": format!("c{n}"), "name": "艾克米贸易", "level": "A", "city": "上海",
                       "owner_id": "0190f0c0-0000-7000-8000-000000000001", "tags": ["VIP"]}),
        changes: None,
        context: json!({"tenant": "bench", "now": "2026-11-23T09:00:00Z"}),
    };
    for n in 0..200 {
        engine.pool.evaluate(&request(n)).await?;
    }
    let mut times = Vec::with_capacity(10_000);
    for n in 0..10_000 {
        let t = Instant::now();
        engine.pool.evaluate(&request(n)).await?;
        times.push(t.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "rule evaluation (cached, with the sandbox round trip), 10000 runs: mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs",
        mean.as_secs_f64() * 1e6,
        percentile(&times, 50.0).as_secs_f64() * 1e6,
        percentile(&times, 99.0).as_secs_f64() * 1e6
    );

    // 2. Throughput: tenants, rules, events committed with the worker stopped.
    let db = Db::new(pool.clone(), config.tenant_isolation);
    let field = |e: crm_core::FieldError| anyhow::anyhow!("{}", e.message);
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let hash = crm_core::identity::hash_password("benchmark-password").await?;
    println!("provisioning {tenants} tenants with one enabled rule each …");
    let mut created = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let p = provision_tenant(
            &db,
            NewTenant {
                slug: TenantSlug::parse("slug", &format!("bench-rules-{run}-{i}"))
                    .map_err(field)?,
                name: DisplayName::parse("name", &format!("Rules bench {i}")).map_err(field)?,
            },
            NewAdmin {
                email: Email::parse("email", "admin@bench.example").map_err(field)?,
                name: DisplayName::parse("name", "Bench").map_err(field)?,
                password_hash: hash.clone(),
            },
        )
        .await?;
        let ctx = p.tenant.ctx()?;
        let mut tx = db.tenant_tx(&ctx).await?;
        let admin = crm_core::identity::Principal {
            kind: crm_core::identity::PrincipalKind::User,
            id: p.admin.id,
            name: "Bench".into(),
            session_id: None,
            policy_version: 0,
        };
        let saver = crm_core::authz::Caller::load(&mut tx, &admin).await?;
        crm_workflows::rules::create(
            &mut tx,
            &engine.pool,
            &saver,
            crm_workflows::rules::RuleInput {
                name: "A 级客户通知".into(),
                object: "customers".into(),
                trigger: json!({"event": "customer.created"}),
                condition: Some(condition.into()),
                script: script.into(),
                enabled: true,
                run_as_role: None,
            },
        )
        .await?;
        tx.commit().await?;
        created.push((p.tenant, p.admin.id));
    }
    let result = async {
        println!("committing {events} customer.created events (worker stopped) …");
        let started = Instant::now();
        let per = events.div_ceil(tenants.max(1));
        let actor = crm_core::audit::Actor::system();
        let mut total = 0usize;
        for (tenant, admin) in &created {
            let ctx = tenant.ctx()?;
            let mut left = per.min(events - total);
            while left > 0 {
                let n = left.min(200);
                let mut tx = db.tenant_tx(&ctx).await?;
                let schema = ObjectSchema::load(&mut tx, ObjectKey::Customers).await?;
                let access = Access::platform(&actor, Some(*admin), None);
                for k in 0..n {
                    service::create(
                        &mut tx,
                        &schema,
                        &access,
                        &json!({"name": format!("客户 {total}-{k}"), "level": "A"}),
                        CreateOptions { allow_duplicate: true },
                    )
                    .await?;
                }
                tx.commit().await?;
                left -= n;
                total += n;
            }
            if total >= events {
                break;
            }
        }
        println!("  {total} events in {:.1} s", started.elapsed().as_secs_f64());
        // As pgbench does: start the clock after a checkpoint, so the figure is the worker's
        // and not that of a checkpoint the set-up's writes happened to bring on (best effort:
        // it needs a superuser or pg_checkpoint).
        if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
            println!("  (no checkpoint before the drain: {e})");
        }
        let handlers = crate::wiring::job_handlers(config, None, &engine, None)?;
        let started = Instant::now();
        let worker = crate::worker::Worker::spawn(
            db.clone(),
            handlers,
            crate::worker::WorkerSettings {
                poll: Duration::from_millis(20),
                concurrency,
                batch: 100,
                job_lease: chrono::Duration::minutes(5),
                tenant_lease: chrono::Duration::minutes(2),
            },
        );
        let ctxs: Vec<_> = created
            .iter()
            .map(|(t, _)| t.ctx())
            .collect::<Result<_, _>>()?;
        // Watching must not load the machine it measures: each round asks the platform once
        // which tenants have no job left, and only those tenants' run logs are counted.
        let ids: Vec<uuid::Uuid> = ctxs.iter().map(|c| c.id).collect();
        let mut counted = std::collections::HashMap::new();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let idle: Vec<uuid::Uuid> = sqlx::query_scalar(
                "SELECT tenant_id FROM platform.job_hints WHERE tenant_id = ANY($1) \
                   AND next_run_at IS NULL",
            )
            .bind(&ids)
            .fetch_all(pool)
            .await?;
            for id in idle {
                if counted.contains_key(&id) {
                    continue;
                }
                let Some(ctx) = ctxs.iter().find(|c| c.id == id) else {
                    continue;
                };
                let mut tx = db.tenant_tx(ctx).await?;
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rule_runs")
                    .fetch_one(tx.conn())
                    .await?;
                tx.commit().await?;
                counted.insert(id, n);
            }
            let done: i64 = counted.values().sum();
            if done as usize >= total {
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                anyhow::bail!("only {done} of {total} runs after 30 minutes");
            }
        }
        let took = started.elapsed();
        worker.stop().await;
        println!(
            "end to end: {total} rule jobs over {} tenants in {:.1} s = {:.0} jobs/s (worker concurrency {concurrency})",
            ctxs.len(),
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64()
        );
        let (tenant, admin) = created
            .first()
            .ok_or_else(|| anyhow::anyhow!("no benchmark tenant"))?;
        event_to_effect(config, &db, &engine, &tenant.ctx()?, *admin).await
    }
    .await;
    if !keep {
        println!("removing the benchmark tenants …");
        for (t, _) in &created {
            deprovision_tenant(&db, t).await?;
        }
    }
    result
}

/// Event → effect: single customer.created events, one at a time, into an idle worker that
/// polls at the configured interval (so only its wake-up on commit can make it faster); the
/// latency is from the event's transaction to the end of the rule run it caused, both by the
/// database's clock.
async fn event_to_effect(
    config: &crate::config::Config,
    db: &Db,
    engine: &crm_workflows::RuleEngine,
    ctx: &crm_core::db::TenantCtx,
    admin: uuid::Uuid,
) -> anyhow::Result<()> {
    use crm_records::{service, Access, ObjectKey, ObjectSchema};
    const SAMPLES: usize = 50;
    let poll = Duration::from_millis(config.jobs_poll_ms);
    let handlers = crate::wiring::job_handlers(config, None, engine, None)?;
    let worker = crate::worker::Worker::spawn(
        db.clone(),
        handlers,
        crate::worker::WorkerSettings {
            poll,
            concurrency: 1,
            batch: 100,
            job_lease: chrono::Duration::minutes(5),
            tenant_lease: chrono::Duration::minutes(2),
        },
    );
    let actor = crm_core::audit::Actor::system();
    let mut millis = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut tx = db.tenant_tx(ctx).await?;
        let schema = ObjectSchema::load(&mut tx, ObjectKey::Customers).await?;
        let access = Access::platform(&actor, Some(admin), None);
        let body = serde_json::json!({"name": format!("延迟测试 {i}"), "level": "A"});
        let options = service::CreateOptions {
            allow_duplicate: true,
        };
        let record = service::create(&mut tx, &schema, &access, &body, options).await?;
        tx.commit().await?;
        let id: uuid::Uuid = record["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("created customer without an id"))?;
        let waited = Instant::now();
        let ms = loop {
            let mut tx = db.tenant_tx(ctx).await?;
            let ms: Option<f64> = sqlx::query_scalar(
                "SELECT (extract(epoch FROM r.created_at - c.created_at) * 1000 \
                   + r.duration_us / 1000.0)::float8 \
                 FROM rule_runs r JOIN customers c ON c.id = r.record_id WHERE r.record_id = $1",
            )
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
            tx.commit().await?;
            if let Some(ms) = ms {
                break ms;
            }
            if waited.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("no rule run a minute after event {i}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        millis.push(ms);
    }
    worker.stop().await;
    millis.sort_by(f64::total_cmp);
    let at = |q: f64| millis[((millis.len() - 1) as f64 * q).round() as usize];
    println!(
        "event → effect: {SAMPLES} single events into an idle worker (poll {} ms): p50 {:.0} ms, p99 {:.0} ms",
        poll.as_millis(),
        at(0.5),
        at(0.99)
    );
    Ok(())
}
