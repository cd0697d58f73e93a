//! Self-service sign-up: a tenant's registry row, Postgres role, schema, tables, default roles
//! and first admin, all in ONE transaction run as the application's login role — either the
//! whole tenant exists afterwards or nothing of it does.

use crate::migrations::{latest_tenant_version, tenant_script};
use crate::registry::{Tenant, COLUMNS};
use crate::slug::TenantSlug;
use crm_core::audit::{self, Actor};
use crm_core::authz::{default_roles, ADMIN_ROLE};
use crm_core::db::{Db, SchemaName, TenantTx};
use crm_core::domain::{DisplayName, Email};
use crm_core::error::unique_violation;
use crm_core::users::{self, NewUser, User};
use crm_core::{Error, Result};
use sqlx::{Executor, PgConnection};
use uuid::Uuid;

/// The company signing up.
#[derive(Clone)]
pub struct NewTenant {
    pub slug: TenantSlug,
    pub name: DisplayName,
}

/// Its first administrator; the password arrives hashed (hashing is the caller's cost).
#[derive(Clone)]
pub struct NewAdmin {
    pub email: Email,
    pub name: DisplayName,
    pub password_hash: String,
}

/// What provisioning created.
pub struct Provisioned {
    pub tenant: Tenant,
    pub admin: User,
}

/// Creates a tenant. A taken slug is 409 `tenant.slug_taken`.
pub async fn provision_tenant(db: &Db, new: NewTenant, admin: NewAdmin) -> Result<Provisioned> {
    provision_tenant_at(db, new, admin, latest_tenant_version()).await
}

/// Creates a tenant at an older schema version, as a server of that version would have: for
/// testing upgrades (`crm migrate`) and the server's tolerance of tenants still behind.
pub async fn provision_tenant_at(
    db: &Db,
    new: NewTenant,
    admin: NewAdmin,
    version: i32,
) -> Result<Provisioned> {
    if !(1..=latest_tenant_version()).contains(&version) {
        return Err(Error::internal(format!(
            "no tenant schema version {version}"
        )));
    }
    let id = Uuid::now_v7();
    let schema = SchemaName::for_tenant(id);
    let mut tx = db.pool.begin().await.map_err(crm_core::db::unavailable)?;
    let tenant = insert_registry_row(&mut tx, id, &new, version).await?;
    create_schema(&mut tx, &schema, version).await?;
    let mut ttx = TenantTx::enter(tx, &tenant.ctx()?, db.isolation).await?;
    crm_core::roles::seed_defaults(&mut ttx, default_roles()).await?;
    let admin = create_first_admin(&mut ttx, &tenant, admin).await?;
    ttx.commit().await?;
    Ok(Provisioned { tenant, admin })
}

/// The tenant's row in `platform.tenants`: from then on credentials may name it. A taken slug
/// is 409 `tenant.slug_taken` (and the caller's transaction is spoilt, so nothing else stays).
pub(crate) async fn insert_registry_row(
    conn: &mut PgConnection,
    id: Uuid,
    new: &NewTenant,
    version: i32,
) -> Result<Tenant> {
    sqlx::query_as(&format!(
        "INSERT INTO platform.tenants (id, slug, name, schema_name, schema_version) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(new.slug.as_str())
    .bind(new.name.as_str())
    .bind(SchemaName::for_tenant(id).as_str())
    .bind(version)
    .fetch_one(conn)
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => Error::conflict(
            "tenant.slug_taken",
            format!("the slug '{}' is taken; choose another", new.slug),
        ),
        None => e.into(),
    })
}

/// The tenant's role and schema with every table at `version`, in one round trip: the role
/// (granted to us so we may hand it objects and act as it), its schema, the tables, then
/// ownership to the tenant role. Leaves `search_path` on the new schema.
pub(crate) async fn create_schema(
    conn: &mut PgConnection,
    schema: &SchemaName,
    version: i32,
) -> Result<()> {
    let ddl = format!(
        "CREATE ROLE \"{schema}\" NOLOGIN; \
         GRANT \"{schema}\" TO CURRENT_USER; \
         CREATE SCHEMA \"{schema}\" AUTHORIZATION \"{schema}\"; \
         SET LOCAL search_path = \"{schema}\", public;\n{}\n\
         INSERT INTO _schema_version (version) VALUES ({});",
        tenant_script(schema, 0, version),
        version
    );
    conn.execute(sqlx::raw_sql(&ddl)).await?;
    Ok(())
}

/// The first administrator of a new tenant, with the audit entry of the tenant's creation.
pub(crate) async fn create_first_admin(
    ttx: &mut TenantTx,
    tenant: &Tenant,
    admin: NewAdmin,
) -> Result<User> {
    let admin = users::create(
        ttx,
        NewUser {
            email: admin.email,
            name: admin.name,
            password_hash: admin.password_hash,
            roles: vec![ADMIN_ROLE.to_owned()],
            team_ids: Vec::new(),
            locale: None,
        },
    )
    .await?;
    audit::record(
        ttx,
        &Actor::system(),
        "tenant.created",
        Some(("tenant", tenant.id.to_string())),
        serde_json::json!({ "slug": tenant.slug, "admin_id": admin.id }),
    )
    .await?;
    Ok(admin)
}

/// Removes a tenant for good: its schema with every table, its role, its registry row.
/// Irreversible; used by benchmarks and tests to clean up (and later by account closure).
pub async fn deprovision_tenant(db: &Db, tenant: &Tenant) -> Result<()> {
    let schema = tenant.ctx()?.schema;
    let mut tx = db.pool.begin().await.map_err(crm_core::db::unavailable)?;
    tx.execute(sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; DROP ROLE IF EXISTS \"{schema}\";"
    )))
    .await?;
    sqlx::query("DELETE FROM platform.tenants WHERE id = $1")
        .bind(tenant.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
