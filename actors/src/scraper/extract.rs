//! HTML → page facts: title, description, language, canonical URL, meta tags, absolute links, and
//! the content as Markdown (and cleaned HTML when asked).
//!
//! The page is parsed once (html5ever, through `scraper`). One walk collects every fact; a second
//! walk over the content region prunes boilerplate, makes URLs absolute and drops presentational
//! attributes while building the DOM that `htmd` renders as Markdown — directly, node by node, so
//! the content is never serialised and parsed a second time. (Parsing dominates the cost: see
//! `benches/extract.rs`.)
//!
//! Size: one file on purpose. Both walks share the pruning rules and the URL resolution; keeping
//! them together keeps the facts and the Markdown from disagreeing about what the content is.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::LazyLock;

use ego_tree::{NodeId, NodeRef};
use html5ever::serialize::{SerializeOpts, TraversalScope};
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::{Attribute, LocalName, QualName, ns};
use markup5ever_rcdom::{Handle, Node as DomNode, NodeData, SerializableHandle};
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
const XHTML: &str = "http://www.w3.org/1999/xhtml";

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
#[derive(Debug, Default, Clone)]
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
    /// Also return the cleaned HTML of the content.
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
    match crate::model::media_type(content_type).as_str() {
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
    let facts = Facts::collect(&doc);
    let (mut extracted, base) = Head {
        title: facts.title,
        first_h1: facts.first_h1,
        meta: facts.meta,
        base_href: facts.base_href,
        canonical_href: facts.canonical_href,
        hrefs: &facts.hrefs,
        lang: facts.lang,
    }
    .summarize(url);
    let body = facts
        .body
        .and_then(|id| doc.tree.get(id))
        .and_then(ElementRef::wrap)
        .unwrap_or_else(|| doc.root_element());
    let main = facts.main_region.and_then(|id| doc.tree.get(id));
    let mut content = content_dom(&doc, body, main, &base, options, options.only_main_content);
    let mut markdown = to_markdown(&content);
    if options.only_main_content && markdown.is_empty() {
        // Pruning left nothing (a page built entirely inside, say, a form): better the whole
        // body than an empty page.
        content = content_dom(&doc, body, None, &base, options, false);
        markdown = to_markdown(&content);
    }

    extracted.markdown = markdown;
    extracted.html = options.want_html.then(|| serialize(&content));
    extracted
}

/// What a page says about itself, however it was read: the raw facts, before fallbacks.
struct Head<'a> {
    title: Option<String>,
    first_h1: Option<String>,
    meta: BTreeMap<String, Vec<String>>,
    base_href: Option<&'a str>,
    canonical_href: Option<&'a str>,
    hrefs: &'a [&'a str],
    lang: Option<&'a str>,
}

impl Head<'_> {
    /// Title, description, language, canonical URL and absolute links (no content yet), and
    /// the base URL relative links resolve against.
    fn summarize(self, url: &Url) -> (Extracted, Url) {
        let base = self
            .base_href
            .and_then(|href| url.join(href.trim()).ok())
            .unwrap_or_else(|| url.clone());
        let meta = self.meta;
        let first_meta = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| meta.get(*k).and_then(|v| v.first()).cloned())
                .filter(|v| !v.is_empty())
        };
        let title = self
            .title
            .or_else(|| first_meta(&["og:title", "twitter:title"]))
            .or(self.first_h1);
        let description = first_meta(&["description", "og:description", "twitter:description"]);
        let language = self
            .lang
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .or_else(|| first_meta(&["content-language"]))
            .or_else(|| first_meta(&["og:locale"]).map(|l| l.replace('_', "-")));
        let canonical_url = self
            .canonical_href
            .and_then(|href| base.join(href.trim()).ok())
            .map(String::from);
        let links = absolute_links(self.hrefs, &base);
        let extracted = Extracted {
            title,
            description,
            language,
            canonical_url,
            meta,
            links,
            markdown: String::new(),
            html: None,
        };
        (extracted, base)
    }
}

