//! axum/hyper adapter for [`Server`] (feature `server`).
//!
//! Routes: `OPTIONS|POST /files/`, `OPTIONS|HEAD|PATCH|DELETE /files/{id}`,
//! and `GET /shares/{share}?exp=..&sig=..[&format=tar|zip]` for signed
//! downloads: one file as itself (with `Range`), several as one tar stream,
//! or with `format=zip` one stored zip stream ([`crate::zip`]); both archive
//! forms send their length up front and hold only headers in memory.
//!
//! Bodies are streamed frame by frame into the store (hyper frames are small),
//! so memory stays bounded whatever the chunk size. A body that sends nothing
//! for [`ServeConfig::idle_timeout`] is cut off: its bytes are kept (or thrown
//! away if a checksum was promised) and the connection is freed. Headers get
//! the same deadline, so a client stalled mid-headers holds nothing either.
//!
//! Hashing and writing happen on a blocking thread per body (the store's
//! durable writer hands whole blocks to an `O_DIRECT` thread of its own), so
//! the socket task keeps reading meanwhile; the `fdatasync` before an offset
//! is committed happens once per PATCH.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, options};
use base64::Engine as _;
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;

use crate::file_range::file_stream;
use crate::headers::{self, HeaderSource};
use crate::id::UploadId;
use crate::server::{BodyEnd, Creation, PatchSession, create_patch_headers};
use crate::share::{self, PasswordParams, ShareManifest};
use crate::store::{FileStore, FileWriter, Store as _, UploadInfo};
use crate::zip::{Crc32, ZipPlan};
use crate::{Error, Response, Server, ServerConfig};

impl HeaderSource for HeaderMap {
    fn values<'a>(&'a self, name: &'static str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).iter().map(|v| v.as_bytes())
    }
}

/// Settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Store directory.
    pub dir: PathBuf,
    /// Protocol settings.
    pub server: ServerConfig,
    /// HMAC-SHA256 key for share links. Default empty: downloads disabled.
    pub secret: Vec<u8>,
    /// Idle timeout. A PATCH body that sends nothing for this long is cut
    /// off (the bytes that arrived are made durable and kept, unless a
    /// checksum was promised); a request's headers must arrive within this
    /// long of the connection waiting for them (a client stalled mid-headers,
    /// or an idle keep-alive connection, is closed). Default 30 s.
    pub idle_timeout: Duration,
    /// How often expired uploads are swept. Default 60 s.
    pub expire_interval: Duration,
    /// `fsync` data and state before acknowledging (see [`crate::store`]).
    /// Default `true`; turn off only for tmpfs or benchmarks.
    pub fsync: bool,
    /// Bodies streamed at once; more wait their turn. Each holds at most
    /// ~4.6 MiB (three 1 MiB `O_DIRECT` buffers, or a 256 KiB write buffer
    /// where the filesystem has no `O_DIRECT`, plus 4 frames in flight), so
    /// the default 64 bounds body memory near 300 MiB whatever the chunk
    /// size; a single upload stays near 20 MiB of RSS.
    pub max_active_bodies: usize,
    /// Largest read buffer of one connection (hyper's `max_buf_size`, at
    /// least 8 KiB). Larger reads cost less CPU per byte; the allocator keeps
    /// freed buffers of this size around, so it also sets part of the idle
    /// RSS. Default 256 KiB: 0.7 CPU-s per GiB received and 17 MiB of RSS
    /// for one upload here, against 0.65 s and 36 MiB at 1 MiB, and 1.0 s
    /// and 13 MiB at 128 KiB.
    pub read_buffer: usize,
}

impl ServeConfig {
    /// Defaults with the store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: dir.into(),
            server: ServerConfig::default(),
            secret: Vec::new(),
            idle_timeout: Duration::from_secs(30),
            expire_interval: Duration::from_secs(60),
            fsync: true,
            max_active_bodies: 64,
            read_buffer: 256 * 1024,
        }
    }
}

struct AppState {
    core: Mutex<Server<FileStore>>,
    bodies: tokio::sync::Semaphore,
    store: FileStore,
    secret: Vec<u8>,
    idle_timeout: Duration,
}

impl AppState {
    fn core(&self) -> MutexGuard<'_, Server<FileStore>> {
        // A panic while holding the lock is a bug; keep serving the state.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A server running on a background task.
#[derive(Debug)]
pub struct RunningServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// The serving task; abort it to stop.
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Creation endpoint URL (`http://addr/files/`).
    pub fn endpoint(&self) -> String {
        format!("http://{}/files/", self.addr)
    }
}

