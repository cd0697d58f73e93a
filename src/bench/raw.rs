//! The raw side of `crm bench api`: for each operation, the SQL the design needs for one
//! request, in one transaction, with nothing of the server around it (no HTTP, no casbin, no
//! schema or caller loading). Each statement says what in the server it mirrors. Where the
//! server's SQL comes from a fixed function (the tenant confinement, the session check, the
//! change log and outbox with their listeners) that very function runs, so the two sides cannot
//! drift apart; the record statements are the engine's, with the column list the engine
//! builds (`crm_records::engine::select_list`) and sent unprepared as the engine sends them.
//! One round trip the server makes is folded: a write returns the record with `RETURNING`
//! instead of reading it again. What the server does beyond this per request (HTTP, routing,
//! JSON, the permission decisions, that second read, whatever its caches miss) is what
//! API ÷ raw measures.

use super::workload::{NewCustomer, LIST_CITY, PAGE};
use crm_core::audit::Actor;
use crm_core::context::{RequestCtx, RequestMeta};
use crm_core::db::{Db, TenantCtx, TenantTx};
use crm_core::identity::{api_keys, sessions, tokens, CredentialKind};
use crm_records::meta::{FieldType, ObjectKey};
use crm_records::{history, ObjectSchema};
use serde_json::{json, Map, Value};
use sqlx::postgres::PgRow;
use uuid::Uuid;

/// One tenant's record statements, built once from its schema, and what authenticates.
pub(crate) struct RawSql {
    /// A pool of its own, as many connections as the HTTP side has, with the server's
    /// isolation and statement timeout.
    db: Db,
    tenant: TenantCtx,
    token: tokens::ParsedToken,
    session_max_age: chrono::Duration,
    session_ttl: chrono::Duration,
    get: String,
    list: String,
    search_grams: String,
    search_text: String,
    insert: String,
    lock: String,
    update: String,
}

/// The engine's relevance order of a `q=` search (`query::sort_of`): the best trigram
/// similarity over the searchable text columns a caller with `sensitive:read` sees.
fn relevance(schema: &ObjectSchema, text_param: &str) -> String {
    let mut expr = String::from("greatest(0");
    for f in schema
        .all()
        .filter(|f| f.searchable && f.ty != FieldType::Phone)
    {
        expr.push_str(&format!(
            ", similarity(coalesce(\"{}\", ''), {text_param})",
            f.column
        ));
    }
    expr.push(')');
    expr
}

