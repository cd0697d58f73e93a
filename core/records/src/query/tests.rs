//! The SQL the list builder writes, checked as text: scopes, filters, search, sort and keyset
//! pages, and what it refuses. Values are always bound (`$n`), never spliced.

use super::*;
use crate::scope::RecordScope;
use crate::ObjectKey;
use crm_core::audit::Actor;

fn schema() -> ObjectSchema {
    ObjectSchema {
        object: ObjectKey::Customers,
        def: None,
        custom: Vec::new(),
        feeds: Vec::new(),
        referrers: Vec::new(),
        record_types: Vec::new(),
        city_column: false,
    }
}

fn access(actor: &Actor, scope: RecordScope, unmask: bool) -> Access<'_> {
    Access {
        actor,
        user_id: None,
        scope,
        customer_scope: RecordScope::All,
        scope_user: None,
        unmask,
        data_key: None,
        authority: crate::access::Authority::Platform,
    }
}

fn query(pairs: &[(&str, &str)]) -> ListQuery {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ListQuery::from_pairs(&pairs).expect("a valid list query")
}

/// The WHERE clause for `pairs`, as the given caller.
fn where_sql(pairs: &[(&str, &str)], scope: RecordScope, unmask: bool) -> Result<String> {
    let actor = Actor::system();
    let mut q = QueryBuilder::new("SELECT 1 FROM customers");
    push_where(
        &mut q,
        &schema(),
        &access(&actor, scope, unmask),
        &query(pairs),
        &[],
    )?;
    Ok(q.sql().to_owned())
}

#[test]
fn scopes_become_owner_predicates() {
    let user = Uuid::now_v7();
    let all = where_sql(&[], RecordScope::All, true).expect("sql");
    assert_eq!(all, "SELECT 1 FROM customers WHERE deleted_at IS NULL");
    let own = where_sql(&[], RecordScope::Own(user), true).expect("sql");
    assert!(own.ends_with("AND owner_id = $1"), "{own}");
    let team = where_sql(&[], RecordScope::Team(user), true).expect("sql");
    assert!(
        team.contains("owner_id IN (SELECT m2.user_id FROM team_members m1"),
        "{team}"
    );
    let nothing = where_sql(&[], RecordScope::Nothing, true).expect("sql");
    assert!(nothing.ends_with("AND false"), "{nothing}");
    let bin = where_sql(&[("deleted", "true")], RecordScope::All, true).expect("sql");
    assert!(bin.contains("WHERE deleted_at IS NOT NULL"), "{bin}");
}

#[test]
fn filter_values_are_bound_never_spliced() {
    let sql = where_sql(
        &[
            ("filter[level]", "A"),
            ("filter[name][contains]", "x'; DROP TABLE customers; --"),
        ],
        RecordScope::All,
        true,
    )
    .expect("sql");
    assert!(!sql.contains("DROP"), "{sql}");
    assert!(sql.contains("\"level\" = $1"), "{sql}");
    assert!(sql.contains("$2"), "{sql}");
    let listed = where_sql(&[("filter[level][in]", "A,B")], RecordScope::All, true).expect("sql");
    assert!(listed.contains("\"level\" IN ($1, $2)"), "{listed}");
    let empty = where_sql(
        &[("filter[email][is_null]", "true")],
        RecordScope::All,
        true,
    )
    .expect("sql");
    assert!(empty.contains("\"email\" IS NULL"), "{empty}");
    let tags = where_sql(&[("tag", "VIP")], RecordScope::All, true).expect("sql");
    assert!(tags.contains("AND tags @> $1"), "{tags}");
}