/// Builds the router over a store directory (uploads found there are loaded).
/// Call it inside a Tokio runtime: it spawns the sweeper that removes expired
/// uploads every [`ServeConfig::expire_interval`].
pub fn router(cfg: &ServeConfig) -> Result<Router, Error> {
    let mut store = FileStore::open(&cfg.dir)?;
    if !cfg.fsync {
        store = store.without_fsync();
    }
    let mut server_cfg = cfg.server.clone();
    if !server_cfg.base_path.ends_with('/') {
        server_cfg.base_path.push('/');
    }
    let core = Server::open(server_cfg, store.clone())?;
    let state = Arc::new(AppState {
        core: Mutex::new(core),
        bodies: tokio::sync::Semaphore::new(cfg.max_active_bodies.max(1)),
        store,
        secret: cfg.secret.clone(),
        idle_timeout: cfg.idle_timeout,
    });
    let sweeper = Arc::downgrade(&state);
    let every = cfg.expire_interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(st) = sweeper.upgrade() else { break };
            if let Ok(gone) = st.core().handle_expire(SystemTime::now())
                && !gone.is_empty()
            {
                tracing::info!(count = gone.len(), "expired uploads removed");
            }
        }
    });
    Ok(Router::new()
        .route("/files/", options(handle_options).post(handle_post))
        .route(
            "/files/{id}",
            options(handle_options).head(handle_head).patch(handle_patch).delete(handle_delete),
        )
        .route("/shares/{share}", get(handle_download))
        .with_state(state))
}

/// Binds `cfg.listen` and serves on a spawned task.
pub async fn spawn(cfg: ServeConfig) -> Result<RunningServer, Error> {
    let app = router(&cfg)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(listener, app, cfg.idle_timeout, cfg.read_buffer));
    Ok(RunningServer { addr, task })
}

/// Binds `cfg.listen` and serves until the task is cancelled; `on_ready` gets
/// the bound address (the CLI prints it).
pub async fn serve(cfg: ServeConfig, on_ready: impl FnOnce(SocketAddr)) -> Result<(), Error> {
    let app = router(&cfg)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    on_ready(listener.local_addr()?);
    accept_loop(listener, app, cfg.idle_timeout, cfg.read_buffer).await;
    Ok(())
}

/// Serves HTTP/1.1 connections. Unlike `axum::serve`, hyper gets a timer, so
/// a request's headers must arrive within `idle` of the connection waiting
/// for them: a client that stalls mid-headers, or a keep-alive connection
/// left idle, is closed and holds nothing. (Stalled bodies are cut in
/// [`pump`].)
async fn accept_loop(listener: tokio::net::TcpListener, app: Router, idle: Duration, read_buffer: usize) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Responses are small and final: no Nagle delay on them.
        let _ = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(idle)
                // hyper asserts its minimum; a smaller setting means the minimum.
                .max_buf_size(read_buffer.max(8192));
            if let Err(e) = http.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

fn to_http(r: Response) -> axum::response::Response {
    let mut out = axum::response::Response::new(Body::empty());
    *out.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.headers_mut().append(name, v);
        }
    }
    out
}

fn error(e: &Error) -> axum::response::Response {
    if e.status() == 500 {
        tracing::warn!(error = %e, "request failed");
    }
    to_http(Response::from_error(e))
}

async fn handle_options(State(st): State<Arc<AppState>>) -> axum::response::Response {
    to_http(st.core().handle_options())
}

async fn handle_head(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    h: HeaderMap,
) -> axum::response::Response {
    match st.core().handle_head(SystemTime::now(), &id, &h) {
        Ok(r) => to_http(r),
        Err(e) => error(&e),
    }
}

async fn handle_delete(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    h: HeaderMap,
) -> axum::response::Response {
    match st.core().handle_delete(SystemTime::now(), &id, &h) {
        Ok(r) => to_http(r),
        Err(e) => error(&e),
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    headers::get_u64(h, "Content-Length").ok().flatten()
}

/// Reads body frames into `tx` until the body ends, stalls or the writer
/// stops taking bytes (`Ok(None)`: see the writer's result).
async fn pump(
    st: &AppState,
    id: &UploadId,
    mut body: Body,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) -> Result<Option<BodyEnd>, Error> {
    loop {
        match tokio::time::timeout(st.idle_timeout, body.frame()).await {
            Err(_) => {
                tracing::info!(%id, "body stalled; cut off");
                return Ok(Some(BodyEnd::Interrupted));
            }
            Ok(None) => return Ok(Some(BodyEnd::Complete { trailer: None })),
            Ok(Some(Err(_))) => return Ok(Some(BodyEnd::Interrupted)),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    if tx.send(data).await.is_err() {
                        return Ok(None);
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        let trailer = t.unique(headers::UPLOAD_CHECKSUM)?.map(<[u8]>::to_vec);
                        return Ok(Some(BodyEnd::Complete { trailer }));
                    }
                }
            },
        }
    }
}

