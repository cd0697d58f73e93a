//! The rhai engine with every limit on, the compile-time checks rhai does not do itself
//! (unknown functions, `eval`), the per-process cache of compiled rules, and the mapping of rhai
//! errors to stable codes.

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage, BasicMapPackage,
    BasicMathPackage, BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{
    ASTNode, Dynamic, Engine, EvalAltResult, Expr, FnCallExpr, LexError, Map, ParseError,
    ParseErrorType, Position, Scope, Stmt, AST,
};
use serde_json::Value;

use crate::host::{self, Effects, HOST_TOKEN};
use crate::reads::{self, Reads, READ_TOKEN};
use crate::value::to_dynamic;

/// Operations one evaluation (condition and script together) may perform.
pub const MAX_OPERATIONS: u64 = 1_000_000;
/// Wall-clock time one evaluation may take.
pub const TIME_LIMIT: Duration = Duration::from_millis(100);
/// Nested function calls.
pub const MAX_CALL_LEVELS: usize = 32;
/// Bytes in one string.
pub const MAX_STRING_SIZE: usize = 64 * 1024;
/// Items in one array or map (nested ones included).
pub const MAX_ITEMS: usize = 10_000;
/// Functions (closures included) one script may define.
pub const MAX_FUNCTIONS: usize = 64;
/// Bytes of source in a condition or a script.
pub const MAX_SOURCE: usize = 64 * 1024;
/// Compiled rules kept per process.
pub const CACHE_ENTRIES: usize = 256;

/// Functions the evaluator itself provides (rhai's keyword functions); `eval` is not one.
const KEYWORD_FUNCTIONS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_fn",
    "is_def_var",
];

/// Which text an error points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Condition,
    Script,
}

impl Part {
    /// The protocol's name for the part.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Condition => "condition",
            Part::Script => "script",
        }
    }
}

/// A compile or run failure, with a stable code.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError {
    pub code: &'static str,
    pub message: String,
    pub part: Option<Part>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl ScriptError {
    fn new(code: &'static str, message: impl Into<String>, part: Part, pos: Position) -> Self {
        Self {
            code,
            message: message.into(),
            part: Some(part),
            line: pos.line().map(|l| l as u32),
            column: pos.position().map(|c| c as u32),
        }
    }
}

/// What one evaluation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub matched: bool,
    pub effects: Vec<crm_rules_protocol::Effect>,
    pub operations: u64,
    /// The evaluation stopped at `get_record` for a record it was not given: read it and
    /// evaluate again (`matched` and `effects` mean nothing then).
    pub needs: Option<crm_rules_protocol::RecordRef>,
}

/// A rule's compiled condition and script.
pub struct Compiled {
    condition: Option<AST>,
    script: AST,
}

/// Per-evaluation budget shared with the `on_progress` callback.
struct Budget {
    deadline: Cell<Instant>,
    /// Operations of the phases already finished (condition), so the limit covers both.
    spent: Cell<u64>,
    /// Operations of the phase running now.
    current: Cell<u64>,
}

impl Budget {
    fn start(&self) {
        self.deadline.set(Instant::now() + TIME_LIMIT);
        self.spent.set(0);
        self.current.set(0);
    }

    fn finish_phase(&self) {
        self.spent.set(self.spent.get() + self.current.get());
        self.current.set(0);
    }

    fn total(&self) -> u64 {
        self.spent.get() + self.current.get()
    }
}

struct CacheEntry {
    condition: Option<String>,
    script: String,
    compiled: Rc<Compiled>,
    last_used: u64,
}

