//! Metadata the record engine runs on: which objects exist, their built-in fields, and the
//! validated identifiers (`ObjectKey`, `FieldKey`) that are the only things ever spliced into
//! SQL as names.

use crm_core::domain::ObjectName;
use crm_core::error::FieldError;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// A record object served by the engine: a built-in one, or one of the tenant's custom
/// objects (its key validated by [`ObjectName`]; whether the tenant has it is checked when its
/// schema loads). Its table name is a fixed identifier or `o_<key>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKey {
    Customers,
    Contacts,
    Opportunities,
    Activities,
    Tasks,
    Tickets,
    Custom(ObjectName),
}

/// What a caller does to a record; with the object it names the permission required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAction {
    Read,
    Create,
    Update,
    /// To the recycle bin (and back).
    Delete,
    /// For good.
    Purge,
}

impl ObjectKey {
    /// The built-in objects.
    pub const ALL: &'static [ObjectKey] = &[
        ObjectKey::Customers,
        ObjectKey::Contacts,
        ObjectKey::Opportunities,
        ObjectKey::Activities,
        ObjectKey::Tasks,
        ObjectKey::Tickets,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            ObjectKey::Customers => "customers",
            ObjectKey::Contacts => "contacts",
            ObjectKey::Opportunities => "opportunities",
            ObjectKey::Activities => "activities",
            ObjectKey::Tasks => "tasks",
            ObjectKey::Tickets => "tickets",
            ObjectKey::Custom(name) => name.as_str(),
        }
    }

    /// Event prefix: singular for built-ins (`customer.created`), the key for custom objects
    /// (`policies.created`).
    pub fn singular(&self) -> &str {
        match self {
            ObjectKey::Customers => "customer",
            ObjectKey::Contacts => "contact",
            ObjectKey::Opportunities => "opportunity",
            ObjectKey::Activities => "activity",
            ObjectKey::Tasks => "task",
            ObjectKey::Tickets => "ticket",
            ObjectKey::Custom(name) => name.as_str(),
        }
    }

    /// The table: the key for built-ins, `o_<key>` for custom objects (both identifiers
    /// validated at parse time).
    pub fn table(&self) -> Cow<'static, str> {
        match self {
            ObjectKey::Custom(name) => Cow::Owned(format!("o_{name}")),
            builtin => Cow::Borrowed(builtin.builtin_str()),
        }
    }

    fn builtin_str(&self) -> &'static str {
        match self {
            ObjectKey::Customers => "customers",
            ObjectKey::Contacts => "contacts",
            ObjectKey::Opportunities => "opportunities",
            ObjectKey::Activities => "activities",
            ObjectKey::Tasks => "tasks",
            ObjectKey::Tickets => "tickets",
            ObjectKey::Custom(_) => "",
        }
    }

    /// A built-in object by its key (custom objects: [`ObjectKey::named`]).
    pub fn parse(raw: &str) -> Option<ObjectKey> {
        ObjectKey::ALL.iter().copied().find(|o| o.as_str() == raw)
    }

    /// A built-in object, or a well-formed custom object key (which the tenant may not have:
    /// loading its schema says).
    pub fn named(raw: &str) -> Option<ObjectKey> {
        ObjectKey::parse(raw)
            .or_else(|| ObjectName::parse("object", raw).ok().map(ObjectKey::Custom))
    }

    /// Whether this is one of the tenant's own objects.
    pub fn is_custom(&self) -> bool {
        matches!(self, ObjectKey::Custom(_))
    }

    /// The built-in fields of this object.
    pub fn builtins(&self) -> &'static [Builtin] {
        match self {
            ObjectKey::Customers => CUSTOMER_FIELDS,
            ObjectKey::Contacts => CONTACT_FIELDS,
            ObjectKey::Opportunities => OPPORTUNITY_FIELDS,
            ObjectKey::Activities => ACTIVITY_FIELDS,
            ObjectKey::Tasks => TASK_FIELDS,
            ObjectKey::Tickets => TICKET_FIELDS,
            ObjectKey::Custom(_) => CUSTOM_OBJECT_FIELDS,
        }
    }

    /// The permission an action (`read`, `create`, `update`, `delete`, `purge`) on records of
    /// this object needs. Contacts, opportunities, activities and tasks belong to the customer
    /// relationship: they share the customer permissions (their record scopes are separate).
    /// A custom object has permissions of its own (`policies:read`).
    pub fn permission(&self, action: RecordAction) -> crm_core::authz::Permission {
        use crm_core::authz::{ObjectAction, Permission};
        if let ObjectKey::Custom(name) = self {
            let action = match action {
                RecordAction::Read => ObjectAction::Read,
                RecordAction::Create => ObjectAction::Create,
                RecordAction::Update => ObjectAction::Update,
                RecordAction::Delete => ObjectAction::Delete,
                RecordAction::Purge => ObjectAction::Purge,
            };
            return Permission::Object(*name, action);
        }
        if *self == ObjectKey::Tickets {
            return match action {
                RecordAction::Read => Permission::TicketsRead,
                RecordAction::Create => Permission::TicketsCreate,
                RecordAction::Update => Permission::TicketsUpdate,
                RecordAction::Delete | RecordAction::Purge => Permission::TicketsDelete,
            };
        }
        match action {
            RecordAction::Read => Permission::CustomersRead,
            RecordAction::Create => Permission::CustomersCreate,
            RecordAction::Update => Permission::CustomersUpdate,
            RecordAction::Delete => Permission::CustomersDelete,
            RecordAction::Purge => Permission::CustomersPurge,
        }
    }

    /// The permission to export this object's records.
    pub fn export_permission(&self) -> crm_core::authz::Permission {
        use crm_core::authz::{ObjectAction, Permission};
        match self {
            ObjectKey::Custom(name) => Permission::Object(*name, ObjectAction::Export),
            _ => Permission::CustomersExport,
        }
    }

    /// The user column record scopes apply to (who "owns" a record of this object).
    pub fn owner_column(&self) -> &'static str {
        match self {
            ObjectKey::Tasks | ObjectKey::Tickets => "assignee_id",
            _ => "owner_id",
        }
    }

    /// Whether the object has a `name` (and so the `name_grams` short-search index).
    pub fn has_name(&self) -> bool {
        self.builtins().iter().any(|b| b.key == "name")
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ObjectKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ObjectKey::named(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("'{raw}' is not an object key")))
    }
}

