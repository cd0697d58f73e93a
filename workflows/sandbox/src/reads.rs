//! The one host function that reads: `get_record(object, id)`. The sandbox does no I/O, so it
//! answers from the records the server sent with the request (`records`: `<object>:<id>` to
//! the record as the rule may see it, or null); for any other record it stops the evaluation
//! and names the record (`Reads::take_need`), and the server evaluates again with that record
//! added. Scripts are pure functions of their input, so the evaluation that completes is the
//! one a single pass with every record would have made.

use std::cell::RefCell;
use std::rc::Rc;

use crm_rules_protocol::RecordRef;
use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};
use serde_json::{Map as JsonMap, Value};

use crate::host::{bad, Effects};
use crate::value::to_dynamic;

/// The termination token of `get_record` asking for a record it was not given.
pub const READ_TOKEN: &str = "read";

/// The records of the evaluation in progress, and the one it lacks.
#[derive(Default)]
pub struct Reads {
    /// By [`RecordRef::key`].
    records: RefCell<JsonMap<String, Value>>,
    need: RefCell<Option<RecordRef>>,
}

impl Reads {
    /// Takes the records an evaluation may read, before it starts.
    pub fn reset(&self, records: &Value) {
        self.need.borrow_mut().take();
        *self.records.borrow_mut() = records.as_object().cloned().unwrap_or_default();
    }

    /// The record that stopped the evaluation because the server has not read it yet.
    pub fn take_need(&self) -> Option<RecordRef> {
        self.need.borrow_mut().take()
    }

    /// The record as the rule may see it; `()` when it is missing, hidden from the rule, or
    /// `id` is `()` (an empty relation field).
    fn read(
        &self,
        effects: &Effects,
        ctx: &NativeCallContext,
        object: Dynamic,
        id: Dynamic,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let id = id.flatten();
        if id.is_unit() {
            return Ok(Dynamic::UNIT);
        }
        let (object, id) = match (object.into_immutable_string(), id.into_immutable_string()) {
            (Ok(o), Ok(i)) if !o.trim().is_empty() && !i.trim().is_empty() => {
                (o.trim().to_owned(), i.trim().to_owned())
            }
            _ => {
                return Err(effects.refuse(
                    ctx,
                    bad("get_record(object, id): the object key and the record id are strings, e.g. get_record(\"policies\", record.policy)"),
                ))
            }
        };
        let wanted = RecordRef { object, id };
        if let Some(found) = self.records.borrow().get(&wanted.key()) {
            return Ok(if found.is_null() {
                Dynamic::UNIT
            } else {
                to_dynamic(found)
            });
        }
        *self.need.borrow_mut() = Some(wanted);
        Err(EvalAltResult::ErrorTerminated(READ_TOKEN.into(), ctx.call_position()).into())
    }
}

/// Registers `get_record` on `engine`; refused arguments end the evaluation through `effects`.
pub fn register(engine: &mut Engine, reads: &Rc<Reads>, effects: &Rc<Effects>) {
    let (reads, effects) = (reads.clone(), effects.clone());
    engine.register_fn(
        "get_record",
        move |ctx: NativeCallContext, object: Dynamic, id: Dynamic| {
            reads.read(&effects, &ctx, object, id)
        },
    );
}
