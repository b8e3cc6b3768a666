//! Malformed and invalid requests: each gets the right 4xx and a message that says what is
//! wrong, in the port's own error envelope — and the process stays healthy.

use futures::stream;

use crate::common::site::spawn_site;
use crate::common::{Port, spawn_app};

struct Case {
    port: Port,
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: String,
    status: u16,
    says: &'static str,
}

fn case(port: Port, body: &str, status: u16, says: &'static str) -> Case {
    Case {
        port,
        method: "POST",
        path: "/v1/scrape",
        content_type: "application/json",
        body: body.to_string(),
        status,
        says,
    }
}

#[tokio::test]
async fn malformed_requests_get_clear_4xx_and_the_process_stays_healthy() {
    let app = spawn_app().await;
    let huge = format!(
        r#"{{"url": "https://example.org", "pad": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let cases = vec![
        case(
            Port::Core,
            r#"{"url": }"#,
            400,
            "malformed JSON: expected value at line 1 column 9",
        ),
        case(
            Port::Core,
            r#"{"url": "https://example.org""#,
            400,
            "malformed JSON: EOF while parsing",
        ),
        case(
            Port::Core,
            r#"{"url": 42}"#,
            400,
            "`url`: invalid type: integer `42`, expected a string",
        ),
        case(Port::Core, "{}", 400, "missing field `url`"),
        case(Port::Core, r#"{"url": "/just/a/path"}"#, 400, "is relative"),
        case(
            Port::Core,
            r#"{"url": "ftp://example.org/file"}"#,
            400,
            "unsupported scheme `ftp`",
        ),
        case(
            Port::Core,
            r#"{"url": "file:///etc/passwd"}"#,
            400,
            "unsupported scheme `file`",
        ),
        case(
            Port::Core,
            r#"{"url": "https://example.org", "bogus": true}"#,
            400,
            "unknown field `bogus`",
        ),
        case(
            Port::Core,
            r#"{"url": "https://example.org", "timeout_ms": 0}"#,
            400,
            "`timeout_ms` must be between",
        ),
        case(Port::Core, &huge, 413, "larger than the 1048576-byte limit"),
        case(
            Port::Crawler,
            r#"{"url": "example.org", "formats": ["pdf"]}"#,
            400,
            "`formats[0]`: unknown variant `pdf`",
        ),
        case(
            Port::Crawler,
            r#"{"url": "example.org", "timeout": "soon"}"#,
            400,
            "`timeout`: invalid type",
        ),
        case(
            Port::Crawler,
            r#"{"url": "example.org", "foo": 1, "bar": {}}"#,
            400,
            "unknown fields `foo`, `bar`",
        ),
        case(
            Port::Crawler,
            r#"{"url": "example.org", "location": {"planet": "mars"}}"#,
            400,
            "unknown field `location.planet`",
        ),
        case(
            Port::Crawler,
            r#"{"url": "example.org", "formats": ["screenshot"]}"#,
            400,
            "the `screenshot` format needs a browser, and Aurora runs without one",
        ),
        case(
            Port::Crawler,
            r#"{"url": "example.org", "actions": [{"type": "click"}]}"#,
            400,
            "`actions[0]` (click): missing field `selector`",
        ),
        case(
            Port::Crawler,
            r#"{"url": "example.org", "proxy": "stealth"}"#,
            400,
            "proxy `stealth` is not supported yet",
        ),
        case(Port::Crawler, "[1, 2]", 400, "must be a JSON object"),
        case(Port::Crawler, "", 400, "the request body is empty"),
        case(
            Port::Crawler,
            r#"{"url": "mailto:someone@example.org"}"#,
            400,
            "unsupported scheme `mailto`",
        ),
        Case {
            content_type: "application/xml",
            ..case(
                Port::Crawler,
                "<url>x</url>",
                415,
                "unsupported content type `application/xml`",
            )
        },
        Case {
            method: "GET",
            ..case(Port::Crawler, "", 405, "does not accept that method")
        },
        Case {
            method: "DELETE",
            ..case(Port::Core, "", 405, "does not accept that method")
        },
        Case {
            path: "/v1/nowhere",
            ..case(Port::Core, "{}", 404, "no route matches")
        },
        Case {
            method: "GET",
            path: "/definitely/not/here",
            ..case(Port::Crawler, "", 404, "no route matches")
        },
    ];
    assert!(cases.len() >= 12);

    for c in &cases {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url(c.port, c.path))
            .header("content-type", c.content_type)
            .body(c.body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let label = format!("{:?} {} {} {:.60}", c.port, c.method, c.path, c.body);
        assert_eq!(status, c.status, "{label}: {text}");
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{label}: not JSON: {text}"));
        let message = match c.port {
            Port::Core => {
                assert!(
                    json["error"]["type"].is_string() && json["error"]["code"].is_string(),
                    "{label}: {json}"
                );
                json["error"]["message"].as_str().unwrap().to_string()
            }
            Port::Crawler => {
                assert_eq!(json["success"], false, "{label}");
                json["error"].as_str().unwrap().to_string()
            }
        };
        assert!(
            message.contains(c.says),
            "{label}: expected {:?} in {message:?}",
            c.says
        );
    }

    // A chunked body (no Content-Length) over the cap is cut off while streaming.
    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 32 * 1024]));
    let response = app
        .client
        .post(app.url(Port::Crawler, "/v1/scrape"))
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Still healthy, still working.
    assert_eq!(app.get(Port::Core, "/health").await.status(), 200);
    assert_eq!(app.get(Port::Crawler, "/ready").await.status(), 200);
    let site = spawn_site().await;
    let (status, _) = app
        .post_json(
            Port::Crawler,
            "/v1/scrape",
            serde_json::json!({"url": site.url("/article")}),
        )
        .await;
    assert_eq!(status, 200);
}
