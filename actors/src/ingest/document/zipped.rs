//! Reading zip-packaged documents (ODT, EPUB; and telling them from DOCX/PPTX/XLSX) without
//! trusting what the archive says about itself: entries are counted, and every entry is read
//! through a cap on its inflated size, whatever size its header declares.

use std::io::{Cursor, Read};

use super::{DocumentError, Kind};

/// Most entries an archive may hold.
const MAX_ENTRIES: usize = 20_000;

pub(super) struct Archive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    kind: &'static str,
    /// Inflated bytes any one entry may have.
    cap: usize,
    /// Inflated bytes left for the whole archive.
    budget: usize,
}

impl<'a> Archive<'a> {
    pub(super) fn open(
        bytes: &'a [u8],
        kind: &'static str,
        cap: usize,
    ) -> Result<Self, DocumentError> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| DocumentError::Corrupt {
            kind,
            detail: format!("not a readable zip package ({e})"),
        })?;
        if zip.len() > MAX_ENTRIES {
            return Err(DocumentError::Corrupt {
                kind,
                detail: format!("{} entries (the most read is {MAX_ENTRIES})", zip.len()),
            });
        }
        Ok(Self {
            zip,
            kind,
            cap,
            // A package may inflate to four caps in all: ample for a real book.
            budget: cap.saturating_mul(4),
        })
    }

    pub(super) fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .filter_map(|name| name.ok().map(|n| n.into_owned()))
            .collect()
    }

    /// The entry's bytes, or `None` when there is no such entry.
    pub(super) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, DocumentError> {
        let entry = match self.zip.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) if is_encrypted(&e) => return Err(DocumentError::Encrypted),
            Err(e) => {
                return Err(DocumentError::Corrupt {
                    kind: self.kind,
                    detail: format!("entry `{name}`: {e}"),
                });
            }
        };
        if entry.encrypted() {
            return Err(DocumentError::Encrypted);
        }
        let cap = self.cap.min(self.budget);
        let mut out = Vec::new();
        entry
            .take(cap as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| DocumentError::Corrupt {
                kind: self.kind,
                detail: format!("entry `{name}`: {e}"),
            })?;
        if out.len() > cap {
            return Err(DocumentError::Inflates {
                kind: self.kind,
                max: cap,
            });
        }
        self.budget -= out.len();
        Ok(Some(out))
    }

    /// The entry as UTF-8 text.
    pub(super) fn read_text(&mut self, name: &str) -> Result<Option<String>, DocumentError> {
        Ok(self
            .read(name)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }
}

fn is_encrypted(e: &zip::result::ZipError) -> bool {
    match e {
        zip::result::ZipError::InvalidPassword => true,
        zip::result::ZipError::UnsupportedArchive(m) => {
            m.contains("assword") || m.contains("ncrypt")
        }
        _ => false,
    }
}

/// Which office or e-book format a zip is, by the parts it holds.
pub(super) fn kind(bytes: &[u8]) -> Result<Kind, DocumentError> {
    let mut archive = Archive::open(bytes, "zip package", 1 << 16)?;
    // OpenDocument and EPUB name themselves in a first, stored entry called `mimetype`.
    if let Ok(Some(mimetype)) = archive.read_text("mimetype") {
        match mimetype.trim() {
            "application/vnd.oasis.opendocument.text" => return Ok(Kind::Odt),
            "application/epub+zip" => return Ok(Kind::Epub),
            other if !other.is_empty() => {
                return Err(DocumentError::Unsupported(other.to_string()));
            }
            _ => {}
        }
    }
    let mut found = None;
    for name in archive.names() {
        found = match name.as_str() {
            "word/document.xml" => Some(Kind::Docx),
            "ppt/presentation.xml" => Some(Kind::Pptx),
            "xl/workbook.xml" => Some(Kind::Xlsx),
            _ => continue,
        };
        break;
    }
    found.ok_or_else(|| DocumentError::Unsupported("application/zip".to_string()))
}
