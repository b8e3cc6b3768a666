//! The OpenAPI documents as served at `/openapi.json`: what utoipa derives from the types, plus
//! what the handlers enforce on top of the types, so that a generated client sends what the
//! server accepts.
//!
//! utoipa's attributes take literals, but most of Aurora's limits come from settings (`k` up to
//! `search.max_k`, passwords of `auth.min_password_chars`) or from the one function that also
//! enforces them (collection names). So each constraint is stated here, from the same constant
//! or [`Limits`] field the handler checks against, and added to the derived document when the
//! listener is built. A constraint whose property is missing (a field renamed) is logged, and
//! the unit tests below fail on it.
//!
//! Every JSON body is parsed strictly (`json::parse_strict`: unknown keys are a 400), so each
//! object schema reachable from a request body is closed (`additionalProperties: false`).
//! What no schema can say stays in the handlers' 400s: a relation between two fields
//! (`wait_for_ms` below the timeout), "at least one user message".

use serde_json::{Value, json};

use super::Limits;
use super::core::{openai, query, search};
use super::crawler::{crawl_v1, firecrawl_v1, map_v1};
use aurora_actors::ports::{COLLECTION_NAME_MAX, COLLECTION_NAME_MIN, COLLECTION_NAME_PATTERN};
use aurora_actors::session::{API_KEY_NAME_MAX_CHARS, MAX_PASSWORD_CHARS, USERNAME_PATTERN};

/// At least one character that is not whitespace (handlers trim before checking emptiness).
const NOT_BLANK: &str = r"\S";

/// A page to scrape, stricter than `scrape_input::target_url` (which also takes odd hosts and
/// any path): `http(s)://` or a bare host with a dot, an optional port, a plain path.
const HOST_AND_PATH: &str = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?::[1-9][0-9]{0,3})?(?:/[A-Za-z0-9._~/-]*)?$";

/// An absolute URL of any scheme (a document's address).
const ABSOLUTE_URL: &str =
    r"^[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?:/[A-Za-z0-9._~/-]*)?$";

/// CSS selectors of the simplest kinds (a tag, `.class`, `#id`); the handler takes any valid
/// selector, which no regular expression describes.
const SIMPLE_SELECTOR: &str = r"^(?:[A-Za-z][A-Za-z0-9-]*|[.#][A-Za-z_][A-Za-z0-9_-]*)$";

/// A header name (an HTTP token) and a header value (visible ASCII, spaces and tabs).
const HEADER_NAME: &str = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const HEADER_VALUE: &str = r"^[\t\x20-\x7e]*$";

/// Firecrawl formats Aurora refuses (they need a language model or a page cache).
const REFUSED_FORMATS: [&str; 3] = ["extract", "json", "changeTracking"];

/// A role's names, as the session pool parses them.
const ROLES: [&str; 3] = ["reader", "editor", "admin"];

/// A derived document being completed; `missing` names constraints that found no target.
pub struct Document {
    json: Value,
    missing: Vec<String>,
}

impl Document {
    pub fn new(api: &utoipa::openapi::OpenApi) -> Self {
        let json = serde_json::to_value(api).unwrap_or_else(|e| json!({ "error": e.to_string() }));
        let mut document = Self {
            json,
            missing: Vec::new(),
        };
        document.close_request_bodies();
        document
    }

    /// Adds `rules` (`minimum`, `pattern`, …) to property `property` of schema `schema`.
    fn property(&mut self, schema: &str, property: &str, rules: Value) -> &mut Self {
        let target = self.json["components"]["schemas"][schema]["properties"].get_mut(property);
        merge(
            target,
            rules,
            || format!("{schema}.{property}"),
            &mut self.missing,
        );
        self
    }

    /// Adds `rules` to the items of array property `property` of schema `schema`.
    fn items(&mut self, schema: &str, property: &str, rules: Value) -> &mut Self {
        let target = self.json["components"]["schemas"][schema]["properties"]
            .get_mut(property)
            .and_then(|p| p.get_mut("items"));
        merge(
            target,
            rules,
            || format!("{schema}.{property}[]"),
            &mut self.missing,
        );
        self
    }

    /// Replaces property `property` of schema `schema` with `schema_of`: for a type the derive
    /// shows as a free-form object (an untagged enum).
    fn replace(&mut self, schema: &str, property: &str, schema_of: Value) -> &mut Self {
        match self.json["components"]["schemas"][schema]["properties"].get_mut(property) {
            Some(target) => {
                let description = target.get("description").cloned();
                *target = schema_of;
                if let (Some(description), Some(fields)) = (description, target.as_object_mut()) {
                    fields.insert("description".to_string(), description);
                }
            }
            None => self.missing.push(format!("{schema}.{property}")),
        }
        self
    }

