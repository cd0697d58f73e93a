//! What a set of roles grants: permissions plus the widest record scope per object. Every
//! path that hands out power (role edits, user roles, API keys, rule run-as roles, managing
//! another user) compares grants, permissions AND scopes, so nobody passes on more than
//! they hold themselves.

use super::{Permission, Scope, SCOPED_OBJECTS};
use crate::db::TenantTx;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// A role's name, scopes, record types and `object:action` permissions (casbin `p` rows of
/// the tenant).
type RoleGrantRow = (
    String,
    sqlx::types::Json<BTreeMap<String, Scope>>,
    sqlx::types::Json<BTreeMap<String, Vec<String>>>,
    Vec<String>,
);

/// Roles with their permissions; `$2` is the casbin domain (the tenant id).
/// `record_types` is read through `to_jsonb` so that a tenant one schema version behind
/// (before v15) still answers, with no limits.
const ROLE_GRANTS: &str = "SELECT r.name, r.scopes, x.rt, \
    coalesce(array_agg(p.v2 || ':' || p.v3) FILTER (WHERE p.v2 IS NOT NULL), '{}') \
    FROM roles r CROSS JOIN LATERAL (SELECT coalesce(to_jsonb(r) -> 'record_types', '{}'::jsonb) AS rt) x \
    LEFT JOIN casbin_rule p ON p.ptype = 'p' AND p.v0 = r.name AND p.v1 = $2";

/// Permissions and per-object scopes of one or more roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Sorted, without duplicates.
    pub permissions: Vec<Permission>,
    /// The widest scope among the roles, per object a role names: the built-in objects
    /// always, custom objects when a role narrows them.
    pub scopes: BTreeMap<String, Scope>,
    /// The scope on a custom object no role names: `all` once any role is held (a role that
    /// does not mention an object sees all of it), `None` without roles (nothing visible).
    pub default_scope: Option<Scope>,
    /// Objects whose records may only be of some record types: those every role limits
    /// (an object a role does not limit is open to all its types).
    pub record_types: BTreeMap<String, Vec<String>>,
}

/// Orders scopes from narrowest to widest.
pub fn scope_rank(scope: Scope) -> u8 {
    match scope {
        Scope::Own => 0,
        Scope::Team => 1,
        Scope::All => 2,
    }
}

impl Grants {
    /// What one role grants on its own.
    pub fn of_role(permissions: Vec<Permission>, scopes: &BTreeMap<String, Scope>) -> Grants {
        let mut g = Grants {
            permissions,
            scopes: scopes.clone(),
            default_scope: Some(Scope::All),
            record_types: BTreeMap::new(),
        };
        g.permissions.sort();
        g.permissions.dedup();
        for object in SCOPED_OBJECTS {
            // A role that does not mention an object sees all of it (roles are stored complete).
            g.scopes.entry((*object).to_owned()).or_insert(Scope::All);
        }
        g
    }

    /// The same grants limited to some record types per object.
    pub fn with_record_types(mut self, record_types: BTreeMap<String, Vec<String>>) -> Grants {
        self.record_types = record_types;
        self
    }

    /// The record types of `object` these grants are limited to (`None`: all).
    pub fn record_types_of(&self, object: &str) -> Option<&[String]> {
        self.record_types.get(object).map(Vec::as_slice)
    }

    /// The union of several grants: every permission, the widest scope per object (an
    /// object one part does not name gets that part's default scope), record types limited
    /// only where every part limits them.
    pub fn union(parts: impl IntoIterator<Item = Grants>) -> Grants {
        let parts: Vec<Grants> = parts.into_iter().collect();
        let mut out = Grants::default();
        if let Some(first) = parts.first() {
            for object in first.record_types.keys() {
                if parts.iter().all(|p| p.record_types.contains_key(object)) {
                    let mut types: Vec<String> = parts
                        .iter()
                        .flat_map(|p| p.record_types.get(object).into_iter().flatten().cloned())
                        .collect();
                    types.sort();
                    types.dedup();
                    out.record_types.insert(object.clone(), types);
                }
            }
        }
        for part in &parts {
            out.permissions.extend(part.permissions.iter().copied());
            out.default_scope = wider(out.default_scope, part.default_scope);
            for object in part.scopes.keys() {
                let widest = parts
                    .iter()
                    .fold(None, |acc, p| wider(acc, p.scope(object)));
                if let Some(scope) = widest {
                    out.scopes.insert(object.clone(), scope);
                }
            }
        }
        out.permissions.sort();
        out.permissions.dedup();
        out
    }

    /// What the named roles grant together (unknown names grant nothing).
    pub async fn of_roles(tx: &mut TenantTx, roles: &[String]) -> Result<Grants> {
        let domain = tx.tenant().id.to_string();
        let rows: Vec<RoleGrantRow> = sqlx::query_as(&format!(
            "{ROLE_GRANTS} WHERE r.name = ANY($1) GROUP BY r.name, r.scopes, x.rt"
        ))
        .bind(roles)
        .bind(domain)
        .fetch_all(tx.conn())
        .await?;
        Ok(Grants::from_rows(rows))
    }

    /// What a subject (`u:…`, `k:…`) holds through its roles, in one statement.
    pub async fn of_subject(tx: &mut TenantTx, subject: &str) -> Result<Grants> {
        let domain = tx.tenant().id.to_string();
        let rows: Vec<RoleGrantRow> = sqlx::query_as(&format!(
            "{ROLE_GRANTS} WHERE r.name IN (SELECT g.v1 FROM casbin_rule g \
               WHERE g.ptype = 'g' AND g.v0 = $1 AND g.v2 = $2) \
             GROUP BY r.name, r.scopes, x.rt"
        ))
        .bind(subject)
        .bind(domain)
        .fetch_all(tx.conn())
        .await?;
        Ok(Grants::from_rows(rows))
    }

