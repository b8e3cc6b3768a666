//! HTML → page facts: title, description, language, canonical URL, meta tags, absolute links, and
//! the content as cleaned HTML and Markdown.
//!
//! One html5ever parse (through `scraper`) answers every query. The content is then serialised
//! once — boilerplate pruned, URLs made absolute, presentational attributes dropped — and that
//! smaller, cleaner HTML is what `htmd` turns into Markdown.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use ego_tree::{NodeId, NodeRef};
use scraper::{ElementRef, Html, Node, Selector, node::Element};
use url::Url;

use super::ScrapeError;

/// Elements that never carry content a reader wants, whatever the options.
const ALWAYS_DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "link", "meta", "base", "iframe", "object", "embed",
    "svg", "canvas", "head", "title",
];
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

macro_rules! selector {
    ($css:literal) => {
        LazyLock::new(|| Selector::parse($css).expect("static selector is valid CSS"))
    };
}
static HEAD_TITLE: LazyLock<Selector> = selector!("head > title");
static ANY_TITLE: LazyLock<Selector> = selector!("title");
static META: LazyLock<Selector> = selector!("meta[content]");
static BASE: LazyLock<Selector> = selector!("base[href]");
static LINK_REL: LazyLock<Selector> = selector!("link[rel][href]");
static ANCHORS: LazyLock<Selector> = selector!("a[href], area[href]");
static MAIN: LazyLock<Selector> = selector!("main");
static ROLE_MAIN: LazyLock<Selector> = selector!("[role=main]");
static ARTICLE: LazyLock<Selector> = selector!("article");
static H1: LazyLock<Selector> = selector!("h1");
static BODY: LazyLock<Selector> = selector!("body");

static MARKDOWN: LazyLock<htmd::HtmlToMarkdown> = LazyLock::new(|| {
    use htmd::options::{BulletListMarker, Options};
    htmd::HtmlToMarkdown::builder()
        .options(Options {
            bullet_list_marker: BulletListMarker::Dash,
            ul_bullet_spacing: 1,
            ol_number_spacing: 1,
            ..Options::default()
        })
        .build()
});

/// The caller's `includeTags` / `excludeTags`, parsed once per request.
#[derive(Debug, Default)]
pub struct Selectors {
    include: Vec<Selector>,
    exclude: Vec<Selector>,
}

impl Selectors {
    pub fn compile(include: &[String], exclude: &[String]) -> Result<Self, ScrapeError> {
        let parse = |css: &String| {
            Selector::parse(css).map_err(|e| ScrapeError::InvalidSelector {
                selector: css.clone(),
                reason: e.to_string(),
            })
        };
        Ok(Self {
            include: include.iter().map(parse).collect::<Result<_, _>>()?,
            exclude: exclude.iter().map(parse).collect::<Result<_, _>>()?,
        })
    }
}

pub struct Options<'a> {
    pub only_main_content: bool,
    pub selectors: &'a Selectors,
    pub remove_base64_images: bool,
    /// Keep the cleaned HTML in the result (it is built either way; this only avoids a copy).
    pub want_html: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Extracted {
    pub title: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
    pub canonical_url: Option<String>,
    pub meta: BTreeMap<String, Vec<String>>,
    /// Absolute http(s) links of the whole page, fragments removed, first occurrence order.
    pub links: Vec<String>,
    pub markdown: String,
    pub html: Option<String>,
}

/// Whether a response is HTML: by its declared type, or by sniffing when it has none.
pub fn is_html(content_type: &str, body: &[u8]) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "text/html" | "application/xhtml+xml" => true,
        "" | "application/octet-stream" => sniff_html(body),
        _ => false,
    }
}

fn sniff_html(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let head = body[start..body.len().min(start + 14)].to_ascii_lowercase();
    [
        &b"<!doctype html"[..],
        b"<html",
        b"<head",
        b"<body",
        b"<!--",
    ]
    .iter()
    .any(|prefix| head.starts_with(prefix))
}

