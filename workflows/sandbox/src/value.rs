//! JSON <-> rhai values. Hand-written rather than rhai's serde support so that every value a
//! script hands back is checked here: functions, ranges and non-finite floats are refused with a
//! message instead of turning into something the server would have to guess about.

use rhai::{Array, Dynamic, Map};
use serde_json::{Map as JsonMap, Number, Value};

/// Converts request JSON (record, changes, context) into a rhai value.
pub fn to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            // u64 above i64::MAX and fractions: a float is the closest rhai has.
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect::<Array>()),
        Value::Object(fields) => Dynamic::from_map(
            fields
                .iter()
                .map(|(k, v)| (k.as_str().into(), to_dynamic(v)))
                .collect::<Map>(),
        ),
    }
}

/// How deeply arrays and maps handed to the host API may nest. The conversion recurses, and a
/// script could otherwise build a structure deep enough to exhaust the native stack.
pub const MAX_DEPTH: usize = 32;

/// Converts a value produced by a script into JSON, or says why it cannot be.
pub fn to_json(value: &Dynamic) -> Result<Value, String> {
    to_json_at(value, 0)
}

fn to_json_at(value: &Dynamic, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "the value nests arrays or maps deeper than {MAX_DEPTH} levels"
        ));
    }
    let value = value.flatten_clone();
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(f) = value.as_float() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("the number {f} is not finite and cannot be stored"));
    }
    if let Ok(d) = value.as_decimal() {
        // JSON has one number type; the decimal's exact text is the most faithful spelling.
        return d
            .to_string()
            .parse::<Number>()
            .map(Value::Number)
            .map_err(|_| format!("the decimal {d} cannot be written as a JSON number"));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if value.is_string() {
        return Ok(Value::String(
            value
                .into_immutable_string()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ));
    }
    if value.is_array() {
        let items = value.into_array().unwrap_or_default();
        return items
            .iter()
            .map(|v| to_json_at(v, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if value.is_map() {
        let map = value.cast::<Map>();
        let mut out = JsonMap::with_capacity(map.len());
        for (k, v) in &map {
            out.insert(k.to_string(), to_json_at(v, depth + 1)?);
        }
        return Ok(Value::Object(out));
    }
    Err(format!(
        "a value of type '{}' cannot be stored; use a string, number, bool, array or map",
        value.type_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips() {
        let v = json!({"a": 1, "b": [true, null, "x", 2.5], "c": {"d": -3}});
        assert_eq!(to_json(&to_dynamic(&v)).unwrap(), v);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut v = Dynamic::from_array(Array::new());
        for _ in 0..=MAX_DEPTH {
            v = Dynamic::from_array(vec![v]);
        }
        assert!(to_json(&v).unwrap_err().contains("deeper than"));
    }

    #[test]
    fn non_finite_floats_are_refused() {
        assert!(to_json(&Dynamic::from_float(f64::INFINITY)).is_err());
    }
}