/// The type of a field; decides its column type, validation and JSON shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    LongText,
    Integer,
    Decimal,
    Boolean,
    Date,
    Datetime,
    Email,
    Phone,
    Url,
    Select,
    MultiSelect,
    Currency,
    User,
    Relation,
    /// An aggregate of related records (count, sum, min, max), kept by the engine; read-only.
    Rollup,
    /// Built-in only: `{province, city, district, street, postcode}`.
    Address,
    /// Built-in only: the record's tags.
    Tags,
}

impl FieldType {
    /// Types a tenant may give a custom field.
    pub const CUSTOM: &'static [FieldType] = &[
        FieldType::Text,
        FieldType::LongText,
        FieldType::Integer,
        FieldType::Decimal,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::Datetime,
        FieldType::Email,
        FieldType::Phone,
        FieldType::Url,
        FieldType::Select,
        FieldType::MultiSelect,
        FieldType::Currency,
        FieldType::User,
        FieldType::Relation,
        FieldType::Rollup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::LongText => "long_text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Select => "select",
            FieldType::MultiSelect => "multi_select",
            FieldType::Currency => "currency",
            FieldType::User => "user",
            FieldType::Relation => "relation",
            FieldType::Rollup => "rollup",
            FieldType::Address => "address",
            FieldType::Tags => "tags",
        }
    }

    pub fn parse_custom(raw: &str) -> Option<FieldType> {
        FieldType::CUSTOM
            .iter()
            .copied()
            .find(|t| t.as_str() == raw)
    }

    /// The Postgres column type.
    pub fn sql_type(self) -> &'static str {
        match self {
            FieldType::Text
            | FieldType::LongText
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Url
            | FieldType::Select => "text",
            FieldType::Integer => "bigint",
            FieldType::Decimal | FieldType::Rollup => "numeric",
            FieldType::Currency => "numeric(20,4)",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "timestamptz",
            FieldType::MultiSelect | FieldType::Tags => "text[]",
            FieldType::User | FieldType::Relation => "uuid",
            FieldType::Address => "jsonb",
        }
    }

    /// Text-like: searchable with `q`, filterable with `contains`, encryptable.
    pub fn is_textual(self) -> bool {
        matches!(
            self,
            FieldType::Text
                | FieldType::LongText
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
        )
    }

    /// Values compare with lt/gt and sort meaningfully.
    pub fn is_ordered(self) -> bool {
        !matches!(
            self,
            FieldType::MultiSelect | FieldType::Tags | FieldType::Address | FieldType::Boolean
        )
    }
}

/// A built-in field of an object.
#[derive(Debug)]
pub struct Builtin {
    pub key: &'static str,
    pub ty: FieldType,
    pub required: bool,
    pub options: &'static [&'static str],
    /// For relations: the target object.
    pub target: Option<ObjectKey>,
    /// Masked without `sensitive:read`.
    pub sensitive: bool,
    /// Searched by `q`.
    pub searchable: bool,
}

const fn field(key: &'static str, ty: FieldType) -> Builtin {
    Builtin {
        key,
        ty,
        required: false,
        options: &[],
        target: None,
        sensitive: false,
        searchable: false,
    }
}

