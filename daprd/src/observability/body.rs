//! A body wrapper that reports what flowed through it: data sizes, trailers, and exactly
//! once how it ended. The layers use it to record a call when its response is complete
//! (or abandoned), which is when upstream records too.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// How a body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// Every frame was read.
    Complete,
    /// The body yielded an error.
    Failed,
    /// The body was dropped before its end (the peer went away).
    Abandoned,
}

/// Told about a body's frames, then once about its end.
pub trait BodyObserver: Send + 'static {
    /// A data frame went through.
    fn on_data(&mut self, _data: &Bytes) {}

    /// The trailers went through.
    fn on_trailers(&mut self, _trailers: &HeaderMap) {}

    /// The body ended; called exactly once.
    fn on_end(self, end: BodyEnd);
}

pin_project! {
    /// `inner` with `observer` watching it.
    pub struct ObservedBody<B, O>
    where
        B: Body,
        O: BodyObserver,
    {
        #[pin]
        inner: B,
        observer: Option<O>,
    }

    impl<B, O> PinnedDrop for ObservedBody<B, O>
    where
        B: Body,
        O: BodyObserver,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(observer) = this.observer.take() {
                let end = if this.inner.is_end_stream() {
                    BodyEnd::Complete
                } else {
                    BodyEnd::Abandoned
                };
                observer.on_end(end);
            }
        }
    }
}

impl<B, O> ObservedBody<B, O>
where
    B: Body,
    O: BodyObserver,
{
    /// Wraps `inner`.
    pub(crate) fn new(inner: B, observer: O) -> Self {
        ObservedBody {
            inner,
            observer: Some(observer),
        }
    }
}

impl<B, O> std::fmt::Debug for ObservedBody<B, O>
where
    B: Body,
    O: BodyObserver,
{
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ObservedBody")
    }
}

impl<B, O> Body for ObservedBody<B, O>
where
    B: Body<Data = Bytes>,
    O: BodyObserver,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(observer) = this.observer.as_mut() {
                    if let Some(data) = frame.data_ref() {
                        observer.on_data(data);
                    } else if let Some(trailers) = frame.trailers_ref() {
                        observer.on_trailers(trailers);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(observer) = this.observer.take() {
                    observer.on_end(BodyEnd::Failed);
                }
            }
            Poll::Ready(None) => {
                if let Some(observer) = this.observer.take() {
                    observer.on_end(BodyEnd::Complete);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