#[test]
fn unknown_fields_and_bad_values_are_refused_by_name() {
    for (pairs, field) in [
        (vec![("filter[planet]", "x")], "filter[planet]"),
        (vec![("filter[level]", "Z")], "filter[level]"),
        (
            vec![("filter[created_at][gt]", "yesterday")],
            "filter[created_at]",
        ),
    ] {
        match where_sql(&pairs, RecordScope::All, true) {
            Err(Error::Invalid { fields, .. }) => {
                assert_eq!(fields[0].field, field, "{pairs:?}");
            }
            other => panic!("{pairs:?} gave {other:?}"),
        }
    }
}

#[test]
fn masked_fields_are_no_oracle() {
    for pairs in [
        vec![("filter[phone]", "13812345678")],
        vec![("filter[email][in]", "a@x.com")],
        vec![("filter[phone][is_null]", "false")],
    ] {
        let err = where_sql(&pairs, RecordScope::All, false).expect_err("refused");
        assert_eq!(err.code(), "field.sensitive", "{pairs:?}");
        assert!(
            where_sql(&pairs, RecordScope::All, true).is_ok(),
            "{pairs:?}"
        );
    }
    // Search skips masked fields instead of refusing.
    let masked = where_sql(&[("q", "13812345678")], RecordScope::All, false).expect("sql");
    assert!(!masked.contains("phone"), "{masked}");
    let clear = where_sql(&[("q", "13812345678")], RecordScope::All, true).expect("sql");
    assert!(clear.contains("phone"), "{clear}");
}

#[test]
fn short_searches_use_the_gram_index_and_long_ones_trigrams() {
    let short = where_sql(&[("q", "张伟")], RecordScope::All, true).expect("sql");
    assert!(short.contains("name_grams @> ARRAY[$1]::text[]"), "{short}");
    let long = where_sql(&[("q", "上海蓝天")], RecordScope::All, true).expect("sql");
    assert!(long.contains("ILIKE"), "{long}");
}

#[test]
fn sorting_and_keyset_pages() {
    let actor = Actor::system();
    let masked = access(&actor, RecordScope::All, false);
    let by_phone = sort_of(&schema(), &masked, &query(&[("sort", "phone")]));
    assert_eq!(by_phone.err().map(|e| e.code()), Some("field.sensitive"));
    let unknown = sort_of(&schema(), &masked, &query(&[("sort", "planet")]));
    assert!(matches!(unknown, Err(Error::Invalid { .. })));

    let sort = sort_of(&schema(), &masked, &query(&[("sort", "-created_at")])).expect("sort");
    assert!(sort.desc && sort.not_null);
    let mut q = QueryBuilder::new("SELECT 1 FROM customers WHERE true");
    push_keyset(
        &mut q,
        &sort,
        Some("2026-01-01T00:00:00Z".into()),
        Uuid::now_v7(),
    );
    let sql = q.sql();
    assert!(sql.contains("<"), "descending pages go down: {sql}");
    assert!(sql.contains("$1") && sql.contains("$2"), "{sql}");

    let cursor = encode_cursor(Some("B".into()), Uuid::nil());
    assert_eq!(
        decode_cursor(&cursor).expect("round trip"),
        (Some("B".into()), Uuid::nil())
    );
    assert!(decode_cursor("not-a-cursor").is_err());
}

#[test]
fn the_city_filters_on_its_generated_column_where_the_schema_has_it() {
    let actor = Actor::system();
    let pairs = [("filter[level]", "A"), ("filter[address.city]", "上海")];
    let sql = |schema: &ObjectSchema| {
        let mut q = QueryBuilder::new("SELECT 1 FROM customers");
        push_where(
            &mut q,
            schema,
            &access(&actor, RecordScope::All, true),
            &query(&pairs),
            &[],
        )
        .expect("sql");
        q.sql().to_owned()
    };
    let before = sql(&schema());
    assert!(before.contains("(\"address\" ->> 'city') = $2"), "{before}");
    let mut v14 = schema();
    v14.city_column = true;
    let after = sql(&v14);
    assert!(after.contains("\"address_city\" = $2"), "{after}");
    assert!(!after.contains("->>"), "{after}");
}