    /// Copies the properties of schema `from` (but `except`) into schema `into`: a body that
    /// takes another's keys at its top level.
    fn inherit(&mut self, into: &str, from: &str, except: &[&str]) -> &mut Self {
        let schemas = &mut self.json["components"]["schemas"];
        let inherited: Vec<(String, Value)> = schemas[from]["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| !except.contains(&name.as_str()))
            .map(|(name, schema)| (name.clone(), schema.clone()))
            .collect();
        match schemas[into]["properties"].as_object_mut() {
            Some(properties) if !inherited.is_empty() => properties.extend(inherited),
            _ => self.missing.push(format!("{into} ← {from}")),
        }
        self
    }

    /// Makes `fields` required in the JSON body of `method path` (a schema shared with a place
    /// where they are optional).
    fn require(&mut self, path: &str, method: &str, fields: &[&str]) -> &mut Self {
        let pointer = format!(
            "/paths/{}/{method}/requestBody/content/application~1json/schema",
            path.replace('~', "~0").replace('/', "~1")
        );
        match self.json.pointer_mut(&pointer) {
            Some(schema) => {
                let shared = schema.clone();
                *schema = json!({ "allOf": [shared, { "required": fields }] });
            }
            None => self.missing.push(format!("{method} {path}")),
        }
        self
    }

    /// Adds component schema `name` (one that no Rust type derives).
    fn add_schema(&mut self, name: &str, schema: Value) -> &mut Self {
        match self.json["components"]["schemas"].as_object_mut() {
            Some(schemas) => {
                schemas.insert(name.to_string(), schema);
            }
            None => self.missing.push(format!("components ← {name}")),
        }
        self
    }

    /// Property `property` of schema `schema` may not hold key `field` (a shared schema where
    /// that key is set elsewhere).
    fn forbid(&mut self, schema: &str, property: &str, field: &str) -> &mut Self {
        match self.json["components"]["schemas"][schema]["properties"].get_mut(property) {
            Some(target) => {
                let shared = target.clone();
                *target = json!({ "allOf": [shared, { "not": { "required": [field] } }] });
            }
            None => self.missing.push(format!("{schema}.{property}")),
        }
        self
    }

    /// Removes `refused` from the values of enum schema `schema`.
    fn without(&mut self, schema: &str, refused: &[&str]) -> &mut Self {
        match self.json["components"]["schemas"][schema]["enum"].as_array_mut() {
            Some(values) => values.retain(|v| !v.as_str().is_some_and(|v| refused.contains(&v))),
            None => self.missing.push(format!("{schema} (enum)")),
        }
        self
    }

    /// Adds `rules` to the schema of parameter `name` of every operation on paths starting with
    /// `prefix` that has one.
    fn parameter(&mut self, prefix: &str, name: &str, rules: Value) -> &mut Self {
        let mut found = false;
        for (path, item) in self.paths_mut() {
            if !path.starts_with(prefix) {
                continue;
            }
            for operation in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                let parameters = operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut);
                for parameter in parameters.into_iter().flatten() {
                    if parameter["name"] == name {
                        found = true;
                        let mut ignored = Vec::new();
                        merge(
                            parameter.get_mut("schema"),
                            rules.clone(),
                            String::new,
                            &mut ignored,
                        );
                    }
                }
            }
        }
        if !found {
            self.missing.push(format!("{prefix}… parameter {name}"));
        }
        self
    }

    fn paths_mut(&mut self) -> impl Iterator<Item = (&String, &mut Value)> {
        self.json
            .get_mut("paths")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|paths| paths.iter_mut())
    }

    /// Closes every object schema a JSON request body reaches (through `$ref`, properties,
    /// items and alternatives); free-form objects (no `properties`) stay open.
    fn close_request_bodies(&mut self) {
        let mut roots = Vec::new();
        for (_, item) in self.paths_mut() {
            for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
                if let Some(schema) =
                    operation.pointer("/requestBody/content/application~1json/schema")
                {
                    roots.push(schema.clone());
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut pending = roots;
        while let Some(mut schema) = pending.pop() {
            if let Some(name) = schema["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .map(str::to_string)
            {
                if !seen.insert(name.clone()) {
                    continue;
                }
                let Some(component) = self.json["components"]["schemas"].get_mut(&name) else {
                    continue;
                };
                close(component);
                schema = component.clone();
            } else {
                close(&mut schema);
            }
            pending.extend(children(&schema));
        }
    }

    /// The document as served, and the constraints that found no target.
    pub fn finish(self) -> (String, Vec<String>) {
        let text = serde_json::to_string_pretty(&self.json)
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        (text, self.missing)
    }
}

/// `additionalProperties: false` on an object schema with properties and no say of its own.
fn close(schema: &mut Value) {
    if let Some(fields) = schema.as_object_mut()
        && fields.contains_key("properties")
        && !fields.contains_key("additionalProperties")
    {
        fields.insert("additionalProperties".to_string(), Value::Bool(false));
    }
}

/// The schemas nested in `schema`: its properties, items and alternatives.
fn children(schema: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(properties) = schema["properties"].as_object() {
        out.extend(properties.values().cloned());
    }
    if schema["items"].is_object() {
        out.push(schema["items"].clone());
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        out.extend(schema[key].as_array().into_iter().flatten().cloned());
    }
    out
}

fn merge(
    target: Option<&mut Value>,
    rules: Value,
    name: impl FnOnce() -> String,
    missing: &mut Vec<String>,
) {
    match (target.and_then(Value::as_object_mut), rules) {
        (Some(fields), Value::Object(rules)) => fields.extend(rules),
        _ => missing.push(name()),
    }
}

fn target_url() -> Value {
    json!({ "type": "string", "pattern": format!("^(?:https?://)?{HOST_AND_PATH}") })
}

/// A map of headers sent to a target or a receiver.
fn headers() -> Value {
    json!({
        "type": "object",
        "propertyNames": { "pattern": HEADER_NAME },
        "additionalProperties": { "type": "string", "pattern": HEADER_VALUE },
    })
}

fn selector() -> Value {
    json!({ "pattern": SIMPLE_SELECTOR })
}

fn http_url() -> Value {
    json!({ "type": "string", "pattern": format!("^https?://{HOST_AND_PATH}") })
}

fn between(min: impl Into<Value>, max: impl Into<Value>) -> Value {
    json!({ "minimum": min.into(), "maximum": max.into() })
}

fn text(min: usize, max: usize) -> Value {
    json!({ "minLength": min, "maxLength": max, "pattern": NOT_BLANK })
}

/// `values`, or null (an optional field may be sent as `null`).
fn one_of_or_null(values: &[&str]) -> Value {
    let mut list: Vec<Value> = values.iter().map(|v| Value::from(*v)).collect();
    list.push(Value::Null);
    json!({ "enum": list })
}

fn collection_name() -> Value {
    json!({
        "type": "string",
        "minLength": COLLECTION_NAME_MIN,
        "maxLength": COLLECTION_NAME_MAX,
        "pattern": COLLECTION_NAME_PATTERN,
    })
}

fn password(limits: &Limits) -> Value {
    json!({ "minLength": limits.min_password_chars, "maxLength": MAX_PASSWORD_CHARS })
}

fn timeout_ms(limits: &Limits) -> Value {
    between(1, limits.max_timeout.as_millis() as u64)
}

/// The core port's document.
pub fn core(api: &utoipa::openapi::OpenApi, limits: &Limits) -> Document {
    let render = one_of_or_null(&["auto", "always", "never"]);
    let mut doc = Document::new(api);
    // Accounts and keys.
    doc.property("LoginBody", "username", json!({ "minLength": 1 }))
        .property(
            "NewUser",
            "username",
            json!({ "pattern": USERNAME_PATTERN }),
        )
        .property("NewUser", "password", password(limits))
        .property("NewUser", "role", one_of_or_null(&ROLES))
        .property("UserPatch", "password", password(limits))
        .property("UserPatch", "role", one_of_or_null(&ROLES))
        .property("PasswordBody", "new_password", password(limits))
        .property("NewKey", "name", text(1, API_KEY_NAME_MAX_CHARS))
        .property("NewKey", "role", one_of_or_null(&ROLES))
        .property("NewKey", "expires_in_secs", json!({ "minimum": 1 }));
    // Collections and documents.
    let documents = json!({ "minItems": 1, "maxItems": limits.max_documents });
    doc.property("NewCollection", "name", collection_name())
        .property("DocumentsBody", "documents", documents)
        .property("DocumentBody", "url", json!({ "pattern": ABSOLUTE_URL }))
        .parameter("/v1/collections/{name}", "name", collection_name());
    // Search and answers.
    doc.add_schema("Filter", super::filter::schema())
        .replace(
            "SearchBody",
            "filter",
            json!({ "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/Filter" }] }),
        )
        .replace(
            "QueryBody",
            "filter",
            json!({ "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/Filter" }] }),
        );
    doc.property("SearchBody", "query", text(1, search::MAX_QUERY_CHARS))
        .property("SearchBody", "k", between(1, limits.max_k))
        .property("SearchBody", "collection", collection_name())
        .property("QueryBody", "question", text(1, limits.max_question_chars))
        .property("QueryBody", "k", between(1, limits.answer_max_k))
        .property("QueryBody", "temperature", between(0, 2))
        .property("QueryBody", "collection", collection_name())
        .property("QueryBody", "urls", json!({ "maxItems": query::MAX_URLS }))
        .items("QueryBody", "urls", target_url())
        .property(
            "QueryBody",
            "history",
            json!({ "maxItems": query::MAX_HISTORY }),
        )
        .items(
            "QueryBody",
            "history",
            json!({ "maxLength": limits.max_question_chars }),
        )
        .property("QueryBody", "render", render.clone());
    // The chat model answers the last user message.
    let messages = json!({
        "minItems": 1,
        "maxItems": openai::MAX_MESSAGES,
        "contains": {
            "type": "object",
            "properties": {
                "role": { "const": "user" },
                "content": { "oneOf": [
                    { "type": "string", "pattern": NOT_BLANK, "maxLength": limits.max_question_chars },
                    { "type": "array", "minItems": 1 },
                ] },
            },
            "required": ["role", "content"],
        },
    });
    doc.property("ChatRequest", "messages", messages)
        .property(
            "ChatRequest",
            "model",
            json!({ "pattern": openai::MODEL_PATTERN }),
        )
        .property("ChatRequest", "n", between(1, 1))
        .property("ChatRequest", "temperature", between(0, 2))
        .property("ChatMessage", "role", json!({ "enum": openai::ROLES }))
        .replace(
            "ChatMessage",
            "content",
            json!({ "type": ["string", "array", "null"] }),
        )
        .property("ChatRequest", "tools", json!({ "type": "null" }))
        .replace(
            "ChatRequest",
            "response_format",
            json!({ "oneOf": [
                { "type": "null" },
                { "type": "object", "properties": { "type": { "const": "text" } }, "required": ["type"] },
            ] }),
        );
    // Deep-dive scrape.
    doc.property("ScrapeBody", "url", target_url())
        .replace("ScrapeBody", "headers", headers())
        .items("ScrapeBody", "include_tags", selector())
        .items("ScrapeBody", "exclude_tags", selector())
        .property("ScrapeBody", "formats", json!({ "minItems": 1 }))
        .property("ScrapeBody", "timeout_ms", timeout_ms(limits))
        .property("ScrapeBody", "render", render)
        .property("IngestTarget", "collection", collection_name());
    doc
}

