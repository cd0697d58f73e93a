//! GraphQL (`/graphql`) against a real server and PostgreSQL: the per-tenant schema carries
//! the tenant's custom fields and objects and nobody else's, answers what REST answers for
//! the same filter, keeps scopes and masking, refuses over-deep and over-complex queries
//! before any database work, batches relations (one call per level), never resolves another
//! tenant's ids, writes through the same services (REST's error codes), and pushes changes to
//! subscribers within their scope. A standard client (Python `gql`) introspects it.

use crate::helpers::{id, Tenant, TestApp};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn gql(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.send(
        app.client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables })),
    )
    .await
    .expect(200)
}

fn no_errors(v: &Value) -> &Value {
    assert!(v.get("errors").is_none(), "GraphQL errors: {v:#}");
    &v["data"]
}

fn first_error_code(v: &Value) -> &str {
    v["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("an error with a code: {v:#}"))
}

async fn vip_field(app: &TestApp, t: &Tenant) {
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "vip_level", "label": "VIP 等级", "type": "select",
               "options": ["gold", "silver", "普通"]}),
    )
    .await
    .expect(201);
}

async fn customer(app: &TestApp, token: &str, body: Value) -> String {
    id(&app.post("/api/v1/customers", token, body).await.expect(201))
}

#[tokio::test]
async fn each_tenant_gets_its_own_typed_schema() {
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    vip_field(&app, &a).await;
    app.post(
        "/api/v1/objects",
        &a.token,
        json!({"key": "policies", "name": "Policy", "name_plural": "Policies",
               "labels": {"zh-CN": "保单"}}),
    )
    .await
    .expect(201);
    let introspect = r#"{ custom: __type(name: "CustomerCustom") { fields { name type { name kind } } }
        level: __type(name: "CustomerCustomVipLevel") { enumValues { name description } }
        policy: __type(name: "Policy") { name }
        query: __type(name: "Query") { fields { name } } }"#;
    let seen = gql(&app, &a.token, introspect, json!({})).await;
    let data = no_errors(&seen);
    assert_eq!(data["custom"]["fields"][0]["name"], "vipLevel");
    assert_eq!(data["custom"]["fields"][0]["type"]["kind"], "ENUM");
    let values: Vec<&str> = data["level"]["enumValues"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    // A Chinese option has no ASCII name: it gets a numbered one, described by its value.
    assert_eq!(values, ["GOLD", "SILVER", "OPTION_1"]);
    assert_eq!(
        data["level"]["enumValues"][2]["description"],
        "the option '普通'"
    );
    assert_eq!(data["policy"]["name"], "Policy");
    let queries: Vec<&str> = data["query"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    for q in [
        "me",
        "customer",
        "customers",
        "tickets",
        "policy",
        "policies",
    ] {
        assert!(queries.contains(&q), "{q} in {queries:?}");
    }

    // The other tenant's schema has none of it.
    let other = gql(&app, &b.token, introspect, json!({})).await;
    let data = no_errors(&other);
    assert!(data["custom"].is_null(), "{data:#}");
    assert!(data["policy"].is_null(), "{data:#}");

    // A new field shows up on the next request: the schema is rebuilt for that tenant only.
    app.post(
        "/api/v1/objects/customers/fields",
        &a.token,
        json!({"key": "birthday", "label": "生日", "type": "date"}),
    )
    .await
    .expect(201);
    let seen = gql(
        &app,
        &a.token,
        r#"{ __type(name: "CustomerCustom") { fields { name type { name } } } }"#,
        json!({}),
    )
    .await;
    let fields = no_errors(&seen)["__type"]["fields"].to_string();
    assert!(
        fields.contains(r#""birthday""#) && fields.contains(r#""Date""#),
        "{fields}"
    );
}

#[tokio::test]
async fn graphql_answers_what_rest_answers_for_the_same_filter() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    vip_field(&app, &t).await;
    for (name, level, city, vip) in [
        ("上海一号客户", "A", "上海", "gold"),
        ("上海二号客户", "A", "上海", "普通"),
        ("北京客户", "A", "北京", "gold"),
        ("上海 B 级", "B", "上海", "silver"),
    ] {
        customer(
            &app,
            &t.token,
            json!({"name": name, "level": level, "address": {"city": city},
                   "custom": {"vip_level": vip}}),
        )
        .await;
    }
    let rest = app
        .items(
            "/api/v1/customers?filter[level]=A&filter[address.city]=上海&sort=name",
            &t.token,
        )
        .await;
    let res = gql(
        &app,
        &t.token,
        r#"query { customers(filter: {level: {eq: A}, address: {city: {eq: "上海"}}},
                              sort: {field: name}) {
            totalCount nodes { id name level custom { vipLevel } } } }"#,
        json!({}),
    )
    .await;
    let conn = &no_errors(&res)["customers"];
    let gql_ids: Vec<&str> = conn["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let rest_ids: Vec<&str> = rest.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(gql_ids, rest_ids);
    assert_eq!(conn["totalCount"], 2);
    // Enum values map back to the options: the Chinese one by its numbered name.
    let res = gql(
        &app,
        &t.token,
        r#"{ customers(filter: {custom: {vipLevel: {in: [OPTION_1, SILVER]}}}, sort: {field: name, direction: DESC}) {
            nodes { name custom { vipLevel } } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        no_errors(&res)["customers"]["nodes"],
        json!([
            {"name": "上海二号客户", "custom": {"vipLevel": "OPTION_1"}},
            {"name": "上海 B 级", "custom": {"vipLevel": "SILVER"}},
        ])
    );

    // Cursor paging walks the same records as one big page.
    let mut after: Option<String> = None;
    let mut walked = Vec::new();
    loop {
        let res = gql(
            &app,
            &t.token,
            "query($after: String) { customers(first: 1, after: $after, sort: {field: name}) {
                edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }",
            json!({ "after": after }),
        )
        .await;
        let conn = &no_errors(&res)["customers"];
        walked.push(
            conn["edges"][0]["node"]["name"]
                .as_str()
                .expect("name")
                .to_owned(),
        );
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let all = app.items("/api/v1/customers?sort=name", &t.token).await;
    let names: Vec<&str> = all.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(walked, names);
}