/// One process's engine and cache.
pub struct Sandbox {
    engine: Engine,
    effects: Rc<Effects>,
    reads: Rc<Reads>,
    budget: Rc<Budget>,
    /// Every function a script may call without defining it.
    known_functions: HashSet<String>,
    cache: HashMap<u64, CacheEntry>,
    tick: u64,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// Builds the engine: only the packages rules need, no `eval`, no modules, every limit on.
    pub fn new() -> Self {
        let mut engine = Engine::new_raw();
        // Not rhai's CorePackage: its LanguageCorePackage brings `sleep` (blocks past any
        // operation count) and `exit`. print/debug stay silent because new_raw sets no output.
        ArithmeticPackage::new().register_into_engine(&mut engine);
        LogicPackage::new().register_into_engine(&mut engine);
        BasicStringPackage::new().register_into_engine(&mut engine);
        MoreStringPackage::new().register_into_engine(&mut engine);
        BasicIteratorPackage::new().register_into_engine(&mut engine);
        BasicFnPackage::new().register_into_engine(&mut engine);
        BasicMathPackage::new().register_into_engine(&mut engine);
        BasicArrayPackage::new().register_into_engine(&mut engine);
        BasicMapPackage::new().register_into_engine(&mut engine);

        engine.disable_symbol("eval");
        engine.disable_symbol("import");
        engine.disable_symbol("export");
        engine.set_strict_variables(true);
        engine.set_max_operations(MAX_OPERATIONS);
        engine.set_max_call_levels(MAX_CALL_LEVELS);
        engine.set_max_string_size(MAX_STRING_SIZE);
        engine.set_max_array_size(MAX_ITEMS);
        engine.set_max_map_size(MAX_ITEMS);
        engine.set_max_functions(MAX_FUNCTIONS);
        engine.set_max_expr_depths(64, 32);
        engine.set_max_modules(0);

        let budget = Rc::new(Budget {
            deadline: Cell::new(Instant::now()),
            spent: Cell::new(0),
            current: Cell::new(0),
        });
        let b = budget.clone();
        engine.on_progress(move |ops| {
            b.current.set(ops);
            if b.spent.get() + ops > MAX_OPERATIONS {
                return Some("operations".into());
            }
            // Reading the clock costs about as much as a cheap operation; every 64th is enough
            // because no single operation on size-limited data takes long.
            if ops % 64 == 0 && Instant::now() >= b.deadline.get() {
                return Some("time".into());
            }
            None
        });

        let effects = Rc::new(Effects::default());
        host::register(&mut engine, &effects);
        let reads = Rc::new(Reads::default());
        reads::register(&mut engine, &reads, &effects);

        let mut known_functions: HashSet<String> = engine
            .collect_fn_metadata(None, |info| Some(info.metadata.name.to_string()), true)
            .into_iter()
            .collect();
        known_functions.extend(KEYWORD_FUNCTIONS.iter().map(|s| s.to_string()));

        Self {
            engine,
            effects,
            reads,
            budget,
            known_functions,
            cache: HashMap::new(),
            tick: 0,
        }
    }

