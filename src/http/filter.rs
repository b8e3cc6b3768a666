//! The metadata filter language of search requests, in ChromaDB's style:
//!
//! ```json
//! {"source_url": "https://docs.example/a"}                       equality
//! {"fetched_at": {"$gte": 1767225600}, "title": {"$ne": "Index"}}  several keys: all must hold
//! {"$and": [{"source_url": {"$in": ["https://a", "https://b"]}}, {"chunk_index": {"$lt": 3}}]}
//! ```
//!
//! Fields: source_url, title, heading, content_hash, crawl_id (text); chunk_index, fetched_at
//! (numbers). Operators: `$eq $ne $in $nin` on any field, `$gt $gte $lt $lte` on numbers.

use aurora_actors::ports::{Condition, Field, Filter, FilterValue};
use serde_json::{Value, json};

use super::error::ApiError;

/// This language as a JSON Schema (`Filter`), for the OpenAPI documents; kept beside the parser
/// so the two change together.
pub fn schema() -> Value {
    let text_ops = json!({
        "$eq": {"type": "string"}, "$ne": {"type": "string"},
        "$in": {"type": "array", "items": {"type": "string"}},
        "$nin": {"type": "array", "items": {"type": "string"}},
    });
    let number_ops = json!({
        "$eq": {"type": "integer"}, "$ne": {"type": "integer"},
        "$in": {"type": "array", "items": {"type": "integer"}},
        "$nin": {"type": "array", "items": {"type": "integer"}},
        "$gt": {"type": "integer"}, "$gte": {"type": "integer"},
        "$lt": {"type": "integer"}, "$lte": {"type": "integer"},
    });
    let condition = |scalar: &str, ops: &Value| {
        json!({"oneOf": [
            {"type": scalar},
            {"type": "object", "properties": ops, "additionalProperties": false, "minProperties": 1},
        ]})
    };
    let mut properties = serde_json::Map::new();
    for field in Field::ALL {
        let rule = match field.is_numeric() {
            true => condition("integer", &number_ops),
            false => condition("string", &text_ops),
        };
        properties.insert(field.key().to_string(), rule);
    }
    properties.insert(
        "$and".to_string(),
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Filter"}}),
    );
    json!({"type": "object", "properties": properties, "additionalProperties": false})
}

pub fn parse(value: &Value) -> Result<Filter, ApiError> {
    let mut filter = Filter::default();
    collect(value, &mut filter)?;
    Ok(filter)
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidRequest(format!("`filter`: {message}"))
}

fn collect(value: &Value, filter: &mut Filter) -> Result<(), ApiError> {
    let Value::Object(object) = value else {
        return Err(invalid(format!("expected an object, got {value}")));
    };
    for (key, condition) in object {
        if key == "$and" {
            let Value::Array(parts) = condition else {
                return Err(invalid("`$and` takes an array of filters".into()));
            };
            for part in parts {
                collect(part, filter)?;
            }
            continue;
        }
        let field = Field::from_key(key).ok_or_else(|| {
            let known: Vec<&str> = Field::ALL.iter().map(|f| f.key()).collect();
            invalid(format!(
                "unknown field `{key}` (filterable: {})",
                known.join(", ")
            ))
        })?;
        match condition {
            Value::Object(ops) => {
                if ops.is_empty() {
                    return Err(invalid(format!("`{key}` has no operator")));
                }
                for (op, operand) in ops {
                    filter.all.push(operator(field, op, operand)?);
                }
            }
            scalar => filter
                .all
                .push(Condition::Eq(field, scalar_value(field, scalar)?)),
        }
    }
    Ok(())
}

fn operator(field: Field, op: &str, operand: &Value) -> Result<Condition, ApiError> {
    let number = || {
        if !field.is_numeric() {
            return Err(invalid(format!(
                "`{op}` applies to numbers; `{}` is text",
                field.key()
            )));
        }
        operand
            .as_i64()
            .ok_or_else(|| invalid(format!("`{op}` on `{}` needs an integer", field.key())))
    };
    let list = || match operand {
        Value::Array(items) => items.iter().map(|v| scalar_value(field, v)).collect(),
        _ => Err(invalid(format!("`{op}` needs an array"))),
    };
    Ok(match op {
        "$eq" => Condition::Eq(field, scalar_value(field, operand)?),
        "$ne" => Condition::Ne(field, scalar_value(field, operand)?),
        "$in" => Condition::In(field, list()?),
        "$nin" => Condition::NotIn(field, list()?),
        "$gt" => Condition::Gt(field, number()?),
        "$gte" => Condition::Gte(field, number()?),
        "$lt" => Condition::Lt(field, number()?),
        "$lte" => Condition::Lte(field, number()?),
        other => {
            return Err(invalid(format!(
                "unknown operator `{other}` (use $eq $ne $in $nin $gt $gte $lt $lte)"
            )));
        }
    })
}

fn scalar_value(field: Field, value: &Value) -> Result<FilterValue, ApiError> {
    match (field.is_numeric(), value) {
        (true, Value::Number(n)) => n
            .as_i64()
            .map(FilterValue::Number)
            .ok_or_else(|| invalid(format!("`{}` needs an integer", field.key()))),
        (false, Value::String(s)) => Ok(FilterValue::Text(s.clone())),
        (true, other) => Err(invalid(format!(
            "`{}` needs a number, got {other}",
            field.key()
        ))),
        (false, other) => Err(invalid(format!(
            "`{}` needs a string, got {other}",
            field.key()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_equality_operators_and_and() {
        let filter = parse(&json!({
            "source_url": "https://a",
            "$and": [{"chunk_index": {"$lt": 3, "$gte": 1}}, {"title": {"$in": ["x", "y"]}}]
        }))
        .unwrap();
        assert_eq!(filter.all.len(), 4);
        assert!(filter.all.contains(&Condition::Lt(Field::ChunkIndex, 3)));
        assert!(filter.all.contains(&Condition::Eq(
            Field::SourceUrl,
            FilterValue::Text("https://a".into())
        )));
        assert_eq!(parse(&json!({})).unwrap(), Filter::default());
    }

    #[test]
    fn explains_what_is_wrong() {
        for (value, says) in [
            (json!("source_url"), "expected an object"),
            (json!({"author": "x"}), "unknown field `author`"),
            (json!({"title": {"$like": "x"}}), "unknown operator `$like`"),
            (json!({"title": {"$gt": 3}}), "applies to numbers"),
            (json!({"fetched_at": "yesterday"}), "needs a number"),
            (json!({"title": 3}), "needs a string"),
            (json!({"title": {"$in": "x"}}), "needs an array"),
            (json!({"title": {}}), "has no operator"),
            (json!({"$and": {"title": "x"}}), "takes an array"),
        ] {
            let err = parse(&value).unwrap_err().to_string();
            assert!(err.contains(says), "{value}: {err}");
        }
    }
}
