//! Documents through the API: PDF, office files and e-books scraped by URL (Firecrawl's
//! `parsePDF`), uploaded into a collection, and cited by page. Fixtures are made by Debian's
//! tools (`scripts/fixtures`; what each holds is in tests/fixtures/documents/README.md).

use serde_json::{Value, json};

use crate::common::site::spawn_site;
use crate::common::{Port, TestApp, spawn_app};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/documents");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture")
}

/// Whitespace runs as single spaces: PDF lines break where the page did.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn a_pdf_url_scrapes_to_markdown_with_its_metadata() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    let (status, body) = app
        .scrape(json!({"url": site.url("/docs/guide.pdf")}))
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    let markdown = flat(data["markdown"].as_str().expect("markdown"));
    let sentences = [
        "The quiet fjord of Lyngen glows green on clear winter nights.",
        "Photographers should set an exposure of eight seconds at ISO 1600.",
        "recorded a disturbance of 450 nanotesla.",
    ];
    let mut from = 0;
    for sentence in sentences {
        let at = markdown[from..]
            .find(sentence)
            .unwrap_or_else(|| panic!("`{sentence}` in order in {markdown}"));
        from += at;
    }
    assert_eq!(data["metadata"]["title"], "Aurora Field Guide", "{body}");
    assert_eq!(data["metadata"]["author"], "Ingrid Solberg", "{body}");
    assert_eq!(data["metadata"]["numPages"], 3, "{body}");
    assert_eq!(data["metadata"]["contentType"], "application/pdf", "{body}");

    // parsePDF: false → the file itself, base64, as Firecrawl documents.
    let (status, body) = app
        .scrape(json!({"url": site.url("/docs/guide.pdf"), "parsePDF": false}))
        .await;
    assert_eq!(status, 200, "{body}");
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(body["data"]["markdown"].as_str().expect("base64"))
        .expect("valid base64");
    assert_eq!(raw, fixture("guide.pdf"));

    // v2 says it with `parsers`.
    let (status, body) = app
        .post_json(
            Port::Crawler,
            "/v2/scrape",
            json!({"url": site.url("/docs/guide.pdf"), "parsers": []}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["markdown"]
            .as_str()
            .expect("markdown")
            .starts_with("JVBERi0")
    );
}

#[tokio::test]
async fn office_files_and_books_scrape_with_headings_and_tables() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    for name in ["guide.docx", "guide.odt", "guide.epub"] {
        let (status, body) = app
            .scrape(
                json!({"url": site.url(&format!("/docs/{name}")), "formats": ["markdown", "html"]}),
            )
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        let markdown = body["data"]["markdown"].as_str().expect("markdown");
        assert!(
            markdown.contains("Where to watch") && markdown.contains("Measuring storms"),
            "{name}: {markdown}"
        );
        assert!(
            markdown.contains("The quiet fjord of Lyngen glows green on clear winter nights."),
            "{name}: {markdown}"
        );
        if name != "guide.epub" {
            assert!(markdown.contains("## Where to watch"), "{name}: {markdown}");
            assert!(markdown.contains("| Town"), "{name}: a table: {markdown}");
        }
        assert_eq!(
            body["data"]["metadata"]["title"], "Aurora Field Guide",
            "{name}"
        );
        assert!(
            body["data"]["html"].as_str().expect("html").contains("<p>"),
            "{name}: {body}"
        );
    }
    // A presentation: one section per slide, each with its title.
    let (status, body) = app
        .scrape(json!({"url": site.url("/docs/slides.pptx")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["metadata"]["numPages"], 3, "{body}");
    let markdown = flat(body["data"]["markdown"].as_str().expect("markdown"));
    assert!(
        markdown.contains("Auroral ovals expand toward the equator during strong storms."),
        "{markdown}"
    );
}

#[tokio::test]
async fn content_decides_what_a_file_is_not_its_content_type() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    // A PDF served as HTML, and as an octet stream, is still read as a PDF.
    for kind in ["text/html", "application/octet-stream"] {
        let (status, body) = app
            .scrape(json!({"url": site.url(&format!("/docs/guide.pdf?type={kind}"))}))
            .await;
        assert_eq!(status, 200, "{kind}: {body}");
        assert!(
            flat(body["data"]["markdown"].as_str().expect("markdown"))
                .contains("Photographers should set an exposure of eight seconds at ISO 1600."),
            "{kind}: {body}"
        );
    }
}

