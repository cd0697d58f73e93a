//! The permissions (`object:action`), record scopes, and the default roles a new
//! tenant starts with.

use crate::domain::ObjectName;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

macro_rules! permissions {
    ($($variant:ident => $text:literal, $about:literal;)*) => {
        /// A permission a role can hold: a built-in one, or an action on a tenant's custom
        /// object (`policies:read`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $( #[doc = $about] $variant, )*
            /// An action on the records of a custom object.
            Object(ObjectName, ObjectAction),
        }

        impl Permission {
            /// Every built-in permission, in a stable order (custom objects add theirs).
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)*];

            fn builtin_text(self) -> Option<&'static str> {
                match self { $(Permission::$variant => Some($text),)* Permission::Object(..) => None }
            }

            fn builtin_about(self) -> Option<&'static str> {
                match self { $(Permission::$variant => Some($about),)* Permission::Object(..) => None }
            }

            fn parse_builtin(raw: &str) -> Option<Permission> {
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
    ObjectsManage => "objects:manage", "define custom objects, and delete them with their records";
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
    BackupsManage => "backups:manage", "take, download and restore the company's backups";
}

/// What a permission on a custom object's records allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectAction {
    Read,
    Create,
    Update,
    /// To the recycle bin and back.
    Delete,
    /// For good.
    Purge,
    Export,
}

impl ObjectAction {
    pub const ALL: &'static [ObjectAction] = &[
        ObjectAction::Read,
        ObjectAction::Create,
        ObjectAction::Update,
        ObjectAction::Delete,
        ObjectAction::Purge,
        ObjectAction::Export,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectAction::Read => "read",
            ObjectAction::Create => "create",
            ObjectAction::Update => "update",
            ObjectAction::Delete => "delete",
            ObjectAction::Purge => "purge",
            ObjectAction::Export => "export",
        }
    }

    pub fn parse(raw: &str) -> Option<ObjectAction> {
        ObjectAction::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == raw)
    }

    fn describe(self) -> &'static str {
        match self {
            ObjectAction::Read => "read",
            ObjectAction::Create => "create",
            ObjectAction::Update => "edit",
            ObjectAction::Delete => "move to the recycle bin",
            ObjectAction::Purge => "delete for good",
            ObjectAction::Export => "export",
        }
    }
}

impl Permission {
    /// The `object:action` text used in policies and the API.
    pub fn as_str(&self) -> Cow<'static, str> {
        match self {
            Permission::Object(object, action) => {
                Cow::Owned(format!("{object}:{}", action.as_str()))
            }
            other => Cow::Borrowed(other.builtin_text().unwrap_or_default()),
        }
    }

    /// What the permission allows, for documentation and the admin UI.
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            Permission::Object(object, action) => {
                Cow::Owned(format!("{} {object} records", action.describe()))
            }
            other => Cow::Borrowed(other.builtin_about().unwrap_or_default()),
        }
    }

    /// A built-in permission, or `<custom object key>:<action>` (whether that object exists
    /// is for the tenant's catalogue to say).
    pub fn parse(raw: &str) -> Option<Permission> {
        if let Some(p) = Permission::parse_builtin(raw) {
            return Some(p);
        }
        let (object, action) = raw.split_once(':')?;
        Some(Permission::Object(
            ObjectName::parse("permission", object).ok()?,
            ObjectAction::parse(action)?,
        ))
    }

    /// The custom object a permission is about, if any.
    pub fn custom_object(&self) -> Option<ObjectName> {
        match self {
            Permission::Object(object, _) => Some(*object),
            _ => None,
        }
    }

    /// Splits into casbin's (object, action).
    pub fn object_action(&self) -> (&str, &'static str) {
        match self {
            Permission::Object(object, action) => (object.as_str(), action.as_str()),
            other => {
                let text = other.builtin_text().unwrap_or_default();
                text.split_once(':').unwrap_or((text, ""))
            }
        }
    }
}

impl serde::Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
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
            assert_eq!(Permission::parse(&p.as_str()), Some(*p));
            let (obj, act) = p.object_action();
            assert!(!obj.is_empty() && !act.is_empty(), "{p}");
        }
        assert_eq!(Permission::parse("customers:*"), None);
        assert_eq!(Permission::parse("Customers:read"), None);
        // Built-in objects take no other actions; custom objects take the record actions.
        assert_eq!(Permission::parse("tickets:purge"), None);
        assert_eq!(Permission::parse("policies:manage"), None);
        let custom = Permission::parse("policies:read");
        assert_eq!(
            custom.map(|p| p.to_string()).as_deref(),
            Some("policies:read")
        );
        assert_eq!(
            custom.map(|p| p.object_action() == ("policies", "read")),
            Some(true)
        );
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
