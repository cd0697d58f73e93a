//! The host API tenant scripts call. Every function only appends a declarative effect (a JSON
//! object with an `action`) to the current evaluation's list; none of them does I/O. The server
//! executes the list afterwards, under the rule's own principal and permissions.
//!
//! Each action is described once, as a set of named arguments (`build`), so the positional
//! functions (`create_task(#{..})`, `notify(user, text)`) and the action maps nested in
//! `schedule` and `request_approval` are checked by the same code.
//!
//! The one function that reads, `get_record`, lives in `reads`.

use std::cell::RefCell;
use std::rc::Rc;

use crm_rules_protocol::Effect;

use rhai::{Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};
use serde_json::{json, Map as JsonMap, Value};

use crate::value::to_json;

/// At most this many effects per evaluation.
pub const MAX_EFFECTS: usize = 100;

/// The termination token a host function raises; the real error waits in `Effects::error`.
pub const HOST_TOKEN: &str = "host";

/// Every action name, in the order the documentation lists them.
pub const ACTIONS: &[&str] = &[
    "set_field",
    "assign_to",
    "create_task",
    "add_comment",
    "send_email",
    "request_approval",
    "schedule",
    "webhook",
    "notify",
    "create_record",
    "call_plugin",
];

/// Longest accepted duration: ten years.
const MAX_DURATION_SECONDS: u64 = 3650 * 86_400;

/// A host API call the sandbox refused; it ends the evaluation (a script cannot catch it).
#[derive(Debug, Clone)]
pub struct HostError {
    pub code: &'static str,
    pub message: String,
    pub position: Position,
}

/// The effects of the evaluation in progress, shared by the registered functions.
#[derive(Default)]
pub struct Effects {
    list: RefCell<Vec<Effect>>,
    error: RefCell<Option<HostError>>,
}

impl Effects {
    /// Empties the list before an evaluation starts.
    pub fn reset(&self) {
        self.list.borrow_mut().clear();
        self.error.borrow_mut().take();
    }

    /// The effects recorded so far.
    pub fn take(&self) -> Vec<Effect> {
        std::mem::take(&mut *self.list.borrow_mut())
    }

    /// The host error that ended the evaluation, if one did.
    pub fn take_error(&self) -> Option<HostError> {
        self.error.borrow_mut().take()
    }

    /// Applies the engine's size limits to arguments: rhai does not check every way a map can
    /// grow (assigning through an index does not), so values are checked where they leave.
    fn check(ctx: &NativeCallContext, args: &[&Dynamic]) -> HostResult {
        args.iter()
            .try_for_each(|a| ctx.engine().ensure_data_size_within_limits(a))
            .map_err(|mut e| {
                e.set_position(ctx.call_position());
                e
            })
    }

    fn push(&self, ctx: &NativeCallContext, effect: Result<Value, Refusal>) -> HostResult {
        // What `build` made must be an effect the server knows: the shared protocol type.
        let effect = effect.and_then(|v| {
            serde_json::from_value::<Effect>(v).map_err(|e| Refusal {
                code: "runtime.bad_argument",
                message: format!("the action does not match the rule protocol: {e}"),
            })
        });
        let refusal = match effect {
            Ok(effect) => {
                let mut list = self.list.borrow_mut();
                if list.len() < MAX_EFFECTS {
                    list.push(effect);
                    return Ok(());
                }
                Refusal {
                    code: "limit.effects",
                    message: format!("a rule may produce at most {MAX_EFFECTS} effects per run"),
                }
            }
            Err(refusal) => refusal,
        };
        Err(self.refuse(ctx, refusal))
    }

    /// Ends the evaluation with a refused call (a script cannot catch it).
    pub(crate) fn refuse(&self, ctx: &NativeCallContext, refusal: Refusal) -> Box<EvalAltResult> {
        let position = ctx.call_position();
        *self.error.borrow_mut() = Some(HostError {
            code: refusal.code,
            message: refusal.message,
            position,
        });
        EvalAltResult::ErrorTerminated(HOST_TOKEN.into(), position).into()
    }
}