    /// Compiles (or finds in the cache) a rule's condition and script.
    pub fn compile(
        &mut self,
        condition: Option<&str>,
        script: &str,
    ) -> Result<Rc<Compiled>, ScriptError> {
        let condition = condition.filter(|c| !c.trim().is_empty());
        let key = cache_key(condition, script);
        self.tick += 1;
        if let Some(entry) = self.cache.get_mut(&key) {
            if entry.condition.as_deref() == condition && entry.script == script {
                entry.last_used = self.tick;
                return Ok(entry.compiled.clone());
            }
        }
        let compiled = Rc::new(Compiled {
            condition: condition
                .map(|c| self.compile_part(c, Part::Condition))
                .transpose()?,
            script: self.compile_part(script, Part::Script)?,
        });
        if self.cache.len() >= CACHE_ENTRIES && !self.cache.contains_key(&key) {
            let oldest = self
                .cache
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.cache.remove(&oldest);
            }
        }
        self.cache.insert(
            key,
            CacheEntry {
                condition: condition.map(str::to_owned),
                script: script.to_owned(),
                compiled: compiled.clone(),
                last_used: self.tick,
            },
        );
        Ok(compiled)
    }

    /// Compiles the rule if needed, evaluates the condition and, when it holds, the script.
    /// `records` are those `get_record` may return (`<object>:<id>` -> record or null).
    pub fn evaluate(
        &mut self,
        condition: Option<&str>,
        script: &str,
        record: &Value,
        changes: Option<&Value>,
        context: &Value,
        records: &Value,
    ) -> Result<Outcome, ScriptError> {
        let compiled = self.compile(condition, script)?;
        let mut scope = Scope::new();
        scope.push_dynamic("record", to_dynamic(record));
        scope.push_dynamic("changes", changes.map(to_dynamic).unwrap_or_else(empty_map));
        scope.push_dynamic("context", to_dynamic(context));

        self.effects.reset();
        self.reads.reset(records);
        self.budget.start();
        if let Some(cond) = &compiled.condition {
            let value = match self.engine.eval_ast_with_scope::<Dynamic>(&mut scope, cond) {
                Ok(value) => value,
                Err(e) => return self.stopped(*e, Part::Condition),
            };
            self.budget.finish_phase();
            let matched = value.as_bool().map_err(|_| ScriptError {
                code: "runtime.condition_not_bool",
                message: format!(
                    "the condition returned a value of type '{}'; it must return true or false",
                    value.type_name()
                ),
                part: Some(Part::Condition),
                line: None,
                column: None,
            })?;
            if !matched {
                return Ok(Outcome {
                    matched: false,
                    effects: Vec::new(),
                    operations: self.budget.total(),
                    needs: None,
                });
            }
        }
        if let Err(e) = self.engine.run_ast_with_scope(&mut scope, &compiled.script) {
            return self.stopped(*e, Part::Script);
        }
        self.budget.finish_phase();
        Ok(Outcome {
            matched: true,
            effects: self.effects.take(),
            operations: self.budget.total(),
            needs: None,
        })
    }

    /// An evaluation that ended early: waiting for a record (`get_record`), or failed.
    fn stopped(&self, err: EvalAltResult, part: Part) -> Result<Outcome, ScriptError> {
        match self.reads.take_need() {
            Some(need) if waits_for_record(&err) => {
                self.effects.take();
                Ok(Outcome {
                    matched: false,
                    effects: Vec::new(),
                    operations: self.budget.total(),
                    needs: Some(need),
                })
            }
            _ => Err(self.runtime_error(err, part)),
        }
    }

    /// The variables every rule sees, with placeholder values, for strict-variable checks.
    fn compile_scope() -> Scope<'static> {
        let mut scope = Scope::new();
        for name in ["record", "changes", "context"] {
            scope.push_dynamic(name, empty_map());
        }
        scope
    }

    fn compile_part(&self, source: &str, part: Part) -> Result<AST, ScriptError> {
        if source.len() > MAX_SOURCE {
            return Err(ScriptError {
                code: "limit.source_size",
                message: format!(
                    "the {} is {} bytes long; at most {MAX_SOURCE} are allowed",
                    part.as_str(),
                    source.len()
                ),
                part: Some(part),
                line: None,
                column: None,
            });
        }
        let scope = Self::compile_scope();
        let ast = match part {
            Part::Condition => self.engine.compile_expression_with_scope(&scope, source),
            Part::Script => self.engine.compile_with_scope(&scope, source),
        }
        .map_err(|e| parse_error(e, part))?;
        self.check_calls(&ast, part)?;
        Ok(ast)
    }

    /// Refuses calls to functions that are neither built in, host API nor defined by the script,
    /// so a typo fails when the rule is saved, not when it runs. `Fn("eval")` is refused too.
    fn check_calls(&self, ast: &AST, part: Part) -> Result<(), ScriptError> {
        // A closure in a variable is called as `f.call(x)`; `f(x)` only reaches functions.
        let local: HashSet<&str> = ast.iter_functions().map(|f| f.name).collect();
        let mut problem: Option<ScriptError> = None;
        ast.walk(&mut |path: &[ASTNode]| {
            let call: Option<(&FnCallExpr, Position)> = match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(x, pos) | Expr::MethodCall(x, pos)))
                | Some(ASTNode::Stmt(Stmt::FnCall(x, pos))) => Some((x, *pos)),
                _ => None,
            };
            let Some((call, pos)) = call else {
                return true;
            };
            if call.is_operator_call() {
                return true;
            }
            let name = call.name.as_str();
            if part == Part::Condition && host::ACTIONS.contains(&name) {
                problem = Some(ScriptError::new(
                    "compile.action_in_condition",
                    format!("the condition may not call {name}(); call it from the script"),
                    part,
                    pos,
                ));
                return false;
            }
            if name == "Fn"
                && call
                    .args
                    .first()
                    .and_then(|a| a.get_literal_value(None))
                    .is_some_and(|v| v.into_immutable_string().is_ok_and(|s| s == "eval"))
            {
                problem = Some(ScriptError::new(
                    "compile.eval_forbidden",
                    "eval is not available in rules",
                    part,
                    pos,
                ));
                return false;
            }
            if call.is_qualified() || !(self.known_functions.contains(name) || local.contains(name))
            {
                problem = Some(ScriptError::new(
                    "compile.unknown_function",
                    format!(
                        "there is no function named '{name}'; rules may call the built-in \
                         functions, the host API ({}) and functions they define (a closure in a \
                         variable is called as f.call(..))",
                        host::ACTIONS.join(", ")
                    ),
                    part,
                    pos,
                ));
                return false;
            }
            true
        });
        problem.map_or(Ok(()), Err)
    }

    /// Maps a rhai run-time error to a code; limits keep their own codes.
    fn runtime_error(&self, mut err: EvalAltResult, part: Part) -> ScriptError {
        // An error inside a script function arrives wrapped once per call level.
        while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = err {
            err = *inner;
        }
        let pos = err.position();
        let code = match &err {
            EvalAltResult::ErrorTerminated(token, _) => {
                let token = token.to_string();
                if token == HOST_TOKEN {
                    if let Some(h) = self.effects.take_error() {
                        return ScriptError::new(h.code, h.message, part, h.position);
                    }
                }
                if token == "time" {
                    let message = format!(
                        "the rule ran for more than {} ms and was stopped",
                        TIME_LIMIT.as_millis()
                    );
                    return ScriptError::new("limit.time", message, part, pos);
                }
                "limit.operations"
            }
            EvalAltResult::ErrorTooManyOperations(_) => "limit.operations",
            EvalAltResult::ErrorStackOverflow(_) => {
                let message = format!(
                    "function calls nested more than {MAX_CALL_LEVELS} levels deep (runaway recursion?)"
                );
                return ScriptError::new("limit.call_depth", message, part, pos);
            }
            EvalAltResult::ErrorDataTooLarge(what, _) => {
                let (code, message) = if what.contains("string") {
                    (
                        "limit.string_size",
                        format!("a string grew beyond {MAX_STRING_SIZE} bytes"),
                    )
                } else if what.contains("map") {
                    (
                        "limit.array_size",
                        format!("a map grew beyond {MAX_ITEMS} entries"),
                    )
                } else {
                    (
                        "limit.array_size",
                        format!("an array grew beyond {MAX_ITEMS} items"),
                    )
                };
                return ScriptError::new(code, message, part, pos);
            }
            _ => "runtime.error",
        };
        if code == "limit.operations" {
            let message = format!("the rule performed more than {MAX_OPERATIONS} operations");
            return ScriptError::new(code, message, part, pos);
        }
        err.clear_position();
        ScriptError::new(code, err.to_string(), part, pos)
    }
}