#[tokio::test]
async fn scopes_and_masking_hold_and_other_tenants_ids_resolve_to_null() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let other = app.signup().await;
    let scopes = json!({"customers": "own", "contacts": "own"});
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "own-sales", "permissions": ["customers:read", "customers:create",
               "customers:update"], "scopes": scopes}),
    )
    .await
    .expect(201);
    let (_, sales) = app.user_with_roles(&t, &["own-sales"]).await;
    let admins = customer(
        &app,
        &t.token,
        json!({"name": "管理员的客户", "phone": "13800138000"}),
    )
    .await;
    let mine = customer(
        &app,
        &sales,
        json!({"name": "我的客户", "phone": "13900139000"}),
    )
    .await;
    let foreign = customer(&app, &other.token, json!({"name": "别家客户"})).await;

    let res = gql(
        &app,
        &sales,
        "query($a: ID!, $m: ID!, $f: ID!) { customers { totalCount nodes { id name phone } }
            admins: customer(id: $a) { name } mine: customer(id: $m) { name phone }
            foreign: customer(id: $f) { name } }",
        json!({"a": admins, "m": mine, "f": foreign}),
    )
    .await;
    let data = no_errors(&res);
    assert_eq!(data["customers"]["totalCount"], 1);
    assert_eq!(data["customers"]["nodes"][0]["name"], "我的客户");
    // No sensitive:read: the phone is masked exactly as REST masks it.
    let rest = app
        .get(&format!("/api/v1/customers/{mine}"), &sales)
        .await
        .expect(200);
    assert_eq!(data["mine"]["phone"], rest["phone"]);
    assert_ne!(data["mine"]["phone"], "+8613900139000");
    assert!(data["admins"].is_null(), "outside the own scope: {data:#}");
    assert!(data["foreign"].is_null(), "another tenant's id: {data:#}");

    // Writing outside the scope is REST's 404, with its code.
    let res = gql(
        &app,
        &sales,
        "mutation($a: ID!) { updateCustomer(id: $a, input: {name: \"改名\"}) { name } }",
        json!({"a": admins}),
    )
    .await;
    assert_eq!(first_error_code(&res), "record.not_found");
    // And a permission the role lacks is REST's 403.
    let res = gql(&app, &sales, "{ tickets { totalCount } }", json!({})).await;
    assert_eq!(first_error_code(&res), "auth.forbidden");
}