pub fn extract(html: &str, url: &Url, options: &Options<'_>) -> Extracted {
    let doc = Html::parse_document(html);
    let base = doc
        .select(&BASE)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|href| url.join(href.trim()).ok())
        .unwrap_or_else(|| url.clone());
    let meta = meta_tags(&doc);
    let first_meta = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| meta.get(*k).and_then(|v| v.first()).cloned())
            .filter(|v| !v.is_empty())
    };

    let title = doc
        .select(&HEAD_TITLE)
        .next()
        .or_else(|| doc.select(&ANY_TITLE).next())
        .map(|t| collapse_whitespace(t.text()))
        .filter(|t| !t.is_empty())
        .or_else(|| first_meta(&["og:title", "twitter:title"]))
        .or_else(|| {
            doc.select(&H1)
                .next()
                .map(|h| collapse_whitespace(h.text()))
                .filter(|t| !t.is_empty())
        });
    let description = first_meta(&["description", "og:description", "twitter:description"]);
    let language = doc
        .root_element()
        .attr("lang")
        .or_else(|| doc.root_element().attr("xml:lang"))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .or_else(|| first_meta(&["content-language"]))
        .or_else(|| first_meta(&["og:locale"]).map(|l| l.replace('_', "-")));
    let canonical_url = doc
        .select(&LINK_REL)
        .find(|l| {
            l.value().attr("rel").is_some_and(|rel| {
                rel.split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("canonical"))
            })
        })
        .and_then(|l| l.value().attr("href"))
        .and_then(|href| base.join(href.trim()).ok())
        .map(String::from);

    let links = page_links(&doc, &base);
    let cleaned = content_html(&doc, &base, options);
    let markdown = to_markdown(&cleaned);

    Extracted {
        title,
        description,
        language,
        canonical_url,
        meta,
        links,
        markdown,
        html: options.want_html.then_some(cleaned),
    }
}

fn meta_tags(doc: &Html) -> BTreeMap<String, Vec<String>> {
    let mut meta: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tag in doc.select(&META) {
        let el = tag.value();
        let Some(key) = ["name", "property", "itemprop", "http-equiv"]
            .iter()
            .find_map(|a| el.attr(a))
            .map(|k| k.trim().to_ascii_lowercase())
            .filter(|k| !k.is_empty())
        else {
            continue;
        };
        let content = collapse_whitespace(std::iter::once(el.attr("content").unwrap_or_default()));
        meta.entry(key).or_default().push(content);
    }
    meta
}

fn page_links(doc: &Html, base: &Url) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut links = Vec::new();
    for anchor in doc.select(&ANCHORS) {
        let Some(href) = anchor.value().attr("href") else {
            continue;
        };
        let Ok(mut url) = base.join(href.trim()) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        url.set_fragment(None);
        let url = String::from(url);
        if seen.insert(url.clone()) {
            links.push(url);
        }
    }
    links
}

/// The content as cleaned HTML: the chosen roots, serialised without boilerplate.
fn content_html(doc: &Html, base: &Url, options: &Options<'_>) -> String {
    let excluded: HashSet<NodeId> = options
        .selectors
        .exclude
        .iter()
        .flat_map(|s| doc.select(s).map(|e| e.id()))
        .collect();
    let mut writer = Writer {
        base,
        excluded: &excluded,
        prune_boilerplate: options.only_main_content,
        remove_base64_images: options.remove_base64_images,
        out: String::with_capacity(16 * 1024),
    };

    let body = doc
        .select(&BODY)
        .next()
        .unwrap_or_else(|| doc.root_element());
    if !options.selectors.include.is_empty() {
        let mut roots = Vec::new();
        collect_included(body, &options.selectors.include, &mut roots);
        for root in roots {
            writer.element(*root, false);
        }
        return writer.out;
    }
    let root = if options.only_main_content {
        main_content_root(doc).unwrap_or(body)
    } else {
        body
    };
    let inside_article = root.value().name() != "body";
    writer.children(*root, inside_article);
    if options.only_main_content && writer.out.trim().is_empty() {
        // Pruning left nothing (a page built entirely inside, say, a form): better the whole body
        // than an empty page.
        writer.prune_boilerplate = false;
        writer.children(*body, false);
    }
    writer.out
}

