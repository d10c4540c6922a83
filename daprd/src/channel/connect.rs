//! Opening connections to the app: TCP to `<app-channel-address>:<app-port>`, wrapped in
//! TLS for `https` and `grpcs`. One connector serves the pooled HTTP client, the gRPC
//! channel and the start-up wait, whatever URI they ask for.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Dials the app; cheap to clone.
#[derive(Clone)]
pub(super) struct AppConnector {
    /// Host part of the address, without IPv6 brackets.
    host: Arc<str>,
    /// The app port.
    port: u16,
    /// The TLS client and the name presented in SNI, for TLS protocols.
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl AppConnector {
    /// A connector to `host:port`, with TLS when `tls` is given.
    pub(super) fn new(
        host: &str,
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, rustls::pki_types::InvalidDnsNameError> {
        let host: Arc<str> = Arc::from(host.trim_start_matches('[').trim_end_matches(']'));
        let tls = match tls {
            Some(config) => {
                let name = ServerName::try_from(host.to_string())?;
                Some((TlsConnector::from(config), name))
            }
            None => None,
        };
        Ok(Self { host, port, tls })
    }

    /// `host:port` as upstream prints it in dial errors.
    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Opens one connection, doing the TLS handshake when configured.
    pub(super) async fn connect(&self) -> io::Result<AppStream> {
        let tcp = TcpStream::connect((&*self.host, self.port))
            .await
            .map_err(|err| dial_error(&self.address(), &err))?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(AppStream::Plain(TokioIo::new(tcp))),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!("tls handshake with {}: {err}", self.address()),
                    )
                })?;
                Ok(AppStream::Tls(Box::new(TokioIo::new(tls))))
            }
        }
    }
}

/// A dial failure worded like upstream's (`dial tcp 127.0.0.1:3000: connect: connection
/// refused`), keeping the original error kind.
fn dial_error(address: &str, err: &io::Error) -> io::Error {
    let reason = match err.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => err.to_string(),
    };
    io::Error::new(err.kind(), format!("dial tcp {address}: connect: {reason}"))
}

impl tower::Service<Uri> for AppConnector {
    type Response = AppStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<AppStream>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect().await })
    }
}

/// A connection to the app, in clear text or TLS.
pub(super) enum AppStream {
    /// Plain TCP.
    Plain(TokioIo<TcpStream>),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Read for AppStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for AppStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_flush(cx),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(io) => io.is_write_vectored(),
            Self::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}

impl Connection for AppStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}
