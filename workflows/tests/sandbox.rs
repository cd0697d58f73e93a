//! The rule sandbox through its pool: the real `crm-rules-sandbox` binary built by build.rs,
//! real processes, real pipes and signals.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_workflows::{EvalOutcome, EvalRequest, PoolConfig, SandboxError, SandboxPool};
use serde_json::{json, Value};

/// Effects as the API shows them (JSON tagged by `action`).
fn json_of(effects: &[crm_workflows::Effect]) -> Vec<Value> {
    effects
        .iter()
        .map(|e| serde_json::to_value(e).expect("effects serialize"))
        .collect()
}

fn pool() -> SandboxPool {
    SandboxPool::new(PoolConfig::default())
}

fn record() -> Value {
    json!({"id": "r1", "amount": 100, "level": "A", "owner_id": "u-owner", "name": "Acme"})
}

fn request(condition: Option<&str>, script: &str) -> EvalRequest {
    EvalRequest {
        condition: condition.map(str::to_owned),
        script: script.to_owned(),
        record: record(),
        changes: None,
        context: json!({"tenant": "acme", "rule_id": "rule-1", "now": "2025-03-01T09:00:00Z"}),
        tenant: None,
    }
}

async fn run(pool: &SandboxPool, script: &str) -> Result<EvalOutcome, SandboxError> {
    pool.evaluate(&request(None, script)).await
}

/// The error's code, line and column; panics on anything but a script error.
fn script_error(
    result: Result<impl std::fmt::Debug, SandboxError>,
) -> (String, Option<u32>, Option<u32>) {
    match result {
        Err(SandboxError::Script {
            code, line, column, ..
        }) => (code, line, column),
        other => panic!("expected a script error, got {other:?}"),
    }
}

fn code(result: Result<impl std::fmt::Debug, SandboxError>) -> String {
    script_error(result).0
}

