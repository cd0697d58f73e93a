//! The [`Caller`]: who is asking and what they may do, built once per request inside the
//! tenant transaction and handed to services, which check it themselves.

use super::{forbidden, Enforcement, Grants, Permission, Scope};
use crate::db::TenantTx;
use crate::error::Result;
use crate::identity::{Principal, PrincipalKind};
use uuid::Uuid;

/// A principal with its grants and the user it acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The user itself, or the user who created an API key (default owner, own/team scope).
    pub user_id: Option<Uuid>,
    pub grants: Grants,
    /// The tenant's casbin enforcer: when present (every HTTP request), casbin decides each
    /// permission; otherwise the grants read in SQL do.
    enforcement: Option<Enforcement>,
}

impl Caller {
    /// Reads the principal's roles, permissions and scopes in the caller's transaction.
    pub async fn load(tx: &mut TenantTx, principal: &Principal) -> Result<Caller> {
        let grants = Grants::of_subject(tx, &principal.subject()).await?;
        let user_id = acting_user(tx, principal).await?;
        Ok(Caller {
            principal: principal.clone(),
            user_id,
            grants,
            enforcement: None,
        })
    }

    /// A principal holding exactly `grants` and acting for no user (a plugin install):
    /// its grants decide every check.
    pub fn of_grants(principal: Principal, grants: Grants) -> Caller {
        Caller {
            principal,
            user_id: None,
            grants,
            enforcement: None,
        }
    }

    /// A caller from parts the [`super::Authorizer`] found in its cache or read.
    pub(super) fn assemble(
        principal: Principal,
        user_id: Option<Uuid>,
        grants: Grants,
        enforcement: Enforcement,
    ) -> Caller {
        Caller {
            principal,
            user_id,
            grants,
            enforcement: Some(enforcement),
        }
    }

    /// The same caller with casbin deciding its permission checks.
    pub fn enforced_by(mut self, enforcement: Enforcement) -> Caller {
        self.enforcement = Some(enforcement);
        self
    }

    pub fn holds(&self, permission: Permission) -> bool {
        match &self.enforcement {
            Some(e) => e.allows(&self.principal.subject(), permission),
            None => self.grants.holds(permission),
        }
    }

    /// Every permission the caller holds, in [`Permission::ALL`] order.
    pub fn permissions(&self) -> Vec<Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(|p| self.holds(*p))
            .collect()
    }

    /// 403 `auth.forbidden` naming the permission unless the caller holds it.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.holds(permission) {
            Ok(())
        } else {
            Err(forbidden(permission))
        }
    }

    /// Whether sensitive values are shown unmasked.
    pub fn unmask(&self) -> bool {
        self.holds(Permission::SensitiveRead)
    }

    /// The caller's widest scope on `object` (`None`: no role grants any).
    pub fn scope(&self, object: &str) -> Option<Scope> {
        self.grants.scope(object)
    }
}

/// The user a principal acts for: the user itself, or the user who created an API key.
pub async fn acting_user(tx: &mut TenantTx, principal: &Principal) -> Result<Option<Uuid>> {
    Ok(match principal.kind {
        PrincipalKind::User => Some(principal.id),
        PrincipalKind::ApiKey => {
            sqlx::query_scalar::<_, Option<Uuid>>("SELECT created_by FROM api_keys WHERE id = $1")
                .bind(principal.id)
                .fetch_optional(tx.conn())
                .await?
                .flatten()
        }
        PrincipalKind::Plugin => None,
    })
}
