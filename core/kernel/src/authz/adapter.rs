//! A casbin adapter over the tenant's `casbin_rule` table. It reads and writes only rows
//! whose domain equals the tenant id exactly (no LIKE on tenant names), inside a tenant
//! transaction; every write bumps the tenant's policy version.

use crate::db::{Db, TenantCtx, TenantTx};
use async_trait::async_trait;
use casbin::{Adapter, Filter, Model};
use std::future::Future;

/// Policies of one tenant, loaded through that tenant's transaction.
pub struct TenantPolicyAdapter {
    db: Db,
    tenant: TenantCtx,
    /// Rows already read in the caller's transaction: the first load uses them instead of
    /// opening a transaction of its own.
    preloaded: Option<Vec<RuleRow>>,
}

/// One `casbin_rule` row: ptype, v0..v3.
pub(super) type RuleRow = (String, String, String, String, String);

impl TenantPolicyAdapter {
    pub fn new(db: Db, tenant: TenantCtx) -> Self {
        Self {
            db,
            tenant,
            preloaded: None,
        }
    }

    /// An adapter whose first load is `rows`, read by [`read_rules`] in the request's own
    /// transaction (so loading an enforcer takes no second connection).
    pub(super) fn with_rows(db: Db, tenant: TenantCtx, rows: Vec<RuleRow>) -> Self {
        Self {
            db,
            tenant,
            preloaded: Some(rows),
        }
    }
}

/// The tenant's policy rows, in insertion order.
pub(super) async fn read_rules(tx: &mut TenantTx) -> crate::Result<Vec<RuleRow>> {
    let domain = tx.tenant().id.to_string();
    Ok(sqlx::query_as(&format!(
        "SELECT ptype, v0, v1, v2, v3 FROM casbin_rule WHERE {OF_DOMAIN} ORDER BY id"
    ))
    .bind(domain)
    .fetch_all(tx.conn())
    .await?)
}

type Rule = [String; 4];

/// One change to the policy table.
enum Write {
    Insert(String, Rule),
    Delete(String, Rule),
    /// Delete the rules of a ptype whose columns equal the given values.
    DeleteMatching(String, Vec<(usize, String)>),
    DeleteAll,
}

fn adapter_error(e: impl std::fmt::Display) -> casbin::Error {
    casbin::Error::AdapterError(casbin::error::AdapterError(Box::new(
        std::io::Error::other(e.to_string()),
    )))
}

/// `p` rules are (role, domain, object, action); `g` rules are (subject, role, domain).
fn domain_index(ptype: &str) -> usize {
    if ptype.starts_with('g') {
        2
    } else {
        1
    }
}

const COLUMNS: [&str; 4] = ["v0", "v1", "v2", "v3"];

fn padded(rule: &[String]) -> Rule {
    std::array::from_fn(|i| rule.get(i).cloned().unwrap_or_default())
}

const OF_DOMAIN: &str = "((ptype LIKE 'p%' AND v1 = $1) OR (ptype LIKE 'g%' AND v2 = $1))";

async fn db_work<T>(work: impl Future<Output = crate::Result<T>>) -> casbin::Result<T> {
    work.await.map_err(adapter_error)
}

impl TenantPolicyAdapter {
    async fn load(&mut self, m: &mut dyn Model, filter: Option<&Filter<'_>>) -> casbin::Result<()> {
        let rows = match self.preloaded.take() {
            Some(rows) => rows,
            None => {
                let (db, tenant) = (self.db.clone(), self.tenant.clone());
                db_work(async move {
                    let mut tx = db.tenant_tx(&tenant).await?;
                    let rows = read_rules(&mut tx).await?;
                    tx.commit().await?;
                    Ok(rows)
                })
                .await?
            }
        };
        for (ptype, v0, v1, v2, v3) in rows {
            let mut rule = vec![v0, v1, v2, v3];
            while rule.last().is_some_and(String::is_empty) {
                rule.pop();
            }
            let wanted = filter.map(|f| if ptype.starts_with('g') { &f.g } else { &f.p });
            let matches = wanted.is_none_or(|wanted| {
                wanted
                    .iter()
                    .zip(&rule)
                    .all(|(want, have)| want.is_empty() || want == have)
            });
            if matches {
                m.add_policy(&ptype[..1], &ptype, rule);
            }
        }
        Ok(())
    }