/// A normal rule still evaluates correctly on `pool`.
async fn assert_healthy(pool: &SandboxPool) {
    let out = run(pool, r#"set_field("discount", record.amount * 0.8)"#)
        .await
        .expect("a normal rule evaluates");
    assert_eq!(
        json_of(&out.effects),
        vec![json!({"action": "set_field", "key": "discount", "value": 80.0})]
    );
}

#[tokio::test]
async fn every_host_api_call_produces_its_effect() {
    let pool = pool();
    let script = r#"
        set_field("level", "A+");
        assign_to("round_robin");
        assign_to(record.owner_id);
        create_task(#{title: "Call back " + record.name, due_in: "2d", assignee: record.owner_id, notes: "level A"});
        add_comment("Escalated", false);
        send_email("follow_up", "customer");
        request_approval(#{
            approvers: ["u-sales-mgr"], mode: "all", escalate_after: "1d",
            on_approve: #{action: "request_approval", approvers: "u-finance", mode: 1},
            on_reject: [#{action: "notify", user: record.owner_id, text: "Rejected"}]
        });
        schedule("7d", #{action: "create_task", title: "Revisit", due_in: "1h", assignee: "u2"});
        webhook("https://hooks.example.com/crm", #{id: record.id, level: record.level});
        notify("u-owner", "Rule ran");
    "#;
    let out = run(&pool, script).await.expect("evaluates");
    assert!(out.matched);
    assert_eq!(
        json_of(&out.effects),
        vec![
            json!({"action": "set_field", "key": "level", "value": "A+"}),
            json!({"action": "assign_to", "target": "round_robin"}),
            json!({"action": "assign_to", "target": "u-owner"}),
            json!({"action": "create_task", "title": "Call back Acme", "due_in": "2d",
                   "due_in_seconds": 172_800, "assignee": "u-owner", "notes": "level A"}),
            json!({"action": "add_comment", "text": "Escalated", "public": false}),
            json!({"action": "send_email", "template": "follow_up", "to": "customer"}),
            json!({"action": "request_approval",
                   "steps": [{"approvers": ["u-sales-mgr"], "mode": "all",
                              "escalate_after": "1d", "escalate_after_seconds": 86_400}],
                   "on_approve": [{"action": "request_approval",
                                   "steps": [{"approvers": ["u-finance"], "mode": "quorum", "quorum": 1}]}],
                   "on_reject": [{"action": "notify", "user": "u-owner", "text": "Rejected"}]}),
            json!({"action": "schedule", "delay": "7d", "delay_seconds": 604_800,
                   "then": {"action": "create_task", "title": "Revisit", "due_in": "1h",
                            "due_in_seconds": 3600, "assignee": "u2"}}),
            json!({"action": "webhook", "url": "https://hooks.example.com/crm",
                   "payload": {"id": "r1", "level": "A"}}),
            json!({"action": "notify", "user": "u-owner", "text": "Rule ran"}),
        ]
    );
    assert!(
        out.operations > 0 && out.operations < 1000,
        "{}",
        out.operations
    );
}

#[tokio::test]
async fn host_api_arguments_are_checked() {
    let pool = pool();
    let cases = [
        (r#"set_field(1, 2)"#, "runtime.bad_argument"),
        (r#"create_task(#{title: "x"})"#, "runtime.bad_duration"),
        (
            r#"request_approval(#{steps: [#{approvers: "u"}], approvers: "v"})"#,
            "runtime.bad_argument",
        ),
        (
            r#"request_approval(#{steps: [#{approvers: "u", colour: 1}]})"#,
            "runtime.bad_argument",
        ),
        (r#"request_approval(#{steps: []})"#, "runtime.bad_argument"),
        (
            r#"create_task(#{title: "x", due_in: "1h", assignee: "u", colour: "red"})"#,
            "runtime.bad_argument",
        ),
        (r#"add_comment("x", "yes")"#, "runtime.bad_argument"),
        (r#"webhook("ftp://x", #{})"#, "runtime.bad_argument"),
        (
            r#"schedule("1h", #{action: "delete_everything"})"#,
            "runtime.bad_argument",
        ),
        (
            r#"request_approval(#{approvers: [], mode: "any"})"#,
            "runtime.bad_argument",
        ),
        (r#"set_field("f", |x| x)"#, "runtime.bad_argument"),
        (
            r#"for i in 0..101 { notify("u", "n" + i) }"#,
            "limit.effects",
        ),
    ];
    for (script, expected) in cases {
        assert_eq!(code(run(&pool, script).await), expected, "{script}");
    }
    // A script cannot swallow a refused host call.
    let caught = r#"try { create_task(#{title: "x", due_in: "soon", assignee: "u"}) } catch { } notify("u", "after")"#;
    assert_eq!(code(run(&pool, caught).await), "runtime.bad_duration");
}

#[tokio::test]
async fn the_condition_decides_whether_the_script_runs() {
    let pool = pool();
    let script = r#"set_field("vip", true)"#;
    let hit = pool
        .evaluate(&request(
            Some(r#"record.level == "A" && record.amount >= 100"#),
            script,
        ))
        .await
        .expect("evaluates");
    assert!(hit.matched);
    assert_eq!(
        json_of(&hit.effects),
        vec![json!({"action": "set_field", "key": "vip", "value": true})]
    );

    let miss = pool
        .evaluate(&request(Some(r#"record.level == "B""#), script))
        .await
        .expect("evaluates");
    assert!(!miss.matched);
    assert!(miss.effects.is_empty());

    // A blank condition always matches.
    let blank = pool
        .evaluate(&request(Some("  "), script))
        .await
        .expect("evaluates");
    assert!(blank.matched);

    let err = pool
        .evaluate(&request(Some("record.amount + 1"), script))
        .await;
    match err {
        Err(SandboxError::Script { code, part, .. }) => {
            assert_eq!(code, "runtime.condition_not_bool");
            assert_eq!(part.as_deref(), Some("condition"));
        }
        other => panic!("expected condition_not_bool, got {other:?}"),
    }
    // Actions belong in the script.
    assert_eq!(
        code(
            pool.compile(None, Some(r#"set_field("a", 1) == ()"#), "")
                .await
        ),
        "compile.action_in_condition"
    );
}

#[tokio::test]
async fn changes_and_context_are_visible() {
    let pool = pool();
    let mut req = request(
        Some(r#""level" in changes && changes.level.after == "A""#),
        r#"set_field("previous_level", changes.level.before); notify(context.rule_id, context.tenant + " " + context.now)"#,
    );
    req.changes = Some(json!({"level": {"before": "B", "after": "A"}}));
    let out = pool.evaluate(&req).await.expect("evaluates");
    assert!(out.matched);
    assert_eq!(
        json_of(&out.effects),
        vec![
            json!({"action": "set_field", "key": "previous_level", "value": "B"}),
            json!({"action": "notify", "user": "rule-1", "text": "acme 2025-03-01T09:00:00Z"}),
        ]
    );
    // Without changes (a create event) `changes` is an empty map.
    req.changes = None;
    assert!(!pool.evaluate(&req).await.expect("evaluates").matched);
}

#[tokio::test]
async fn floats_and_decimals_work() {
    let pool = pool();
    let out = run(
        &pool,
        r#"
        set_field("f", record.amount * 0.8);
        set_field("d", parse_decimal("19.99") * 3);
        set_field("r", (to_decimal(10) / 3).round(2));
        set_field("i", (2.6).floor().to_int());
        "#,
    )
    .await
    .expect("evaluates");
    let effects = json_of(&out.effects);
    let values: Vec<&Value> = effects.iter().map(|e| &e["value"]).collect();
    assert_eq!(
        values,
        [&json!(80.0), &json!(59.97), &json!(3.33), &json!(2)]
    );
}

#[tokio::test]
async fn durations_are_parsed_and_bad_ones_refused() {
    let pool = pool();
    for (text, seconds) in [
        ("30m", 1800),
        ("2h", 7200),
        ("7d", 604_800),
        ("1w", 604_800),
        ("1h30m", 5400),
    ] {
        let script = format!(r#"schedule("{text}", #{{action: "notify", user: "u", text: "t"}})"#);
        let out = run(&pool, &script).await.expect("evaluates");
        let effects = json_of(&out.effects);
        assert_eq!(effects[0]["delay"], json!(text));
        assert_eq!(effects[0]["delay_seconds"], json!(seconds), "{text}");
    }
    for bad in [
        r#""soon""#,
        r#""0m""#,
        r#""5""#,
        r#""2 h""#,
        "30",
        r#""-1d""#,
        r#""1.5h""#,
    ] {
        let script = format!(r#"create_task(#{{title: "t", due_in: {bad}, assignee: "u"}})"#);
        let (code, line, column) = script_error(run(&pool, &script).await);
        assert_eq!(code, "runtime.bad_duration", "{bad}");
        assert_eq!((line, column), (Some(1), Some(1)), "{bad}");
    }
    let escalation = r#"request_approval(#{approvers: "u", escalate_after: "1y"})"#;
    assert_eq!(code(run(&pool, escalation).await), "runtime.bad_duration");
}

#[tokio::test]
async fn compile_refuses_eval_unknown_functions_and_syntax_errors() {
    let pool = pool();
    assert_eq!(
        code(pool.compile(None, None, r#"eval("1")"#).await),
        "compile.eval_forbidden"
    );
    assert_eq!(
        code(pool.compile(None, None, r#"Fn("eval").call("1")"#).await),
        "compile.eval_forbidden"
    );
    assert_eq!(
        code(pool.compile(None, None, r#"import "fs" as fs;"#).await),
        "compile.import_forbidden"
    );

    let unknown = script_error(
        pool.compile(None, None, "let x = 1;\nsend_mail(\"a\", \"b\");")
            .await,
    );
    assert_eq!(
        unknown,
        ("compile.unknown_function".into(), Some(2), Some(1))
    );
    let method = script_error(pool.compile(None, None, "record.name.shout()").await);
    assert_eq!(
        method,
        ("compile.unknown_function".into(), Some(1), Some(13))
    );
    // `sleep` exists in rhai's core package, which the sandbox leaves out.
    assert_eq!(
        code(pool.compile(None, None, "sleep(10)").await),
        "compile.unknown_function"
    );
    // Functions the script defines are fine.
    pool.compile(
        None,
        None,
        "fn double(x) { x * 2 }\nset_field(\"d\", double(2))",
    )
    .await
    .expect("compiles");

    let syntax = script_error(pool.compile(None, None, "let x = 1;\nlet y = ;").await);
    assert_eq!(syntax, ("compile.syntax".into(), Some(2), Some(9)));
    match pool.compile(None, Some("record.level =="), "").await {
        Err(SandboxError::Script {
            code,
            part,
            line,
            column,
            ..
        }) => {
            assert_eq!(code, "compile.syntax");
            assert_eq!(part.as_deref(), Some("condition"));
            assert_eq!((line, column), (Some(1), Some(16)));
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert_eq!(
        code(pool.compile(None, None, "undefined_var + 1").await),
        "compile.unknown_variable"
    );
}

#[tokio::test]
async fn at_most_64_functions() {
    let pool = pool();
    let defs = |n: usize| {
        (0..n)
            .map(|i| format!("fn f{i}() {{ {i} }}\n"))
            .collect::<String>()
    };
    pool.compile(None, None, &defs(64))
        .await
        .expect("64 functions compile");
    let (code, line, _) = script_error(pool.compile(None, None, &defs(65)).await);
    assert_eq!((code.as_str(), line), ("limit.functions", Some(65)));
}

#[tokio::test]
async fn runtime_errors_carry_a_position() {
    let pool = pool();
    let err = script_error(run(&pool, "let a = [1, 2];\nlet b = a[5];").await);
    assert_eq!(err, ("runtime.error".into(), Some(2), Some(11)));
    let thrown = script_error(run(&pool, r#"throw "no""#).await);
    assert_eq!(thrown, ("runtime.error".into(), Some(1), Some(1)));
}

/// Each hostile script is stopped within bounds with its code, and the pool keeps working.
#[tokio::test]
async fn hostile_scripts_are_stopped_and_the_pool_survives() {
    let pool = pool();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "infinite loop",
            "loop {}",
            &["limit.operations", "limit.time"],
        ),
        (
            "cheap operations forever",
            "let x = 0; while true { x += 1; }",
            &["limit.operations", "limit.time"],
        ),
        (
            "slow operations forever",
            r#"let s = "y"; for i in 0..15 { s += s; } loop { let t = s + s; t.contains("z"); }"#,
            &["limit.time", "limit.operations"],
        ),
        (
            "deep recursion",
            "fn f(n) { f(n + 1) } f(0)",
            &["limit.call_depth"],
        ),
        (
            "string doubling",
            r#"let s = "x"; loop { s += s; }"#,
            &["limit.string_size"],
        ),
        (
            "huge array at once",
            "let a = []; a.pad(100000000, 0);",
            &["limit.array_size"],
        ),
        (
            "array growing",
            "let a = []; loop { a.push(1); }",
            &["limit.array_size", "limit.time"],
        ),
        (
            "map grown by index",
            r#"let m = #{}; for i in 0..20000 { m["k" + i] = i; } set_field("m", m)"#,
            &["limit.array_size", "limit.time"],
        ),
    ];
    for (name, script, expected) in cases {
        let started = Instant::now();
        let result = run(&pool, script).await;
        let elapsed = started.elapsed();
        let code = code(result);
        assert!(expected.contains(&code.as_str()), "{name}: got {code}");
        assert!(elapsed < Duration::from_secs(2), "{name} took {elapsed:?}");
        assert_healthy(&pool).await;
    }
    // Stopped by their own limits: no process had to be killed.
    assert_eq!(pool.stats().killed, 0);
}

/// Memory grown through map keys (which rhai's size limits do not count) is bounded by the time
/// limit or, failing that, by RLIMIT_AS; either way the pool carries on.
#[tokio::test]
async fn a_memory_hungry_script_is_stopped() {
    let pool = SandboxPool::new(PoolConfig {
        memory_bytes: 96 * 1024 * 1024,
        ..PoolConfig::default()
    });
    let script = r#"
        let s = "x"; for i in 0..15 { s += s; }
        let m = #{}; let i = 0;
        loop { m[s + i] = i; i += 1; }
    "#;
    let started = Instant::now();
    match run(&pool, script).await {
        Err(SandboxError::Script { code, .. }) => {
            assert!(
                ["limit.time", "limit.operations"].contains(&code.as_str()),
                "{code}"
            );
        }
        Err(SandboxError::Killed { .. }) => {}
        other => panic!("expected the script to be stopped, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_healthy(&pool).await;
}

#[tokio::test]
async fn a_process_that_overruns_the_deadline_is_killed_and_replaced() {
    // A deadline shorter than the sandbox's own 100 ms limit, so the pool has to step in.
    let pool = SandboxPool::new(PoolConfig {
        deadline: Duration::from_millis(30),
        size: 1,
        ..PoolConfig::default()
    });
    assert_healthy(&pool).await;
    let started = Instant::now();
    // Each operation copies 64 KiB: it reaches the 100 ms limit long before 1M operations.
    let slow =
        r#"let s = "y"; for i in 0..15 { s += s; } loop { let t = s + s; t.contains("z"); }"#;
    match run(&pool, slow).await {
        Err(SandboxError::Killed { reason }) => assert!(reason.contains("30 ms"), "{reason}"),
        other => panic!("expected Killed, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    let stats = pool.stats();
    assert_eq!((stats.spawned, stats.killed), (1, 1));
    assert_healthy(&pool).await;
    assert_eq!(pool.stats().spawned, 2);
}

#[tokio::test]
async fn a_process_killed_from_outside_is_replaced_transparently() {
    let pool = SandboxPool::new(PoolConfig {
        size: 1,
        ..PoolConfig::default()
    });
    assert_healthy(&pool).await;
    let pids = pool.idle_pids();
    assert_eq!(pids.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0] as i32),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill -9 the sandbox");
    // SIGKILL lands asynchronously; wait until the process is really gone (a zombie or reaped),
    // which is the situation this test is about: a process that died while idle.
    let stat = format!("/proc/{}/stat", pids[0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(Instant::now() < deadline, "the killed sandbox did not exit");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The next request does not notice, apart from the new process.
    assert_healthy(&pool).await;
    let stats = pool.stats();
    assert_eq!((stats.spawned, stats.died, stats.killed), (2, 1, 0));
    assert_ne!(pool.idle_pids(), pids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_evaluations_on_two_processes() {
    let pool = Arc::new(pool());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let pool = pool.clone();
        tasks.spawn(async move {
            let mut req = request(
                Some("record.n % 2 == 0"),
                r#"set_field("twice", record.n * 2)"#,
            );
            req.record = json!({"n": i});
            (i, pool.evaluate(&req).await)
        });
    }
    let mut seen = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.expect("task completes");
        let out = result.unwrap_or_else(|e| panic!("evaluation {i} failed: {e}"));
        assert_eq!(out.matched, i % 2 == 0);
        if out.matched {
            assert_eq!(
                json_of(&out.effects),
                vec![json!({"action": "set_field", "key": "twice", "value": i * 2})]
            );
        }
        seen += 1;
    }
    assert_eq!(seen, 200);
    let stats = pool.stats();
    assert_eq!((stats.spawned, stats.killed, stats.died), (2, 0, 0));
}

#[tokio::test]
async fn oversized_requests_and_a_missing_binary_are_reported() {
    let pool = pool();
    let mut req = request(None, "1");
    req.record = json!({"notes": "x".repeat(5 * 1024 * 1024)});
    assert_eq!(code(pool.evaluate(&req).await), "protocol.frame_too_large");
    assert_healthy(&pool).await;

    let missing = SandboxPool::new(PoolConfig {
        binary: "/nonexistent/crm-rules-sandbox".into(),
        ..PoolConfig::default()
    });
    assert!(matches!(
        missing.compile(None, None, "1").await,
        Err(SandboxError::Unavailable(_))
    ));
}

#[tokio::test]
async fn get_record_asks_for_what_it_was_not_given_and_create_record_is_an_effect() {
    let pool = pool();
    let script = r#"
        let policy = get_record("policies", record.policy);
        if type_of(policy) == "map" {
            create_record("claims", #{name: "C for " + policy.policy_no, policy: record.policy});
        }
        if get_record("policies", ()) == () { notify("owner", "no relation reads ()"); }
    "#;
    let mut req = request(None, script);
    req.record["policy"] = json!("p-1");
    // Not given the policy: the evaluation stops and names it.
    let out = pool.evaluate(&req).await.expect("evaluates");
    let needs = out.needs.expect("asks for the policy");
    assert_eq!(
        (needs.object.as_str(), needs.id.as_str()),
        ("policies", "p-1")
    );
    assert!(out.effects.is_empty());
    // Given it, the script goes on.
    let given = json!({ needs.key(): {"id": "p-1", "policy_no": "P-7"} });
    let out = pool
        .evaluate_with(&req, Some(&given))
        .await
        .expect("evaluates");
    assert_eq!(out.needs, None);
    assert_eq!(
        json_of(&out.effects),
        vec![
            json!({"action": "create_record", "object": "claims",
                   "fields": {"name": "C for P-7", "policy": "p-1"}}),
            json!({"action": "notify", "user": "owner", "text": "no relation reads ()"}),
        ]
    );
    // A record the server could not read (missing or hidden) is ().
    let hidden = json!({ needs.key(): null });
    let out = pool
        .evaluate_with(&req, Some(&hidden))
        .await
        .expect("evaluates");
    assert_eq!(out.effects.len(), 1);
    // Conditions may read too; create_record needs a map of fields.
    let cond = request(
        Some(r#"get_record("policies", "p-1") == ()"#),
        "notify(\"owner\", \"x\")",
    );
    let out = pool
        .evaluate_with(&cond, Some(&hidden))
        .await
        .expect("evaluates");
    assert!(out.matched);
    assert_eq!(
        code(run(&pool, r#"create_record("claims", "name")"#).await),
        "runtime.bad_argument"
    );
}
