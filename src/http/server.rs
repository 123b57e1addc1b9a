//! The HTTP(S) listeners. The daemon accepts connections itself (rather than with
//! `axum::serve`) so that what a box on a court's network needs holds:
//! - a cap on open connections (beyond it, new ones are closed at once);
//! - a header-read timeout (a client sending its headers slowly is cut off) and an
//!   idle timeout (a connection that sends and receives nothing is closed);
//! - TLS with rustls from a certificate and key in the config, re-read when the files
//!   change (a renewed certificate needs no restart), and, when both listen, plain HTTP
//!   answering only with a redirect to HTTPS (and `/healthz`).

use crate::error::{Error, ErrorKind, Result};
use axum::Router;
use hyper::body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

/// Marks a request that came over TLS (for `Strict-Transport-Security`).
#[derive(Debug, Clone, Copy)]
pub struct Tls;

/// What the listeners are asked to do (`[server]` in the config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// HTTPS: where, and the certificate chain and key (PEM).
    pub tls: Option<(SocketAddr, PathBuf, PathBuf)>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Wraps a connection: reads and writes that make no progress for `timeout` end it,
/// unless a request on it has been received whole and is still being answered
/// (`busy`): hyper keeps reading the connection while a handler runs, and a login
/// waiting for a hash slot is not an idle client (cutting those off closed them
/// unanswered). A request whose body trickles in is not exempt.
struct Idle<T> {
    inner: T,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    busy: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a request received whole on its connection until its response is ready.
struct Busy(Arc<std::sync::atomic::AtomicUsize>);

/// Where a request's [`Busy`] lives: set once its body has been read to the end,
/// dropped when its response is ready.
type BusySlot = Arc<Mutex<Option<Busy>>>;

fn mark_busy(slot: &BusySlot, n: &Arc<std::sync::atomic::AtomicUsize>) {
    if let Ok(mut s) = slot.lock()
        && s.is_none()
    {
        *s = Some(Busy::new(n));
    }
}

/// A request body that marks its connection busy once read to the end (at once for a
/// request without a body).
struct UntilEnd {
    inner: hyper::body::Incoming,
    slot: BusySlot,
    busy: Arc<std::sync::atomic::AtomicUsize>,
}

impl hyper::body::Body for UntilEnd {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) || self.inner.is_end_stream() {
            mark_busy(&self.slot, &self.busy);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Busy {
    fn new(n: &Arc<std::sync::atomic::AtomicUsize>) -> Busy {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Busy(n.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<T> Idle<T> {
    fn new(inner: T, timeout: Duration, busy: Arc<std::sync::atomic::AtomicUsize>) -> Idle<T> {
        Idle {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            busy,
        }
    }

    fn touch(&mut self) {
        self.sleep
            .as_mut()
            .reset(tokio::time::Instant::now() + self.timeout);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.busy.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            // Answering: not idle. The timer is re-armed (and polled, so this is
            // asked again when it fires).
            self.touch();
            let _ = self.sleep.as_mut().poll(cx);
            return false;
        }
        self.sleep.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle too long")
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                self.touch();
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.touch();
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The certificate, re-read when its files change (checked at most every 2 s).
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<(
        Arc<rustls::sign::CertifiedKey>,
        Option<SystemTime>,
        std::time::Instant,
    )>,
}

fn modified(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn load_certified(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::sign::CertifiedKey> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: String| Error::new(ErrorKind::Invalid, format!("TLS {what}: {e}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(&format!("certificate {}", cert.display()), e.to_string()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(&format!("certificate {}", cert.display()), e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(
            &format!("certificate {}", cert.display()),
            "no certificate in it".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(&format!("key {}", key.display()), e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| bad("key", e.to_string()))?;
    Ok(rustls::sign::CertifiedKey::new(certs, signing))
}

impl Reloading {
    fn new(cert: PathBuf, key: PathBuf) -> Result<Reloading> {
        let ck = load_certified(&cert, &key)?;
        let m = modified(&cert).max(modified(&key));
        Ok(Reloading {
            state: Mutex::new((Arc::new(ck), m, std::time::Instant::now())),
            cert,
            key,
        })
    }

    fn current(&self) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut st = self.state.lock().ok()?;
        if st.2.elapsed() >= Duration::from_secs(2) {
            st.2 = std::time::Instant::now();
            let m = modified(&self.cert).max(modified(&self.key));
            if m != st.1 {
                match load_certified(&self.cert, &self.key) {
                    Ok(ck) => {
                        tracing::info!("TLS certificate reloaded from {}", self.cert.display());
                        *st = (Arc::new(ck), m, std::time::Instant::now());
                    }
                    // Half-written files (a renewal in progress): keep the old one.
                    Err(e) => tracing::warn!("TLS certificate not reloaded: {e}"),
                }
            }
        }
        Some(st.0.clone())
    }
}

impl rustls::server::ResolvesServerCert for Reloading {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current()
    }
}

fn tls_acceptor(cert: PathBuf, key: PathBuf) -> Result<tokio_rustls::TlsAcceptor> {
    let resolver = Arc::new(Reloading::new(cert, key)?);
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::new(ErrorKind::Internal, format!("TLS: {e}")))?
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    let mut cfg = cfg;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Plain HTTP when HTTPS listens too: a permanent redirect, and `/healthz`.
fn redirect_router(tls_port: u16) -> Router {
    use axum::response::IntoResponse;
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(
            move |headers: axum::http::HeaderMap, uri: axum::http::Uri| async move {
                let host = headers
                    .get(axum::http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(|h| h.rsplit_once(':').map_or(h, |(a, _)| a).to_string())
                    .unwrap_or_else(|| "localhost".into());
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                axum::response::Redirect::permanent(&format!("https://{host}:{tls_port}{path}"))
                    .into_response()
            },
        )
}

/// Serves `app` on the configured listeners until `shutdown` resolves; then lets
/// connections finish what they are doing.
pub async fn serve(
    app: Router,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    on_listening: impl FnOnce(SocketAddr, Option<SocketAddr>),
) -> Result<()> {
    let bind = |a: SocketAddr| async move {
        tokio::net::TcpListener::bind(a)
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("cannot listen on {a}: {e}")))
    };
    let plain = bind(settings.listen).await?;
    let plain_addr = plain
        .local_addr()
        .map_err(|e| Error::io("listener address", e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let conns = Arc::new(tokio::sync::Semaphore::new(settings.max_connections.max(1)));
    let mut tasks = Vec::new();
    let mut tls_addr = None;
    if let Some((addr, cert, key)) = &settings.tls {
        let acceptor = tls_acceptor(cert.clone(), key.clone())?;
        let l = bind(*addr).await?;
        tls_addr = Some(
            l.local_addr()
                .map_err(|e| Error::io("listener address", e))?,
        );
        tasks.push(tokio::spawn(accept_loop(
            l,
            app.clone(),
            Some(acceptor),
            settings.clone(),
            conns.clone(),
            stop_rx.clone(),
        )));
        let redirect = redirect_router(tls_addr.map_or(443, |a| a.port()));
        tasks.push(tokio::spawn(accept_loop(
            plain,
            redirect,
            None,
            settings.clone(),
            conns.clone(),
            stop_rx.clone(),
        )));
    } else {
        tasks.push(tokio::spawn(accept_loop(
            plain,
            app,
            None,
            settings.clone(),
            conns.clone(),
            stop_rx.clone(),
        )));
    }
    on_listening(plain_addr, tls_addr);
    shutdown.await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    // Let open connections finish their response (at most a few seconds).
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        conns.acquire_many(settings.max_connections.max(1) as u32),
    )
    .await;
    Ok(())
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    settings: Settings,
    conns: Arc<tokio::sync::Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(settings.header_timeout));
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            // Full: closed at once rather than queued (a flood must not hold the box).
            tracing::warn!(remote = %addr, "connection refused: {} already open", settings.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let over_tls = tls.is_some();
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let svc = {
            let (app, busy) = (app.clone(), busy.clone());
            tower::service_fn(move |req: axum::extract::Request<hyper::body::Incoming>| {
                let slot: BusySlot = Arc::new(Mutex::new(None));
                if req.body().is_end_stream() {
                    mark_busy(&slot, &busy);
                }
                let mut req = req.map(|inner| {
                    axum::body::Body::new(UntilEnd {
                        inner,
                        slot: slot.clone(),
                        busy: busy.clone(),
                    })
                });
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(addr));
                if over_tls {
                    req.extensions_mut().insert(Tls);
                }
                let answer = tower::ServiceExt::oneshot(app.clone(), req);
                async move {
                    let r = answer.await;
                    // The response is ready: the connection may idle again.
                    if let Ok(mut s) = slot.lock() {
                        s.take();
                    }
                    r
                }
            })
        };
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let (builder, tls, settings, mut stop) =
            (builder.clone(), tls.clone(), settings.clone(), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let io = Idle::new(stream, settings.idle_timeout, busy);
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(tls_stream)) =
                        tokio::time::timeout(settings.header_timeout, acceptor.accept(io)).await
                    else {
                        return;
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => { conn.as_mut().graceful_shutdown(); let _ = conn.await; }
                    }
                }
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => { conn.as_mut().graceful_shutdown(); let _ = conn.await; }
                    }
                }
            }
        });
    }
}