/// Whether `get_record` stopped the evaluation (perhaps inside a script function).
fn waits_for_record(err: &EvalAltResult) -> bool {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => waits_for_record(inner),
        EvalAltResult::ErrorTerminated(token, _) => token.to_string() == READ_TOKEN,
        _ => false,
    }
}

fn empty_map() -> Dynamic {
    Dynamic::from_map(Map::new())
}

fn cache_key(condition: Option<&str>, script: &str) -> u64 {
    let mut h = DefaultHasher::new();
    condition.hash(&mut h);
    script.hash(&mut h);
    h.finish()
}

fn parse_error(err: ParseError, part: Part) -> ScriptError {
    let ParseError(kind, pos) = err;
    let (code, message) = match &*kind {
        ParseErrorType::BadInput(LexError::ImproperSymbol(symbol, _)) if symbol == "eval" => (
            "compile.eval_forbidden",
            "eval is not available in rules".to_owned(),
        ),
        ParseErrorType::Reserved(symbol) if symbol == "import" || symbol == "export" => (
            "compile.import_forbidden",
            "rules cannot import or export modules".to_owned(),
        ),
        ParseErrorType::TooManyFunctions => (
            "limit.functions",
            format!("a script may define at most {MAX_FUNCTIONS} functions (closures count too)"),
        ),
        ParseErrorType::ExprTooDeep => (
            "limit.expr_depth",
            "the expression is nested too deeply".to_owned(),
        ),
        ParseErrorType::VariableUndefined(name) => (
            "compile.unknown_variable",
            format!("there is no variable named '{name}'; rules see record, changes and context"),
        ),
        ParseErrorType::LiteralTooLarge(..) => ("limit.string_size", kind.to_string()),
        _ => ("compile.syntax", kind.to_string()),
    };
    ScriptError::new(code, message, part, pos)
}
