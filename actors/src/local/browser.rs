//! The embedded default of the [`Browser`] port: no browser. Render requests fail clearly, and
//! smart mode falls back to plain HTTP.

use futures::future::BoxFuture;

use crate::ports::{Browser, BrowserSession, RenderError};

pub struct NoBrowser {
    /// Why there is none, for the error a browser-only request gets.
    reason: String,
}

impl NoBrowser {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl Browser for NoBrowser {
    fn available(&self) -> bool {
        false
    }

    fn launch(&self) -> BoxFuture<'_, Result<Box<dyn BrowserSession>, RenderError>> {
        Box::pin(async move { Err(RenderError::Unavailable(self.reason.clone())) })
    }
}
