//! The closed set of permissions (`object:action`), record scopes, and the default roles a new
//! tenant starts with.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

macro_rules! permissions {
    ($($variant:ident => $text:literal, $about:literal;)*) => {
        /// A permission a role can hold. Closed: later capabilities add variants here.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission { $( #[doc = $about] $variant, )* }

        impl Permission {
            /// Every permission, in a stable order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            /// The `object:action` text used in policies and the API.
            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $text,)* }
            }

            /// What the permission allows, for documentation and the admin UI.
            pub fn description(self) -> &'static str {
                match self { $(Permission::$variant => $about,)* }
            }

            pub fn parse(raw: &str) -> Option<Permission> {
                match raw { $($text => Some(Permission::$variant),)* _ => None }
            }
        }
    };
}

permissions! {
    CustomersRead => "customers:read", "read customers and contacts";
    CustomersCreate => "customers:create", "create customers and contacts";
    CustomersUpdate => "customers:update", "edit customers and contacts";
    CustomersDelete => "customers:delete", "move customers and contacts to the recycle bin";
    CustomersPurge => "customers:purge", "delete customers and contacts for good";
    CustomersExport => "customers:export", "export customer lists";
    TicketsRead => "tickets:read", "read tickets";
    TicketsCreate => "tickets:create", "open tickets";
    TicketsUpdate => "tickets:update", "work on tickets (status, assignment, replies)";
    TicketsDelete => "tickets:delete", "delete tickets";
    FieldsManage => "fields:manage", "define custom fields";
    WorkflowsManage => "workflows:manage", "write and enable workflow rules";
    PluginsManage => "plugins:manage", "install and configure plugins";
    ReportsRead => "reports:read", "see reports and dashboards";
    UsersRead => "users:read", "list users and teams";
    UsersManage => "users:manage", "create, edit and deactivate users and teams";
    RolesRead => "roles:read", "list roles and their permissions";
    RolesManage => "roles:manage", "create, edit and delete roles";
    ApiKeysManage => "api_keys:manage", "create and revoke API keys";
    AuditRead => "audit:read", "read the security audit log";
    SensitiveRead => "sensitive:read", "see sensitive fields unmasked";
    TenantManage => "tenant:manage", "change the company's settings";
}

impl Permission {
    /// Splits into casbin's (object, action).
    pub fn object_action(self) -> (&'static str, &'static str) {
        self.as_str().split_once(':').unwrap_or((self.as_str(), ""))
    }
}

impl serde::Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which records of an object a role sees: its own, its teams', or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Own,
    Team,
    All,
}

impl Scope {
    /// Every scope, narrowest first.
    pub const ALL: &'static [Scope] = &[Scope::Own, Scope::Team, Scope::All];

    pub fn parse(raw: &str) -> Option<Scope> {
        Self::ALL.iter().copied().find(|s| s.as_str() == raw)
    }

    /// The name in role documents: `own`, `team` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Own => "own",
            Scope::Team => "team",
            Scope::All => "all",
        }
    }
}

/// Record objects whose visibility a role scopes.
pub const SCOPED_OBJECTS: &[&str] = &[
    "customers",
    "contacts",
    "tickets",
    "opportunities",
    "activities",
    "tasks",
];

/// A role as shipped to every new tenant.
pub struct DefaultRole {
    pub name: &'static str,
    pub description: &'static str,
    pub permissions: Vec<Permission>,
    pub scopes: BTreeMap<String, Scope>,
}

/// The role every tenant must keep: it cannot be deleted or lose a permission.
pub const ADMIN_ROLE: &str = "admin";

/// admin, sales, service, finance, viewer.
pub fn default_roles() -> Vec<DefaultRole> {
    use Permission::*;
    let all = |scope: Scope| -> BTreeMap<String, Scope> {
        SCOPED_OBJECTS
            .iter()
            .map(|o| ((*o).to_owned(), scope))
            .collect()
    };
    vec![
        DefaultRole {
            name: ADMIN_ROLE,
            description: "Administrator: everything, including users, roles and settings",
            permissions: Permission::ALL.to_vec(),
            scopes: all(Scope::All),
        },
        DefaultRole {
            name: "sales",
            description: "Salesperson: works their own customers and opportunities",
            permissions: vec![
                CustomersRead,
                CustomersCreate,
                CustomersUpdate,
                TicketsRead,
                TicketsCreate,
                ReportsRead,
                UsersRead,
                SensitiveRead,
            ],
            scopes: all(Scope::Own),
        },
        DefaultRole {
            name: "service",
            description: "Customer service agent: works tickets for all customers",
            permissions: vec![
                CustomersRead,
                CustomersUpdate,
                TicketsRead,
                TicketsCreate,
                TicketsUpdate,
                UsersRead,
                SensitiveRead,
            ],
            scopes: all(Scope::All),
        },
        DefaultRole {
            name: "finance",
            description: "Finance: reads everything, exports, no edits",
            permissions: vec![
                CustomersRead,
                CustomersExport,
                TicketsRead,
                ReportsRead,
                UsersRead,
                SensitiveRead,
            ],
            scopes: all(Scope::All),
        },
        DefaultRole {
            name: "viewer",
            description: "Viewer: reads, with sensitive fields masked",
            permissions: vec![CustomersRead, TicketsRead, ReportsRead, UsersRead],
            scopes: all(Scope::All),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_round_trips() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
            let (obj, act) = p.object_action();
            assert!(!obj.is_empty() && !act.is_empty(), "{p}");
        }
        assert_eq!(Permission::parse("customers:*"), None);
        assert_eq!(Permission::parse("Customers:read"), None);
    }

    #[test]
    fn defaults_are_complete() {
        let roles = default_roles();
        let names: Vec<_> = roles.iter().map(|r| r.name).collect();
        assert_eq!(names, ["admin", "sales", "service", "finance", "viewer"]);
        let viewer = roles
            .iter()
            .find(|r| r.name == "viewer")
            .map(|r| &r.permissions);
        assert!(viewer.is_some_and(|p| !p.contains(&Permission::SensitiveRead)));
    }
}
