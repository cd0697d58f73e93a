//! Sales: pipelines (ordered stages with default win probabilities, plus the terminal stages
//! `won` and `lost`) and the opportunity hook that keeps stage, status and probability
//! consistent around the record engine.

use super::engine::Input;
use super::schema::ObjectSchema;
use super::values::SqlValue;
use chrono::{DateTime, Utc};
use crm_core::db::TenantTx;
use crm_core::domain::Validator;
use crm_core::error::{unique_violation, Error, FieldError, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

/// An open stage of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stage {
    pub key: String,
    pub name: String,
    /// Default win probability (0-100) of opportunities entering the stage.
    pub probability: i64,
}

impl Stage {
    /// Longest stage key (ASCII, so bytes are characters).
    pub const KEY_MAX_LEN: usize = 40;
    /// Highest default win probability, in percent (the lowest is 0).
    pub const MAX_PROBABILITY: i64 = 100;

    /// Whether `key` is 1-[`Stage::KEY_MAX_LEN`] characters a-z, 0-9, '_', starting with a
    /// letter.
    pub fn is_key(key: &str) -> bool {
        (1..=Self::KEY_MAX_LEN).contains(&key.len())
            && key.starts_with(|c: char| c.is_ascii_lowercase())
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }
}

/// Terminal stages every pipeline has.
pub const WON: &str = "won";
pub const LOST: &str = "lost";

/// A sales pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    pub id: Uuid,
    pub name: String,
    pub stages: Vec<Stage>,
    pub position: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

type PipelineRow = (
    Uuid,
    String,
    Json<Vec<Stage>>,
    i32,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn from_row(r: PipelineRow) -> Pipeline {
    Pipeline {
        id: r.0,
        name: r.1,
        stages: r.2 .0,
        position: r.3,
        created_at: r.4,
        updated_at: r.5,
    }
}

const COLUMNS: &str = "id, name, stages, position, created_at, updated_at";

impl Pipeline {
    /// The default probability of a stage (won 100, lost 0), if the stage exists.
    pub fn probability_of(&self, stage: &str) -> Option<i64> {
        match stage {
            WON => Some(100),
            LOST => Some(0),
            _ => self
                .stages
                .iter()
                .find(|s| s.key == stage)
                .map(|s| s.probability),
        }
    }

    /// Every stage key, open ones in order, then won and lost.
    pub fn stage_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.stages.iter().map(|s| s.key.as_str()).collect();
        keys.extend([WON, LOST]);
        keys
    }
}

/// All pipelines in display order.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<Pipeline>> {
    let rows: Vec<PipelineRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM pipelines ORDER BY position, name"
    ))
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// One pipeline.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Pipeline> {
    let row: Option<PipelineRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM pipelines WHERE id = $1"))
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    row.map(from_row)
        .ok_or_else(|| Error::not_found("pipeline.not_found", format!("no pipeline {id}")))
}