impl RawSql {
    /// Builds the statements for `tenant`'s customers as the engine would for `token`'s caller
    /// (an administrator: every record, sensitive values in clear).
    pub async fn new(
        db: Db,
        tenant: TenantCtx,
        token: &str,
        session_ttl: chrono::Duration,
        session_max_age: chrono::Duration,
    ) -> anyhow::Result<RawSql> {
        let token = tokens::parse(token)
            .filter(|t| matches!(t.kind, CredentialKind::Session | CredentialKind::ApiKey))
            .ok_or_else(|| {
                anyhow::anyhow!("the token is not a session token (tcs_…) or an API key (tck_…)")
            })?;
        let schema = {
            let mut tx = db.tenant_tx(&tenant).await?;
            let schema = ObjectSchema::load(&mut tx, ObjectKey::Customers).await?;
            tx.commit().await?;
            schema
        };
        anyhow::ensure!(
            !schema.has_encrypted(),
            "the tenant's customers have encrypted fields, which the raw side does not encrypt; use a tenant without them"
        );
        let cols = crm_records::engine::select_list(&schema);
        let table = ObjectKey::Customers.table();
        // engine::read (GET /customers/{id}): the record's columns by id, live only; an
        // administrator's scope adds no predicate.
        let get = format!("SELECT {cols} FROM {table} WHERE id = $1 AND deleted_at IS NULL");
        // query::list with filter[level] and filter[address.city] (the generated `address_city`
        // column since schema v14), default order (id, newest
        // first), the sort value as text for the next cursor, one row more than the page to
        // know whether there is a next one.
        let list = format!(
            "SELECT {cols}, ((\"id\"))::text AS __sort FROM {table} WHERE deleted_at IS NULL \
             AND \"level\" = $1 AND \"address_city\" = $2 \
             ORDER BY (\"id\") DESC, id DESC LIMIT $3"
        );
        // query::list with q= shorter than three characters: the name-gram index, ordered by
        // relevance.
        let rel = relevance(&schema, "$2");
        let search_grams = format!(
            "SELECT {cols}, ({rel})::text AS __sort FROM {table} WHERE deleted_at IS NULL \
             AND name_grams @> ARRAY[$1]::text[] ORDER BY {rel} DESC, id DESC LIMIT $3"
        );
        // query::list with a longer q=: ILIKE on every searchable text column (phones only
        // for digit queries, which the workload does not send), ordered by relevance.
        let mut any = String::from("false");
        for f in schema
            .all()
            .filter(|f| f.searchable && f.ty != FieldType::Phone)
        {
            any.push_str(&format!(" OR \"{}\" ILIKE $1", f.column));
        }
        let search_text = format!(
            "SELECT {cols}, ({rel})::text AS __sort FROM {table} WHERE deleted_at IS NULL \
             AND ({any}) ORDER BY {rel} DESC, id DESC LIMIT $3"
        );
        // engine::insert of the body's fields plus name_grams, the default owner and
        // created_by; RETURNING stands for the engine's read of the new record.
        let insert = format!(
            "INSERT INTO {table} (id, \"email\", \"level\", \"name\", \"name_grams\", \"phone\", \
             \"owner_id\", \"created_by\") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {cols}"
        );
        // engine::update first reads the record, locked, to compare and log the change.
        let lock =
            format!("SELECT {cols} FROM {table} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE");
        // engine::update: only the changed field, with a new version; RETURNING stands for
        // the engine's read of the updated record.
        let update = format!(
            "UPDATE {table} SET version = version + 1, updated_at = now(), \"industry\" = $1 \
             WHERE id = $2 RETURNING {cols}"
        );
        Ok(RawSql {
            db,
            tenant,
            token,
            session_max_age,
            session_ttl,
            get,
            list,
            search_grams,
            search_text,
            insert,
            lock,
            update,
        })
    }

    /// Opens the request's transaction and authenticates in it, as the server does for every
    /// request: `Db::tenant_tx` (BEGIN; SET LOCAL ROLE; SET LOCAL search_path; SET LOCAL
    /// statement_timeout, one round trip) and the credential lookup of `rest::auth`.
    async fn begin(&self) -> anyhow::Result<(TenantTx, Actor)> {
        let mut tx = self.db.tenant_tx(&self.tenant).await?;
        let principal = match self.token.kind {
            CredentialKind::Session => {
                sessions::authenticate(
                    &mut tx,
                    &self.token.hash,
                    self.session_ttl,
                    self.session_max_age,
                )
                .await?
            }
            _ => api_keys::authenticate(&mut tx, &self.token.hash).await?,
        }
        .ok_or_else(|| anyhow::anyhow!("the token was refused; log in again"))?;
        let actor = Actor::of(&RequestCtx {
            tenant: self.tenant.clone(),
            principal,
            meta: RequestMeta {
                request_id: Uuid::now_v7().to_string(),
                ..RequestMeta::default()
            },
        });
        Ok((tx, actor))
    }

    async fn rows(&self, tx: &mut TenantTx, sql: &str, binds: Binds<'_>) -> anyhow::Result<usize> {
        let q = sqlx::query(sql).persistent(false);
        let q = match binds {
            Binds::Id(id) => q.bind(id),
            Binds::Filter(level) => q.bind(level).bind(LIST_CITY).bind(PAGE + 1),
            Binds::Search(pattern, text) => q.bind(pattern).bind(text).bind(PAGE + 1),
        };
        let rows: Vec<PgRow> = q.fetch_all(tx.conn()).await?;
        Ok(rows.len())
    }

    /// GET /customers/{id}.
    pub async fn get(&self, id: Uuid) -> anyhow::Result<()> {
        let (mut tx, _) = self.begin().await?;
        let found = self.rows(&mut tx, &self.get, Binds::Id(id)).await?;
        anyhow::ensure!(found == 1, "customer {id} not found");
        tx.commit().await?;
        Ok(())
    }