/// Owns a body session; if the handler is dropped mid-body (client gone,
/// server shutting down), ends it as interrupted so the upload is not left
/// locked and the bytes that arrived are kept (unless a checksum was promised).
struct SessionGuard {
    st: Arc<AppState>,
    sess: Option<PatchSession<FileWriter>>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(s) = self.sess.take() {
            let _ = self.st.core().finish_patch(SystemTime::now(), s, BodyEnd::Interrupted);
        }
    }
}

/// Frames in flight between the socket task and the writer thread; bounds
/// memory per PATCH (hyper frames are at most a few hundred KiB).
const FRAMES_IN_FLIGHT: usize = 4;

async fn run_patch(
    st: &Arc<AppState>,
    sess: PatchSession<FileWriter>,
    h: &HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    if let Some(cl) = content_length(h)
        && cl > sess.remaining()
    {
        let max = sess.remaining();
        st.core().abort_patch(sess)?;
        return Err(Error::TooLarge { length: cl, max });
    }
    let id = sess.id().clone();
    let guard = SessionGuard { st: st.clone(), sess: Some(sess) };
    // Hashing, writing and the final fdatasync run on a blocking thread, so
    // the socket task keeps reading meanwhile and no async worker blocks on
    // the disk. The thread owns the guard: if this handler is dropped, the
    // session still ends cleanly there.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(FRAMES_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || {
        let mut guard = guard;
        let mut res = Ok(());
        while let Some(data) = rx.blocking_recv() {
            if let Some(s) = guard.sess.as_mut()
                && let Err(e) = s.write(&data)
            {
                res = Err(e);
                break;
            }
        }
        drop(rx);
        if res.is_ok()
            && let Some(s) = guard.sess.as_mut()
        {
            res = s.sync();
        }
        (guard, res)
    });
    let pumped = pump(st, &id, body, tx).await;
    let (mut guard, mut written) = writer.await.map_err(|_| Error::InvalidState("writer task failed"))?;
    if let (Ok(Some(BodyEnd::Complete { trailer: Some(t) })), Ok(())) = (&pumped, &written) {
        // A trailer's checksum means reading the body back: on a blocking thread too, and
        // before `finish_patch` takes the server's lock.
        let (t, store, at) = (t.clone(), st.store.clone(), id.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let r = guard
                .sess
                .as_mut()
                .map_or(Ok(()), |s| s.hash_for_trailer(&t, |pos, buf| store.read_at(&at, pos, buf)));
            (guard, r)
        });
        (guard, written) = checked.await.map_err(|_| Error::InvalidState("trailer task failed"))?;
    }
    let sess = guard.sess.take().ok_or(Error::InvalidState("no session"))?;
    match (pumped, written) {
        (Ok(Some(end)), Ok(())) => st.core().finish_patch(SystemTime::now(), sess, end),
        (_, Err(e)) | (Err(e), _) => {
            st.core().abort_patch(sess)?;
            Err(e)
        }
        (Ok(None), Ok(())) => {
            st.core().abort_patch(sess)?;
            Err(Error::InvalidState("writer stopped early"))
        }
    }
}

async fn handle_patch(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let Ok(_permit) = st.bodies.acquire().await else {
        return error(&Error::InvalidState("server shutting down"));
    };
    let sess = st.core().begin_patch(SystemTime::now(), &id, &parts.headers);
    let res = match sess {
        Ok(sess) => run_patch(&st, sess, &parts.headers, body).await,
        Err(e) => Err(e),
    };
    match res {
        Ok(r) => to_http(r),
        Err(e) => error(&e),
    }
}

fn random_id() -> Result<UploadId, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    Ok(UploadId::from_random(b))
}

