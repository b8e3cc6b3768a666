//! Admission control, shared by the router (which takes permits) and the worker pools (which
//! hold them until a job is answered): a bound on requests in flight across the tree, and the
//! [`Refusal`]s each request's error type can express. Its own module so that neither the router
//! nor the workers import the other.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What the router and the handles need to say about a refused or lost request, in each
/// request's own error type.
pub trait Refusal: Sized + Send + 'static {
    fn overloaded() -> Self;
    fn unavailable(what: &'static str) -> Self;
    fn deadline(after: Duration) -> Self;
    fn is_unavailable(&self) -> bool;
}

/// Bounds the requests in flight across the tree; a job holds its permit until answered.
#[derive(Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
}

/// Held by an admitted job; dropping it (job answered or lost) frees the slot.
pub struct AdmissionPermit {
    _permit: OwnedSemaphorePermit,
}

impl Drop for AdmissionPermit {
    fn drop(&mut self) {
        metrics::gauge!("aurora_router_in_flight").decrement(1.0);
    }
}

impl Admission {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
        }
    }

    pub(crate) fn try_admit(&self) -> Option<AdmissionPermit> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        metrics::gauge!("aurora_router_in_flight").increment(1.0);
        Some(AdmissionPermit { _permit: permit })
    }
}