/// The page's facts (title, description, language, canonical URL, meta tags, links) without
/// its content: what a crawl or a map needs from a page it only passes through. One pass of
/// html5ever's tokenizer and no tree — several times cheaper than [`extract`], and the same
/// facts (tested on the benchmark pages).
pub fn facts(html: &str, url: &Url) -> Extracted {
    let sink = FactSink::default();
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let found = tokenizer.sink.found.into_inner();
    let hrefs: Vec<&str> = found.hrefs.iter().map(String::as_str).collect();
    Head {
        title: found.title,
        first_h1: found.first_h1,
        meta: found.meta,
        base_href: found.base_href.as_deref(),
        canonical_href: found.canonical_href.as_deref(),
        hrefs: &hrefs,
        lang: found.lang.as_deref(),
    }
    .summarize(url)
    .0
}

/// Collects the facts as tokens go by. The tokenizer alone does not know which elements hold
/// raw text: the sink tells it, as the tree builder would, so a `<script>`'s contents never
/// pass for markup.
#[derive(Default)]
struct FactSink {
    found: RefCell<Found>,
}

#[derive(Default)]
struct Found {
    title: Option<String>,
    first_h1: Option<String>,
    meta: BTreeMap<String, Vec<String>>,
    base_href: Option<String>,
    canonical_href: Option<String>,
    hrefs: Vec<String>,
    lang: Option<String>,
    seen_html: bool,
    /// Inside `<svg>` or `<math>`: their `<title>`s are not the page's.
    foreign: usize,
    /// Text being collected for the title or the first `<h1>`.
    collecting: Option<Collecting>,
    text: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Collecting {
    Title,
    H1,
}

impl TokenSink for FactSink {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        let Ok(mut found) = self.found.try_borrow_mut() else {
            return TokenSinkResult::Continue;
        };
        match token {
            Token::CharacterTokens(text) if found.collecting.is_some() => {
                found.text.push_str(&text);
                TokenSinkResult::Continue
            }
            Token::TagToken(tag) => found.tag(tag),
            _ => TokenSinkResult::Continue,
        }
    }
}

impl Found {
    fn tag(&mut self, tag: Tag) -> TokenSinkResult<()> {
        let attr = |name: &str| {
            tag.attrs
                .iter()
                .find(|a| &*a.name.local == name)
                .map(|a| a.value.to_string())
        };
        let name = &*tag.name;
        if tag.kind == TagKind::EndTag {
            match name {
                "svg" | "math" => self.foreign = self.foreign.saturating_sub(1),
                "title" if self.collecting == Some(Collecting::Title) => self.finish(),
                "h1" if self.collecting == Some(Collecting::H1) => self.finish(),
                _ => {}
            }
            return TokenSinkResult::Continue;
        }
        match name {
            "html" if !self.seen_html => {
                self.seen_html = true;
                self.lang = attr("lang").or_else(|| attr("xml:lang"));
            }
            "svg" | "math" if !tag.self_closing => self.foreign += 1,
            "title" if self.foreign == 0 => {
                if self.title.is_none() {
                    self.collecting = Some(Collecting::Title);
                    self.text.clear();
                }
                return TokenSinkResult::RawData(RawKind::Rcdata);
            }
            "h1" if self.first_h1.is_none() && self.collecting.is_none() => {
                self.collecting = Some(Collecting::H1);
                self.text.clear();
            }
            "meta" => {
                let key = ["name", "property", "itemprop", "http-equiv"]
                    .iter()
                    .find_map(|a| attr(a))
                    .map(|k| k.trim().to_ascii_lowercase())
                    .filter(|k| !k.is_empty());
                if let (Some(key), Some(content)) = (key, attr("content")) {
                    let content = collapse_whitespace(std::iter::once(content.as_str()));
                    self.meta.entry(key).or_default().push(content);
                }
            }
            "base" if self.base_href.is_none() => self.base_href = attr("href"),
            "link" if self.canonical_href.is_none() => {
                let canonical = attr("rel").is_some_and(|rel| {
                    rel.split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("canonical"))
                });
                if canonical {
                    self.canonical_href = attr("href");
                }
            }
            "a" | "area" => self.hrefs.extend(attr("href")),
            _ => {}
        }
        if self.foreign > 0 || tag.self_closing {
            return TokenSinkResult::Continue;
        }
        match name {
            "script" => TokenSinkResult::RawData(RawKind::ScriptData),
            "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript" => {
                TokenSinkResult::RawData(RawKind::Rawtext)
            }
            "textarea" => TokenSinkResult::RawData(RawKind::Rcdata),
            "plaintext" => TokenSinkResult::Plaintext,
            _ => TokenSinkResult::Continue,
        }
    }

    /// The title or first heading being collected is complete.
    fn finish(&mut self) {
        let text = Some(collapse_whitespace(std::iter::once(self.text.as_str())))
            .filter(|t| !t.is_empty());
        match self.collecting.take() {
            Some(Collecting::Title) => self.title = text,
            Some(Collecting::H1) => self.first_h1 = text,
            None => {}
        }
    }
}

