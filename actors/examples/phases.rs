use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        let _ = aurora_actors::scraper::charset::decode(
            &bytes,
            Some("text/html; charset=utf-8"),
            false,
        );
    }
    println!(
        "decode      {:>8.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let html = String::from_utf8(bytes.clone()).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let _ = scraper::Html::parse_document(&html);
    }
    println!(
        "scraper parse {:>6.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        let _ = htmd::convert(&html).unwrap();
    }
    println!(
        "htmd whole  {:>8.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let conv = htmd::HtmlToMarkdown::new();
    let t = Instant::now();
    for _ in 0..n {
        let _ = conv.html_to_tree(&html).unwrap();
    }
    println!(
        "htmd parse  {:>8.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let sel = aurora_actors::scraper::extract::Selectors::default();
    let url: url::Url = "https://x.test/a".parse().unwrap();
    let t = Instant::now();
    let mut out = None;
    for _ in 0..n {
        out = Some(aurora_actors::scraper::extract::extract(
            &html,
            &url,
            &aurora_actors::scraper::extract::Options {
                only_main_content: true,
                selectors: &sel,
                remove_base64_images: true,
                want_html: true,
            },
        ));
    }
    println!(
        "extract all {:>8.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let cleaned = out.unwrap().html.unwrap();
    println!("cleaned html {} bytes of {}", cleaned.len(), html.len());
    let t = Instant::now();
    for _ in 0..n {
        let _ = conv.convert(&cleaned).unwrap();
    }
    println!(
        "htmd cleaned {:>7.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        let _ = conv.html_to_tree(&cleaned).unwrap();
    }
    println!(
        "htmd parse cleaned {:>7.3} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
}
