//! crm-rules-sandbox: evaluates TC CRM tenant rules (rhai) for the server, one request at a time.
//!
//! It reads frames from stdin and answers each on stdout. A frame is a 4-byte big-endian length
//! followed by that many bytes of UTF-8 JSON; frames over 4 MiB are refused. Requests:
//!
//! ```text
//! {"id": 1, "op": "compile", "condition": "record.level == \"A\"", "script": "..."}
//! {"id": 2, "op": "eval", "condition": "...", "script": "...",
//!  "record": {..}, "changes": {"field": {"before": .., "after": ..}}, "context": {..},
//!  "records": {"policies:<id>": {..}, "customers:<id>": null}}
//! ```
//!
//! Answers: `{"id", "ok": true, "matched", "effects": [..], "operations"}`,
//! `{"id", "ok": true, "needs": {"object", "id"}, "operations"}` when `get_record` asked for a
//! record not among `records` (the server reads it and asks again), or
//! `{"id", "ok": false, "error": {"code", "message", "part"?, "line"?, "column"?}}`.
//!
//! It is a pure function of its input: no file, network or clock access is offered to scripts,
//! and the process survives every script error and limit. The server bounds it from outside
//! (deadline, address space, CPU time) and replaces it when it has to.

mod engine;
mod host;
mod reads;
mod value;

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Deserialize;
use serde_json::{json, Value};

use engine::{Sandbox, ScriptError};

/// Largest frame accepted or sent.
const MAX_FRAME: usize = 4 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    id: u64,
    op: Op,
    #[serde(default)]
    condition: Option<String>,
    script: String,
    #[serde(default)]
    record: Option<Value>,
    #[serde(default)]
    changes: Option<Value>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    records: Option<Value>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Op {
    Compile,
    Eval,
}

fn main() {
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    let mut sandbox = Sandbox::new();
    loop {
        let mut len = [0u8; 4];
        match read_len(&mut input, &mut len) {
            Ok(true) => {}
            // The server closed the pipe: nothing left to do.
            Ok(false) => return,
            Err(_) => std::process::exit(2),
        }
        let len = u32::from_be_bytes(len) as usize;
        let reply = if len > MAX_FRAME {
            // Skip the body so the next frame is read from its start.
            if io::copy(&mut (&mut input).take(len as u64), &mut io::sink()).is_err() {
                std::process::exit(2);
            }
            protocol_error(
                Value::Null,
                "protocol.frame_too_large",
                format!("the request is {len} bytes; at most {MAX_FRAME} are accepted"),
            )
        } else {
            let mut body = vec![0u8; len];
            if input.read_exact(&mut body).is_err() {
                std::process::exit(2);
            }
            match catch_unwind(AssertUnwindSafe(|| handle(&mut sandbox, &body))) {
                Ok(reply) => reply,
                Err(_) => {
                    // A bug in rhai or here: answer, start from a clean engine, keep serving.
                    sandbox = Sandbox::new();
                    protocol_error(
                        request_id(&body),
                        "internal.panic",
                        "the sandbox failed while evaluating this rule".to_owned(),
                    )
                }
            }
        };
        if write_frame(&mut output, &reply).is_err() {
            std::process::exit(2);
        }
    }
}

/// Reads the 4-byte length; `Ok(false)` on a clean end of input.
fn read_len(input: &mut impl Read, buf: &mut [u8; 4]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn write_frame(output: &mut impl Write, reply: &Value) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(reply)?;
    if bytes.len() > MAX_FRAME {
        bytes = serde_json::to_vec(&protocol_error(
            reply.get("id").cloned().unwrap_or(Value::Null),
            "limit.output_size",
            format!("the rule's effects exceed {MAX_FRAME} bytes"),
        ))?;
    }
    output.write_all(&(bytes.len() as u32).to_be_bytes())?;
    output.write_all(&bytes)?;
    output.flush()
}

fn handle(sandbox: &mut Sandbox, body: &[u8]) -> Value {
    let request: Request = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return protocol_error(
                request_id(body),
                "protocol.bad_request",
                format!("the request is not valid: {e}"),
            )
        }
    };
    let id = json!(request.id);
    let map_or_empty = |v: Option<Value>, name: &str| match v {
        None | Some(Value::Null) => Ok(json!({})),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(protocol_error(
            id.clone(),
            "protocol.bad_request",
            format!("'{name}' must be a JSON object"),
        )),
    };
    let result = match request.op {
        Op::Compile => sandbox
            .compile(request.condition.as_deref(), &request.script)
            .map(|_| json!({"id": id, "ok": true})),
        Op::Eval => {
            let record = match map_or_empty(request.record, "record") {
                Ok(v) => v,
                Err(reply) => return reply,
            };
            let context = match map_or_empty(request.context, "context") {
                Ok(v) => v,
                Err(reply) => return reply,
            };
            let records = match map_or_empty(request.records, "records") {
                Ok(v) => v,
                Err(reply) => return reply,
            };
            let changes = match request.changes {
                None | Some(Value::Null) => None,
                Some(v) => match map_or_empty(Some(v), "changes") {
                    Ok(v) => Some(v),
                    Err(reply) => return reply,
                },
            };
            sandbox
                .evaluate(
                    request.condition.as_deref(),
                    &request.script,
                    &record,
                    changes.as_ref(),
                    &context,
                    &records,
                )
                .map(|o| match o.needs {
                    Some(needs) => json!({
                        "id": id,
                        "ok": true,
                        "needs": needs,
                        "operations": o.operations,
                    }),
                    None => json!({
                        "id": id,
                        "ok": true,
                        "matched": o.matched,
                        "effects": o.effects,
                        "operations": o.operations,
                    }),
                })
        }
    };
    result.unwrap_or_else(|e| error_reply(id.clone(), &e))
}

fn error_reply(id: Value, e: &ScriptError) -> Value {
    let mut error = json!({"code": e.code, "message": e.message});
    if let Some(part) = e.part {
        error["part"] = json!(part.as_str());
    }
    if let Some(line) = e.line {
        error["line"] = json!(line);
    }
    if let Some(column) = e.column {
        error["column"] = json!(column);
    }
    json!({"id": id, "ok": false, "error": error})
}

fn protocol_error(id: Value, code: &str, message: String) -> Value {
    json!({"id": id, "ok": false, "error": {"code": code, "message": message}})
}

/// The request's id when the rest of it cannot be read, so the answer still matches.
fn request_id(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(Value::Null)
}