#[tokio::test]
async fn unreadable_documents_are_refused_with_their_reason() {
    let (app, site) = (spawn_app().await, spawn_site().await);
    for (name, reason) in [
        (
            "guide-encrypted.pdf",
            "the file is encrypted (password-protected)",
        ),
        (
            "guide-truncated.pdf",
            "the file is damaged or not a valid PDF",
        ),
        ("speech.wav", "is audio or video"),
    ] {
        let (status, body) = app
            .scrape(json!({"url": site.url(&format!("/docs/{name}"))}))
            .await;
        assert_eq!(status, 422, "{name}: {body}");
        assert_eq!(body["success"], false, "{name}: {body}");
        let error = body["error"].as_str().expect("error");
        assert!(error.contains(reason), "{name}: {error}");
    }
    // The process is healthy after all of it.
    let (status, _) = app
        .scrape(json!({"url": site.url("/docs/guide.docx")}))
        .await;
    assert_eq!(status, 200);
}

/// A `multipart/form-data` body of `files` (name, bytes), and its Content-Type.
fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "aurora-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(app: &TestApp, collection: &str, files: &[(&str, &[u8])]) -> (u16, Value) {
    let (content_type, body) = multipart(files);
    let response = app
        .client
        .post(app.url(
            Port::Core,
            &format!("/v1/collections/{collection}/files?create=true"),
        ))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// A DOCX-shaped zip whose document part inflates to `inflated` bytes of zeros.
fn zip_bomb(inflated: usize) -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file("[Content_Types].xml", options)
        .expect("entry");
    zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#)
        .expect("write");
    zip.start_file("_rels/.rels", options).expect("entry");
    zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#)
        .expect("write");
    zip.start_file("word/document.xml", options).expect("entry");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated >> 20 {
        zip.write_all(&zeros).expect("write");
    }
    zip.finish().expect("finish");
    out.into_inner()
}