    /// Applies writes in one tenant transaction; reports whether any row changed.
    async fn write(&self, writes: Vec<Write>) -> casbin::Result<bool> {
        let (db, tenant) = (self.db.clone(), self.tenant.clone());
        db_work(async move {
            let domain = tenant.id.to_string();
            let mut tx = db.tenant_tx(&tenant).await?;
            let mut changed = false;
            for write in writes {
                let done = match write {
                    Write::Insert(ptype, rule) => {
                        // Never write a rule of another domain into this tenant's table.
                        if rule[domain_index(&ptype)] != domain {
                            continue;
                        }
                        let [v0, v1, v2, v3] = rule;
                        sqlx::query(
                            "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        )
                        .bind(ptype)
                        .bind(v0)
                        .bind(v1)
                        .bind(v2)
                        .bind(v3)
                        .execute(tx.conn())
                        .await?
                    }
                    Write::Delete(ptype, [v0, v1, v2, v3]) => {
                        sqlx::query(
                            "DELETE FROM casbin_rule WHERE ptype = $1 AND v0 = $2 AND v1 = $3 \
                             AND v2 = $4 AND v3 = $5",
                        )
                        .bind(ptype)
                        .bind(v0)
                        .bind(v1)
                        .bind(v2)
                        .bind(v3)
                        .execute(tx.conn())
                        .await?
                    }
                    Write::DeleteMatching(ptype, conditions) => {
                        let mut query =
                            sqlx::QueryBuilder::new("DELETE FROM casbin_rule WHERE ptype = ");
                        query.push_bind(ptype.clone());
                        query.push(format!(" AND {} = ", COLUMNS[domain_index(&ptype)]));
                        query.push_bind(domain.clone());
                        for (index, value) in conditions {
                            query.push(format!(" AND {} = ", COLUMNS[index]));
                            query.push_bind(value);
                        }
                        query.build().execute(tx.conn()).await?
                    }
                    Write::DeleteAll => {
                        sqlx::query(&format!("DELETE FROM casbin_rule WHERE {OF_DOMAIN}"))
                            .bind(domain.clone())
                            .execute(tx.conn())
                            .await?
                    }
                };
                changed |= done.rows_affected() > 0;
            }
            super::policy::bump_version(&mut tx).await?;
            tx.commit().await?;
            Ok(changed)
        })
        .await
    }
}

#[async_trait]
impl Adapter for TenantPolicyAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        self.load(m, None).await
    }

    async fn load_filtered_policy<'a>(
        &mut self,
        m: &mut dyn Model,
        f: Filter<'a>,
    ) -> casbin::Result<()> {
        self.load(m, Some(&f)).await
    }

    async fn save_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let mut writes = vec![Write::DeleteAll];
        for sec in ["p", "g"] {
            if let Some(assertions) = m.get_model().get(sec) {
                for (ptype, assertion) in assertions {
                    for rule in assertion.get_policy() {
                        writes.push(Write::Insert(ptype.clone(), padded(rule)));
                    }
                }
            }
        }
        self.write(writes).await.map(|_| ())
    }

    async fn clear_policy(&mut self) -> casbin::Result<()> {
        self.write(vec![Write::DeleteAll]).await.map(|_| ())
    }

    fn is_filtered(&self) -> bool {
        false
    }

    async fn add_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.write(vec![Write::Insert(ptype.to_owned(), padded(&rule))])
            .await
    }

    async fn add_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        let writes = rules
            .iter()
            .map(|r| Write::Insert(ptype.to_owned(), padded(r)))
            .collect();
        self.write(writes).await
    }

    async fn remove_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.write(vec![Write::Delete(ptype.to_owned(), padded(&rule))])
            .await
    }

    async fn remove_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        let writes = rules
            .iter()
            .map(|r| Write::Delete(ptype.to_owned(), padded(r)))
            .collect();
        self.write(writes).await
    }

    async fn remove_filtered_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        field_index: usize,
        field_values: Vec<String>,
    ) -> casbin::Result<bool> {
        if field_index + field_values.len() > COLUMNS.len() {
            return Err(adapter_error("policy rules have at most 4 fields"));
        }
        let conditions = field_values
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(i, v)| (field_index + i, v))
            .collect();
        self.write(vec![Write::DeleteMatching(ptype.to_owned(), conditions)])
            .await
    }
}