/// The crawler port's document.
pub fn crawler(api: &utoipa::openapi::OpenApi, limits: &Limits) -> Document {
    let ingest = json!({
        "oneOf": [
            { "type": "null" },
            { "type": "boolean", "enum": [false] },
            {
                "type": "object",
                "properties": { "collection": collection_name() },
                "required": ["collection"],
                "additionalProperties": false,
            },
        ],
    });
    let mut doc = Document::new(api);
    doc.without("Format", &REFUSED_FORMATS);
    // Scrape options, also a crawl's `scrapeOptions` and a batch's top level.
    doc.property("ScrapeRequest", "url", target_url())
        .property("ScrapeRequest", "formats", json!({ "minItems": 1 }))
        .property("ScrapeRequest", "timeout", timeout_ms(limits))
        .property("ScrapeRequest", "waitFor", json!({ "maximum": 30_000 }))
        .property(
            "ScrapeRequest",
            "render",
            one_of_or_null(&["auto", "always", "never"]),
        )
        .property("ScrapeRequest", "proxy", one_of_or_null(&["basic", "auto"]))
        .replace("ScrapeRequest", "headers", headers())
        .property(
            "ScrapeRequest",
            "actions",
            json!({ "maxItems": firecrawl_v1::MAX_ACTIONS }),
        )
        .items(
            "ScrapeRequest",
            "actions",
            json!({
                "properties": { "type": { "enum": firecrawl_v1::ACTION_KINDS } },
                "required": ["type"],
            }),
        )
        .items("ScrapeRequest", "includeTags", selector())
        .items("ScrapeRequest", "excludeTags", selector())
        .property("ScrapeRequest", "extract", json!({ "type": "null" }))
        .property("ScrapeRequest", "jsonOptions", json!({ "type": "null" }))
        .property(
            "ScrapeRequest",
            "changeTrackingOptions",
            json!({ "type": "null" }),
        )
        .require("/v1/scrape", "post", &["url"])
        .require("/v2/scrape", "post", &["url"]);
    doc.property("CrawlRequest", "url", target_url())
        .property("CrawlRequest", "limit", between(1, limits.crawl_max_limit))
        .property("CrawlRequest", "delay", between(0, 60))
        .property("CrawlRequest", "maxConcurrency", json!({ "minimum": 1 }))
        .property("CrawlRequest", "maxDepth", json!({ "minimum": 0 }))
        .property("CrawlRequest", "maxDiscoveryDepth", json!({ "minimum": 0 }))
        .replace("CrawlRequest", "ingest", ingest.clone())
        .replace(
            "CrawlRequest",
            "webhook",
            crawl_v1::webhook_schema(http_url(), headers()),
        )
        .forbid("CrawlRequest", "scrapeOptions", "url");
    // After the scrape options have their constraints: the batch body takes them as they are.
    doc.inherit("BatchRequest", "ScrapeRequest", &["url"])
        .property(
            "BatchRequest",
            "urls",
            json!({ "minItems": 1, "maxItems": limits.crawl_max_limit }),
        )
        .property("BatchRequest", "maxConcurrency", json!({ "minimum": 1 }))
        .items("BatchRequest", "urls", target_url())
        .replace("BatchRequest", "ingest", ingest)
        .replace(
            "BatchRequest",
            "webhook",
            crawl_v1::webhook_schema(http_url(), headers()),
        );
    doc.property("MapRequest", "url", target_url())
        .property("MapRequest", "limit", between(1, map_v1::MAX_LIMIT))
        .property("MapRequest", "timeout", timeout_ms(limits));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    fn limits() -> Limits {
        crate::http::scrape_input::tests::limits()
    }

    #[test]
    fn every_constraint_finds_its_property() {
        let (_, missing) = core(&crate::http::core::CoreApi::openapi(), &limits()).finish();
        assert_eq!(missing, Vec::<String>::new());
        let (_, missing) = crawler(&crate::http::crawler::api(), &limits()).finish();
        assert_eq!(missing, Vec::<String>::new());
    }

    #[test]
    fn request_bodies_are_closed_and_responses_are_not() {
        let (text, _) = core(&crate::http::core::CoreApi::openapi(), &limits()).finish();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let schemas = &doc["components"]["schemas"];
        for body in [
            "LoginBody",
            "SearchBody",
            "DocumentBody",
            "ChatMessage",
            "IngestTarget",
        ] {
            assert_eq!(schemas[body]["additionalProperties"], false, "{body}");
        }
        assert!(schemas["ScrapedPage"].get("additionalProperties").is_none());
        // A free-form object stays open.
        let options = &schemas["ChatRequest"]["properties"]["stream_options"];
        assert!(options.get("additionalProperties").is_none(), "{options}");
    }

    #[test]
    fn limits_from_settings_reach_the_document() {
        let mut limits = limits();
        limits.max_k = 77;
        let (text, _) = core(&crate::http::core::CoreApi::openapi(), &limits).finish();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc["components"]["schemas"]["SearchBody"]["properties"]["k"]["maximum"],
            77
        );
        let name = doc
            .pointer("/paths/~1v1~1collections~1{name}/delete/parameters/0/schema/pattern")
            .cloned();
        assert_eq!(name, Some(Value::from(COLLECTION_NAME_PATTERN)));
    }

    #[test]
    fn a_url_the_pattern_admits_is_one_the_scrape_routes_take() {
        let pattern = regex::Regex::new(&format!("^(?:https?://)?{HOST_AND_PATH}")).unwrap();
        for url in [
            "example.org",
            "https://a.b.co:8080/x/y",
            "http://a-b.c/",
            "x.y/z.html",
        ] {
            assert!(pattern.is_match(url), "{url}");
            assert!(crate::http::scrape_input::target_url(url).is_ok(), "{url}");
        }
        // Dotted numbers read as IPv4 addresses (0.0.0.0 is refused), and no host is a word.
        for url in ["0.0.0.0", "http://T0.F.9.5/r", "localhost", "ftp://a.b"] {
            assert!(!pattern.is_match(url), "{url}");
        }
    }

    #[test]
    fn no_blank_pattern_needs_a_visible_character() {
        let pattern = regex::Regex::new(NOT_BLANK).unwrap();
        assert!(pattern.is_match("  q "));
        assert!(!pattern.is_match(" \t\n"));
    }
}