#[tokio::test]
async fn limits_refuse_a_query_before_any_database_work() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let deep = "{ customers { nodes { contacts { customer { contacts { customer { contacts {
        customer { contacts { customer { contacts { customer { contacts { name } } } } } } } } } } } } } }";
    let res = gql(&app, &t.token, deep, json!({})).await;
    assert_eq!(first_error_code(&res), "graphql.too_deep");
    assert_eq!(res["extensions"]["dbCalls"], 0);
    assert!(res["data"].is_null());

    // 5,000 fields: aliases of one field add up.
    let wide: String = (0..2600)
        .map(|i| format!("a{i}: me {{ name id }} "))
        .collect();
    let res = gql(&app, &t.token, &format!("{{ {wide} }}"), json!({})).await;
    assert_eq!(first_error_code(&res), "graphql.too_complex");
    assert_eq!(res["extensions"]["dbCalls"], 0);

    let res = gql(
        &app,
        &t.token,
        "{ customers(first: 201) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(first_error_code(&res), "validation.failed");
    let res = gql(&app, &t.token, "{ nope }", json!({})).await;
    assert_eq!(first_error_code(&res), "graphql.invalid_query");

    // Without a credential: REST's 401 problem.

    app.send(
        app.client
            .post(format!("{}/graphql", app.base))
            .json(&json!({"query": "{ me { name } }"})),
    )
    .await
    .expect_problem(401, "auth.missing_token");
}