const CUSTOMER_FIELDS: &[Builtin] = &[
    Builtin {
        required: true,
        searchable: true,
        ..field("name", FieldType::Text)
    },
    Builtin {
        options: &["person", "company"],
        ..field("kind", FieldType::Select)
    },
    Builtin {
        sensitive: true,
        searchable: true,
        ..field("phone", FieldType::Phone)
    },
    Builtin {
        sensitive: true,
        searchable: true,
        ..field("email", FieldType::Email)
    },
    field("address", FieldType::Address),
    field("region", FieldType::Text),
    field("industry", FieldType::Text),
    field("source", FieldType::Text),
    Builtin {
        options: &["A", "B", "C", "D"],
        ..field("level", FieldType::Select)
    },
    Builtin {
        options: &["lead", "prospect", "customer", "churned"],
        ..field("stage", FieldType::Select)
    },
    field("owner_id", FieldType::User),
    field("tags", FieldType::Tags),
];

const CONTACT_FIELDS: &[Builtin] = &[
    Builtin {
        required: true,
        target: Some(ObjectKey::Customers),
        ..field("customer_id", FieldType::Relation)
    },
    Builtin {
        required: true,
        searchable: true,
        ..field("name", FieldType::Text)
    },
    field("title", FieldType::Text),
    Builtin {
        sensitive: true,
        searchable: true,
        ..field("phone", FieldType::Phone)
    },
    Builtin {
        sensitive: true,
        searchable: true,
        ..field("email", FieldType::Email)
    },
    field("is_primary", FieldType::Boolean),
    field("owner_id", FieldType::User),
    field("tags", FieldType::Tags),
];

/// Ticket channels.
pub const TICKET_CHANNELS: &[&str] = &["phone", "email", "web", "portal", "api"];

/// Ticket priorities, lowest first.
pub const TICKET_PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

/// The options of an activity's `direction`.
pub const ACTIVITY_DIRECTIONS: &[&str] = &["inbound", "outbound"];

// `status` and `type` are text validated against the tenant's ticket workflow (its states and
// types are the tenant's own); `team_id` is checked against the teams by the ticket hook.
const TICKET_FIELDS: &[Builtin] = &[
    Builtin {
        required: true,
        searchable: true,
        ..field("subject", FieldType::Text)
    },
    field("description", FieldType::LongText),
    Builtin {
        target: Some(ObjectKey::Customers),
        ..field("customer_id", FieldType::Relation)
    },
    Builtin {
        target: Some(ObjectKey::Contacts),
        ..field("contact_id", FieldType::Relation)
    },
    Builtin {
        options: TICKET_CHANNELS,
        ..field("channel", FieldType::Select)
    },
    field("type", FieldType::Text),
    Builtin {
        options: TICKET_PRIORITIES,
        ..field("priority", FieldType::Select)
    },
    field("status", FieldType::Text),
    field("assignee_id", FieldType::User),
    field("team_id", FieldType::Relation),
    field("tags", FieldType::Tags),
];

/// Currencies amounts may be in.
pub const CURRENCIES: &[&str] = &[
    "CNY", "USD", "EUR", "HKD", "JPY", "GBP", "SGD", "TWD", "KRW", "AUD",
];

const OPPORTUNITY_FIELDS: &[Builtin] = &[
    Builtin {
        required: true,
        searchable: true,
        ..field("name", FieldType::Text)
    },
    Builtin {
        required: true,
        target: Some(ObjectKey::Customers),
        ..field("customer_id", FieldType::Relation)
    },
    Builtin {
        target: Some(ObjectKey::Contacts),
        ..field("contact_id", FieldType::Relation)
    },
    // A pipeline (not a record object): existence is checked by the sales hook.
    field("pipeline_id", FieldType::Relation),
    field("stage", FieldType::Text),
    field("amount", FieldType::Currency),
    Builtin {
        options: CURRENCIES,
        ..field("currency", FieldType::Select)
    },
    field("discount_pct", FieldType::Decimal),
    field("expected_close", FieldType::Date),
    field("probability", FieldType::Integer),
    Builtin {
        options: &["open", "won", "lost"],
        ..field("status", FieldType::Select)
    },
    field("lost_reason", FieldType::Text),
    field("owner_id", FieldType::User),
    field("tags", FieldType::Tags),
];

const ACTIVITY_FIELDS: &[Builtin] = &[
    Builtin {
        required: true,
        options: &["call", "visit", "email", "meeting", "note"],
        ..field("kind", FieldType::Select)
    },
    Builtin {
        options: ACTIVITY_DIRECTIONS,
        ..field("direction", FieldType::Select)
    },
    Builtin {
        searchable: true,
        ..field("subject", FieldType::Text)
    },
    field("body", FieldType::LongText),
    field("occurred_at", FieldType::Datetime),
    field("duration_minutes", FieldType::Integer),
    field("outcome", FieldType::Text),
    Builtin {
        target: Some(ObjectKey::Customers),
        ..field("customer_id", FieldType::Relation)
    },
    Builtin {
        target: Some(ObjectKey::Contacts),
        ..field("contact_id", FieldType::Relation)
    },
    Builtin {
        target: Some(ObjectKey::Opportunities),
        ..field("opportunity_id", FieldType::Relation)
    },
    field("owner_id", FieldType::User),
    field("tags", FieldType::Tags),
];

