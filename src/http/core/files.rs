//! `POST /v1/collections/{name}/files`: documents uploaded as `multipart/form-data` (any number
//! of file parts), read into the collection like scraped documents — PDF pages, slides and
//! chapters kept for citations.
//!
//! The body is streamed and counted as it arrives: past `ingest.upload_limit_bytes` the request
//! is answered 413 at once (a declared Content-Length over it is refused before a byte is read);
//! a single file past `ingest.max_file_bytes` is rejected by name while the others go on.

use aurora_actors::ingest::{IngestRequest, Upload};
use futures::{Stream, StreamExt};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::collections::{DocumentsQuery, IngestSummary, RejectedDocument};
use crate::http::error::{ApiError, CoreErrorBody};
use crate::http::{AppState, with_state};

/// What the client sent, split into files; files over the per-file cap are already rejected.
struct Received {
    files: Vec<Upload>,
    too_big: Vec<RejectedDocument>,
}

/// Uploads files into a collection: each is read (PDF, DOCX, PPTX, XLSX, ODT, EPUB, HTML,
/// Markdown, text; the kind decided by its content), quality-filtered, chunked and stored.
/// A file that cannot be read is listed in `rejected` with its reason; the others are kept.
#[utoipa::path(post, path = "/v1/collections/{name}/files", tag = "collections",
    params(("name" = String, Path, description = "Collection name"), DocumentsQuery),
    request_body(content_type = "multipart/form-data",
        description = "One or more file parts (any field name); each part's file name names the document in citations"),
    responses(
        (status = 200, body = IngestSummary),
        (status = 400, description = "Malformed multipart body, or no files", body = CoreErrorBody),
        (status = 404, description = "No such collection (and create is not set)", body = CoreErrorBody),
        (status = 413, description = "Body over ingest.upload_limit_bytes", body = CoreErrorBody),
        (status = 415, description = "Not multipart/form-data", body = CoreErrorBody),
        (status = 503, description = "Vector store or model unavailable", body = CoreErrorBody)))]
pub async fn upload(
    name: String,
    query: DocumentsQuery,
    content_type: Option<String>,
    content_length: Option<u64>,
    state: AppState,
    body: impl Stream<Item = Result<impl bytes::Buf, warp::Error>> + Send + 'static,
) -> Result<Response, Rejection> {
    let started = std::time::Instant::now();
    let result = receive(&state, content_type, content_length, body).await;
    let outcome = match &result {
        Ok(_) => "received",
        Err(ApiError::PayloadTooLarge(_)) => "too_large",
        Err(_) => "invalid",
    };
    metrics::counter!("aurora_uploads_total", "outcome" => outcome).increment(1);
    let received = match result {
        Ok(received) => received,
        Err(e) => return Ok(e.into_core_response()),
    };
    let bytes: usize = received.files.iter().map(|f| f.bytes.len()).sum();
    metrics::counter!("aurora_upload_bytes_total").increment(bytes as u64);
    tracing::info!(collection = %name, files = received.files.len(), bytes,
        receive_seconds = started.elapsed().as_secs_f64(), "upload received");
    let request = IngestRequest {
        collection: name,
        documents: Vec::new(),
        files: received.files,
        create: query.create,
    };
    Ok(match state.handles.router().ingest(request).await {
        Ok(report) => {
            let mut summary = IngestSummary::from(report);
            summary.rejected.splice(0..0, received.too_big);
            warp::reply::json(&summary).into_response()
        }
        Err(e) => ApiError::from(e).into_core_response(),
    })
}

async fn receive(
    state: &AppState,
    content_type: Option<String>,
    content_length: Option<u64>,
    body: impl Stream<Item = Result<impl bytes::Buf, warp::Error>> + Send + 'static,
) -> Result<Received, ApiError> {
    let limits = &state.limits;
    let content_type = content_type.unwrap_or_default();
    let boundary =
        multer::parse_boundary(&content_type).map_err(|_| ApiError::UnsupportedMediaType {
            given: aurora_actors::model::media_type(&content_type),
            expected: "multipart/form-data with one or more file parts",
        })?;
    if content_length.is_some_and(|n| n > limits.upload_bytes) {
        return Err(ApiError::PayloadTooLarge(limits.upload_bytes));
    }
    let body = body.map(|chunk| chunk.map(|mut buf| buf.copy_to_bytes(buf.remaining())));
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.upload_bytes));
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut received = Received {
        files: Vec::new(),
        too_big: Vec::new(),
    };
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limits.upload_bytes))?
    {
        // Form fields without a file name are not files (a client's extra text fields).
        let Some(file_name) = field.file_name().map(base_name).filter(|n| !n.is_empty()) else {
            while field
                .chunk()
                .await
                .map_err(|e| multipart_error(e, limits.upload_bytes))?
                .is_some()
            {}
            continue;
        };
        let declared = field.content_type().map(ToString::to_string);
        let mut bytes = Vec::new();
        let mut size = 0u64;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| multipart_error(e, limits.upload_bytes))?
        {
            size += chunk.len() as u64;
            // Past the per-file cap the rest is read (it counts toward the request's cap) but
            // not kept.
            if size <= limits.max_file_bytes {
                bytes.extend_from_slice(&chunk);
            }
        }
        if size > limits.max_file_bytes {
            received.too_big.push(RejectedDocument {
                url: aurora_actors::knowledge::upload_url(&file_name),
                reason: format!(
                    "the file is {size} bytes; the most Aurora reads is {} bytes",
                    limits.max_file_bytes
                ),
            });
            continue;
        }
        received.files.push(Upload {
            file_name,
            content_type: declared,
            bytes,
        });
    }
    if received.files.is_empty() && received.too_big.is_empty() {
        return Err(ApiError::InvalidRequest(
            "the body holds no files: send one or more parts with a file name".to_string(),
        ));
    }
    Ok(received)
}

fn multipart_error(e: multer::Error, cap: u64) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => ApiError::PayloadTooLarge(cap),
        other => ApiError::InvalidRequest(format!("malformed multipart body: {other}")),
    }
}

/// The last component of a client's file name (browsers on Windows may send a whole path).
fn base_name(name: &str) -> String {
    name.rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .trim()
        .to_string()
}

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v1" / "collections" / String / "files")
        .and(warp::post())
        .and(warp::query::<DocumentsQuery>())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(with_state(state))
        .and(warp::body::stream())
        .and_then(upload)
}

#[cfg(test)]
mod tests {
    use super::base_name;

    #[test]
    fn file_names_lose_their_client_paths() {
        assert_eq!(base_name("C:\\Users\\me\\guide.pdf"), "guide.pdf");
        assert_eq!(base_name("reports/2024/guide.pdf"), "guide.pdf");
        assert_eq!(base_name("guide.pdf"), "guide.pdf");
    }
}