    fn from_rows(rows: Vec<RoleGrantRow>) -> Grants {
        Grants::union(rows.into_iter().map(|(_, scopes, types, permissions)| {
            let permissions = permissions
                .iter()
                .filter_map(|p| Permission::parse(p))
                .collect();
            Grants::of_role(permissions, &scopes.0).with_record_types(types.0)
        }))
    }

    pub fn holds(&self, permission: Permission) -> bool {
        self.permissions.binary_search(&permission).is_ok()
    }

    /// The scope on `object`, `None` when no role grants any.
    pub fn scope(&self, object: &str) -> Option<Scope> {
        self.scopes.get(object).copied().or(self.default_scope)
    }

    /// What `other` grants beyond `self`: permissions `self` lacks, and objects where
    /// `other`'s scope is wider (as "object: theirs > ours").
    pub fn shortfall(&self, other: &Grants) -> (Vec<String>, Vec<String>) {
        let permissions = other
            .permissions
            .iter()
            .filter(|p| !self.holds(**p))
            .map(ToString::to_string)
            .collect();
        let objects: std::collections::BTreeSet<&String> =
            other.scopes.keys().chain(self.scopes.keys()).collect();
        let mut scopes: Vec<String> = objects
            .into_iter()
            .filter_map(|object| {
                let theirs = other.scope(object)?;
                let ours = self.scope(object);
                let wider = ours.is_none_or(|o| scope_rank(theirs) > scope_rank(o));
                wider.then(|| {
                    let ours = ours.map_or("none", scope_name);
                    format!("{object}: {} (yours: {ours})", scope_name(theirs))
                })
            })
            .collect();
        for (object, ours) in &self.record_types {
            match other.record_types_of(object) {
                None => scopes.push(format!(
                    "{object}: every record type (yours: {})",
                    ours.join(", ")
                )),
                Some(theirs) => {
                    let extra: Vec<&str> = theirs
                        .iter()
                        .filter(|t| !ours.contains(t))
                        .map(String::as_str)
                        .collect();
                    if !extra.is_empty() {
                        scopes.push(format!(
                            "{object}: record types {} (yours: {})",
                            extra.join(", "),
                            ours.join(", ")
                        ));
                    }
                }
            }
        }
        if let (Some(theirs), None) = (other.default_scope, self.default_scope) {
            scopes.push(format!(
                "other objects: {} (yours: none)",
                scope_name(theirs)
            ));
        }
        (permissions, scopes)
    }

    /// Refuses (403 `auth.escalation`) to hand out `granted` unless `self` covers it.
    pub fn ensure_may_grant(&self, granted: &Grants) -> Result<()> {
        self.ensure_covers(granted, "you cannot grant more than you hold yourself")
    }

    /// Refuses (403 `auth.escalation`) to take over an account or credential holding more
    /// than `self`: only someone at least as privileged may edit, deactivate or reset it.
    pub fn ensure_outranks(&self, target: &Grants) -> Result<()> {
        self.ensure_covers(
            target,
            "this user holds more than you do; ask someone who holds at least as much",
        )
    }

    fn ensure_covers(&self, other: &Grants, lead: &str) -> Result<()> {
        let (permissions, scopes) = self.shortfall(other);
        if permissions.is_empty() && scopes.is_empty() {
            return Ok(());
        }
        let mut parts = Vec::new();
        if !permissions.is_empty() {
            parts.push(format!("permissions {}", permissions.join(", ")));
        }
        if !scopes.is_empty() {
            parts.push(format!("wider record scopes {}", scopes.join("; ")));
        }
        Err(Error::forbidden(
            "auth.escalation",
            format!("{lead}: {}", parts.join(" and ")),
        ))
    }
}

fn wider(a: Option<Scope>, b: Option<Scope>) -> Option<Scope> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if scope_rank(y) > scope_rank(x) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Own => "own",
        Scope::Team => "team",
        Scope::All => "all",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(perms: &[Permission], scope: Scope) -> Grants {
        let scopes = SCOPED_OBJECTS
            .iter()
            .map(|o| ((*o).to_owned(), scope))
            .collect();
        Grants::of_role(perms.to_vec(), &scopes)
    }

    #[test]
    fn a_wider_scope_is_a_shortfall_even_with_the_same_permissions() {
        let mine = role(&[Permission::CustomersRead], Scope::Own);
        let theirs = role(&[Permission::CustomersRead], Scope::All);
        assert!(mine.ensure_may_grant(&theirs).is_err());
        assert!(theirs.ensure_may_grant(&mine).is_ok());
        let (p, s) = mine.shortfall(&theirs);
        assert!(p.is_empty());
        assert!(
            s.iter().any(|s| s == "customers: all (yours: own)"),
            "{s:?}"
        );
        let err = mine.ensure_may_grant(&theirs).err().map(|e| e.code());
        assert_eq!(err, Some("auth.escalation"));
    }

    #[test]
    fn union_keeps_every_permission_and_the_widest_scope() {
        let a = role(&[Permission::CustomersRead], Scope::Own);
        let b = role(&[Permission::TicketsRead], Scope::Team);
        let u = Grants::union([a, b]);
        assert!(u.holds(Permission::CustomersRead) && u.holds(Permission::TicketsRead));
        assert_eq!(u.scope("customers"), Some(Scope::Team));
        assert_eq!(Grants::default().scope("customers"), None);
        assert!(Grants::default().ensure_may_grant(&u).is_err());
        assert!(u.ensure_may_grant(&Grants::default()).is_ok());
    }
}