/// Everything the page says about itself, gathered in one walk over the parsed document.
#[derive(Default)]
struct Facts<'a> {
    title: Option<String>,
    first_h1: Option<String>,
    meta: BTreeMap<String, Vec<String>>,
    base_href: Option<&'a str>,
    canonical_href: Option<&'a str>,
    hrefs: Vec<&'a str>,
    lang: Option<&'a str>,
    body: Option<NodeId>,
    /// `<main>`, else `[role=main]`, else the page's only `<article>`.
    main_region: Option<NodeId>,
}

impl<'a> Facts<'a> {
    fn collect(doc: &'a Html) -> Self {
        let mut facts = Facts {
            lang: doc
                .root_element()
                .attr("lang")
                .or_else(|| doc.root_element().attr("xml:lang")),
            ..Facts::default()
        };
        let (mut main, mut role_main, mut article, mut articles) = (None, None, None, 0);
        for node in doc.tree.root().descendants() {
            let Node::Element(el) = node.value() else {
                continue;
            };
            match el.name() {
                "title" if facts.title.is_none() && &*el.name.ns == XHTML => {
                    facts.title =
                        Some(collapse_whitespace(node_text(node))).filter(|t| !t.is_empty());
                }
                "meta" => {
                    let key = ["name", "property", "itemprop", "http-equiv"]
                        .iter()
                        .find_map(|a| el.attr(a))
                        .map(|k| k.trim().to_ascii_lowercase())
                        .filter(|k| !k.is_empty());
                    if let (Some(key), Some(content)) = (key, el.attr("content")) {
                        let content = collapse_whitespace(std::iter::once(content));
                        facts.meta.entry(key).or_default().push(content);
                    }
                }
                "base" if facts.base_href.is_none() => facts.base_href = el.attr("href"),
                "link" if facts.canonical_href.is_none() => {
                    let canonical = el.attr("rel").is_some_and(|rel| {
                        rel.split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("canonical"))
                    });
                    if canonical {
                        facts.canonical_href = el.attr("href");
                    }
                }
                "a" | "area" => facts.hrefs.extend(el.attr("href")),
                "body" if facts.body.is_none() => facts.body = Some(node.id()),
                "main" if main.is_none() => main = Some(node.id()),
                "article" => {
                    articles += 1;
                    article.get_or_insert(node.id());
                }
                "h1" if facts.first_h1.is_none() => {
                    facts.first_h1 =
                        Some(collapse_whitespace(node_text(node))).filter(|t| !t.is_empty());
                }
                _ => {}
            }
            if role_main.is_none()
                && el
                    .attr("role")
                    .is_some_and(|r| r.trim().eq_ignore_ascii_case("main"))
            {
                role_main = Some(node.id());
            }
        }
        facts.main_region = main
            .or(role_main)
            .or(if articles == 1 { article } else { None });
        facts
    }
}

fn node_text<'a>(node: NodeRef<'a, Node>) -> impl Iterator<Item = &'a str> {
    node.descendants().filter_map(|n| match n.value() {
        Node::Text(text) => Some(&**text),
        _ => None,
    })
}