/// Validates a pipeline's name and stages.
pub fn validate(name: &str, stages: &[Stage]) -> Result<()> {
    let mut v = Validator::new();
    v.check(crm_core::domain::DisplayName::parse("name", name).map(|_| ()));
    if stages.is_empty() {
        v.push(FieldError::new(
            "stages",
            "required",
            "a pipeline needs at least one open stage",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, s) in stages.iter().enumerate() {
        if !Stage::is_key(&s.key) {
            v.push(FieldError::new(
                format!("stages[{i}].key"),
                "invalid",
                format!(
                    "use 1-{} characters a-z, 0-9, '_', starting with a letter",
                    Stage::KEY_MAX_LEN
                ),
            ));
        } else if s.key == WON || s.key == LOST {
            v.push(FieldError::new(
                format!("stages[{i}].key"),
                "reserved",
                "won and lost are the terminal stages every pipeline has",
            ));
        } else if !seen.insert(s.key.as_str()) {
            v.push(FieldError::new(
                format!("stages[{i}].key"),
                "duplicate",
                format!("'{}' is listed twice", s.key),
            ));
        }
        v.check(
            crm_core::domain::DisplayName::parse(&format!("stages[{i}].name"), &s.name).map(|_| ()),
        );
        if !(0..=Stage::MAX_PROBABILITY).contains(&s.probability) {
            v.push(FieldError::new(
                format!("stages[{i}].probability"),
                "out_of_range",
                format!("must be 0-{}", Stage::MAX_PROBABILITY),
            ));
        }
    }
    v.finish()
}

fn name_taken(e: sqlx::Error, name: &str) -> Error {
    match unique_violation(&e) {
        Some(_) => Error::conflict(
            "pipeline.exists",
            format!("a pipeline named '{name}' exists already"),
        ),
        None => e.into(),
    }
}

/// Creates a pipeline.
pub async fn create(tx: &mut TenantTx, name: &str, stages: &[Stage]) -> Result<Pipeline> {
    validate(name, stages)?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO pipelines (id, name, stages, position) \
         VALUES ($1, $2, $3, (SELECT coalesce(max(position), -1) + 1 FROM pipelines))",
    )
    .bind(id)
    .bind(name.trim())
    .bind(Json(stages))
    .execute(tx.conn())
    .await
    .map_err(|e| name_taken(e, name))?;
    get(tx, id).await
}

/// Renames a pipeline or replaces its stages. A stage that open opportunities are in cannot
/// be removed (409 naming it).
pub async fn update(
    tx: &mut TenantTx,
    id: Uuid,
    name: Option<&str>,
    stages: Option<&[Stage]>,
) -> Result<Pipeline> {
    let current = get(tx, id).await?;
    let name = name.unwrap_or(&current.name);
    let stages = stages.unwrap_or(&current.stages);
    validate(name, stages)?;
    let in_use: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT stage FROM opportunities WHERE pipeline_id = $1 \
         AND stage <> ALL($2) ORDER BY stage",
    )
    .bind(id)
    .bind(
        stages
            .iter()
            .map(|s| s.key.clone())
            .chain([WON.to_owned(), LOST.to_owned()])
            .collect::<Vec<_>>(),
    )
    .fetch_all(tx.conn())
    .await?;
    if !in_use.is_empty() {
        return Err(Error::conflict(
            "pipeline.stage_in_use",
            format!(
                "opportunities are still in stage(s) {}; move them first",
                in_use.join(", ")
            ),
        ));
    }
    sqlx::query("UPDATE pipelines SET name = $2, stages = $3, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(name.trim())
        .bind(Json(stages))
        .execute(tx.conn())
        .await
        .map_err(|e| name_taken(e, name))?;
    get(tx, id).await
}

/// Deletes a pipeline no opportunity uses (deleted ones included: purge them first).
pub async fn delete(tx: &mut TenantTx, id: Uuid) -> Result<()> {
    get(tx, id).await?;
    let used: i64 = sqlx::query_scalar("SELECT count(*) FROM opportunities WHERE pipeline_id = $1")
        .bind(id)
        .fetch_one(tx.conn())
        .await?;
    if used > 0 {
        return Err(Error::conflict(
            "pipeline.in_use",
            format!("{used} opportunit(ies) use this pipeline; move or purge them first"),
        ));
    }
    sqlx::query("DELETE FROM pipelines WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The first pipeline (the default for new opportunities).
async fn default_pipeline(tx: &mut TenantTx) -> Result<Pipeline> {
    list(tx).await?.into_iter().next().ok_or_else(|| {
        Error::invalid_field(
            "pipeline_id",
            "required",
            "there is no pipeline yet; create one at POST /api/v1/pipelines",
        )
    })
}

fn text_of(v: Option<&SqlValue>) -> Option<String> {
    match v {
        Some(SqlValue::Text(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Makes an opportunity's input consistent before the engine writes it: pipeline (default:
/// the first), stage (default: its first; must exist), status from won/lost stages and the
/// other way round, and the stage's default probability on every stage move unless the same
/// request sets a probability. `current` is the stored record on update.
pub async fn prepare_opportunity<'s>(
    tx: &mut TenantTx,
    schema: &'s ObjectSchema,
    input: &mut Input<'s>,
    current: Option<&Value>,
) -> Result<()> {
    let mut v = Validator::new();
    let pipeline = match (input.get("pipeline_id"), current) {
        (Some(SqlValue::Uuid(id)), _) => get(tx, *id).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::invalid_field(
                "pipeline_id",
                "unknown_reference",
                format!("no pipeline {id}"),
            ),
            other => other,
        })?,
        (_, Some(cur)) => {
            let id = cur["pipeline_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok());
            get(
                tx,
                id.ok_or_else(|| Error::internal("opportunity without pipeline"))?,
            )
            .await?
        }
        _ => default_pipeline(tx).await?,
    };
    let current_stage = current.and_then(|c| c["stage"].as_str().map(str::to_owned));
    let asked_status = text_of(input.get("status"));
    // A move to another pipeline without a stage starts at that pipeline's first stage.
    let pipeline_changed = current
        .is_some_and(|c| c["pipeline_id"].as_str() != Some(pipeline.id.to_string().as_str()));
    let mut stage = text_of(input.get("stage"))
        .or_else(|| current_stage.clone().filter(|_| !pipeline_changed))
        .or_else(|| pipeline.stages.first().map(|s| s.key.clone()))
        .unwrap_or_default();
    // Setting the status to won/lost moves the stage there; reopening goes to the first stage.
    match asked_status.as_deref() {
        Some(WON | LOST) if input.get("stage").is_none() => {
            stage = asked_status.clone().unwrap_or_default();
        }
        Some("open") if matches!(stage.as_str(), WON | LOST) && input.get("stage").is_none() => {
            stage = pipeline
                .stages
                .first()
                .map(|s| s.key.clone())
                .unwrap_or_default();
        }
        _ => {}
    }
    let Some(default_probability) = pipeline.probability_of(&stage) else {
        v.push(FieldError::new(
            "stage",
            "unknown_stage",
            format!(
                "'{stage}' is not a stage of pipeline '{}'; use one of: {}",
                pipeline.name,
                pipeline.stage_keys().join(", ")
            ),
        ));
        return v.finish();
    };
    let status = match stage.as_str() {
        WON => WON,
        LOST => LOST,
        _ => "open",
    };
    if let Some(asked) = asked_status.as_deref() {
        if asked != status {
            v.push(FieldError::new(
                "status",
                "inconsistent",
                format!("stage '{stage}' means status '{status}'"),
            ));
        }
    }
    for (key, lo, hi) in [("probability", 0.0, 100.0), ("discount_pct", 0.0, 100.0)] {
        let n = match input.get(key) {
            Some(SqlValue::Int(n)) => Some(*n as f64),
            Some(SqlValue::Numeric(s)) => s.parse::<f64>().ok(),
            _ => None,
        };
        if n.is_some_and(|n| !(lo..=hi).contains(&n)) {
            v.push(FieldError::new(
                key,
                "out_of_range",
                "must be between 0 and 100",
            ));
        }
    }
    if let Some(SqlValue::Numeric(a)) = input.get("amount") {
        if a.starts_with('-') {
            v.push(FieldError::new(
                "amount",
                "out_of_range",
                "must not be negative",
            ));
        }
    }
    v.finish()?;

    let moved = current_stage.as_deref() != Some(stage.as_str());
    input.set(schema, "pipeline_id", SqlValue::Uuid(pipeline.id));
    input.set(schema, "stage", SqlValue::Text(stage));
    input.set(schema, "status", SqlValue::Text(status.to_owned()));
    if moved && input.get("probability").is_none() {
        input.set(schema, "probability", SqlValue::Int(default_probability));
    }
    Ok(())
}

/// Refuses a contact that does not belong to the opportunity's customer.
pub async fn ensure_contact_of(tx: &mut TenantTx, contact: Uuid, customer: Uuid) -> Result<()> {
    let ok: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM contacts WHERE id = $1 AND customer_id = $2 AND deleted_at IS NULL)",
    )
    .bind(contact)
    .bind(customer)
    .fetch_one(tx.conn())
    .await?;
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_field(
            "contact_id",
            "not_of_customer",
            "the contact is not a contact of this customer",
        ))
    }
}

/// Live opportunities of a pipeline visible in `scope`, summed per stage and currency.
#[derive(Debug, Clone)]
pub struct StageSum {
    pub stage: String,
    pub currency: String,
    pub count: i64,
    pub amount: f64,
    /// Sum of amount × probability / 100.
    pub weighted: f64,
}

/// Board sums of a pipeline.
pub async fn stage_sums(
    tx: &mut TenantTx,
    scope: super::RecordScope,
    pipeline: Uuid,
) -> Result<Vec<StageSum>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT stage, currency, count(*), coalesce(sum(amount), 0)::float8, \
         coalesce(sum(amount * coalesce(probability, 0) / 100.0), 0)::float8 \
         FROM opportunities WHERE deleted_at IS NULL AND pipeline_id = ",
    );
    q.push_bind(pipeline);
    scope.push_predicate(&mut q, super::ObjectKey::Opportunities.owner_column());
    q.push(" GROUP BY stage, currency");
    let rows: Vec<(String, String, i64, f64, f64)> = q
        .build_query_as()
        .persistent(false)
        .fetch_all(tx.conn())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(stage, currency, count, amount, weighted)| StageSum {
            stage,
            currency,
            count,
            amount,
            weighted,
        })
        .collect())
}
