//! URL identity for crawling: the normal form a URL is de-duplicated under, the looser key
//! `deduplicateSimilarURLs` uses, the "shape" trap detection counts, and the file types a crawl
//! never fetches.

use url::Url;

/// Query parameters that identify a click, not a document.
const TRACKING: &[&str] = &[
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga",
    "_gl", "igshid", "ref_src", "spm",
];

/// Extensions of files that are neither pages nor documents Aurora can read.
const ASSETS: &[&str] = &[
    "7z", "avi", "bin", "bmp", "bz2", "css", "dmg", "eot", "exe", "gif", "gz", "ico", "iso", "jar",
    "jpeg", "jpg", "js", "json", "mjs", "mkv", "mov", "mpeg", "otf", "png", "rar", "svg", "tar",
    "tgz", "tif", "tiff", "ttf", "wasm", "webp", "woff", "woff2", "xz", "zip",
];

/// Recordings: read only when a transcriber is configured.
const MEDIA: &[&str] = &["flac", "m4a", "mp3", "mp4", "ogg", "opus", "wav", "webm"];

/// The form a URL is fetched and de-duplicated in. `Url` already lower-cases scheme and host,
/// drops default ports and resolves dot segments; this also drops the fragment and tracking
/// parameters and sorts the query (or drops it when `ignore_query`).
pub fn normalise(url: &Url, ignore_query: bool) -> Url {
    let mut url = url.clone();
    url.set_fragment(None);
    if ignore_query {
        url.set_query(None);
        return url;
    }
    if url.query().is_some() {
        let mut pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| !is_tracking(key))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.sort();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    url
}

fn is_tracking(key: &str) -> bool {
    key.starts_with("utm_") || TRACKING.contains(&key)
}

/// What `deduplicateSimilarURLs` treats as one page: `http`/`https`, `www.` or not, a trailing
/// slash and a trailing `index.html` make no difference.
pub fn similar_key(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let host = host.strip_prefix("www.").unwrap_or(host);
    let path = url.path();
    let path = path
        .strip_suffix("index.html")
        .or_else(|| path.strip_suffix("index.htm"))
        .unwrap_or(path);
    let path = path.trim_end_matches('/');
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    match url.query() {
        Some(query) => format!("{host}{port}{path}?{query}"),
        None => format!("{host}{port}{path}"),
    }
}

/// The URL with every run of digits replaced by `#` and query values dropped: a calendar's
/// `/cal?month=2031-07` and `/cal?month=2031-08` share a shape, distinct pages rarely do.
pub fn shape(url: &Url) -> String {
    let mut out = String::with_capacity(url.as_str().len());
    out.push_str(url.host_str().unwrap_or_default());
    let mut in_digits = false;
    for c in url.path().chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    let mut keys: Vec<_> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    if !keys.is_empty() {
        keys.sort();
        keys.dedup();
        out.push('?');
        out.push_str(&keys.join("&"));
    }
    out
}

/// The most times any one path segment repeats (`/a/b/a/b/a/b` → 3): a relative-link loop
/// grows URLs this way forever.
pub fn max_segment_repeats(url: &Url) -> usize {
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    segments
        .iter()
        .map(|s| segments.iter().filter(|t| *t == s).count())
        .max()
        .unwrap_or(0)
}

/// Path segments below the root (`/a/b/` → 2), for `maxDepth`.
pub fn path_depth(url: &Url) -> usize {
    url.path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).count())
        .unwrap_or(0)
}

/// Images, scripts, archives (and recordings, unless `media`): never worth a fetch in a crawl.
pub fn is_asset(url: &Url, media: bool) -> bool {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default();
    last.rsplit_once('.').is_some_and(|(_, ext)| {
        let ext = ext.to_ascii_lowercase();
        ASSETS.contains(&ext.as_str()) || (!media && MEDIA.contains(&ext.as_str()))
    })
}

/// The host without a leading `www.`, which sites use interchangeably.
pub fn site_host(url: &Url) -> &str {
    let host = url.host_str().unwrap_or_default();
    host.strip_prefix("www.").unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn normal_form_drops_what_does_not_name_a_document() {
        let cases = [
            (
                "HTTP://Example.COM:80/a/./b/../c#frag",
                "http://example.com/a/c",
            ),
            (
                "https://example.com:443/?b=2&a=1",
                "https://example.com/?a=1&b=2",
            ),
            (
                "https://example.com/p?utm_source=x&id=7&fbclid=y&gclid=z",
                "https://example.com/p?id=7",
            ),
            (
                "https://example.com/p?utm_medium=mail",
                "https://example.com/p",
            ),
            ("https://example.com/p?", "https://example.com/p"),
            (
                "https://example.com:8443/p?q=a%20b",
                "https://example.com:8443/p?q=a+b",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise(&u(raw), false).as_str(), want, "{raw}");
        }
        assert_eq!(
            normalise(&u("https://example.com/p?id=7#x"), true).as_str(),
            "https://example.com/p"
        );
    }

    #[test]
    fn similar_urls_share_a_key() {
        let key = similar_key(&u("https://example.com/docs/"));
        for other in [
            "http://www.example.com/docs",
            "https://example.com/docs/index.html",
            "https://www.example.com/docs/",
        ] {
            assert_eq!(similar_key(&u(other)), key, "{other}");
        }
        assert_ne!(similar_key(&u("https://example.com/docs/a")), key);
        assert_ne!(similar_key(&u("https://example.com:8080/docs")), key);
    }

    #[test]
    fn shapes_collapse_numbers_and_query_values() {
        assert_eq!(
            shape(&u("http://h/cal/2031/07/?view=month&day=3")),
            shape(&u("http://h/cal/1999/12/?day=30&view=week"))
        );
        assert_ne!(shape(&u("http://h/a/intro")), shape(&u("http://h/a/setup")));
    }

    #[test]
    fn segment_repeats_depth_and_assets() {
        assert_eq!(max_segment_repeats(&u("http://h/a/b/a/b/a/c")), 3);
        assert_eq!(max_segment_repeats(&u("http://h/")), 0);
        assert_eq!(path_depth(&u("http://h/a/b/")), 2);
        assert_eq!(path_depth(&u("http://h/")), 0);
        assert!(is_asset(&u("http://h/img/logo.PNG"), true));
        assert!(is_asset(&u("http://h/dl/archive.tar.gz"), true));
        assert!(!is_asset(&u("http://h/docs/page.html"), false));
        assert!(!is_asset(&u("http://h/paper.pdf"), false));
        assert!(!is_asset(&u("http://h/v1.2/"), false));
        assert!(is_asset(&u("http://h/talks/keynote.mp3"), false));
        assert!(!is_asset(&u("http://h/talks/keynote.mp3"), true));
    }
}