#[tokio::test]
async fn an_uploaded_pdf_is_cited_by_file_and_page() {
    let app = spawn_app().await;
    let (status, body) = upload(
        &app,
        "handbook",
        &[
            ("guide.pdf", &fixture("guide.pdf")),
            ("slides.pptx", &fixture("slides.pptx")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ingested"], 2, "{body}");
    assert_eq!(body["rejected"], json!([]), "{body}");
    assert!(body["chunks"].as_u64().expect("chunks") >= 4, "{body}");

    // Search: the hit names its file and page.
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/search",
            json!({"collection": "handbook", "query": "what exposure and ISO for photographing the aurora", "k": 3}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let hit = &body["hits"][0];
    assert_eq!(hit["file_name"], "guide.pdf", "{body}");
    assert_eq!(hit["locator"]["unit"], "page", "{body}");
    assert_eq!(hit["locator"]["start"], 2, "{body}");
    assert_eq!(hit["locator"]["label"], "page 2", "{body}");
    assert_eq!(hit["source_url"], "upload:guide.pdf", "{body}");
    assert_eq!(hit["title"], "Aurora Field Guide", "{body}");

    // A question about a sentence on page 3 is answered with a citation to that page.
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/query",
            json!({"collection": "handbook", "question": "How strong was the disturbance the Tromsø magnetometer recorded?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answered"], true, "{body}");
    let answer = body["answer"].as_str().expect("answer");
    assert!(answer.contains("450 nanotesla"), "{body}");
    let cited: Vec<&Value> = body["citations"]
        .as_array()
        .expect("citations")
        .iter()
        .filter(|c| answer.contains(&format!("[{}]", c["n"])))
        .collect();
    assert!(
        cited.iter().any(|c| c["file_name"] == "guide.pdf"
            && c["locator"]["label"] == "page 3"
            && c["link"] == "upload:guide.pdf#page=3"),
        "{body}"
    );

    // A slide is cited as a slide.
    let (_, body) = app
        .post_json(
            Port::Core,
            "/v1/search",
            json!({"collection": "handbook", "query": "auroral ovals expand toward the equator", "k": 1}),
        )
        .await;
    assert_eq!(body["hits"][0]["file_name"], "slides.pptx", "{body}");
    assert_eq!(body["hits"][0]["locator"]["unit"], "slide", "{body}");

    // Uploading the same file again changes nothing.
    let (status, body) = upload(&app, "handbook", &[("guide.pdf", &fixture("guide.pdf"))]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["ingested"].as_u64(), body["skipped"].as_u64()),
        (Some(0), Some(1)),
        "{body}"
    );
}

#[tokio::test]
async fn bad_files_are_rejected_by_name_and_the_rest_of_the_batch_is_kept() {
    let app = spawn_app().await;
    let bomb = zip_bomb(100 << 20);
    assert!(bomb.len() < 1 << 20, "the bomb is small: {}", bomb.len());
    let (status, body) = upload(
        &app,
        "mixed",
        &[
            ("locked.pdf", &fixture("guide-encrypted.pdf")),
            ("cut.pdf", &fixture("guide-truncated.pdf")),
            ("bomb.docx", &bomb),
            ("guide.docx", &fixture("guide.docx")),
            (
                "photo.png",
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0",
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ingested"], 1, "{body}");
    let reasons: std::collections::HashMap<&str, &str> = body["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["url"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(reasons["upload:locked.pdf"].contains("encrypted"), "{body}");
    assert!(reasons["upload:cut.pdf"].contains("damaged"), "{body}");
    assert!(
        reasons["upload:bomb.docx"].contains("expands past the cap of 67108864 bytes"),
        "{body}"
    );
    assert!(
        reasons["upload:photo.png"].contains("unsupported file type `image/png`"),
        "{body}"
    );
    assert_eq!(reasons.len(), 4, "{body}");

    // The good file is searchable; the process is healthy.
    let (_, body) = app
        .post_json(
            Port::Core,
            "/v1/search",
            json!({"collection": "mixed", "query": "quiet fjord of Lyngen", "k": 1}),
        )
        .await;
    assert_eq!(body["hits"][0]["file_name"], "guide.docx", "{body}");
    assert_eq!(app.get(Port::Core, "/ready").await.status(), 200);
}

#[tokio::test]
async fn uploads_must_be_multipart_and_within_the_caps() {
    let app = crate::common::spawn_app_with(|s| {
        s.ingest.upload_limit_bytes = 4 << 20;
        s.ingest.max_file_bytes = 1 << 20;
    })
    .await;
    // The wrong content type: a clear 415.
    let response = app
        .client
        .post(app.url(Port::Core, "/v1/collections/capped/files?create=true"))
        .header("content-type", "application/pdf")
        .body(fixture("guide.pdf"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`application/pdf`") && m.contains("multipart/form-data")),
        "{body}"
    );

    // A file over the per-file cap is rejected by name; the other is kept.
    let big = vec![b'a'; (1 << 20) + 10];
    let (status, body) = upload(
        &app,
        "capped",
        &[("big.txt", &big), ("guide.docx", &fixture("guide.docx"))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ingested"], 1, "{body}");
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the most Aurora reads is 1048576 bytes")),
        "{body}"
    );

    // A 1 GB upload: refused on its declared length before the body is read, and refused at the
    // cap when it is sent without one (chunked). Neither is held in memory.
    for declared in [true, false] {
        let status = huge_upload(&app, declared).await;
        assert_eq!(status, 413, "declared length: {declared}");
    }
    assert_eq!(app.get(Port::Core, "/ready").await.status(), 200);
}

/// Sends the head of a 1 GB multipart upload over a raw socket, then body bytes until the server
/// answers; returns the status it answered with.
async fn huge_upload(app: &TestApp, declared: bool) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(&app.url(Port::Core, "/v1/collections/capped/files?create=true"))
        .expect("url");
    let address = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (mut read, mut write) = stream.into_split();
    let boundary = "b0und4ry";
    let length = match declared {
        true => format!("Content-Length: {}\r\n", 1u64 << 30),
        false => "Transfer-Encoding: chunked\r\n".to_string(),
    };
    let head = format!(
        "POST /v1/collections/capped/files?create=true HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n{length}\r\n",
        url.host_str().expect("host"),
        app.admin_key
    );
    let sender = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        let part = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.bin\"\r\n\r\n"
        );
        let mut first = part.into_bytes();
        let block = vec![b'x'; 1 << 16];
        for i in 0..(1u64 << 30) / block.len() as u64 {
            let piece: &[u8] = if i == 0 {
                first.extend_from_slice(&block);
                &first
            } else {
                &block
            };
            if declared {
                write.write_all(piece).await?;
            } else {
                write
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
                write.write_all(piece).await?;
                write.write_all(b"\r\n").await?;
            }
        }
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = read.read(&mut buf).await.expect("read the answer");
        assert!(n > 0, "the server closed without answering");
        answer.extend_from_slice(&buf[..n]);
    }
    sender.abort();
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line}"))
}

async fn ingest_markdown(app: &TestApp, collection: &str, docs: &[(&str, &str)]) -> Value {
    let documents: Vec<Value> = docs
        .iter()
        .map(|(url, content)| json!({"url": url, "content": content, "content_type": "text/markdown"}))
        .collect();
    let (status, body) = app
        .post_json(
            Port::Core,
            &format!("/v1/collections/{collection}/documents?create=true"),
            json!({ "documents": documents }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn source(name: &str) -> String {
    String::from_utf8(fixture(&format!("src/{name}"))).expect("utf-8")
}

#[tokio::test]
async fn a_near_duplicate_is_skipped_and_names_the_page_it_repeats() {
    let app = spawn_app().await;
    let first = ingest_markdown(
        &app,
        "glaciers",
        &[("https://notes.test/glaciers", &source("article.md"))],
    )
    .await;
    assert_eq!(first["ingested"], 1, "{first}");
    // The same article under another site's header and footer, and a different article on the
    // same topic, in one later batch.
    let second = ingest_markdown(
        &app,
        "glaciers",
        &[
            (
                "https://review.test/ice/valleys",
                &source("article-variant.md"),
            ),
            ("https://other.test/glaciers", &source("article-other.md")),
        ],
    )
    .await;
    assert_eq!(second["ingested"], 1, "{second}");
    assert_eq!(
        second["rejected"][0]["url"], "https://review.test/ice/valleys",
        "{second}"
    );
    let reason = second["rejected"][0]["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("near-duplicate of https://notes.test/glaciers ("),
        "{reason}"
    );
    // Re-ingesting the original itself is not a duplicate of itself.
    let again = ingest_markdown(
        &app,
        "glaciers",
        &[("https://notes.test/glaciers", &source("article.md"))],
    )
    .await;
    assert_eq!(again["skipped"], 1, "{again}");
    // Another collection is another world.
    let elsewhere = ingest_markdown(
        &app,
        "glaciers-2",
        &[(
            "https://review.test/ice/valleys",
            &source("article-variant.md"),
        )],
    )
    .await;
    assert_eq!(elsewhere["ingested"], 1, "{elsewhere}");
}

#[tokio::test]
async fn language_and_garbage_filters_reject_with_their_reason() {
    let app = crate::common::spawn_app_with(|s| s.ingest.languages = vec!["en".to_string()]).await;
    let german = "Die Gletscher der Alpen formen seit Jahrtausenden tiefe Täler. Das Eis schiebt \
        Gestein vor sich her, schleift den Untergrund ab und hinterlässt Moränen, wenn es sich \
        zurückzieht. Heute schmelzen viele Gletscher schneller als je zuvor, und Forscher messen \
        jedes Jahr, wie viel Masse sie verlieren und wie sich die Landschaft dadurch verändert.";
    let garbled = "Ãœber die GletschertÃ¤ler: Das Eis schiebt GerÃ¶ll vor sich her, schleift \
        den Untergrund ab und hinterlÃ¤sst MorÃ¤nen. Ã„hnlich wie frÃ¼her messen Forscher, wie \
        viel Masse die Gletscher verlieren â€“ jedes Jahr â€žneuâ€œ und grÃ¶ÃŸer. Ã–sterreichs \
        GletscherflÃ¤chen schrumpfen, wÃ¤hrend die SeehÃ¶he der Zungen steigt.";
    let body = ingest_markdown(
        &app,
        "english-only",
        &[
            ("https://a.test/de", german),
            ("https://a.test/garbled", garbled),
            ("https://a.test/en", &source("article.md")),
        ],
    )
    .await;
    assert_eq!(body["ingested"], 1, "{body}");
    let reasons: Vec<&str> = body["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("language `de` is not in the collection's allow-list (en)")),
        "{body}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("encoding garbage")),
        "{body}"
    );
    let counted = app
        .metric("aurora_ingest_rejected_total{reason=\"language\"}")
        .await
        .expect("counted");
    assert!(counted >= 1.0);
}

fn transcription_by(
    api: &crate::common::whisper_api::WhisperApi,
) -> impl FnOnce(&mut aurora::settings::Settings) {
    let base_url = api.base_url();
    move |s| {
        // The recordings are a few seconds long: a sentence or two of text.
        s.ingest.min_chars = 20;
        s.transcription.engine = aurora::settings::TranscriptionEngine::Openai;
        s.transcription.openai.base_url = base_url;
        s.transcription.openai.api_key = crate::common::whisper_api::KEY.to_string();
    }
}

#[tokio::test]
async fn recordings_are_transcribed_by_an_openai_compatible_server_and_cited_by_time() {
    use crate::common::whisper_api;
    let api = whisper_api::spawn(
        vec![
            (0.0, 41.0, "Welcome to the aurora field course. Over the next hour we will talk about where the northern lights appear, why they take the colours they do, and how the solar wind drives them across the sky on a winter night."),
            (41.0, 83.5, "Most of the green light comes from oxygen about one hundred kilometres up, while the rare red glow comes from oxygen much higher, and nitrogen adds a purple fringe to the lower edge of a bright curtain."),
            (83.5, 101.0, "Photographers should bring a sturdy tripod and spare batteries kept warm."),
        ],
        true,
    )
    .await;
    let (app, site) = (
        crate::common::spawn_app_with(transcription_by(&api)).await,
        spawn_site().await,
    );
    let (status, body) = upload(&app, "talks", &[("lecture.wav", &fixture("speech.wav"))]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ingested"], 1, "{body}");

    // The exact wire format went out.
    let sent = &api.requests()[0];
    assert_eq!(sent.file_name.as_deref(), Some("lecture.wav"));
    assert_eq!(sent.file_bytes, fixture("speech.wav").len());
    let fields: std::collections::HashMap<&str, &str> = sent
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(fields["model"], "whisper-1");
    assert_eq!(fields["response_format"], "verbose_json");
    assert_eq!(fields["timestamp_granularities[]"], "segment");

    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/query",
            json!({"collection": "talks", "question": "What should photographers bring?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let citation = &body["citations"][0];
    assert_eq!(citation["file_name"], "lecture.wav", "{body}");
    assert_eq!(citation["locator"]["unit"], "time", "{body}");
    assert_eq!(citation["locator"]["label"], "t=01:23–01:41", "{body}");
    assert_eq!(citation["link"], "upload:lecture.wav#t=83", "{body}");

    // A recording by URL is scraped to its transcript.
    let (status, body) = app
        .scrape(json!({"url": site.url("/docs/speech.wav")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["markdown"]
            .as_str()
            .is_some_and(|m| m.contains("on a winter night.\n\nMost of the green light")),
        "{body}"
    );
}

#[tokio::test]
async fn a_server_that_refuses_verbose_json_is_asked_for_json() {
    let api = crate::common::whisper_api::spawn(
        vec![(
            0.0,
            6.2,
            "Bring a tripod, spare batteries and a warm coat to watch the aurora over the fjord.",
        )],
        false,
    )
    .await;
    let app = crate::common::spawn_app_with(transcription_by(&api)).await;
    let (status, body) = upload(&app, "talks", &[("coat.wav", &fixture("speech.wav"))]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ingested"], 1, "{body}");
    let formats: Vec<String> = api
        .requests()
        .iter()
        .filter_map(|r| {
            r.fields
                .iter()
                .find(|(k, _)| k == "response_format")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(formats, ["verbose_json", "json"]);
    let (_, body) = app
        .post_json(
            Port::Core,
            "/v1/search",
            json!({"collection": "talks", "query": "warm coat tripod", "k": 1}),
        )
        .await;
    assert_eq!(
        body["hits"][0]["locator"]["label"], "t=00:00–00:06",
        "{body}"
    );
}

#[tokio::test]
async fn without_a_transcriber_recordings_are_refused_with_how_to_configure_one() {
    let app = spawn_app().await;
    let (status, body) = upload(
        &app,
        "talks",
        &[
            ("talk.wav", &fixture("speech.wav")),
            ("guide.docx", &fixture("guide.docx")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ingested"], 1, "{body}");
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no transcriber is configured")),
        "{body}"
    );
}

/// The local engine (faster-whisper, Whisper tiny.en, weights checked against upstream) hears
/// espeak-ng say "…brightest at midnight over Tromsø. Bring a tripod and a warm coat." and the
/// answer cites where in the recording that was said.
#[tokio::test]
async fn the_local_engine_transcribes_speech_and_answers_with_its_time_range() {
    let python = crate::common::service_url("AURORA_TEST_PYTHON");
    let app = crate::common::spawn_app_with(|s| {
        s.ingest.min_chars = 20;
        s.transcription.engine = aurora::settings::TranscriptionEngine::Local;
        s.transcription.local.python = python.into();
        s.transcription.local.script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/whisper_server.py");
    })
    .await;
    let (status, body) = upload(&app, "talks", &[("speech.wav", &fixture("speech.wav"))]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ingested"], 1, "{body}");
    let (status, body) = app
        .post_json(
            Port::Core,
            "/v1/query",
            json!({"collection": "talks", "question": "When were the northern lights brightest?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer = body["answer"].as_str().expect("answer").to_lowercase();
    assert!(answer.contains("brightest"), "{body}");
    let citation = &body["citations"][0];
    assert_eq!(citation["file_name"], "speech.wav", "{body}");
    assert_eq!(citation["locator"]["unit"], "time", "{body}");
    // The whole clip is 6.2 s: the cited range lies inside it.
    assert!(
        citation["locator"]["end"]
            .as_u64()
            .is_some_and(|end| end > 0 && end <= 6_500),
        "{body}"
    );
    assert!(
        citation["locator"]["label"]
            .as_str()
            .is_some_and(|l| l.starts_with("t=00:0")),
        "{body}"
    );
}

#[tokio::test]
async fn a_crawl_ingests_the_documents_and_recordings_a_site_links_to() {
    let api = crate::common::whisper_api::spawn(
        vec![(0.0, 6.2, "The northern lights were brightest at midnight over Tromsø, so bring a tripod and a warm coat.")],
        true,
    )
    .await;
    let (app, site) = (
        crate::common::spawn_app_with(transcription_by(&api)).await,
        spawn_site().await,
    );
    let (status, body) = app
        .post_json(
            Port::Crawler,
            "/v1/crawl",
            json!({"url": site.url("/docs/index.html"), "ignoreSitemap": true, "limit": 10,
                   "ingest": {"collection": "library"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let mut last = Value::Null;
    for _ in 0..400 {
        let response = app.get(Port::Crawler, &format!("/v1/crawl/{id}")).await;
        last = response.json().await.expect("json");
        if last["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(
        last["total"], 4,
        "the page, the PDF, the slides and the talk: {last}"
    );
    for (query, file, unit) in [
        ("magnetometer disturbance nanotesla", "guide.pdf", "page"),
        (
            "auroral ovals expand toward the equator",
            "slides.pptx",
            "slide",
        ),
        ("brightest at midnight over Tromsø", "speech.wav", "time"),
    ] {
        let (_, body) = app
            .post_json(
                Port::Core,
                "/v1/search",
                json!({"collection": "library", "query": query, "k": 3}),
            )
            .await;
        // Among the first three, not necessarily first: pages rank as units, so the guide's
        // several chunks about Tromsø may outrank the talk's one sentence.
        let hit = body["hits"]
            .as_array()
            .and_then(|hits| hits.iter().find(|h| h["file_name"] == file))
            .unwrap_or_else(|| panic!("{query}: no hit from {file}: {body}"));
        assert_eq!(hit["locator"]["unit"], unit, "{query}: {body}");
        assert_eq!(
            hit["source_url"],
            site.url(&format!("/docs/{file}")),
            "{body}"
        );
    }
}

/// Distinct words per piece, long enough that each piece's text is a chunk of its own.
const PIECE_TEXT: &str = "Piece {n} of the field recording: the observers at station {n} \
    logged the auroral oval as it moved south, noting the colour of each curtain, the strength \
    of the magnetometer reading and the time the corona formed overhead, then compared the \
    forecast for station {n} with what the cameras recorded until dawn broke over the fjord and \
    the last of the green light faded into a grey winter sky above the sleeping town.";

#[tokio::test]
async fn a_long_recording_is_transcribed_in_pieces_with_progress_in_its_batch_job() {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    let api = crate::common::whisper_api::spawn_gated(
        vec![(0.5, 5.5, PIECE_TEXT)],
        true,
        Some(gate.clone()),
    )
    .await;
    let configure = transcription_by(&api);
    let (app, site) = (
        crate::common::spawn_app_with(|s| {
            configure(s);
            s.transcription.piece_secs = 10;
        })
        .await,
        spawn_site().await,
    );
    let url = site.url("/docs/speech-long.wav");
    let (status, body) = app
        .post_json(
            Port::Crawler,
            "/v1/batch/scrape",
            json!({"urls": [url], "ingest": {"collection": "field", "create": true}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let status_of = || async {
        let response = app
            .get(Port::Crawler, &format!("/v1/batch/scrape/{id}"))
            .await;
        response.json::<Value>().await.expect("json")
    };

    // The first piece is through and the second is held at the server: the job says so.
    let mut seen = Value::Null;
    for _ in 0..600 {
        seen = status_of().await;
        if seen["progress"][0]["piecesDone"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let progress = &seen["progress"][0];
    assert_eq!(seen["status"], "scraping", "{seen}");
    assert_eq!(progress["url"], url, "{seen}");
    assert_eq!(progress["piecesTotal"], 3, "{seen}");
    assert!(
        (progress["secondsTotal"].as_f64().expect("seconds") - 24.5).abs() < 0.1,
        "{seen}"
    );
    // The first cut falls in the silence after the first sentence (6.2–8.2 s).
    let first_cut = progress["secondsDone"].as_f64().expect("seconds");
    assert!((6.2..8.2).contains(&first_cut), "{seen}");

    gate.add_permits(10);
    for _ in 0..600 {
        seen = status_of().await;
        if seen["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen["status"], "completed", "{seen}");
    assert!(seen.get("progress").is_none(), "cleared once done: {seen}");

    // Three pieces went out as 16 kHz WAVs of at most 10 s, covering the recording once.
    let sent = api.requests();
    let names: Vec<_> = sent.iter().filter_map(|r| r.file_name.clone()).collect();
    assert_eq!(
        names,
        [
            "speech-long.part1.wav",
            "speech-long.part2.wav",
            "speech-long.part3.wav"
        ]
    );
    let data: Vec<usize> = sent.iter().filter_map(|r| r.wav_data_bytes).collect();
    assert!(data.iter().all(|&b| b <= 10 * 16_000 * 2), "{data:?}");
    let whole = crate::common::site::long_speech().len() - 44;
    assert_eq!(data.iter().sum::<usize>(), whole);

    // The transcript is one timeline: piece 2's words sit where piece 2 starts.
    let markdown = seen["data"][0]["markdown"].as_str().expect("markdown");
    let order: Vec<_> = ["Piece 1 ", "Piece 2 ", "Piece 3 "]
        .iter()
        .map(|p| markdown.find(p).expect("each piece's text"))
        .collect();
    assert!(order.is_sorted(), "{markdown}");
    for (n, from, to) in [(1, 0, 1_000), (2, 6_500, 8_800), (3, 14_500, 16_900)] {
        let (_, body) = app
            .post_json(
                Port::Core,
                "/v1/search",
                json!({"collection": "field", "query": format!("observers at station {n}"),
                       "k": 1, "filter": {"source_url": url}}),
            )
            .await;
        let start = body["hits"][0]["locator"]["start"].as_u64().expect("start");
        assert!(
            (from..to).contains(&start),
            "piece {n} starts at {start} ms: {body}"
        );
    }
}

/// The local engine hears the same sentence three times across pieces cut in the silences: no
/// word is lost or doubled at a cut.
#[tokio::test]
async fn the_local_engine_transcribes_a_long_recording_piece_by_piece() {
    let python = crate::common::service_url("AURORA_TEST_PYTHON");
    let (app, site) = (
        crate::common::spawn_app_with(|s| {
            s.transcription.engine = aurora::settings::TranscriptionEngine::Local;
            s.transcription.local.python = python.into();
            s.transcription.local.script =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/whisper_server.py");
            s.transcription.piece_secs = 10;
        })
        .await,
        spawn_site().await,
    );
    let (status, body) = app
        .scrape(json!({"url": site.url("/docs/speech-long.wav")}))
        .await;
    assert_eq!(status, 200, "{body}");
    let markdown = body["data"]["markdown"]
        .as_str()
        .expect("markdown")
        .to_lowercase();
    // Whisper tiny.en hears some words differently with different context ("brightest" as
    // "riders"); these it hears every time.
    for word in ["northern lights", "tripod", "warm coat"] {
        assert_eq!(markdown.matches(word).count(), 3, "{word}: {markdown}");
    }
}
