//! Authorization: casbin RBAC with domains (domain = tenant). Policies live in the tenant's own
//! `casbin_rule` table and are read by [`TenantPolicyAdapter`] with exact matching; one
//! enforcer per tenant sits in a bounded LRU keyed by tenant and invalidated by the tenant's
//! `policy_version`, which every policy change bumps in the same transaction. A request's
//! [`Caller`] carries its tenant's enforcer ([`Enforcement`]), and casbin decides each
//! permission check; [`Grants`] (the same rows read in SQL, with the role scopes casbin's model
//! has no place for) decide scopes and the escalation comparisons.

mod adapter;
mod caller;
mod grants;
mod permission;
pub mod policy;

pub use adapter::TenantPolicyAdapter;
pub use caller::{acting_user, Caller};
pub use grants::{scope_rank, Grants};
pub use permission::{
    default_roles, DefaultRole, ObjectAction, Permission, Scope, ADMIN_ROLE, SCOPED_OBJECTS,
};

use crate::db::{Db, TenantCtx, TenantTx};
use crate::error::{Error, Result};
use crate::identity::Principal;
use casbin::{CoreApi, DefaultModel, Enforcer};
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// RBAC with domains; a subject is `u:<user id>` or `k:<api key id>`.
const MODEL: &str = r#"
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"#;

struct Cached {
    policy_version: i64,
    enforcer: Arc<Mutex<Enforcer>>,
    /// Per subject at this policy version: its grants and the user it acts for.
    subjects: HashMap<String, (Grants, Option<Uuid>)>,
}

/// Subjects remembered per tenant and policy version; beyond, the map starts over.
const SUBJECTS_PER_TENANT: usize = 4096;

/// Per-tenant casbin enforcers in a bounded LRU: memory does not grow with the tenant count.
/// Beside each enforcer it keeps the grants of the subjects seen at that policy version, so a
/// steady-state request builds its [`Caller`] without a query.
pub struct Authorizer {
    cache: Mutex<LruCache<Uuid, Cached>>,
}