#[tokio::test]
async fn nested_lists_stop_at_the_record_budget() {
    let app = TestApp::spawn_with(|c| c.graphql.max_records = 10).await;
    let t = app.signup().await;
    for i in 0..4 {
        let c = customer(&app, &t.token, json!({"name": format!("预算客户{i}")})).await;
        for j in 0..2 {
            app.post(
                "/api/v1/contacts",
                &t.token,
                json!({"customer_id": c, "name": format!("预算联系人{i}-{j}")}),
            )
            .await
            .expect(201);
        }
    }
    // 4 customers + 8 contacts = 12 records > 10.
    let res = gql(
        &app,
        &t.token,
        "{ customers { nodes { name contacts { name } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        first_error_code(&res),
        "graphql.too_many_records",
        "{res:#}"
    );
    // Within the budget it answers.
    let res = gql(
        &app,
        &t.token,
        "{ customers { nodes { name } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        no_errors(&res)["customers"]["nodes"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
}

#[tokio::test]
async fn a_schema_too_large_to_serve_is_refused_not_built() {
    let app = TestApp::spawn_with(|c| c.graphql.max_fields = 120).await;
    let t = app.signup().await;
    // The built-in objects alone have about 105 fields: under the limit.
    let res = gql(&app, &t.token, "{ me { name } }", json!({})).await;
    assert_eq!(no_errors(&res)["me"]["name"], "张伟");
    for i in 0..30 {
        app.post(
            "/api/v1/objects/customers/fields",
            &t.token,
            json!({"key": format!("f{i}"), "label": format!("字段{i}"), "type": "text"}),
        )
        .await
        .expect(201);
    }
    let res = gql(&app, &t.token, "{ me { name } }", json!({})).await;
    assert_eq!(
        first_error_code(&res),
        "graphql.schema_too_large",
        "{res:#}"
    );
    // REST serves the same company as before.
    app.get("/api/v1/customers", &t.token).await.expect(200);
}

#[tokio::test]
async fn relations_cost_one_database_call_per_level() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    for i in 0..8 {
        let c = customer(&app, &t.token, json!({"name": format!("客户{i}")})).await;
        for j in 0..3 {
            app.post(
                "/api/v1/contacts",
                &t.token,
                json!({"customer_id": c, "name": format!("联系人{i}-{j}")}),
            )
            .await
            .expect(201);
        }
    }
    // 24 contacts, each naming its customer: one list call, one batch of customers.
    let res = gql(
        &app,
        &t.token,
        "{ contacts(first: 50) { nodes { name customer { name } } } }",
        json!({}),
    )
    .await;
    let data = no_errors(&res);
    assert_eq!(data["contacts"]["nodes"].as_array().map(Vec::len), Some(24));
    assert!(data["contacts"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .all(|n| n["customer"]["name"]
            .as_str()
            .is_some_and(|s| s.starts_with("客户"))));
    assert_eq!(res["extensions"]["dbCalls"], 2, "{res:#}");

    // Three levels: customers → their contacts → each contact's customer.
    let res = gql(
        &app,
        &t.token,
        "{ customers { nodes { name contacts(first: 2) { name customer { name } } } } }",
        json!({}),
    )
    .await;
    let data = no_errors(&res);
    let nodes = data["customers"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 8);
    assert!(nodes
        .iter()
        .all(|c| c["contacts"].as_array().map(Vec::len) == Some(2)
            && c["contacts"][0]["customer"]["name"] == c["name"]));
    assert_eq!(res["extensions"]["dbCalls"], 3, "{res:#}");
}

#[tokio::test]
async fn mutations_go_through_the_record_services() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    vip_field(&app, &t).await;
    let res = gql(
        &app,
        &t.token,
        r#"mutation { ok: createCustomer(input: {name: "新客户", phone: "13700137000", custom: {vipLevel: GOLD}}) {
              id name version custom { vipLevel } }
            dup: createCustomer(input: {name: "重复", phone: "13700137000"}) { id }
            bad: createCustomer(input: {phone: "13600136000"}) { id } }"#,
        json!({}),
    )
    .await;
    let created = &res["data"]["ok"];
    assert_eq!(created["custom"]["vipLevel"], "GOLD");
    let cid = created["id"].as_str().expect("id").to_owned();
    let errors = res["errors"].as_array().expect("errors");
    let code_of = |path: &str| {
        errors
            .iter()
            .find(|e| e["path"][0] == path)
            .and_then(|e| e["extensions"]["code"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(code_of("dup"), "customer.duplicate");
    assert_eq!(code_of("bad"), "validation.failed");
    // A failed mutation leaves nothing behind; the one before it stays.
    let all = app.items("/api/v1/customers", &t.token).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        app.get(&format!("/api/v1/customers/{cid}"), &t.token)
            .await
            .expect(200)["custom"]["vip_level"],
        "gold"
    );

    let res = gql(
        &app,
        &t.token,
        "mutation($id: ID!) { updateCustomer(id: $id, version: 1, input: {level: B, custom: {vipLevel: null}}) {
            level version custom { vipLevel } } }",
        json!({"id": cid}),
    )
    .await;
    let updated = &no_errors(&res)["updateCustomer"];
    assert_eq!(updated["level"], "B");
    assert!(updated["custom"]["vipLevel"].is_null());
    // A stale version is REST's 412 code.
    let res = gql(
        &app,
        &t.token,
        "mutation($id: ID!) { updateCustomer(id: $id, version: 1, input: {level: C}) { level } }",
        json!({"id": cid}),
    )
    .await;
    assert_eq!(res["errors"][0]["extensions"]["status"], 412, "{res:#}");

    let res = gql(
        &app,
        &t.token,
        "mutation($id: ID!) { deleteCustomer(id: $id) }",
        json!({"id": cid}),
    )
    .await;
    assert_eq!(no_errors(&res)["deleteCustomer"], true);
    app.get(&format!("/api/v1/customers/{cid}"), &t.token)
        .await
        .expect(404);
    let res = gql(
        &app,
        &t.token,
        "mutation($id: ID!) { restoreCustomer(id: $id) { name deletedAt } }",
        json!({"id": cid}),
    )
    .await;
    assert_eq!(no_errors(&res)["restoreCustomer"]["name"], "新客户");
    // History records the GraphQL writes like REST ones.
    let history = app
        .items(&format!("/api/v1/customers/{cid}/history"), &t.token)
        .await;
    let actions: Vec<&str> = history
        .iter()
        .filter_map(|h| h["action"].as_str())
        .collect();
    assert_eq!(actions, ["restored", "deleted", "updated", "created"]);
}