/// Matches in document order; a match nested in another match is not repeated.
fn collect_included<'a>(el: ElementRef<'a>, include: &[Selector], out: &mut Vec<ElementRef<'a>>) {
    if include.iter().any(|s| s.matches(&el)) {
        out.push(el);
        return;
    }
    for child in el.child_elements() {
        collect_included(child, include, out);
    }
}

fn main_content_root(doc: &Html) -> Option<ElementRef<'_>> {
    doc.select(&MAIN)
        .next()
        .or_else(|| doc.select(&ROLE_MAIN).next())
        .or_else(|| {
            let mut articles = doc.select(&ARTICLE);
            let first = articles.next()?;
            articles.next().is_none().then_some(first)
        })
}

struct Writer<'a> {
    base: &'a Url,
    excluded: &'a HashSet<NodeId>,
    prune_boilerplate: bool,
    remove_base64_images: bool,
    out: String,
}

impl Writer<'_> {
    fn children(&mut self, node: NodeRef<'_, Node>, in_article: bool) {
        for child in node.children() {
            match child.value() {
                Node::Text(text) => escape_into(&mut self.out, text, false),
                Node::Element(_) => self.element(child, in_article),
                _ => {}
            }
        }
    }

    fn element(&mut self, node: NodeRef<'_, Node>, in_article: bool) {
        let Node::Element(el) = node.value() else {
            return;
        };
        let name = el.name();
        if ALWAYS_DROPPED.contains(&name)
            || self.excluded.contains(&node.id())
            || (self.prune_boilerplate && is_boilerplate(el, in_article))
        {
            return;
        }
        // Icon-only anchors ("run", "copy", "§") would become `[](url)` noise.
        if name == "a" && !has_visible_content(node) {
            return;
        }
        if name == "img"
            && self.remove_base64_images
            && el
                .attr("src")
                .is_some_and(|s| s.trim_start().starts_with("data:"))
        {
            return;
        }
        self.out.push('<');
        self.out.push_str(name);
        for (attr, value) in el.attrs() {
            let kept = match attr {
                "href" | "src" => absolutize(self.base, value),
                "alt" | "title" | "colspan" | "rowspan" | "start" | "lang" => {
                    Some(value.to_string())
                }
                // Only a code block's language survives, for the fence's info string.
                "class" if name == "code" || name == "pre" => {
                    let langs: Vec<&str> = value
                        .split_ascii_whitespace()
                        .filter(|c| c.starts_with("language-") || c.starts_with("lang-"))
                        .collect();
                    (!langs.is_empty()).then(|| langs.join(" ").replacen("lang-", "language-", 1))
                }
                _ => None,
            };
            if let Some(value) = kept {
                self.out.push(' ');
                self.out.push_str(attr);
                self.out.push_str("=\"");
                escape_into(&mut self.out, &value, true);
                self.out.push('"');
            }
        }
        self.out.push('>');
        if VOID.contains(&name) {
            return;
        }
        let in_article = in_article || name == "article" || name == "main";
        self.children(node, in_article);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }
}

fn has_visible_content(node: NodeRef<'_, Node>) -> bool {
    node.descendants().any(|n| match n.value() {
        Node::Text(text) => !text.trim().is_empty(),
        Node::Element(el) => el.name() == "img",
        _ => false,
    })
}