const TASK_FIELDS: &[Builtin] = &[
    Builtin {
        required: true,
        searchable: true,
        ..field("title", FieldType::Text)
    },
    field("notes", FieldType::LongText),
    field("due_at", FieldType::Datetime),
    field("remind_at", FieldType::Datetime),
    field("assignee_id", FieldType::User),
    Builtin {
        target: Some(ObjectKey::Customers),
        ..field("customer_id", FieldType::Relation)
    },
    Builtin {
        target: Some(ObjectKey::Contacts),
        ..field("contact_id", FieldType::Relation)
    },
    Builtin {
        target: Some(ObjectKey::Opportunities),
        ..field("opportunity_id", FieldType::Relation)
    },
    Builtin {
        options: &["low", "normal", "high", "urgent"],
        ..field("priority", FieldType::Select)
    },
    field("done_at", FieldType::Datetime),
    field("tags", FieldType::Tags),
];

/// The built-in fields of every custom object: its display name, owner, team and tags. The
/// tenant's fields sit beside them at the top level of a record.
const CUSTOM_OBJECT_FIELDS: &[Builtin] = &[
    Builtin {
        required: true,
        searchable: true,
        ..field("name", FieldType::Text)
    },
    field("owner_id", FieldType::User),
    // A team (not a record object): its foreign key is to `teams`.
    field("team_id", FieldType::Relation),
    field("tags", FieldType::Tags),
];

/// System columns every record table has (read-only to clients).
pub const SYSTEM_FIELDS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "created_by",
    "version",
    "deleted_at",
];

/// A custom field key: `[a-z][a-z0-9_]{0,40}`, not a reserved word. Its column is `cf_<key>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FieldKey(String);

/// SQL keywords and names that would confuse readers or tools if used as keys.
const RESERVED: &[&str] = &[
    "all",
    "and",
    "any",
    "as",
    "asc",
    "between",
    "by",
    "case",
    "cast",
    "check",
    "column",
    "constraint",
    "create",
    "custom",
    "default",
    "delete",
    "desc",
    "distinct",
    "drop",
    "else",
    "end",
    "false",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "insert",
    "into",
    "is",
    "join",
    "like",
    "limit",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "select",
    "table",
    "then",
    "to",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "when",
    "where",
    "with",
];

impl FieldKey {
    /// Longest key accepted (ASCII, so bytes are characters); `cf_<key>` stays a short
    /// identifier.
    pub const MAX_LEN: usize = 41;

    pub fn parse(field: &str, raw: &str) -> Result<FieldKey, FieldError> {
        let well_formed = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return Err(FieldError::new(
                field,
                "invalid_key",
                format!(
                    "'{raw}' is not a field key: use 1-{} characters a-z, 0-9 and '_', starting with a letter (e.g. 'vip_level')",
                    Self::MAX_LEN
                ),
            ));
        }
        // `_bidx` columns hold blind indexes of encrypted fields.
        if RESERVED.contains(&raw) || SYSTEM_FIELDS.contains(&raw) || raw.ends_with("_bidx") {
            return Err(FieldError::new(
                field,
                "reserved_key",
                format!("'{raw}' is reserved; choose another key"),
            ));
        }
        Ok(FieldKey(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The column holding this field's value.
    pub fn column(&self) -> String {
        format!("cf_{}", self.0)
    }

    /// The column holding the blind index of an encrypted field.
    pub fn index_column(&self) -> String {
        format!("cf_{}_bidx", self.0)
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_keys() {
        for ok in ["vip_level", "a", "id_card_no", "x1"] {
            assert!(FieldKey::parse("key", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "VIP",
            "vip-level",
            "a b",
            "x;drop table customers",
            "名字",
            "select",
            "id",
            "version",
            &"a".repeat(42),
        ] {
            assert!(FieldKey::parse("key", bad).is_err(), "{bad}");
        }
        assert_eq!(
            FieldKey::parse("key", "vip")
                .map(|k| k.column())
                .ok()
                .as_deref(),
            Some("cf_vip")
        );
    }

    #[test]
    fn custom_types_round_trip() {
        for t in FieldType::CUSTOM {
            assert_eq!(FieldType::parse_custom(t.as_str()), Some(*t));
        }
        assert_eq!(FieldType::parse_custom("address"), None);
        assert_eq!(FieldType::CUSTOM.len(), 16);
    }
}
