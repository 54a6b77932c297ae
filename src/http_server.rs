//! How every server ordergrid runs on 127.0.0.1 serves HTTP/1.1 (the emulator over HTTP and
//! HTTPS, the host stand-in, the handler, the Web PubSub service), so that slow or abusive
//! clients are closed and cannot starve the others:
//!
//! - **headers**: a request's head must arrive within [`HEADER_TIMEOUT`], which also bounds how
//!   long a kept-alive connection may sit idle before its next request (hyper's
//!   `header_read_timeout`, whose timer runs from the moment a connection waits for a head; axum's
//!   own `serve` sets no timer, so it never fires there, and a client trickling headers was held
//!   forever);
//! - **bodies**: a request's body must arrive within [`BODY_TIMEOUT`] of its head; after that the
//!   body reads as an error that [`timed_out`] recognises, and the servers answer 408;
//! - **connections**: at most [`MAX_CONNECTIONS`] at once; the next waits in the kernel's backlog
//!   until one closes.
//!
//! Invariants: a request the servers answer is never cut by these limits once its body has
//! arrived (a long invocation, a server-sent event stream or a WebSocket is not timed out);
//! shutdown stops accepting, lets each connection finish the request it is serving, and returns
//! once all have closed, as axum's `serve` does.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

use crate::settings::{Reader, Setting};

pub const HEADER_TIMEOUT: Setting = Setting::new(
    "ORDERGRID_HTTP_HEADER_TIMEOUT",
    "30s",
    "how long a request's headers may take to arrive, and a kept-alive connection may wait for its next request, before the local servers close it",
);
pub const BODY_TIMEOUT: Setting = Setting::new(
    "ORDERGRID_HTTP_BODY_TIMEOUT",
    "30s",
    "how long a request's body may take to arrive after its headers; later, the local servers answer 408",
);
pub const MAX_CONNECTIONS: Setting = Setting::new(
    "ORDERGRID_HTTP_MAX_CONNECTIONS",
    "1024",
    "connections each local server holds at once; more wait until one closes",
);
pub const SETTINGS: &[Setting] = &[HEADER_TIMEOUT, BODY_TIMEOUT, MAX_CONNECTIONS];

/// The limits above, as read from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self::read(&mut Reader::new(&Default::default()))
    }
}

impl HttpLimits {
    pub fn read(r: &mut Reader) -> Self {
        Self {
            header_timeout: r.duration(&HEADER_TIMEOUT),
            body_timeout: r.duration(&BODY_TIMEOUT),
            max_connections: r
                .parse(&MAX_CONNECTIONS, "must be a whole number from 1", |s| {
                    s.parse().ok().filter(|n| *n > 0)
                })
                .unwrap_or(1),
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown`, then drains (module docs).
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener,
{
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits.body_timeout,
        body_deadline,
    ));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    // Each connection holds a receiver; a value sent on `stop` asks them to finish, and
    // `closed` tells when the last one has dropped its receiver.
    let (stop, stopping) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|request: hyper::Request<Incoming>| request.map(Body::new)),
        );
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
            drop(stopping);
        });
    }
    drop(stopping);
    drop(listener);
    let _ = stop.send(());
    stop.closed().await;
    Ok(())
}

/// The body of a request that must have arrived by a deadline.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

/// What a body that missed its deadline reads as (see [`timed_out`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} of its headers")]
pub struct BodyTimedOut(Duration);

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(self.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn body_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(limit)),
        limit,
    });
    next.run(Request::from_parts(parts, body)).await
}

/// Whether reading a body failed because it missed its deadline (anywhere in `error`'s chain,
/// as axum's body rejections wrap it).
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    in_chain::<BodyTimedOut>(error)
}

/// Whether reading a body failed because it was longer than the limit it was read with.
pub fn too_long(error: &(dyn std::error::Error + 'static)) -> bool {
    in_chain::<http_body_util::LengthLimitError>(error)
}

fn in_chain<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<E>() {
            return true;
        }
        next = error.source();
    }
    false
}