fn absolute_links(hrefs: &[&str], base: &Url) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut links = Vec::new();
    for href in hrefs {
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

/// The content as a DOM for htmd: the chosen region(s), boilerplate pruned.
fn content_dom(
    doc: &Html,
    body: ElementRef<'_>,
    main: Option<NodeRef<'_, Node>>,
    base: &Url,
    options: &Options<'_>,
    prune: bool,
) -> Handle {
    let excluded: HashSet<NodeId> = options
        .selectors
        .exclude
        .iter()
        .flat_map(|s| doc.select(s).map(|e| e.id()))
        .collect();
    let builder = Builder {
        base,
        excluded: &excluded,
        prune_boilerplate: prune,
        remove_base64_images: options.remove_base64_images,
    };
    let root = DomNode::new(NodeData::Document);
    if !options.selectors.include.is_empty() {
        let mut included = Vec::new();
        collect_included(body, &options.selectors.include, &mut included);
        for element in included {
            builder.element(*element, &root, false);
        }
        return root;
    }
    match main.filter(|_| prune) {
        Some(region) => builder.children(region, &root, true),
        None => builder.children(*body, &root, false),
    }
    root
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

/// Copies the kept part of scraper's tree into an rcdom tree, the DOM htmd renders.
struct Builder<'a> {
    base: &'a Url,
    excluded: &'a HashSet<NodeId>,
    prune_boilerplate: bool,
    remove_base64_images: bool,
}

impl Builder<'_> {
    fn children(&self, from: NodeRef<'_, Node>, into: &Handle, in_article: bool) {
        for child in from.children() {
            match child.value() {
                // A tendril clone shares the parsed text's buffer: no copy.
                Node::Text(text) => append(
                    into,
                    DomNode::new(NodeData::Text {
                        contents: RefCell::new(text.text.clone()),
                    }),
                ),
                Node::Element(_) => self.element(child, into, in_article),
                _ => {}
            }
        }
    }

    fn element(&self, node: NodeRef<'_, Node>, into: &Handle, in_article: bool) {
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
        // Icon-only anchors ("run", "copy", "§") would become `[](url)` noise; a heading's
        // permalink ("¶") would put a link into every heading path and embedded chunk.
        if name == "a" && (!has_visible_content(node) || is_permalink(el, node)) {
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
        // Values are shared tendrils: cloning them copies no text. Names are re-interned: the
        // markdown converter's html5ever is another version than the parser's, so atoms differ.
        let attrs = el
            .attrs
            .iter()
            .filter_map(|(attr, value)| {
                let kept = match &*attr.local {
                    "href" | "src" => absolutize(self.base, value).map(StrTendril::from),
                    "alt" | "title" | "colspan" | "rowspan" | "start" | "lang" => {
                        Some(value.clone())
                    }
                    // Only a code block's language survives, for the fence's info string.
                    "class" if name == "code" || name == "pre" => {
                        let langs: Vec<&str> = value
                            .split_ascii_whitespace()
                            .filter(|c| c.starts_with("language-") || c.starts_with("lang-"))
                            .collect();
                        (!langs.is_empty()).then(|| {
                            StrTendril::from(langs.join(" ").replacen("lang-", "language-", 1))
                        })
                    }
                    _ => None,
                };
                kept.map(|value| Attribute {
                    name: QualName::new(None, ns!(), LocalName::from(&*attr.local)),
                    value,
                })
            })
            .collect();
        let element = DomNode::new(NodeData::Element {
            name: QualName::new(None, ns!(html), LocalName::from(name)),
            attrs: RefCell::new(attrs),
            template_contents: RefCell::new(None),
            mathml_annotation_xml_integration_point: false,
        });
        if !VOID.contains(&name) {
            let in_article = in_article || name == "article" || name == "main";
            self.children(node, &element, in_article);
        }
        append(into, element);
    }
}

fn append(parent: &Handle, child: Handle) {
    child.parent.set(Some(Rc::downgrade(parent)));
    parent.children.borrow_mut().push(child);
}

fn has_visible_content(node: NodeRef<'_, Node>) -> bool {
    node.descendants().any(|n| match n.value() {
        Node::Text(text) => !text.trim().is_empty(),
        Node::Element(el) => el.name() == "img",
        _ => false,
    })
}

/// A heading's permalink: a link to a fragment whose only text is a mark (`¶`, `#`, `§`, `🔗`),
/// as Sphinx, MkDocs and GitHub render them.
fn is_permalink(el: &Element, node: NodeRef<'_, Node>) -> bool {
    let to_fragment = el.attr("href").is_some_and(|href| href.contains('#'));
    let text: String = node
        .descendants()
        .filter_map(|n| match n.value() {
            Node::Text(text) => Some(text.to_string()),
            _ => None,
        })
        .collect();
    to_fragment && matches!(text.trim(), "¶" | "#" | "§" | "🔗" | "∞" | "")
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

fn to_markdown(content: &Handle) -> String {
    let markdown = MARKDOWN.tree_to_markdown(content);
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

fn serialize(content: &Handle) -> String {
    let mut out = Vec::new();
    let handle = SerializableHandle::from(content.clone());
    let opts = SerializeOpts {
        traversal_scope: TraversalScope::ChildrenOnly(None),
        ..SerializeOpts::default()
    };
    match html5ever::serialize(&mut out, &handle, opts) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => String::new(), // writing to a Vec cannot fail
    }
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

    fn run_at(html: &str, url: &Url) -> Extracted {
        let selectors = Selectors::default();
        let options = Options {
            only_main_content: true,
            selectors: &selectors,
            remove_base64_images: true,
            want_html: false,
        };
        extract(html, url, &options)
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
    fn heading_permalinks_are_dropped_and_plain_links_kept() {
        let page = r##"<html><body><main>
            <h2 id="theory">Theory<a class="headerlink" href="#theory" title="Permalink to this heading">¶</a></h2>
            <h3 id="api"><a href="#api">#</a> API</h3>
            <p>See <a href="#theory">the theory</a> and <a href="/x#y">elsewhere</a>.</p>
            </main></body></html>"##;
        let md = run(page, true).markdown;
        assert!(md.contains("## Theory\n"), "{md}");
        assert!(md.contains("### API"), "{md}");
        assert!(!md.contains('¶') && !md.contains("Permalink"), "{md}");
        assert!(md.contains("[the theory]("), "{md}");
        assert!(md.contains("[elsewhere](https://example.org/x#y)"), "{md}");
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
    #[test]
    fn the_facts_pass_finds_what_the_full_parse_finds() {
        let tricky = r#"<!doctype html><html lang="de"><head><base href="/docs/">
            <title> The   &amp; title </title>
            <meta name="Description" content="  A  page ">
            <meta property="og:title" content="OG">
            <link rel="stylesheet" href="s.css"><link rel="alternate canonical" href="canon.html">
            <script>var s = "<a href='/from-script'>x</a>"; if (a < b) {}</script>
            <style>a[href="/from-style"] { color: red }</style></head>
            <body><svg><title>not the title</title><a href="svg-link">s</a></svg>
            <noscript><a href="/from-noscript">n</a></noscript>
            <h1>Heading <em>one</em></h1><a href="rel.html#frag">r</a><a href="rel.html">again</a>
            <map><area href="/area"></map><a href="mailto:x@y.z">m</a>
            <textarea><a href="/from-textarea"></a></textarea></body></html>"#;
        let fixtures = [
            tricky.to_string(),
            include_str!("../../../benches/fixtures/cargo-semver.html").to_string(),
            include_str!("../../../benches/fixtures/std-binaryheap.html").to_string(),
            "<p>no head at all <a href=x>x</a>".to_string(),
        ];
        let url = Url::parse("https://example.org/start/page").unwrap();
        for html in &fixtures {
            let full = run_at(html, &url);
            let quick = facts(html, &url);
            assert_eq!(quick.title, full.title);
            assert_eq!(quick.description, full.description);
            assert_eq!(quick.language, full.language);
            assert_eq!(quick.canonical_url, full.canonical_url);
            assert_eq!(quick.meta, full.meta);
            assert_eq!(quick.links, full.links);
            assert!(quick.markdown.is_empty());
        }
        let quick = facts(&fixtures[0], &url);
        assert_eq!(quick.title.as_deref(), Some("The & title"));
        assert_eq!(
            quick.links,
            [
                "https://example.org/docs/svg-link",
                "https://example.org/docs/rel.html",
                "https://example.org/area"
            ]
        );
    }
}