async fn handle_post(State(st): State<Arc<AppState>>, req: Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let h = parts.headers;
    let id = match random_id() {
        Ok(id) => id,
        Err(e) => return error(&e),
    };
    // A final upload copies its parts: off the async workers, and without the server's
    // lock (other requests go on; the parts stay locked until the copy is done).
    let st2 = st.clone();
    let (h, created) = match tokio::task::spawn_blocking(move || {
        let begun = st2.core().begin_create(SystemTime::now(), id.clone(), &h);
        let r = begun.and_then(|c| match c {
            Creation::Done(r) => Ok(r),
            Creation::Assemble(mut job) => {
                let copied = job.copy(|part, pos, buf| st2.store.read_at(part, pos, buf));
                st2.core().finish_final(job, copied)
            }
        });
        (h, r.map(|r| (id, r)))
    })
    .await
    {
        Ok(v) => v,
        Err(_) => return error(&Error::InvalidState("creation task failed")),
    };
    let (id, created) = match created {
        Ok(v) => v,
        Err(e) => return error(&e),
    };
    let with_body = h
        .unique_str(headers::CONTENT_TYPE)
        .ok()
        .flatten()
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(headers::OFFSET_OCTET_STREAM));
    if !with_body {
        return to_http(created);
    }
    // creation-with-upload: the body is a first PATCH at offset 0.
    let Ok(_permit) = st.bodies.acquire().await else {
        return error(&Error::InvalidState("server shutting down"));
    };
    let sess =
        create_patch_headers(&h).and_then(|ph| st.core().begin_patch(SystemTime::now(), id.as_str(), &ph));
    let res = match sess {
        Ok(sess) => run_patch(&st, sess, &h, body).await,
        Err(e) => Err(e),
    };
    match res {
        Ok(p) => {
            let mut r = created;
            r.headers.retain(|(n, _)| *n != headers::UPLOAD_OFFSET);
            r.headers.extend(p.headers.into_iter().filter(|(n, _)| *n == headers::UPLOAD_OFFSET));
            to_http(r)
        }
        Err(e) => error(&e),
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn plain(status: StatusCode) -> axum::response::Response {
    (status, Body::empty()).into_response()
}

fn share_path(dir: &Path, share: &UploadId) -> PathBuf {
    dir.join("shares").join(format!("{}.share", share.as_str()))
}

/// Records a share of finished uploads in the store directory and returns
/// its id. `files` pairs an upload with an optional download name (default:
/// the `filename` metadata, else the id). With a password, only its Argon2id
/// hash is stored.
pub fn create_share(
    dir: &Path,
    files: &[(UploadId, Option<String>)],
    password: Option<&str>,
    params: PasswordParams,
) -> Result<UploadId, Error> {
    if files.is_empty() || files.len() > share::MAX_SHARE_FILES {
        return Err(Error::InvalidState("a share needs 1 to 1024 files"));
    }
    let store = FileStore::open(dir)?;
    let mut list = Vec::new();
    for (id, name) in files {
        let text = std::fs::read_to_string(dir.join(format!("{}.info", id.as_str())))
            .map_err(|_| Error::UploadNotFound)?;
        let info = UploadInfo::decode(&text)?;
        if !info.is_finished() {
            return Err(Error::PartialNotFinished);
        }
        let name = name.clone().unwrap_or_else(|| {
            info.metadata
                .get("filename")
                .and_then(|n| std::str::from_utf8(n).ok())
                .unwrap_or(id.as_str())
                .to_owned()
        });
        list.push((id.clone(), share::sanitize_name(&name)));
    }
    let password = match password {
        Some(p) => {
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
            Some(share::hash_password(p.as_bytes(), salt, params)?)
        }
        None => None,
    };
    let share_id = random_id()?;
    let manifest = ShareManifest { files: list, password };
    std::fs::create_dir_all(dir.join("shares"))?;
    store.write_atomic(&share_path(dir, &share_id), manifest.encode().as_bytes())?;
    Ok(share_id)
}

/// A signed download URL for `share`, valid until `expires` (Unix seconds).
pub fn share_url(base: &str, secret: &[u8], share: &UploadId, expires: u64) -> String {
    format!(
        "{}/shares/{}?{}",
        base.trim_end_matches('/'),
        share.as_str(),
        share::link_query(secret, share.as_str(), expires)
    )
}

fn basic_password(h: &HeaderMap) -> Option<Vec<u8>> {
    let v = h.unique_str("Authorization").ok().flatten()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    raw.get(colon + 1..).map(<[u8]>::to_vec)
}

async fn handle_download(
    State(st): State<Arc<AppState>>,
    UrlPath(share_str): UrlPath<String>,
    req: Request,
) -> axum::response::Response {
    let (parts, _) = req.into_parts();
    match download(&st, &share_str, &parts).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = plain(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN));
            if matches!(e, Error::WrongPassword) {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"share\""));
            }
            r
        }
    }
}

