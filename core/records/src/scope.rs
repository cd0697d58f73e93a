//! Record scope: which records of an object a caller sees (own / team / all), from the
//! scopes of its roles ([`Caller`]), applied as a SQL predicate so lists and counts are
//! filtered too.

use super::meta::ObjectKey;
use crm_core::authz::{Caller, Scope};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// The visibility a principal has on one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordScope {
    All,
    /// Records owned by this user.
    Own(Uuid),
    /// Records owned by this user or anyone sharing a team with them.
    Team(Uuid),
    /// Nothing (e.g. an API key with scope own but no creating user).
    Nothing,
}

impl RecordScope {
    /// The visibility a role scope gives `user` (`None` scope: no role, nothing visible; own
    /// or team without a user: nothing).
    pub fn of(scope: Option<Scope>, user: Option<Uuid>) -> RecordScope {
        match (scope, user) {
            (Some(Scope::All), _) => RecordScope::All,
            (Some(Scope::Team), Some(u)) => RecordScope::Team(u),
            (Some(Scope::Own), Some(u)) => RecordScope::Own(u),
            _ => RecordScope::Nothing,
        }
    }

    /// Appends ` AND <predicate on the owner column>` to a query over the object's table.
    /// `owner_column` is a fixed identifier from [`ObjectKey::owner_column`].
    pub fn push_predicate(&self, q: &mut QueryBuilder<'_, Postgres>, owner_column: &'static str) {
        match *self {
            RecordScope::All => {}
            RecordScope::Own(u) => {
                q.push(format!(" AND {owner_column} = ")).push_bind(u);
            }
            RecordScope::Team(u) => {
                q.push(format!(" AND ({owner_column} = "))
                    .push_bind(u)
                    .push(format!(
                        " OR {owner_column} IN (SELECT m2.user_id FROM team_members m1 \
                         JOIN team_members m2 ON m2.team_id = m1.team_id WHERE m1.user_id = "
                    ))
                    .push_bind(u)
                    .push("))");
            }
            RecordScope::Nothing => {
                q.push(" AND false");
            }
        }
    }
}

/// A caller's visibility on an object, as the record engine applies it.
pub trait CallerScope {
    /// The visibility on `object`, applied as a SQL predicate by the record engine.
    fn record_scope(&self, object: ObjectKey) -> RecordScope;
}

impl CallerScope for Caller {
    fn record_scope(&self, object: ObjectKey) -> RecordScope {
        RecordScope::of(self.scope(object.as_str()), self.user_id)
    }
}
