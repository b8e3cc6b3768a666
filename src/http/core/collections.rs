//! Collections and their documents on the core port:
//! `GET /v1/collections`, `POST /v1/collections`, `DELETE /v1/collections/{name}`,
//! `POST /v1/collections/{name}/documents` (ingest; `?create=true` creates a missing collection).

use aurora_actors::ingest::IngestRequest;
use aurora_actors::knowledge::{ContentType, Document, IngestReport};
use aurora_actors::ports::CollectionInfo;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::http::error::{ApiError, CoreErrorBody};
use crate::http::{AppState, json, with_state};

#[derive(Debug, Serialize, ToSchema)]
pub struct Collection {
    pub name: String,
    /// The embedding model that built it; searching needs the same one.
    pub embedder: String,
    pub dimension: usize,
    pub chunks: u64,
}

impl From<CollectionInfo> for Collection {
    fn from(info: CollectionInfo) -> Self {
        Self {
            name: info.name,
            embedder: info.spec.embedder,
            dimension: info.spec.dimension,
            chunks: info.chunks,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionList {
    pub collections: Vec<Collection>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewCollection {
    /// 3–63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub name: String,
    pub deleted: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DocumentsBody {
    pub documents: Vec<DocumentBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DocumentBody {
    /// Where the document comes from; identifies it (re-ingesting the same URL replaces it).
    pub url: String,
    /// Taken from the page (or its first heading) when absent.
    pub title: Option<String>,
    pub content: String,
    pub content_type: DocumentType,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum DocumentType {
    #[serde(rename = "text/html")]
    Html,
    #[serde(rename = "text/markdown")]
    Markdown,
    #[serde(rename = "text/plain")]
    Text,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentsQuery {
    /// Create the collection if it does not exist (otherwise an unknown collection is a 404).
    #[serde(default)]
    pub create: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestSummary {
    /// Documents stored (new or changed).
    pub ingested: usize,
    /// Documents unchanged since their last ingestion.
    pub skipped: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Documents turned away by the quality filter, and why.
    pub rejected: Vec<RejectedDocument>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedDocument {
    pub url: String,
    pub reason: String,
}

impl From<IngestReport> for IngestSummary {
    fn from(report: IngestReport) -> Self {
        Self {
            ingested: report.ingested,
            skipped: report.skipped,
            chunks: report.chunks,
            rejected: report
                .rejected
                .into_iter()
                .map(|r| RejectedDocument {
                    url: r.url,
                    reason: r.reason,
                })
                .collect(),
        }
    }
}

/// Every collection with its model and size.
#[utoipa::path(get, path = "/v1/collections", tag = "collections", responses(
    (status = 200, body = CollectionList),
    (status = 503, description = "The vector store is unavailable", body = CoreErrorBody)))]
pub async fn list(state: AppState) -> Result<Response, Rejection> {
    Ok(match state.handles.router().list_collections().await {
        Ok(all) => warp::reply::json(&CollectionList {
            collections: all.into_iter().map(Collection::from).collect(),
        })
        .into_response(),
        Err(e) => ApiError::from(e).into_core_response(),
    })
}

/// Creates an empty collection for the configured embedding model.
#[utoipa::path(post, path = "/v1/collections", tag = "collections", request_body = NewCollection,
    responses(
        (status = 201, body = Collection),
        (status = 400, description = "Invalid name", body = CoreErrorBody),
        (status = 409, description = "Already exists", body = CoreErrorBody)))]
pub async fn create(state: AppState, body: NewCollection) -> Result<Response, Rejection> {
    Ok(
        match state.handles.router().create_collection(&body.name).await {
            Ok(info) => warp::reply::with_status(
                warp::reply::json(&Collection::from(info)),
                StatusCode::CREATED,
            )
            .into_response(),
            Err(e) => ApiError::from(e).into_core_response(),
        },
    )
}

/// Deletes a collection and everything in it.
#[utoipa::path(delete, path = "/v1/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection name")),
    responses(
        (status = 200, body = Deleted),
        (status = 404, description = "No such collection", body = CoreErrorBody)))]
pub async fn delete(name: String, state: AppState) -> Result<Response, Rejection> {
    Ok(
        match state.handles.router().delete_collection(&name).await {
            Ok(true) => warp::reply::json(&Deleted {
                name,
                deleted: true,
            })
            .into_response(),
            Ok(false) => ApiError::ResourceNotFound(format!("collection `{name}` does not exist"))
                .into_core_response(),
            Err(e) => ApiError::from(e).into_core_response(),
        },
    )
}

/// Ingests documents: cleaned, quality-filtered, chunked, embedded and stored. Unchanged
/// documents are skipped; changed ones replace their earlier chunks.
#[utoipa::path(post, path = "/v1/collections/{name}/documents", tag = "collections",
    params(("name" = String, Path, description = "Collection name"), DocumentsQuery),
    request_body = DocumentsBody,
    responses(
        (status = 200, body = IngestSummary),
        (status = 400, description = "Invalid documents", body = CoreErrorBody),
        (status = 404, description = "No such collection (and create is not set)", body = CoreErrorBody),
        (status = 409, description = "Collection built by another embedding model", body = CoreErrorBody),
        (status = 413, description = "Body over ingest.body_limit_bytes", body = CoreErrorBody),
        (status = 503, description = "Vector store or model unavailable", body = CoreErrorBody)))]
pub async fn ingest(
    name: String,
    query: DocumentsQuery,
    state: AppState,
    body: DocumentsBody,
) -> Result<Response, Rejection> {
    let request = match to_request(name, query.create, body, state.limits.max_documents) {
        Ok(request) => request,
        Err(e) => return Ok(e.into_core_response()),
    };
    Ok(match state.handles.router().ingest(request).await {
        Ok(report) => warp::reply::json(&IngestSummary::from(report)).into_response(),
        Err(e) => ApiError::from(e).into_core_response(),
    })
}

fn to_request(
    collection: String,
    create: bool,
    body: DocumentsBody,
    max_documents: usize,
) -> Result<IngestRequest, ApiError> {
    let invalid = |m: String| Err(ApiError::InvalidRequest(m));
    if body.documents.is_empty() {
        return invalid("`documents` is empty: send at least one document".into());
    }
    if body.documents.len() > max_documents {
        return invalid(format!(
            "`documents` holds {} documents; send at most {max_documents} per request",
            body.documents.len()
        ));
    }
    let mut documents = Vec::with_capacity(body.documents.len());
    for (i, doc) in body.documents.into_iter().enumerate() {
        if let Err(e) = url::Url::parse(doc.url.trim()) {
            return invalid(format!(
                "`documents[{i}].url`: `{}` is not an absolute URL ({e})",
                doc.url
            ));
        }
        documents.push(Document {
            url: doc.url.trim().to_string(),
            title: doc.title,
            content: doc.content,
            content_type: match doc.content_type {
                DocumentType::Html => ContentType::Html,
                DocumentType::Markdown => ContentType::Markdown,
                DocumentType::Text => ContentType::Text,
            },
            fetched_at: None,
            crawl_id: None,
            ..Default::default()
        });
    }
    Ok(IngestRequest {
        collection,
        documents,
        files: Vec::new(),
        create,
    })
}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let small = state.limits.body_bytes;
    let large = state.limits.ingest_body_bytes;
    let list = warp::path!("v1" / "collections")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and_then(list);
    let create = warp::path!("v1" / "collections")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(json::body(small))
        .and_then(create);
    let delete = warp::path!("v1" / "collections" / String)
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and_then(delete);
    let ingest = warp::path!("v1" / "collections" / String / "documents")
        .and(warp::post())
        .and(warp::query::<DocumentsQuery>())
        .and(with_state(state))
        .and(json::body(large))
        .and_then(ingest);
    list.or(create)
        .unify()
        .or(delete)
        .unify()
        .or(ingest)
        .unify()
}
