//! Reading a JSON request body: size-capped while streaming (chunked bodies too), content type
//! checked, and parsed strictly — syntax errors carry line and column, type errors name the
//! field path, and every unknown field is listed.

use bytes::{Buf, BufMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use warp::{Filter, Rejection};

use super::error::ApiError;

/// Extracts a `T` from the body, or rejects with an [`ApiError`].
pub fn body<T>(limit: u64) -> impl Filter<Extract = (T,), Error = Rejection> + Clone
where
    T: DeserializeOwned + Send + 'static,
{
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(
            move |content_type: Option<String>, length: Option<u64>, stream| async move {
                let bytes = read_capped(content_type, length, stream, limit)
                    .await
                    .map_err(warp::reject::custom)?;
                parse_strict::<T>(&bytes).map_err(warp::reject::custom)
            },
        )
}

async fn read_capped<S, B>(
    content_type: Option<String>,
    length: Option<u64>,
    stream: S,
    limit: u64,
) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    check_content_type(content_type.as_deref())?;
    // Refuse early when the client says how big it is; still count, for chunked bodies.
    if length.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut stream = std::pin::pin!(stream);
    let mut bytes = Vec::with_capacity(length.unwrap_or(0).min(limit) as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::InvalidRequest(format!("could not read the request body: {e}"))
        })?;
        if bytes.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        bytes.put(chunk);
    }
    Ok(bytes)
}

/// JSON, or what plain clients send by default without saying JSON (`curl -d` labels its body
/// `application/x-www-form-urlencoded`); the body must parse as JSON either way. Other formats
/// (multipart forms, XML…) are refused.
fn check_content_type(content_type: Option<&str>) -> Result<(), ApiError> {
    let Some(content_type) = content_type else {
        return Ok(());
    };
    let mime = aurora_actors::model::media_type(content_type);
    let acceptable = mime == "application/json"
        || mime.ends_with("+json")
        || mime == "text/plain"
        || mime == "application/x-www-form-urlencoded";
    match acceptable {
        true => Ok(()),
        false => Err(ApiError::UnsupportedMediaType {
            given: mime,
            expected: "application/json",
        }),
    }
}

/// Parses `bytes` as a `T`, rejecting unknown fields (all of them, by path).
pub fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::InvalidRequest(
                "the request body is empty: send a JSON object".to_string(),
            ));
        }
        // Arrays, strings, numbers: valid JSON, wrong shape — say so plainly.
        Some(b'[' | b'"' | b'0'..=b'9' | b'-' | b't' | b'f' | b'n') => {
            return Err(ApiError::InvalidRequest(
                "the request body must be a JSON object".to_string(),
            ));
        }
        Some(_) => {}
    }
    let mut unknown = Vec::new();
    // serde_ignored writes `?` for an Option level; users never see those.
    let mut record_unknown = |path: serde_ignored::Path<'_>| {
        unknown.push(format!(
            "`{}`",
            path.to_string().replace("?.", "").replace(".?", "")
        ));
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        &mut deserializer,
        &mut record_unknown,
    ));
    let value = parsed.map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            Category::Syntax | Category::Eof => ApiError::MalformedJson(inner.to_string()),
            Category::Data | Category::Io if path == "." => {
                ApiError::InvalidRequest(inner.to_string())
            }
            Category::Data | Category::Io => ApiError::InvalidRequest(format!("`{path}`: {inner}")),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    match unknown.len() {
        0 => Ok(value),
        1 => Err(ApiError::InvalidRequest(format!(
            "unknown field {}",
            unknown[0]
        ))),
        _ => Err(ApiError::InvalidRequest(format!(
            "unknown fields {}",
            unknown.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Req {
        url: String,
        #[serde(default)]
        n: u32,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        a: bool,
    }

    fn err(body: &str) -> String {
        parse_strict::<Req>(body.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn syntax_errors_have_a_position() {
        assert_eq!(
            err("{\"url\": }"),
            "malformed JSON: expected value at line 1 column 9"
        );
        assert!(err("{\"url\": \"x\"").starts_with("malformed JSON: EOF"));
        assert!(err("{\"url\": \"x\"} trailing").contains("trailing characters"));
    }

    #[test]
    fn type_errors_name_the_field() {
        let e = err(r#"{"url": "x", "n": "five"}"#);
        assert!(
            e.starts_with("`n`: invalid type: string \"five\", expected u32"),
            "{e}"
        );
        let e = err(r#"{"url": "x", "inner": {"a": 1}}"#);
        assert!(e.starts_with("`inner.a`: invalid type"), "{e}");
        assert!(err("{}").contains("missing field `url`"));
        assert_eq!(err("[]"), "the request body must be a JSON object");
        assert_eq!(err("null"), "the request body must be a JSON object");
    }

    #[test]
    fn every_unknown_field_is_listed() {
        assert_eq!(
            err(r#"{"url": "x", "foo": 1, "inner": {"a": true, "bar": 2}}"#),
            "unknown fields `foo`, `inner.bar`"
        );
        assert_eq!(err(r#"{"url": "x", "foo": 1}"#), "unknown field `foo`");
    }

    #[test]
    fn empty_body() {
        assert!(err("  ").contains("empty"));
    }
}