    /// GET /customers?filter[level]=…&filter[address.city]=上海&limit=20.
    pub async fn list(&self, level: &str) -> anyhow::Result<()> {
        let (mut tx, _) = self.begin().await?;
        self.rows(&mut tx, &self.list, Binds::Filter(level)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// GET /customers?q=…&limit=20.
    pub async fn search(&self, text: &str) -> anyhow::Result<()> {
        let (mut tx, _) = self.begin().await?;
        if text.chars().count() < 3 {
            let gram = text.to_lowercase();
            self.rows(&mut tx, &self.search_grams, Binds::Search(gram, text))
                .await?;
        } else {
            let pattern = format!("%{}%", escape_like(text));
            self.rows(&mut tx, &self.search_text, Binds::Search(pattern, text))
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// POST /customers.
    pub async fn create(&self, new: &NewCustomer) -> anyhow::Result<()> {
        let (mut tx, actor) = self.begin().await?;
        // customers::ensure_not_duplicate: no live customer with this phone or e-mail.
        let existing: Option<(Uuid, Option<String>)> = sqlx::query_as(
            "SELECT id, CASE WHEN phone = $1 THEN 'phone' ELSE 'email' END FROM customers \
             WHERE deleted_at IS NULL AND (phone = $1 OR email = $2) AND ($3::uuid IS NULL OR id <> $3) \
             ORDER BY id LIMIT 1",
        )
        .bind(&new.phone)
        .bind(&new.email)
        .bind(None::<Uuid>)
        .fetch_optional(tx.conn())
        .await?;
        anyhow::ensure!(existing.is_none(), "{} already exists", new.phone);
        let id = Uuid::now_v7();
        let user = (actor.kind == crm_core::audit::ActorKind::User)
            .then_some(actor.id)
            .flatten();
        sqlx::query(&self.insert)
            .persistent(false)
            .bind(id)
            .bind(&new.email)
            .bind(new.level)
            .bind(&new.name)
            .bind(crm_records::values::name_grams(&new.name))
            .bind(&new.phone)
            .bind(user)
            .bind(user)
            .fetch_one(tx.conn())
            .await?;
        let fields = json!({
            "email": new.email, "level": new.level, "name": new.name,
            "owner_id": user, "phone": new.phone,
        });
        let changes: Map<String, Value> = fields
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), json!({ "after": v })))
            .collect();
        // history::log: the record_history row, the outbox event and what the listeners do
        // with it (the workflows' rule fan-out), the engine's own function.
        history::log(
            &mut tx,
            ObjectKey::Customers,
            id,
            "created",
            &actor,
            &Value::Object(changes),
            json!({ "fields": fields }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// PATCH /customers/{id} with a new `industry`.
    pub async fn update(&self, id: Uuid, industry: &str) -> anyhow::Result<()> {
        let (mut tx, actor) = self.begin().await?;
        // service::ensure_unlocked → the workflows' write lock: no pending approval.
        let pending: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM approvals WHERE object = $1 AND record_id = $2 AND status = 'pending'",
        )
        .bind(ObjectKey::Customers.as_str())
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
        anyhow::ensure!(pending.is_none(), "customer {id} awaits an approval");
        let current: PgRow = sqlx::query(&self.lock)
            .persistent(false)
            .bind(id)
            .fetch_optional(tx.conn())
            .await?
            .ok_or_else(|| anyhow::anyhow!("customer {id} not found"))?;
        let before: Option<String> = sqlx::Row::try_get(&current, "industry")?;
        sqlx::query(&self.update)
            .persistent(false)
            .bind(industry)
            .bind(id)
            .fetch_one(tx.conn())
            .await?;
        let changes = json!({ "industry": { "before": before, "after": industry } });
        history::log(
            &mut tx,
            ObjectKey::Customers,
            id,
            "updated",
            &actor,
            &changes,
            json!({ "changes": changes, "fields": { "industry": industry } }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Parameters of the read statements.
enum Binds<'a> {
    Id(Uuid),
    Filter(&'a str),
    /// The gram or `%pattern%`, then the text for relevance.
    Search(String, &'a str),
}

/// As `query::escape_like`.
fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
