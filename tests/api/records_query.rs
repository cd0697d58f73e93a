use crate::helpers::TestApp;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::collections::HashSet;

const SURNAMES: [&str; 5] = ["张", "王", "李", "赵", "刘"];

/// 1,000 customers with known distributions: level by i % 4, score = i, city by i % 3.
async fn seed(app: &TestApp, token: &str) {
    app.post(
        "/api/v1/objects/customers/fields",
        token,
        json!({"key": "score", "label": "分数", "type": "integer", "indexed": true}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/objects/customers/fields",
        token,
        json!({"key": "nickname", "label": "昵称", "type": "text"}),
    )
    .await
    .expect(201);
    let bodies: Vec<Value> = (0..1000)
        .map(|i| {
            let level = ["A", "B", "C", "D"][i % 4];
            let city = ["北京", "上海", "深圳"][i % 3];
            json!({
                "name": format!("{}{}公司 Company{i:04}", SURNAMES[i % 5], ["伟", "芳", "娜", "敏", "静"][(i / 5) % 5]),
                "level": level,
                "region": if i % 2 == 0 { json!("华东") } else { Value::Null },
                "address": {"city": city},
                "tags": if i % 10 == 0 { json!(["VIP"]) } else { json!([]) },
                "custom": {"score": i, "nickname": if i == 777 { json!("lucky seven") } else { Value::Null }}
            })
        })
        .collect();
    let statuses: Vec<u16> = stream::iter(bodies)
        .map(|b| async move {
            app.post("/api/v1/customers?allow_duplicate=true", token, b)
                .await
                .status
                .as_u16()
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 201));
}

async fn collect_all(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/customers?{query}&cursor={c}"),
            None => format!("/api/v1/customers?{query}"),
        };
        let page = app.get(&path, token).await.expect(200);
        out.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn filters_sort_and_cursor_pagination_over_1000_records() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    seed(&app, &t.token).await;

    // Default order, pages of 73: every record exactly once.
    let all = collect_all(&app, &t.token, "limit=73").await;
    let unique: HashSet<String> = ids(&all).into_iter().collect();
    assert_eq!(all.len(), 1000);
    assert_eq!(unique.len(), 1000);

    // Sorted by a custom integer, descending, through pages.
    let by_score = collect_all(&app, &t.token, "sort=-custom.score&limit=200").await;
    let scores: Vec<i64> = by_score
        .iter()
        .map(|c| c["custom"]["score"].as_i64().expect("score"))
        .collect();
    assert_eq!(scores, (0..1000).rev().collect::<Vec<i64>>());

    // Sorted by a built-in with many ties (level), ascending: ties broken by id, each once.
    let by_level = collect_all(&app, &t.token, "sort=level&limit=64").await;
    assert_eq!(by_level.len(), 1000);
    assert_eq!(
        ids(&by_level).into_iter().collect::<HashSet<_>>().len(),
        1000
    );
    let levels: Vec<&str> = by_level
        .iter()
        .map(|c| c["level"].as_str().expect("level"))
        .collect();
    assert!(levels.windows(2).all(|w| w[0] <= w[1]));

    // A nullable column, both directions: NULLs last ascending, first descending, each once.
    for query in ["sort=region&limit=97", "sort=-region&limit=97"] {
        let sorted = collect_all(&app, &t.token, query).await;
        assert_eq!(
            ids(&sorted).into_iter().collect::<HashSet<_>>().len(),
            1000,
            "{query}"
        );
        let nulls: Vec<bool> = sorted.iter().map(|c| c["region"].is_null()).collect();
        let first_null = nulls.iter().position(|n| *n).expect("some nulls");
        if query.contains('-') {
            assert!(nulls[..500].iter().all(|n| *n), "descending: NULLs first");
        } else {
            assert_eq!(first_null, 500, "ascending: NULLs last");
        }
    }

    // Filters: eq, ops on a custom field, in, address part, tag, combined — with counts.
    let cases = [
        ("filter[level]=A", 250),
        ("filter[level][ne]=A", 750),
        ("filter[level][in]=A,B", 500),
        ("filter[custom.score][gte]=900", 100),
        ("filter[score][lt]=10", 10),
        ("filter[score][gt]=100&filter[score][lte]=200", 100),
        ("filter[address.city]=深圳", 333),
        ("filter[address.city][contains]=海", 333),
        ("tag=VIP", 100),
        ("tag=VIP&filter[level]=A", 50),
        ("filter[tags][in]=VIP,none", 100),
        ("filter[nickname][is_null]=false", 1),
        ("filter[nickname][contains]=LUCKY", 1),
        ("filter[name][contains]=company09", 100),
        ("filter[created_at][gte]=2000-01-01T00:00:00Z", 1000),
    ];
    for (query, expected) in cases {
        let count = app
            .get(&format!("/api/v1/customers/count?{query}"), &t.token)
            .await
            .expect(200);
        assert_eq!(count["count"], expected, "count {query}");
        let listed = collect_all(&app, &t.token, &format!("{query}&limit=150")).await;
        assert_eq!(listed.len() as i64, expected, "list {query}");
    }

    // Bad filters are 422 naming what is wrong; bad cursors 400.
    for (query, field) in [
        ("filter[planet]=x", "filter[planet]"),
        ("filter[level][like]=A", "filter[level][like]"),
        ("filter[level]=Z", "filter[level]"),
        ("filter[score][gt]=many", "filter[score]"),
        ("filter[tags][gt]=a", "filter[tags]"),
        ("sort=planet", "sort"),
        ("sort=tags", "sort"),
        ("limit=lots", "limit"),
        ("filtre=x", "filtre"),
    ] {
        let body = app
            .get(&format!("/api/v1/customers?{query}"), &t.token)
            .await
            .expect_problem(422, "validation.failed");
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
    app.get("/api/v1/customers?cursor=bm9wZQ", &t.token)
        .await
        .expect_problem(400, "request.invalid_cursor");
}

#[tokio::test]
async fn search_finds_chinese_and_latin_names_phones_emails_best_first() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    for (name, phone, email) in [
        ("张伟", "13811112222", "zhangwei@huaxia.cn"),
        ("张伟明", "13833334444", "wm@x.cn"),
        ("王伟", "13855556666", "wang@x.cn"),
        ("Acme Trading Ltd", "02162798888", "sales@acme-trading.com"),
        ("李娜", "13977778888", "lina@acme.cn"),
    ] {
        app.post(
            "/api/v1/customers",
            &t.token,
            json!({"name": name, "phone": phone, "email": email}),
        )
        .await
        .expect(201);
    }
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let q = |s: &str| format!("/api/v1/customers?q={}", urlencode(s));
    assert_eq!(
        names(&app.get(&q("张伟"), &t.token).await.expect(200)),
        ["张伟", "张伟明"],
        "best match first"
    );
    assert_eq!(
        names(&app.get(&q("伟"), &t.token).await.expect(200)).len(),
        3
    );
    assert_eq!(
        names(&app.get(&q("张伟明"), &t.token).await.expect(200)),
        ["张伟明"]
    );
    assert_eq!(
        names(&app.get(&q("acme"), &t.token).await.expect(200)).len(),
        2,
        "name and e-mail"
    );
    assert_eq!(
        names(&app.get(&q("TRADING"), &t.token).await.expect(200)),
        ["Acme Trading Ltd"]
    );
    assert_eq!(
        names(&app.get(&q("5555"), &t.token).await.expect(200)),
        ["王伟"],
        "phone digits"
    );
    assert_eq!(
        names(&app.get(&q("huaxia"), &t.token).await.expect(200)),
        ["张伟"]
    );
    assert_eq!(
        names(&app.get(&q("nobody-here"), &t.token).await.expect(200)).len(),
        0
    );
    let count = app
        .get(
            &format!("/api/v1/customers/count?q={}", urlencode("伟")),
            &t.token,
        )
        .await
        .expect(200);
    assert_eq!(count["count"], 3);
    // Text custom fields are searched too.
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "wechat", "label": "微信", "type": "text"}),
    )
    .await
    .expect(201);
    let c = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "周杰", "custom": {"wechat": "zhoujie_wx_88"}}),
        )
        .await
        .expect(201);
    let found = app.get(&q("jie_wx"), &t.token).await.expect(200);
    assert_eq!(found["items"][0]["id"], c["id"]);
    // Searching through many pages with a cursor keeps relevance order and completeness.
    let all = app
        .get(&format!("{}&limit=1", q("伟")), &t.token)
        .await
        .expect(200);
    let next = all["next_cursor"].as_str().expect("more pages").to_owned();
    let second = app
        .get(&format!("{}&limit=5&cursor={next}", q("伟")), &t.token)
        .await
        .expect(200);
    assert_eq!(second["items"].as_array().map(Vec::len), Some(2));
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
