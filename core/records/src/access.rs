//! [`Access`]: who is acting on records, what they may do (their grants) and where (their
//! record scopes, masking). Built only through the constructors here, from a [`Caller`], a
//! rule's run-as grants, the portal or the platform itself; the record services check it
//! themselves ([`Access::require`]) before they read or write.

use super::meta::{ObjectKey, RecordAction};
use super::scope::RecordScope;
use crm_core::audit::Actor;
use crm_core::authz::{forbidden, Caller, Grants, Permission};
use crm_core::crypto::DataKey;
use crm_core::error::Result;
use uuid::Uuid;

/// What decides whether an action on an object is allowed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Authority<'a> {
    /// A staff caller: its checks decide (casbin, for a request).
    Caller(&'a Caller),
    /// A rule acting as a role: the role's grants decide.
    Grants(&'a Grants),
    /// A portal contact: opens and reads tickets (the portal narrows them to the contact's
    /// customer before it calls the engine); nothing else.
    Portal,
    /// The platform itself (benchmarks, seed data): everything.
    Platform,
}

/// Who is acting and what they may do and see.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub(crate) actor: &'a Actor,
    /// The acting user (default owner, `created_by`); `None` for keys without one.
    pub(crate) user_id: Option<Uuid>,
    pub(crate) scope: RecordScope,
    /// The caller's scope on customers: which parent customers a contact may name.
    pub(crate) customer_scope: RecordScope,
    /// The user own/team scopes are read relative to (the caller's user, or the user who
    /// saved a rule), for the scopes on related objects ([`Access::scope_on`]).
    pub(crate) scope_user: Option<Uuid>,
    /// Holds `sensitive:read`: sensitive values are shown unmasked.
    pub(crate) unmask: bool,
    /// The tenant's data key, when the object has encrypted fields.
    pub(crate) data_key: Option<&'a DataKey>,
    pub(crate) authority: Authority<'a>,
}

impl<'a> Access<'a> {
    /// How `caller` reads and writes `object`: as its user, within its scopes, masked unless
    /// it holds `sensitive:read`.
    pub fn of_caller(
        caller: &'a Caller,
        actor: &'a Actor,
        object: ObjectKey,
        data_key: Option<&'a DataKey>,
    ) -> Access<'a> {
        Access {
            user_id: caller.user_id,
            unmask: caller.unmask(),
            authority: Authority::Caller(caller),
            ..Access::of_grants(&caller.grants, caller.user_id, actor, object, data_key)
        }
    }

    /// How a rule acting as a role reads and writes `object`: the role's grants, its scopes
    /// read relative to `user` (the user who saved the rule), as no user.
    pub fn of_grants(
        grants: &'a Grants,
        user: Option<Uuid>,
        actor: &'a Actor,
        object: ObjectKey,
        data_key: Option<&'a DataKey>,
    ) -> Access<'a> {
        Access {
            actor,
            user_id: None,
            scope: RecordScope::of(grants.scope(object.as_str()), user),
            customer_scope: RecordScope::of(grants.scope(ObjectKey::Customers.as_str()), user),
            scope_user: user,
            unmask: grants.holds(Permission::SensitiveRead),
            data_key,
            authority: Authority::Grants(grants),
        }
    }

    /// A portal contact opening a ticket: masked, as no user.
    pub fn portal(actor: &'a Actor, data_key: Option<&'a DataKey>) -> Access<'a> {
        Access {
            actor,
            user_id: None,
            scope: RecordScope::All,
            customer_scope: RecordScope::All,
            scope_user: None,
            unmask: false,
            data_key,
            authority: Authority::Portal,
        }
    }

    /// The platform acting for `user` (benchmarks, seed data): every record, unmasked.
    pub fn platform(
        actor: &'a Actor,
        user: Option<Uuid>,
        data_key: Option<&'a DataKey>,
    ) -> Access<'a> {
        Access {
            actor,
            user_id: user,
            scope: RecordScope::All,
            customer_scope: RecordScope::All,
            scope_user: user,
            unmask: true,
            data_key,
            authority: Authority::Platform,
        }
    }

    /// 403 `auth.forbidden` naming the permission unless the access allows `action` on
    /// `object`. The portal opens and reads tickets and nothing else.
    pub fn require(&self, object: ObjectKey, action: RecordAction) -> Result<()> {
        if matches!(self.authority, Authority::Portal)
            && object == ObjectKey::Tickets
            && matches!(action, RecordAction::Create | RecordAction::Read)
        {
            return Ok(());
        }
        self.require_permission(object.permission(action))
    }

    /// 403 `auth.forbidden` unless the access holds `permission` (reports, say); the portal
    /// holds none, the platform all.
    pub fn require_permission(&self, permission: Permission) -> Result<()> {
        let allowed = match self.authority {
            Authority::Caller(caller) => caller.holds(permission),
            Authority::Grants(grants) => grants.holds(permission),
            Authority::Portal => false,
            Authority::Platform => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(forbidden(permission))
        }
    }

    pub fn actor(&self) -> &'a Actor {
        self.actor
    }

    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }

    /// The records of the object this access was built for that it sees.
    pub fn scope(&self) -> RecordScope {
        self.scope
    }

    /// Which records of another object (a related one) this access sees: the same roles'
    /// scope on that object. The portal sees no other object; the platform all.
    pub fn scope_on(&self, object: ObjectKey) -> RecordScope {
        match self.authority {
            Authority::Caller(caller) => {
                RecordScope::of(caller.scope(object.as_str()), self.scope_user)
            }
            Authority::Grants(grants) => {
                RecordScope::of(grants.scope(object.as_str()), self.scope_user)
            }
            Authority::Portal => RecordScope::Nothing,
            Authority::Platform => RecordScope::All,
        }
    }

    /// The record types of `object` this access may create and edit (`None`: all).
    pub fn record_types_allowed(&self, object: ObjectKey) -> Option<&'a [String]> {
        match self.authority {
            Authority::Caller(caller) => caller.grants.record_types_of(object.as_str()),
            Authority::Grants(grants) => grants.record_types_of(object.as_str()),
            Authority::Portal | Authority::Platform => None,
        }
    }

    /// Whether this access may read `object`'s records (no error: for expansions, which
    /// show what cannot be read as hidden).
    pub fn may(&self, object: ObjectKey, action: RecordAction) -> bool {
        self.require(object, action).is_ok()
    }

    /// The same actor acting as the platform: for what a change entails beyond the records
    /// the actor may touch (a cascade to the records that point to a deleted one).
    pub fn as_platform(&self) -> Access<'a> {
        Access {
            scope: RecordScope::All,
            customer_scope: RecordScope::All,
            unmask: true,
            authority: Authority::Platform,
            ..*self
        }
    }

    /// The same actor on another object: its scope there.
    pub fn on(&self, object: ObjectKey) -> Access<'a> {
        Access {
            scope: self.scope_on(object),
            ..*self
        }
    }
}