impl Authorizer {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            cache: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Number of tenants whose enforcer is cached (for metrics).
    pub fn cached_tenants(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn cached(&self, tenant: Uuid, policy_version: i64) -> Result<Option<Arc<Mutex<Enforcer>>>> {
        let mut cache = self.cache.lock().map_err(|_| poisoned())?;
        Ok(cache
            .get(&tenant)
            .filter(|hit| hit.policy_version == policy_version)
            .map(|hit| hit.enforcer.clone()))
    }

    async fn build(
        &self,
        tenant: &TenantCtx,
        policy_version: i64,
        adapter: TenantPolicyAdapter,
    ) -> Result<Arc<Mutex<Enforcer>>> {
        let model = DefaultModel::from_str(MODEL)
            .await
            .map_err(|e| Error::internal(format!("casbin model: {e}")))?;
        let enforcer = Enforcer::new(model, adapter)
            .await
            .map_err(|e| Error::internal(format!("loading policies: {e}")))?;
        let enforcer = Arc::new(Mutex::new(enforcer));
        let mut cache = self.cache.lock().map_err(|_| poisoned())?;
        // A concurrent request may have loaded a newer version meanwhile; keep the newest.
        let newer_cached = cache
            .peek(&tenant.id)
            .is_some_and(|c| c.policy_version > policy_version);
        if !newer_cached {
            cache.put(
                tenant.id,
                Cached {
                    policy_version,
                    enforcer: enforcer.clone(),
                    subjects: HashMap::new(),
                },
            );
        }
        Ok(enforcer)
    }

    async fn enforcer(
        &self,
        db: &Db,
        tenant: &TenantCtx,
        policy_version: i64,
    ) -> Result<Arc<Mutex<Enforcer>>> {
        if let Some(hit) = self.cached(tenant.id, policy_version)? {
            return Ok(hit);
        }
        let adapter = TenantPolicyAdapter::new(db.clone(), tenant.clone());
        self.build(tenant, policy_version, adapter).await
    }

    /// The request's [`Caller`], built in its own transaction: the enforcer and the
    /// principal's grants come from the cache when the tenant's policy version still matches
    /// the one the credential check read; otherwise they are read in `tx` (never through a
    /// second connection) and remembered.
    pub async fn caller(
        &self,
        db: &Db,
        tx: &mut TenantTx,
        principal: &Principal,
    ) -> Result<Caller> {
        let tenant = tx.tenant().clone();
        let version = principal.policy_version;
        let subject = principal.subject();
        // One look at the cache: the enforcer and, when known, the subject's grants.
        let (cached, known) = {
            let mut cache = self.cache.lock().map_err(|_| poisoned())?;
            match cache
                .get(&tenant.id)
                .filter(|hit| hit.policy_version == version)
            {
                Some(hit) => (
                    Some(hit.enforcer.clone()),
                    hit.subjects.get(&subject).cloned(),
                ),
                None => (None, None),
            }
        };
        let enforcer = match cached {
            Some(hit) => hit,
            None => {
                let rows = adapter::read_rules(tx).await?;
                let adapter = TenantPolicyAdapter::with_rows(db.clone(), tenant.clone(), rows);
                self.build(&tenant, version, adapter).await?
            }
        };
        let (grants, user_id) = match known {
            Some(known) => known,
            None => {
                let grants = Grants::of_subject(tx, &subject).await?;
                let user_id = acting_user(tx, principal).await?;
                let mut cache = self.cache.lock().map_err(|_| poisoned())?;
                if let Some(hit) = cache
                    .get_mut(&tenant.id)
                    .filter(|hit| hit.policy_version == version)
                {
                    if hit.subjects.len() >= SUBJECTS_PER_TENANT {
                        hit.subjects.clear();
                    }
                    hit.subjects.insert(subject, (grants.clone(), user_id));
                }
                (grants, user_id)
            }
        };
        Ok(Caller::assemble(
            principal.clone(),
            user_id,
            grants,
            Enforcement { enforcer, tenant },
        ))
    }

    /// The tenant's enforcer as one request uses it: [`Caller::enforced_by`] hands it to the
    /// caller, whose permission checks it then decides.
    pub async fn enforcement(
        &self,
        db: &Db,
        tenant: &TenantCtx,
        policy_version: i64,
    ) -> Result<Enforcement> {
        Ok(Enforcement {
            enforcer: self.enforcer(db, tenant, policy_version).await?,
            tenant: tenant.clone(),
        })
    }

    /// Whether `subject` holds `permission` in `tenant`.
    pub async fn allows(
        &self,
        db: &Db,
        tenant: &TenantCtx,
        policy_version: i64,
        subject: &str,
        permission: Permission,
    ) -> Result<bool> {
        let enforcer = self.enforcer(db, tenant, policy_version).await?;
        let guard = enforcer.lock().map_err(|_| poisoned())?;
        check(&guard, tenant, subject, permission)
    }
}

/// One tenant's casbin enforcer, loaded (or found in the cache) for a request.
#[derive(Clone)]
pub struct Enforcement {
    enforcer: Arc<Mutex<Enforcer>>,
    tenant: TenantCtx,
}

impl Enforcement {
    /// Whether `subject` holds `permission`; an enforcer error refuses (fails closed).
    pub fn allows(&self, subject: &str, permission: Permission) -> bool {
        let decided = self
            .enforcer
            .lock()
            .map_err(|_| poisoned())
            .and_then(|guard| check(&guard, &self.tenant, subject, permission));
        decided.unwrap_or_else(|e| {
            tracing::error!(error = %e, "casbin refused to decide; denying");
            false
        })
    }
}

impl std::fmt::Debug for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcement")
            .field("tenant", &self.tenant.id)
            .finish_non_exhaustive()
    }
}

fn check(
    enforcer: &Enforcer,
    tenant: &TenantCtx,
    subject: &str,
    permission: Permission,
) -> Result<bool> {
    let (object, action) = permission.object_action();
    let domain = tenant.id.to_string();
    enforcer
        .enforce((subject, domain.as_str(), object, action))
        .map_err(|e| Error::internal(format!("casbin enforce: {e}")))
}

fn poisoned() -> Error {
    Error::internal("authorization cache lock poisoned")
}

/// The 403 for a missing permission, naming it.
pub fn forbidden(permission: Permission) -> Error {
    Error::forbidden(
        "auth.forbidden",
        format!(
            "your role lacks the permission '{permission}' ({}); ask an administrator to grant it",
            permission.description()
        ),
    )
}