/// Site chrome rather than content. `in_article`: headers and footers inside an article or main
/// region belong to it (the article's title lives there) and are kept.
fn is_boilerplate(el: &Element, in_article: bool) -> bool {
    match el.name() {
        "nav" | "aside" | "form" | "dialog" | "button" | "select" => return true,
        "header" | "footer" if !in_article => return true,
        _ => {}
    }
    if el.attr("hidden").is_some() || el.attr("aria-hidden") == Some("true") {
        return true;
    }
    if let Some(role) = el.attr("role") {
        let role = role.trim().to_ascii_lowercase();
        match role.as_str() {
            "navigation" | "complementary" | "search" | "dialog" | "alertdialog" | "menubar" => {
                return true;
            }
            "banner" | "contentinfo" if !in_article => return true,
            _ => {}
        }
    }
    el.id().is_some_and(is_chrome_name) || el.classes().any(is_chrome_name)
}

/// Class and id names that mark cookie banners, sidebars, navigation bars and breadcrumbs.
fn is_chrome_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["cookiebot", "onetrust", "cookieconsent", "cookie-law"]
        .iter()
        .any(|m| lower.contains(m))
        || lower.split(['-', '_']).any(|part| {
            matches!(
                part,
                "cookie"
                    | "cookies"
                    | "consent"
                    | "gdpr"
                    | "sidebar"
                    | "navbar"
                    | "breadcrumb"
                    | "breadcrumbs"
                    | "skiplink"
            )
        })
}

/// An attribute URL made absolute; script URLs are dropped.
fn absolutize(base: &Url, raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let url = base.join(raw).ok()?;
    matches!(url.scheme(), "http" | "https" | "mailto" | "tel" | "data").then(|| url.into())
}

fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' if !attribute => out.push_str("&lt;"),
            '>' if !attribute => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            c => out.push(c),
        }
    }
}

fn to_markdown(html: &str) -> String {
    let markdown = MARKDOWN.convert(html).unwrap_or_default();
    // htmd keeps the blank lines of the source between blocks; more than one in a row is noise.
    let mut out = String::with_capacity(markdown.len());
    let mut newlines = 0;
    for c in markdown.chars() {
        if c == '\n' {
            newlines += 1;
            if newlines > 2 {
                continue;
            }
        } else {
            newlines = 0;
        }
        out.push(c);
    }
    out.trim().to_string()
}

