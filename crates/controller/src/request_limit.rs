//! A bound on concurrent requests to the API server.
//!
//! Every binding's reconcile runs at once (they must, for the scale set and vault writers to
//! batch them), and each reconcile talks to the API server; without a bound, a thousand
//! bindings open a thousand TLS connections, which costs hundreds of megabytes. Requests
//! wait for one of a few permits instead, except watches: they are long-lived, few, and
//! must never wait behind the requests their own events cause.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Future;
use http::Request;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;
use tower::{Layer, Service};

/// How many non-watch requests may be in flight at once.
pub const DEFAULT_API_REQUESTS: usize = 32;

/// Limits concurrent non-watch requests of the service it wraps.
#[derive(Clone)]
pub struct RequestLimitLayer {
    permits: Arc<Semaphore>,
}

impl RequestLimitLayer {
    /// At most `requests` non-watch requests at once.
    pub fn new(requests: usize) -> Self {
        RequestLimitLayer { permits: Arc::new(Semaphore::new(requests)) }
    }
}

impl<S> Layer<S> for RequestLimitLayer {
    type Service = RequestLimit<S>;

    fn layer(&self, inner: S) -> RequestLimit<S> {
        RequestLimit { inner, semaphore: PollSemaphore::new(self.permits.clone()), permit: None }
    }
}

/// The service of [`RequestLimitLayer`].
pub struct RequestLimit<S> {
    inner: S,
    semaphore: PollSemaphore,
    permit: Option<OwnedSemaphorePermit>,
}

/// True for a watch request (`?watch=true` or `?watch=1`).
fn is_watch<B>(request: &Request<B>) -> bool {
    request.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

impl<S, B> Service<Request<B>> for RequestLimit<S>
where
    S: Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The permit is taken before the request is known; a watch hands it back at once.
        if self.permit.is_none() {
            self.permit = ready!(self.semaphore.poll_acquire(cx));
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let permit = self.permit.take();
        let watch = is_watch(&request);
        let response = self.inner.call(request);
        if watch {
            drop(permit);
            return Box::pin(response);
        }
        Box::pin(async move {
            let result = response.await;
            drop(permit);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;

    /// A service that counts requests in flight and remembers the most there ever were.
    #[derive(Clone, Default)]
    struct Counting {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Service<Request<()>> for Counting {
        type Response = ();
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<(), Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            let (now, most) = (self.now.clone(), self.most.clone());
            let watch = is_watch(&request);
            Box::pin(async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                // A watch stays open; a plain request takes a moment.
                tokio::time::sleep(if watch { Duration::from_secs(3600) } else { Duration::from_millis(5) }).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn plain_requests_wait_for_a_permit_and_watches_do_not() {
        let counting = Counting::default();
        let layer = RequestLimitLayer::new(3);
        let watches: Vec<_> = (0..5)
            .map(|_| {
                let service = layer.layer(counting.clone());
                tokio::spawn(service.oneshot(Request::get("/api/v1/nodes?watch=true").body(()).expect("request")))
            })
            .collect();
        let plain: Vec<_> = (0..50)
            .map(|_| {
                let service = layer.layer(counting.clone());
                tokio::spawn(service.oneshot(Request::get("/api/v1/nodes").body(()).expect("request")))
            })
            .collect();
        for task in plain {
            task.await.expect("join").expect("served");
        }
        assert_eq!(counting.most.load(Ordering::SeqCst), 5 + 3, "five open watches and at most three plain requests");
        for watch in watches {
            watch.abort();
        }
    }
}