fn python() -> Command {
    Command::new("python3")
}

#[tokio::test]
async fn a_standard_client_introspects_and_runs_a_typed_query() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    vip_field(&app, &t).await;
    customer(
        &app,
        &t.token,
        json!({"name": "张三科技", "custom": {"vip_level": "gold"}}),
    )
    .await;
    let script = r#"
import json, sys
from gql import Client, gql
from gql.transport.requests import RequestsHTTPTransport
url, token = sys.argv[1], sys.argv[2]
transport = RequestsHTTPTransport(url=url, headers={"Authorization": "Bearer " + token})
client = Client(transport=transport, fetch_schema_from_transport=True)
with client as session:
    query = gql("query($n: String) { customers(filter: {name: {eq: $n}}) { totalCount nodes { name custom { vipLevel } } } }")
    result = session.execute(query, variable_values={"n": "张三科技"})
    try:
        session.execute(gql("{ customers { nodes { noSuchField } } }"))
        rejected = False
    except Exception:
        rejected = True
print(json.dumps({"custom_type": "CustomerCustom" in client.schema.type_map,
                  "rejected_locally": rejected, "result": result}, ensure_ascii=False))
"#;
    // Not std's blocking `output()`: the server answers on this test's runtime.
    let out = tokio::process::Command::new("python3")
        .args(["-c", script, &format!("{}/graphql", app.base), &t.token])
        .output()
        .await
        .expect("python3 with gql (./test.sh installs it into .venv-test)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(seen["custom_type"], true);
    assert_eq!(seen["rejected_locally"], true);
    assert_eq!(
        seen["result"],
        json!({"customers": {"totalCount": 1, "nodes": [{"name": "张三科技", "custom": {"vipLevel": "GOLD"}}]}})
    );
}

#[tokio::test]
async fn subscribers_receive_the_changes_they_may_see() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "own-sales", "permissions": ["customers:read", "customers:create"],
               "scopes": {"customers": "own"}}),
    )
    .await
    .expect(201);
    let (_, sales) = app.user_with_roles(&t, &["own-sales"]).await;
    let script = r#"