fn collapse_whitespace<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for word in parts.flat_map(str::split_whitespace) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(html: &str, only_main: bool) -> Extracted {
        let selectors = Selectors::default();
        extract(
            html,
            &Url::parse("https://example.org/docs/page.html").unwrap(),
            &Options {
                only_main_content: only_main,
                selectors: &selectors,
                remove_base64_images: true,
                want_html: true,
            },
        )
    }

    const PAGE: &str = r#"<!doctype html><html lang="en-GB"><head>
        <title>  The   Page </title>
        <meta name="description" content="What the page is about">
        <meta property="og:title" content="OG title">
        <link rel="Canonical" href="/docs/page">
        </head><body>
        <header><a href="/">Home</a></header>
        <nav><ul><li><a href="/a">A</a></li></ul></nav>
        <div id="cookie-banner">We use cookies <button>OK</button></div>
        <main><article><header><h1>Real title</h1></header>
          <p>Some <em>emphasis</em> and <strong>strength</strong> and a <a href="../other#frag">link</a>.</p>
          <pre><code class="language-rust">fn main() {}</code></pre>
          <table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
          <img src="data:image/png;base64,AAAA" alt="inline">
        </article></main>
        <aside>Related</aside><footer>© footer text</footer>
        <script>var x = "<p>not content</p>";</script>
        </body></html>"#;

    #[test]
    fn metadata() {
        let e = run(PAGE, true);
        assert_eq!(e.title.as_deref(), Some("The Page"));
        assert_eq!(e.description.as_deref(), Some("What the page is about"));
        assert_eq!(e.language.as_deref(), Some("en-GB"));
        assert_eq!(
            e.canonical_url.as_deref(),
            Some("https://example.org/docs/page")
        );
        assert_eq!(e.meta["og:title"], vec!["OG title"]);
    }

    #[test]
    fn main_content_only() {
        let md = run(PAGE, true).markdown;
        assert!(md.starts_with("# Real title"), "{md}");
        assert!(
            md.contains("*emphasis*") || md.contains("_emphasis_"),
            "{md}"
        );
        assert!(md.contains("**strength**"), "{md}");
        assert!(
            md.contains("[link](https://example.org/other#frag)"),
            "{md}"
        );
        assert!(md.contains("```rust\nfn main() {}\n```"), "{md}");
        assert!(md.contains("| k | v |"), "{md}");
        for chrome in [
            "Home",
            "cookies",
            "Related",
            "footer text",
            "not content",
            "base64",
        ] {
            assert!(!md.contains(chrome), "{chrome} leaked into: {md}");
        }
    }

    #[test]
    fn everything_when_not_main_only() {
        let md = run(PAGE, false).markdown;
        assert!(md.contains("Related") && md.contains("footer text"), "{md}");
        assert!(!md.contains("not content"), "scripts never make it: {md}");
    }

    #[test]
    fn links_absolute_deduplicated_without_fragments() {
        let e = run(
            r#"<a href="/x#a">1</a><a href="/x#b">2</a><a href="https://other.net/y">3</a>
               <a href="javascript:void(0)">4</a><a href="mailto:a@b.c">5</a><a href="rel">6</a>"#,
            true,
        );
        assert_eq!(
            e.links,
            vec![
                "https://example.org/x",
                "https://other.net/y",
                "https://example.org/docs/rel"
            ]
        );
    }

    #[test]
    fn base_href_applies() {
        let e = run(
            r#"<head><base href="https://cdn.example.net/root/"></head><a href="p">p</a>"#,
            true,
        );
        assert_eq!(e.links, vec!["https://cdn.example.net/root/p"]);
    }

    #[test]
    fn include_and_exclude_selectors() {
        let selectors = Selectors::compile(&[".keep".into()], &[".drop".into()]).unwrap();
        let e = extract(
            r#"<div class="keep">one <span class="drop">gone</span><div class="keep">nested</div></div>
               <p>outside</p><p class="keep">two</p>"#,
            &Url::parse("https://example.org/").unwrap(),
            &Options {
                only_main_content: true,
                selectors: &selectors,
                remove_base64_images: true,
                want_html: false,
            },
        );
        assert!(e.markdown.contains("one") && e.markdown.contains("two"));
        assert!(!e.markdown.contains("gone") && !e.markdown.contains("outside"));
        assert_eq!(e.markdown.matches("nested").count(), 1);
    }

    #[test]
    fn bad_selector_is_an_error() {
        let err = Selectors::compile(&["div[".into()], &[]).unwrap_err();
        assert!(matches!(err, ScrapeError::InvalidSelector { .. }), "{err}");
    }

    #[test]
    fn icon_only_anchors_are_dropped() {
        let md = run(r#"<p>Text <a href="/run"><span class="icon"></span></a> <a href="/i"><img src="/i.png" alt="pic"></a></p>"#, true).markdown;
        assert!(!md.contains("[]("), "{md}");
        assert!(md.contains("![pic](https://example.org/i.png)"), "{md}");
    }

    #[test]
    fn title_falls_back_to_h1() {
        assert_eq!(
            run("<h1> Hello  there </h1>", true).title.as_deref(),
            Some("Hello there")
        );
    }

    #[test]
    fn pruning_everything_falls_back_to_body() {
        let md = run("<body><form><p>Only a form here</p></form></body>", true).markdown;
        assert!(md.contains("Only a form here"), "{md}");
    }

    #[test]
    fn html_detection() {
        assert!(is_html("text/html; charset=utf-8", b""));
        assert!(is_html("", b"\n  <!DOCTYPE html><html>"));
        assert!(!is_html("application/pdf", b"%PDF-1.7"));
        assert!(!is_html("", b"%PDF-1.7"));
    }
}
