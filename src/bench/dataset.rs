//! The tenant the HTTP benchmarks run on: provisioned fresh with an administrator, bulk-loaded
//! with customers that look like a Chinese company's (names, phones, cities, levels, tags),
//! served by the real server in-process, and removed afterwards unless kept.

use crm_core::db::Db;
use crm_core::domain::{DisplayName, Email};
use crm_tenants::{deprovision_tenant, provision_tenant, NewAdmin, NewTenant, Tenant, TenantSlug};
use std::time::Instant;

/// Surnames and given-name characters for realistic Chinese names.
pub(crate) const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤";
pub(crate) const GIVEN: &str = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕彬鑫斌宇浩凯健俊帆晨阳欣怡婷雪琳";

/// The benchmark administrator's login.
pub(crate) const ADMIN_EMAIL: &str = "admin@bench.example";
pub(crate) const PASSWORD: &str = "benchmark-password";

/// A freshly provisioned benchmark tenant and its administrator.
pub(crate) struct BenchTenant {
    pub tenant: Tenant,
    pub admin: uuid::Uuid,
}

/// Provisions `<prefix>-<random>` with the benchmark administrator.
pub(crate) async fn provision(db: &Db, prefix: &str, name: &str) -> anyhow::Result<BenchTenant> {
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let hash = crm_core::identity::hash_password(PASSWORD).await?;
    let (new, admin) = new_tenant(&format!("{prefix}-{run}"), name, &hash)?;
    let provisioned = provision_tenant(db, new, admin).await?;
    Ok(BenchTenant {
        tenant: provisioned.tenant,
        admin: provisioned.admin.id,
    })
}

/// Removes the tenant, or with `keep` says how to log in to it.
pub(crate) async fn finish(db: &Db, tenant: &Tenant, keep: bool) -> anyhow::Result<()> {
    if keep {
        println!("kept tenant {} ({ADMIN_EMAIL} / {PASSWORD})", tenant.slug);
    } else {
        println!("removing the benchmark tenant…");
        deprovision_tenant(db, tenant).await?;
    }
    Ok(())
}

/// A benchmark company `slug` named `name`, and its administrator ([`ADMIN_EMAIL`], with the
/// already hashed [`PASSWORD`]).
pub(crate) fn new_tenant(
    slug: &str,
    name: &str,
    password_hash: &str,
) -> anyhow::Result<(NewTenant, NewAdmin)> {
    let field = |e: crm_core::FieldError| anyhow::anyhow!("{}", e.message);
    Ok((
        NewTenant {
            slug: TenantSlug::parse("slug", slug).map_err(field)?,
            name: DisplayName::parse("name", name).map_err(field)?,
        },
        NewAdmin {
            email: Email::parse("email", ADMIN_EMAIL).map_err(field)?,
            name: DisplayName::parse("name", "Bench Admin").map_err(field)?,
            password_hash: password_hash.to_owned(),
        },
    ))
}

/// Bulk-loads `count` customers owned by `admin` the way a migration or import job would:
/// indexes off, rows in by batches of 100 000, indexes on, `ANALYZE`, `VACUUM`. Customer `i` has level
/// `A`–`D` by `i % 4`, city 北京/上海/深圳/成都/杭州 by `i % 5`, every fifth is named
/// `Company<7 digits of i>`, every tenth is tagged `VIP`.
pub(crate) async fn load_customers(
    db: &Db,
    tenant: &Tenant,
    admin: uuid::Uuid,
    count: usize,
) -> anyhow::Result<()> {
    let ctx = tenant.ctx()?;
    println!("loading {count} customers into {} …", tenant.slug);
    let started = Instant::now();
    let indexes = drop_indexes(db, tenant, "customers").await?;
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
    restore_indexes(db, tenant, "customers", &indexes).await?;
    println!(
        "loaded and indexed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Up to `count` ids of live records of `table` (a fixed name), in no particular order.
pub(crate) async fn sample_ids(
    db: &Db,
    tenant: &Tenant,
    table: &str,
    count: usize,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    let mut tx = db.tenant_tx(&tenant.ctx()?).await?;
    // TABLESAMPLE reads about 1% of the pages: enough ids without a full scan of a big table,
    // but a small one may yield none, so fall back to the first rows.
    let mut ids: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
        "SELECT id FROM {table} TABLESAMPLE SYSTEM (1) WHERE deleted_at IS NULL LIMIT $1"
    ))
    .bind(count as i64)
    .fetch_all(tx.conn())
    .await?;
    if ids.len() < count.min(100) {
        ids = sqlx::query_scalar(&format!(
            "SELECT id FROM {table} WHERE deleted_at IS NULL LIMIT $1"
        ))
        .bind(count as i64)
        .fetch_all(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// Drops the secondary indexes of `table` (a fixed name) before a bulk load; returns their
/// definitions for [`restore_indexes`].
pub(crate) async fn drop_indexes(
    db: &Db,
    tenant: &Tenant,
    table: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut tx = db.tenant_tx(&tenant.ctx()?).await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() \
         AND tablename = $1 AND indexname <> $1 || '_pkey'",
    )
    .bind(table)
    .fetch_all(tx.conn())
    .await?;
    for (name, _) in &rows {
        sqlx::query(&format!("DROP INDEX \"{name}\""))
            .execute(tx.conn())
            .await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// Rebuilds the indexes [`drop_indexes`] dropped, then ANALYZE and VACUUM, as autovacuum
/// would do soon after such a load: the visibility map set, counts can answer from an index
/// alone. VACUUM cannot run in a transaction, so it goes through the pool by the table's
/// qualified name; a login role that may not vacuum it only warns.
pub(crate) async fn restore_indexes(
    db: &Db,
    tenant: &Tenant,
    table: &str,
    indexes: &[(String, String)],
) -> anyhow::Result<()> {
    let ctx = tenant.ctx()?;
    let mut tx = db.tenant_tx(&ctx).await?;
    for (_, def) in indexes {
        sqlx::query(def).execute(tx.conn()).await?;
    }
    sqlx::query(&format!("ANALYZE {table}"))
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    let qualified = format!("\"{}\".{table}", ctx.schema.as_str());
    if let Err(e) = sqlx::query(&format!("VACUUM {qualified}"))
        .execute(&db.pool)
        .await
    {
        println!("  (VACUUM {qualified} was refused: {e}; counts may read the table)");
    }
    Ok(())
}

/// Starts the real server in this process on a random local port (tenant schemas are not
/// migrated in the background: the benchmark tenant is fresh).
pub(crate) async fn serve(
    config: &crate::config::Config,
    db: &Db,
) -> anyhow::Result<crate::server::Running> {
    let mut server_config = config.clone();
    server_config.listen = "127.0.0.1:0".into();
    server_config.auto_migrate_tenants = false;
    crate::server::start(server_config, db.pool.clone()).await
}

/// Logs in over HTTP (`base` ends in `/api/v1`) and returns the session token.
pub(crate) async fn login(
    client: &reqwest::Client,
    base: &str,
    tenant: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let answer: serde_json::Value = client
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"tenant": tenant, "email": email, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    answer["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("login to {tenant} as {email} failed: {answer}"))
}