import asyncio, json, sys
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport
async def main():
    transport = WebsocketsTransport(url=sys.argv[1], init_payload={"Authorization": "Bearer " + sys.argv[2]},
                                    subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    async with Client(transport=transport) as session:
        print("ready", flush=True)
        seen = 0
        async for r in session.subscribe(gql('subscription { recordChanged(object: "customers") { action id record } }')):
            print(json.dumps(r["recordChanged"], ensure_ascii=False), flush=True)
            seen += 1
            if seen == 2:
                return
asyncio.run(asyncio.wait_for(main(), 60))
"#;
    let ws = format!("{}/graphql/ws", app.base.replacen("http", "ws", 1));
    let mut child = python()
        .args(["-c", script, &ws, &sales])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with gql[websockets]");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    assert_eq!(lines.recv().await.as_deref(), Some("ready"));
    let mut received = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while received.len() < 2 && started.elapsed() < Duration::from_secs(30) {
        // Someone else's customer first, then one of the subscriber's own.
        customer(&app, &t.token, json!({"name": format!("别人的客户{i}")})).await;
        customer(&app, &sales, json!({"name": format!("我的客户{i}")})).await;
        i += 1;
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(300), lines.recv()).await
        {
            received.push(serde_json::from_str::<Value>(&line).expect("json line"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(received.len(), 2, "two changes within 30 s: {received:?}");
    for change in &received {
        assert_eq!(change["action"], "created");
        let name = change["record"]["name"].as_str().expect("name");
        assert!(
            name.starts_with("我的客户"),
            "only own-scope records: {received:?}"
        );
        // Masked as the subscriber reads it.
        assert!(change["record"].get("phone").is_some());
    }
}

#[tokio::test]
async fn graphiql_loads_from_the_servers_own_files_and_runs_a_query_in_a_browser() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    customer(&app, &t.token, json!({"name": "浏览器里的客户"})).await;
    // A client that is not a browser is told to POST.
    app.get("/graphql", &t.token)
        .await
        .expect_problem(400, "graphql.use_post");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shots = std::env::var_os("SCREENSHOTS").map_or_else(
        || std::env::temp_dir().join("tc-crm-webapp-screenshots"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let out = tokio::process::Command::new("node")
        .arg(repo.join("tests/browser/graphiql.mjs"))
        .arg(&app.base)
        .arg(&t.token)
        .arg(&shots)
        .env(
            "CHROMIUM",
            std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()),
        )
        .output()
        .await
        .expect("node runs (./test.sh installs chromium and tests/browser's packages)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "graphiql.mjs printed no result: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(seen["loaded"], true, "{seen:#}");
    assert_eq!(
        seen["problems"],
        json!([]),
        "script or CSP errors: {seen:#}"
    );
    assert_eq!(
        seen["outside"],
        json!([]),
        "requests beyond the server: {seen:#}"
    );
    let result = seen["result"].as_str().expect("result text");
    assert!(result.contains("浏览器里的客户"), "{result}");
}

#[tokio::test]
async fn ticket_replies_stage_moves_and_approval_decisions_are_mutations_too() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let ticket = app
        .post("/api/v1/tickets", &t.token, json!({"subject": "无法登录"}))
        .await
        .expect(201);
    let tid = id(&ticket);
    let res = gql(
        &app,
        &t.token,
        r#"mutation($t: ID!) {
            reply: addTicketComment(ticketId: $t, body: "您好，请清除缓存后重试") { body public authorName }
            note: addTicketComment(ticketId: $t, body: "内部：已转二线", internal: true) { public } }"#,
        json!({"t": tid}),
    )
    .await;
    let data = no_errors(&res);
    assert_eq!(data["reply"]["public"], true);
    assert_eq!(data["reply"]["authorName"], "张伟");
    assert_eq!(data["note"]["public"], false);
    let comments = app
        .items(&format!("/api/v1/tickets/{tid}/comments"), &t.token)
        .await;
    assert_eq!(comments.len(), 2);

    let c = customer(&app, &t.token, json!({"name": "采购客户"})).await;
    let opp = app
        .post(
            "/api/v1/opportunities",
            &t.token,
            json!({"name": "年度采购", "customer_id": c}),
        )
        .await
        .expect(201);
    let res = gql(
        &app,
        &t.token,
        r#"mutation($o: ID!) { moved: moveOpportunityStage(id: $o, stage: "proposal") { stage status }
            bad: moveOpportunityStage(id: $o, stage: "dreaming") { stage } }"#,
        json!({"o": id(&opp)}),
    )
    .await;
    assert_eq!(res["data"]["moved"]["stage"], "proposal");
    assert!(res["data"]["bad"].is_null());
    assert_eq!(first_error_code(&res), "validation.failed");

    let (_, approver) = app.user_with_roles(&t, &["finance"]).await;
    let approval = app
        .post(
            "/api/v1/approvals",
            &t.token,
            json!({"object": "customers", "record_id": c, "title": "信用额度",
                   "steps": [{"approvers": ["role:finance"]}]}),
        )
        .await
        .expect(201);
    let decide = "mutation($a: ID!) { approve(id: $a, comment: \"同意\") { status } }";
    // The requester is no approver: REST's 403 code.
    let res = gql(&app, &t.token, decide, json!({"a": id(&approval)})).await;
    assert_eq!(first_error_code(&res), "approval.not_an_approver");
    let res = gql(&app, &approver, decide, json!({"a": id(&approval)})).await;
    assert_eq!(no_errors(&res)["approve"]["status"], "approved");
}