async fn download(
    st: &Arc<AppState>,
    share_str: &str,
    req: &axum::http::request::Parts,
) -> Result<axum::response::Response, Error> {
    if st.secret.is_empty() {
        return Err(Error::UploadNotFound);
    }
    let q = req.uri.query().unwrap_or("");
    let exp = query_param(q, "exp")
        .and_then(|e| headers::parse_u64("exp", e.as_bytes()).ok())
        .ok_or(Error::LinkTampered)?;
    let sig = query_param(q, "sig").ok_or(Error::LinkTampered)?;
    share::verify_link(&st.secret, share_str, exp, sig, SystemTime::now())?;
    // The signature covers the id, so it is one we issued; validate anyway.
    let share_id = UploadId::new(share_str)?;
    let text = tokio::fs::read_to_string(share_path(st.store.dir(), &share_id))
        .await
        .map_err(|_| Error::UploadNotFound)?;
    let manifest = ShareManifest::decode(&text)?;
    if let Some(phc) = manifest.password.clone() {
        let given = basic_password(&req.headers).ok_or(Error::WrongPassword)?;
        tokio::task::spawn_blocking(move || share::verify_password(&phc, &given))
            .await
            .map_err(|_| Error::InvalidState("password task failed"))??;
    }
    let mut sizes = Vec::new();
    {
        let core = st.core();
        for (id, _) in &manifest.files {
            let info = core.info(id).ok_or(Error::UploadNotFound)?;
            if !info.is_finished() {
                return Err(Error::UploadNotFound);
            }
            sizes.push(info.offset);
        }
    }
    let format = match query_param(q, "format") {
        None => None,
        Some("tar") => Some(Archive::Tar),
        Some("zip") => Some(Archive::Zip),
        Some(_) => return Err(Error::UnsupportedArchiveFormat),
    };
    let r = match (manifest.files.as_slice(), sizes.as_slice(), format) {
        ([(id, name)], [size], None) => single_file(st, id, name, *size, &req.headers)?,
        (_, _, Some(Archive::Zip)) => zip_stream(st, &manifest, &sizes)?,
        _ => tar_stream(st, &manifest, &sizes),
    };
    Ok(maybe_zstd(r, &req.headers))
}

/// True if `Accept-Encoding` lists `zstd` with a non-zero q.
pub fn accepts_zstd(h: &HeaderMap) -> bool {
    HeaderSource::values(h, "Accept-Encoding")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let zero_q =
                parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0)));
            coding.eq_ignore_ascii_case("zstd") && !zero_q
        })
}

#[cfg(feature = "zstd")]
fn maybe_zstd(r: axum::response::Response, h: &HeaderMap) -> axum::response::Response {
    if r.status() != StatusCode::OK || !accepts_zstd(h) {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let stream = body.into_data_stream().then(|chunk| async move {
        let chunk = chunk.map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || Bytes::from(crate::compress::zstd_chunk(&chunk, 3)))
            .await
            .map_err(std::io::Error::other)
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
    parts.headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    axum::response::Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(not(feature = "zstd"))]
fn maybe_zstd(r: axum::response::Response, _h: &HeaderMap) -> axum::response::Response {
    r
}

fn single_file(
    st: &AppState,
    id: &UploadId,
    name: &str,
    size: u64,
    h: &HeaderMap,
) -> Result<axum::response::Response, Error> {
    let range = match share::parse_range(h.unique("Range").ok().flatten(), size) {
        Ok(r) => r,
        Err(e) => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            let _ = e;
            return Ok(r);
        }
    };
    let (start, len, status) = match range {
        Some((s, e)) => (s, e - s + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, size, StatusCode::OK),
    };
    let body = Body::from_stream(file_stream(st.store.data_path(id), start, len));
    let mut r = (status, body).into_response();
    let hm = r.headers_mut();
    hm.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    hm.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    hm.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        hm.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        hm.insert(header::CONTENT_RANGE, v);
    }
    Ok(r)
}

/// Archive formats of a share download (`&format=tar|zip`).
#[derive(Debug, Clone, Copy)]
enum Archive {
    Tar,
    Zip,
}