type HostResult = Result<(), Box<EvalAltResult>>;

/// Why an action's arguments were refused.
#[derive(Debug)]
pub(crate) struct Refusal {
    code: &'static str,
    message: String,
}

pub(crate) fn bad(message: impl Into<String>) -> Refusal {
    Refusal {
        code: "runtime.bad_argument",
        message: message.into(),
    }
}

/// Registers the host API on `engine`, recording into `effects`.
pub fn register(engine: &mut Engine, effects: &Rc<Effects>) {
    let fx = effects.clone();
    engine.register_fn(
        "set_field",
        move |ctx: NativeCallContext, key: Dynamic, value: Dynamic| {
            Effects::check(&ctx, &[&key, &value])?;
            fx.push(
                &ctx,
                build_from("set_field", [("key", key), ("value", value)]),
            )
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "assign_to",
        move |ctx: NativeCallContext, target: Dynamic| {
            Effects::check(&ctx, &[&target])?;
            fx.push(&ctx, build_from("assign_to", [("target", target)]))
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "create_task",
        move |ctx: NativeCallContext, task: Dynamic| {
            Effects::check(&ctx, &[&task])?;
            fx.push(&ctx, build_map("create_task", task))
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "add_comment",
        move |ctx: NativeCallContext, text: Dynamic, public: Dynamic| {
            Effects::check(&ctx, &[&text, &public])?;
            fx.push(
                &ctx,
                build_from("add_comment", [("text", text), ("public", public)]),
            )
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "send_email",
        move |ctx: NativeCallContext, template: Dynamic, to: Dynamic| {
            Effects::check(&ctx, &[&template, &to])?;
            fx.push(
                &ctx,
                build_from("send_email", [("template", template), ("to", to)]),
            )
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "request_approval",
        move |ctx: NativeCallContext, request: Dynamic| {
            Effects::check(&ctx, &[&request])?;
            fx.push(&ctx, build_map("request_approval", request))
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "schedule",
        move |ctx: NativeCallContext, delay: Dynamic, action: Dynamic| {
            Effects::check(&ctx, &[&delay, &action])?;
            fx.push(
                &ctx,
                build_from("schedule", [("delay", delay), ("then", action)]),
            )
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "webhook",
        move |ctx: NativeCallContext, url: Dynamic, payload: Dynamic| {
            Effects::check(&ctx, &[&url, &payload])?;
            fx.push(
                &ctx,
                build_from("webhook", [("url", url), ("payload", payload)]),
            )
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "call_plugin",
        move |ctx: NativeCallContext, plugin: Dynamic, payload: Dynamic| {
            Effects::check(&ctx, &[&plugin, &payload])?;
            fx.push(
                &ctx,
                build_from("call_plugin", [("plugin", plugin), ("payload", payload)]),
            )
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "notify",
        move |ctx: NativeCallContext, user: Dynamic, text: Dynamic| {
            Effects::check(&ctx, &[&user, &text])?;
            fx.push(&ctx, build_from("notify", [("user", user), ("text", text)]))
        },
    );
    let fx = effects.clone();
    engine.register_fn(
        "create_record",
        move |ctx: NativeCallContext, object: Dynamic, fields: Dynamic| {
            Effects::check(&ctx, &[&object, &fields])?;
            fx.push(
                &ctx,
                build_from("create_record", [("object", object), ("fields", fields)]),
            )
        },
    );
}

fn build_from<const N: usize>(action: &str, args: [(&str, Dynamic); N]) -> Result<Value, Refusal> {
    let args = args
        .into_iter()
        .map(|(k, v)| (k.into(), v))
        .collect::<Map>();
    build(action, args, 0)
}

fn build_map(action: &str, arg: Dynamic) -> Result<Value, Refusal> {
    match arg.flatten().try_cast::<Map>() {
        Some(map) => build(action, map, 0),
        None => Err(bad(format!(
            "{action} expects a map, e.g. {action}(#{{ {} }})",
            match action {
                "create_task" => "title: \"Call back\", due_in: \"2d\", assignee: record.owner_id",
                _ => "approvers: [\"<user id>\"], mode: \"any\"",
            }
        ))),
    }
}

/// Builds one action's effect from its named arguments. `depth` bounds nested actions.
fn build(action: &str, mut args: Map, depth: usize) -> Result<Value, Refusal> {
    if depth > 4 {
        return Err(bad(
            "actions may nest at most 4 levels deep (schedule, on_approve, on_reject)",
        ));
    }
    let mut out = Args {
        action,
        args: &mut args,
        effect: JsonMap::new(),
    };
    out.effect
        .insert("action".into(), Value::String(action.into()));
    match action {
        "set_field" => {
            out.text("key")?;
            out.value("value")?;
        }
        "assign_to" => out.text("target")?,
        "create_task" => {
            out.text("title")?;
            out.duration("due_in")?;
            out.optional_text("assignee")?;
            out.optional_text("notes")?;
            out.optional_text("priority")?;
        }
        "add_comment" => {
            out.text("text")?;
            out.flag("public")?;
        }
        "send_email" => {
            out.text("template")?;
            out.text("to")?;
        }
        "request_approval" => {
            out.optional_text("title")?;
            out.steps()?;
            out.follow_ups("on_approve", depth)?;
            out.follow_ups("on_reject", depth)?;
        }
        "schedule" => {
            out.duration("delay")?;
            let then = out.take("then");
            let nested = nested_action(then, depth).map_err(|r| Refusal {
                message: format!("schedule: {}", r.message),
                ..r
            })?;
            out.effect.insert("then".into(), nested);
        }
        "webhook" => {
            out.url()?;
            out.value("payload")?;
        }
        "notify" => {
            out.text("user")?;
            out.text("text")?;
        }
        "call_plugin" => {
            out.text("plugin")?;
            out.value("payload")?;
        }
        "create_record" => {
            out.text("object")?;
            out.value("fields")?;
            if !out.effect["fields"].is_object() {
                return Err(out.missing(
                    "fields",
                    "a map of field values, e.g. #{name: \"C-1\", amount: 100}",
                ));
            }
        }
        other => {
            return Err(bad(format!(
                "unknown action '{other}'; the actions are {}",
                ACTIONS.join(", ")
            )))
        }
    }
    let effect = out.effect;
    if let Some(extra) = args.keys().next() {
        return Err(bad(format!("{action} does not take '{extra}'")));
    }
    Ok(Value::Object(effect))
}

/// An action map nested in `schedule` or an approval (`#{action: "notify", user: .., text: ..}`).
fn nested_action(value: Dynamic, depth: usize) -> Result<Value, Refusal> {
    let Some(mut map) = value.flatten().try_cast::<Map>() else {
        return Err(bad(
            "expected an action map such as #{action: \"notify\", user: record.owner_id, text: \"..\"}",
        ));
    };
    let action = match map.remove("action").map(Dynamic::flatten) {
        Some(a) if a.is_string() => a.into_immutable_string().unwrap_or_default(),
        _ => {
            return Err(bad(format!(
                "an action map needs an 'action' key naming one of: {}",
                ACTIONS.join(", ")
            )))
        }
    };
    build(&action, map, depth + 1)
}

/// The arguments of one action being checked, and the effect being built from them.
struct Args<'a> {
    action: &'a str,
    args: &'a mut Map,
    effect: JsonMap<String, Value>,
}

impl Args<'_> {
    fn take(&mut self, key: &str) -> Dynamic {
        self.args
            .remove(key)
            .map(Dynamic::flatten)
            .unwrap_or(Dynamic::UNIT)
    }

    fn missing(&self, key: &str, what: &str) -> Refusal {
        bad(format!("{}: '{key}' must be {what}", self.action))
    }

    fn text(&mut self, key: &str) -> Result<(), Refusal> {
        let v = self.take(key);
        match v.into_immutable_string() {
            Ok(s) if !s.trim().is_empty() => {
                self.effect.insert(key.into(), Value::String(s.to_string()));
                Ok(())
            }
            _ => Err(self.missing(key, "a non-empty string")),
        }
    }

    fn optional_text(&mut self, key: &str) -> Result<(), Refusal> {
        if self.args.contains_key(key) {
            self.text(key)?;
        }
        Ok(())
    }

    fn flag(&mut self, key: &str) -> Result<(), Refusal> {
        match self.take(key).as_bool() {
            Ok(b) => {
                self.effect.insert(key.into(), Value::Bool(b));
                Ok(())
            }
            Err(_) => Err(self.missing(key, "true or false")),
        }
    }

    fn value(&mut self, key: &str) -> Result<(), Refusal> {
        let v = self.take(key);
        let json = to_json(&v).map_err(|m| bad(format!("{}: '{key}': {m}", self.action)))?;
        self.effect.insert(key.into(), json);
        Ok(())
    }

    fn duration(&mut self, key: &str) -> Result<(), Refusal> {
        let v = self.take(key);
        let text = v.into_immutable_string().map_err(|_| Refusal {
            code: "runtime.bad_duration",
            message: format!(
                "{}: '{key}' must be a duration string such as \"30m\", \"2h\", \"7d\" or \"1w\"",
                self.action
            ),
        })?;
        let seconds = parse_duration(&text).map_err(|message| Refusal {
            code: "runtime.bad_duration",
            message: format!("{}: '{key}': {message}", self.action),
        })?;
        self.effect
            .insert(key.into(), Value::String(text.trim().into()));
        self.effect.insert(format!("{key}_seconds"), json!(seconds));
        Ok(())
    }

    fn url(&mut self) -> Result<(), Refusal> {
        let v = self.take("url");
        match v.into_immutable_string() {
            Ok(s) if (s.starts_with("https://") || s.starts_with("http://")) && s.len() > 8 => {
                self.effect
                    .insert("url".into(), Value::String(s.to_string()));
                Ok(())
            }
            _ => Err(self.missing("url", "an http:// or https:// URL")),
        }
    }

    /// The approval's ordered steps: `steps: [#{approvers, mode, escalate_after}, ..]`, or one
    /// step given by `approvers`, `mode` and `escalate_after` directly. Emitted as `steps`.
    fn steps(&mut self) -> Result<(), Refusal> {
        let single = ["approvers", "mode", "escalate_after"]
            .iter()
            .any(|k| self.args.contains_key(*k));
        let raw: Vec<Dynamic> = if self.args.contains_key("steps") {
            if single {
                return Err(bad(
                    "request_approval: give either 'steps' or 'approvers' (one step), not both",
                ));
            }
            let v = self.take("steps");
            match v.into_array() {
                Ok(items) if !items.is_empty() && items.len() <= 10 => items,
                _ => return Err(self.missing("steps", "an array of 1 to 10 step maps")),
            }
        } else {
            let mut one = Map::new();
            for key in ["approvers", "mode", "escalate_after"] {
                if let Some(v) = self.args.remove(key) {
                    one.insert(key.into(), v);
                }
            }
            vec![Dynamic::from_map(one)]
        };
        let mut steps = Vec::with_capacity(raw.len());
        for (i, item) in raw.into_iter().enumerate() {
            let Some(mut map) = item.flatten().try_cast::<Map>() else {
                return Err(bad(format!(
                    "request_approval: steps[{i}] must be a map such as #{{approvers: [\"role:finance\"], mode: \"any\"}}"
                )));
            };
            let mut step = Args {
                action: "request_approval",
                args: &mut map,
                effect: JsonMap::new(),
            };
            step.approvers()?;
            step.mode()?;
            if step.args.contains_key("escalate_after") {
                step.duration("escalate_after")?;
            }
            let effect = step.effect;
            if let Some(extra) = map.keys().next() {
                return Err(bad(format!(
                    "request_approval: steps[{i}] does not take '{extra}'"
                )));
            }
            steps.push(Value::Object(effect));
        }
        self.effect.insert("steps".into(), Value::Array(steps));
        Ok(())
    }

    /// `approvers`: one id (user, team or role reference) or a non-empty array of them.
    fn approvers(&mut self) -> Result<(), Refusal> {
        let v = self.take("approvers");
        let list: Vec<Dynamic> = if v.is_array() {
            v.into_array().unwrap_or_default()
        } else {
            vec![v]
        };
        let what = "a non-empty string or array of strings";
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            match item.flatten().into_immutable_string() {
                Ok(s) if !s.trim().is_empty() => out.push(Value::String(s.to_string())),
                _ => return Err(self.missing("approvers", what)),
            }
        }
        if out.is_empty() {
            return Err(self.missing("approvers", what));
        }
        self.effect.insert("approvers".into(), Value::Array(out));
        Ok(())
    }

    /// `mode`: "any" (the default), "all", or a number N for a quorum of N approvers.
    fn mode(&mut self) -> Result<(), Refusal> {
        let v = self.take("mode");
        let mode = if v.is_unit() {
            json!("any")
        } else if let Ok(n) = v.as_int() {
            if n < 1 {
                return Err(self.missing("mode", "\"any\", \"all\" or a quorum of at least 1"));
            }
            self.effect.insert("quorum".into(), json!(n));
            json!("quorum")
        } else {
            match v.into_immutable_string().as_deref() {
                Ok("any") => json!("any"),
                Ok("all") => json!("all"),
                _ => {
                    return Err(self.missing("mode", "\"any\", \"all\" or a quorum number"));
                }
            }
        };
        self.effect.insert("mode".into(), mode);
        Ok(())
    }

    /// `on_approve` / `on_reject`: one action map or an array of them, kept as an array.
    fn follow_ups(&mut self, key: &str, depth: usize) -> Result<(), Refusal> {
        let v = self.take(key);
        if v.is_unit() {
            return Ok(());
        }
        let items = if v.is_array() {
            v.into_array().unwrap_or_default()
        } else {
            vec![v]
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(nested_action(item, depth).map_err(|r| Refusal {
                message: format!("request_approval: '{key}': {}", r.message),
                ..r
            })?);
        }
        self.effect.insert(key.into(), Value::Array(out));
        Ok(())
    }
}

/// Parses `30m`, `2h`, `7d`, `1w`, `45s` or a sum such as `1h30m` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let hint = "durations look like \"30m\", \"2h\", \"7d\", \"1w\" or \"1h30m\" (s, m, h, d, w)";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("the duration is empty; {hint}"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(format!("'{text}' is not a duration; {hint}")),
        };
        if digits.is_empty() || digits.len() > 10 {
            return Err(format!("'{text}' is not a duration; {hint}"));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("'{text}' is not a duration; {hint}"))?;
        digits.clear();
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if !digits.is_empty() {
        return Err(format!("'{text}' has a number without a unit; {hint}"));
    }
    if total == 0 {
        return Err(format!("'{text}' is zero; a duration must be positive"));
    }
    if total > MAX_DURATION_SECONDS {
        return Err(format!("'{text}' is longer than the maximum of 3650 days"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("1w"), Ok(604_800));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration(" 45s "), Ok(45));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            "5",
            "m",
            "2x",
            "0m",
            "-1h",
            "1.5h",
            "2 h",
            "99999w",
            "12345678901s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
