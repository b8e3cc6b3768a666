//! Decoding a fetched body to UTF-8, choosing the encoding the way browsers do (WHATWG "encoding
//! sniffing"): a byte-order mark wins, then the `Content-Type` charset, then a `<meta>` declaration
//! in the first 1024 bytes, then UTF-8 if the bytes are valid UTF-8, else windows-1252.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// How far into the document a `<meta charset>` is looked for (the HTML spec's prescan limit).
const PRESCAN_BYTES: usize = 1024;

/// Decodes `body`; returns the text and the encoding that was used. `truncated`: the body was cut
/// by the size cap, so an incomplete character at its very end is not evidence against UTF-8.
pub fn decode(
    body: &[u8],
    content_type: Option<&str>,
    truncated: bool,
) -> (String, &'static Encoding) {
    if let Some((encoding, bom_len)) = Encoding::for_bom(body) {
        let (text, _) = encoding.decode_without_bom_handling(&body[bom_len..]);
        return (text.into_owned(), encoding);
    }
    let declared = content_type
        .and_then(charset_param)
        .or_else(|| prescan_meta(&body[..body.len().min(PRESCAN_BYTES)]))
        .map(for_html);
    let encoding = declared.unwrap_or_else(|| {
        if is_utf8(body, truncated) {
            UTF_8
        } else {
            WINDOWS_1252
        }
    });
    let (text, _) = encoding.decode_without_bom_handling(body);
    (text.into_owned(), encoding)
}

fn is_utf8(body: &[u8], truncated: bool) -> bool {
    match std::str::from_utf8(body) {
        Ok(_) => true,
        Err(e) => truncated && e.error_len().is_none(),
    }
}

/// HTML never decodes as UTF-16 from a declaration (the bytes would not have parsed as ASCII to
/// find it), and `x-user-defined` means windows-1252 for documents.
fn for_html(encoding: &'static Encoding) -> &'static Encoding {
    if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
        UTF_8
    } else if encoding == encoding_rs::X_USER_DEFINED {
        WINDOWS_1252
    } else {
        encoding
    }
}

/// `text/html; charset="ISO-8859-1"` → windows-1252 (the label's WHATWG meaning).
fn charset_param(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("charset") {
            return None;
        }
        Encoding::for_label(value.trim().trim_matches(['"', '\'']).as_bytes())
    })
}

/// Finds `<meta charset=x>` or `<meta http-equiv=content-type content="…; charset=x">`.
fn prescan_meta(head: &[u8]) -> Option<&'static Encoding> {
    let lower = head.to_ascii_lowercase();
    let mut rest = lower.as_slice();
    while let Some(start) = find(rest, b"<meta") {
        let tag = &rest[start + 5..];
        let end = tag.iter().position(|&b| b == b'>').unwrap_or(tag.len());
        let tag = &tag[..end];
        if let Some(label) = charset_in_tag(tag)
            && let Some(encoding) = Encoding::for_label(label)
        {
            return Some(encoding);
        }
        rest = &rest[start + 5 + end..];
    }
    None
}

fn charset_in_tag(tag: &[u8]) -> Option<&[u8]> {
    let at = find(tag, b"charset")?;
    let mut value = &tag[at + b"charset".len()..];
    value = trim_start(value);
    value = trim_start(value.strip_prefix(b"=")?);
    let value = value
        .strip_prefix(b"\"")
        .or_else(|| value.strip_prefix(b"'"))
        .unwrap_or(value);
    let len = value
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || b"-_.:".contains(b)))
        .unwrap_or(value.len());
    (len > 0).then_some(&value[..len])
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[skip..]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_charset_wins_over_default() {
        let (text, enc) = decode(b"caf\xe9", Some("text/html; charset=ISO-8859-1"), false);
        assert_eq!(text, "café");
        assert_eq!(enc, WINDOWS_1252);
    }

    #[test]
    fn quoted_header_charset() {
        let (_, enc) = decode(b"x", Some("text/html; charset=\"shift_jis\""), false);
        assert_eq!(enc, encoding_rs::SHIFT_JIS);
    }

    #[test]
    fn meta_charset_and_http_equiv() {
        let html = b"<html><head><meta charset='iso-8859-1'></head><body>caf\xe9</body></html>";
        assert_eq!(decode(html, Some("text/html"), false).1, WINDOWS_1252);
        let html = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=koi8-r\">\xc1";
        let (text, enc) = decode(html, None, false);
        assert_eq!(enc, encoding_rs::KOI8_R);
        assert!(text.ends_with('а'));
    }

    #[test]
    fn bom_beats_header() {
        let (text, enc) = decode(
            b"\xef\xbb\xbfcaf\xc3\xa9",
            Some("text/html; charset=latin1"),
            false,
        );
        assert_eq!((text.as_str(), enc), ("café", UTF_8));
    }

    #[test]
    fn undeclared_falls_back_on_validity() {
        assert_eq!(
            decode("café".as_bytes(), None, false),
            ("café".to_string(), UTF_8)
        );
        assert_eq!(
            decode(b"caf\xe9", None, false),
            ("café".to_string(), WINDOWS_1252)
        );
        // A UTF-8 body cut by the size cap in the middle of "é" is still UTF-8.
        assert_eq!(decode(b"caf\xc3", None, true).1, UTF_8);
        assert_eq!(decode(b"caf\xc3", None, false).1, WINDOWS_1252);
    }

    #[test]
    fn utf16_declaration_means_utf8() {
        assert_eq!(decode(b"<meta charset=utf-16>", None, false).1, UTF_8);
    }
}