fn tar_header(name: &str, size: u64) -> Bytes {
    let mut hdr = tar::Header::new_ustar();
    // Names are sanitized to one component; cut to the 100-byte ustar field.
    let mut cut = name.len().min(100);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let _ = hdr.set_path(name.get(..cut).unwrap_or("file"));
    hdr.set_size(size);
    hdr.set_mode(0o644);
    hdr.set_mtime(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    hdr.set_entry_type(tar::EntryType::Regular);
    hdr.set_cksum();
    Bytes::copy_from_slice(hdr.as_bytes())
}

fn pad512(size: u64) -> u64 {
    (512 - size % 512) % 512
}

fn tar_stream(st: &AppState, manifest: &ShareManifest, sizes: &[u64]) -> axum::response::Response {
    let mut total: u64 = 1024;
    let mut parts = Vec::new();
    for ((id, name), &size) in manifest.files.iter().zip(sizes) {
        total += 512 + size + pad512(size);
        let header = futures_util::stream::iter([Ok(tar_header(name, size))]);
        let data = file_stream(st.store.data_path(id), 0, size);
        let pad = usize::try_from(pad512(size)).unwrap_or(0);
        let padding = futures_util::stream::iter([Ok(Bytes::from(vec![0u8; pad]))]);
        parts.push(header.chain(data).chain(padding).boxed());
    }
    let end = futures_util::stream::iter([Ok(Bytes::from(vec![0u8; 1024]))]).boxed();
    parts.push(end);
    let stream = futures_util::stream::iter(parts).flatten();
    let mut r = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let hm = r.headers_mut();
    hm.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    hm.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    hm.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"share.tar\""));
    r
}

/// Where a zip download is: the next entry's header, inside its data (the
/// CRC runs over the bytes as they pass), or past the last entry.
enum ZipStep {
    Header(usize),
    Data(usize, futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>, Crc32),
    Central,
    Done,
}

/// A multi-file share as one stored zip: file bytes pass through unchanged
/// (no copy, bounded memory), only headers are built here. The length is
/// known before the first byte.
fn zip_stream(
    st: &AppState,
    manifest: &ShareManifest,
    sizes: &[u64],
) -> Result<axum::response::Response, Error> {
    let entries: Vec<(String, u64)> =
        manifest.files.iter().zip(sizes).map(|((_, name), &size)| (name.clone(), size)).collect();
    let plan = Arc::new(ZipPlan::new(&entries, SystemTime::now())?);
    let paths: Arc<Vec<(PathBuf, u64)>> = Arc::new(
        manifest.files.iter().zip(sizes).map(|((id, _), &size)| (st.store.data_path(id), size)).collect(),
    );
    let total = plan.len();
    let crcs = Vec::with_capacity(plan.entries());
    let stream = futures_util::stream::try_unfold(
        (ZipStep::Header(0), crcs),
        move |(step, mut crcs): (ZipStep, Vec<u32>)| {
            let plan = plan.clone();
            let paths = paths.clone();
            async move {
                let io = |e: Error| std::io::Error::other(e.to_string());
                match step {
                    ZipStep::Header(i) if i < plan.entries() => {
                        let (path, size) = paths.get(i).cloned().ok_or_else(|| io(Error::UploadNotFound))?;
                        let data = file_stream(path, 0, size).boxed();
                        let header = plan.local_header(i).map_err(io)?;
                        Ok(Some((Bytes::from(header), (ZipStep::Data(i, data, Crc32::new()), crcs))))
                    }
                    ZipStep::Header(_) | ZipStep::Central => {
                        let cd = plan.central_directory(&crcs).map_err(io)?;
                        Ok(Some((Bytes::from(cd), (ZipStep::Done, crcs))))
                    }
                    ZipStep::Data(i, mut data, mut crc) => match data.next().await {
                        Some(chunk) => {
                            let chunk = chunk?;
                            crc.update(&chunk);
                            Ok(Some((chunk, (ZipStep::Data(i, data, crc), crcs))))
                        }
                        None => {
                            let dd = plan.data_descriptor(i, crc.finish()).map_err(io)?;
                            crcs.push(crc.finish());
                            let next = if i + 1 < plan.entries() {
                                ZipStep::Header(i + 1)
                            } else {
                                ZipStep::Central
                            };
                            Ok(Some((Bytes::from(dd), (next, crcs))))
                        }
                    },
                    ZipStep::Done => Ok::<_, std::io::Error>(None),
                }
            }
        },
    );
    let mut r = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let hm = r.headers_mut();
    hm.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    hm.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    hm.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"share.zip\""));
    Ok(r)
}
