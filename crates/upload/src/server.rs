//! The sans-IO tus server state machine.
//!
//! [`Server`] owns a [`Store`] and the in-memory state of every upload. An HTTP
//! adapter turns each request into one `handle_*` call and writes the
//! [`Response`] back. Bodies are streamed: [`Server::begin_patch`] hands out a
//! [`PatchSession`] that the adapter feeds chunk by chunk *without* holding the
//! server (lock); [`Server::finish_patch`] then verifies and commits. Time is
//! always passed in as `now`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::Error;
use crate::checksum::{Checksum, ChecksumAlgorithm, ChecksumHasher};
use crate::headers::{self, Concat, HeaderSource, Metadata, MetadataLimits};
use crate::id::UploadId;
use crate::merkle::{MerkleBuilder, PiecesRoot};
use crate::store::{Store, StoreWriter, UploadInfo};

/// Server settings. Every limit has a safe default.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest upload accepted (`Tus-Max-Size`). Default 64 GiB.
    pub max_size: u64,
    /// `Upload-Metadata` limits.
    pub metadata: MetadataLimits,
    /// Most parts in one final concatenation. Default 256.
    pub max_concat_parts: usize,
    /// Unfinished uploads expire this long after their last write. Default
    /// `None` (never).
    pub expire_after: Option<Duration>,
    /// Path prefix of upload URLs, with trailing slash. Default `/files/`.
    pub base_path: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_size: 64 << 30,
            metadata: MetadataLimits::default(),
            max_concat_parts: 256,
            expire_after: None,
            base_path: "/files/".to_owned(),
        }
    }
}

/// The extensions this server implements, for `Tus-Extension`.
pub const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum,checksum-trailer,concatenation";

/// Non-tus header on `HEAD` of a finished upload: its BEP 52 pieces root
/// (hex), so a client can check the stored bytes against its own file.
pub const PIECES_ROOT: &str = "Piecework-Pieces-Root";

/// Non-tus header on `HEAD` of an unfinished upload: the BEP 52 root of the
/// bytes received so far (hex), so a resuming client can check that prefix
/// against its file before sending the rest.
pub const PREFIX_ROOT: &str = "Piecework-Prefix-Root";

/// A response for the adapter to send: status and headers (no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers to send, `Tus-Resumable` included.
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    fn new(status: u16) -> Self {
        Self { status, headers: vec![(headers::TUS_RESUMABLE, headers::TUS_VERSION.to_owned())] }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of header `name`, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The response for an error (status from [`Error::status`]).
    pub fn from_error(e: &Error) -> Self {
        let r = Response::new(e.status());
        if matches!(e, Error::UnsupportedVersion) {
            r.with(headers::TUS_VERSION_H, headers::TUS_VERSION)
        } else {
            r
        }
    }
}

#[derive(Debug)]
struct Upload {
    info: UploadInfo,
    merkle: MerkleBuilder,
    busy: bool,
}

/// An in-flight PATCH body: hashes and writes as bytes arrive.
///
/// Feed it with [`PatchSession::write`], then give it back to
/// [`Server::finish_patch`] (or [`Server::abort_patch`]).
#[derive(Debug)]
pub struct PatchSession<W> {
    id: UploadId,
    start: u64,
    written: u64,
    limit: u64,
    new_length: Option<u64>,
    expected: Option<Checksum>,
    /// The `Upload-Checksum` header's hasher, fed as the body streams; or, with a trailer,
    /// the stored body's hash made by [`PatchSession::hash_for_trailer`].
    hasher: Option<ChecksumHasher>,
    merkle: MerkleBuilder,
    writer: W,
    failed: bool,
}

impl<W: StoreWriter> PatchSession<W> {
    /// The upload this body belongs to.
    pub fn id(&self) -> &UploadId {
        &self.id
    }

    /// Bytes this body may still carry before 413.
    pub fn remaining(&self) -> u64 {
        self.limit - self.written
    }

    /// Bytes written so far in this body.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Makes the bytes written so far durable. Call it (off the async
    /// workers, without holding the server) before [`Server::finish_patch`],
    /// so the slow `fdatasync` does not block other requests; `finish_patch`
    /// syncs again, which is then cheap.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.writer.sync()
    }

    /// For a body that ended with an `Upload-Checksum` trailer: makes the body durable and
    /// hashes it again from the store with the trailer's algorithm (unknown while it
    /// streamed), reading through `read_at` (file offsets of this upload). Call it without
    /// holding the server; otherwise [`Server::finish_patch`] does it, the server held.
    /// An unparsable trailer is left for `finish_patch` to refuse.
    pub fn hash_for_trailer(
        &mut self,
        trailer: &[u8],
        read_at: impl FnMut(u64, &mut [u8]) -> Result<usize, Error>,
    ) -> Result<(), Error> {
        let Ok(c) = headers::parse_checksum(trailer) else { return Ok(()) };
        // A header checksum's hasher, or this trailer's hash made already.
        if self.expected.is_some()
            || self.hasher.as_ref().map(ChecksumHasher::algorithm) == Some(c.algorithm())
        {
            return Ok(());
        }
        self.writer.sync()?;
        self.hasher = Some(hash_stored(self.start, self.written, c.algorithm(), read_at)?);
        Ok(())
    }

    /// Hashes and stores the next body bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.failed {
            return Err(Error::InvalidState("write after failure"));
        }
        let len = data.len() as u64;
        if len > self.remaining() {
            self.failed = true;
            return Err(Error::TooLarge {
                length: self.start.saturating_add(self.written).saturating_add(len),
                max: self.start + self.limit,
            });
        }
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
        if let Err(e) = hash_and_store(&mut self.merkle, &mut self.writer, data) {
            self.failed = true;
            return Err(e);
        }
        self.written += len;
        Ok(())
    }
}

/// Builds the merkle tree over `data` and hands it to `writer`: straight into the writer's
/// buffer where it has one, the copy made by the same pass that hashes.
fn hash_and_store<W: StoreWriter>(
    merkle: &mut MerkleBuilder,
    writer: &mut W,
    mut data: &[u8],
) -> Result<(), Error> {
    while !data.is_empty() {
        let Some(room) = writer.buffer().filter(|r| !r.is_empty()) else {
            merkle.update(data);
            return writer.write_all(data);
        };
        let n = room.len().min(data.len());
        let (now, rest) = data.split_at(n);
        merkle.update_copy(now, &mut room[..n]);
        writer.commit(n)?;
        data = rest;
    }
    Ok(())
}

/// `algorithm`'s hash of the `len` stored bytes at `start`, read through `read_at`.
fn hash_stored(
    start: u64,
    len: u64,
    algorithm: ChecksumAlgorithm,
    read_at: impl FnMut(u64, &mut [u8]) -> Result<usize, Error>,
) -> Result<ChecksumHasher, Error> {
    let mut h = algorithm.hasher();
    let hash = |b: &[u8]| {
        h.update(b);
        Ok(())
    };
    if read_stored(start, len, read_at, hash)? < len {
        return Err(Error::ChecksumMismatch);
    }
    Ok(h)
}

/// Keeps `merkle`'s piece roots from index `from` on, if it has any there: a checkpoint for
/// restarts, best effort (without it the next start reads and hashes more).
fn save_new_piece_roots<S: Store>(store: &mut S, id: &UploadId, merkle: &MerkleBuilder, from: usize) {
    if let Some(new) = merkle.piece_roots().get(from..).filter(|n| !n.is_empty()) {
        let _ = store.save_piece_roots(id, from, new);
    }
}

/// What [`Server::begin_create`] started: an upload created outright, or a final upload
/// (concatenation) whose parts still have to be copied.
#[derive(Debug)]
pub enum Creation<W> {
    /// Created; the 201 response.
    Done(Response),
    /// A final upload to assemble with [`FinalAssembly::copy`], then hand to
    /// [`Server::finish_final`].
    Assemble(FinalAssembly<W>),
}

/// A final upload (concatenation) being assembled. Its parts are copied without the
/// server: the copy reads and writes the whole upload, and other requests go on meanwhile.
/// The parts are locked (busy: no PATCH, DELETE or expiry) until [`Server::finish_final`].
#[derive(Debug)]
pub struct FinalAssembly<W> {
    id: UploadId,
    parts: Vec<(UploadId, u64)>,
    merkle: MerkleBuilder,
    writer: W,
}

impl<W: StoreWriter> FinalAssembly<W> {
    /// The final upload's id.
    pub fn id(&self) -> &UploadId {
        &self.id
    }

    /// The parts in order, with their lengths.
    pub fn parts(&self) -> &[(UploadId, u64)] {
        &self.parts
    }

    /// Copies the parts in order into the final upload, building its merkle tree on the
    /// way, and makes the copy durable. `read_at` reads a part from the server's store (a
    /// handle of its own: the server is not borrowed meanwhile).
    pub fn copy(
        &mut self,
        mut read_at: impl FnMut(&UploadId, u64, &mut [u8]) -> Result<usize, Error>,
    ) -> Result<(), Error> {
        let Self { parts, merkle, writer, .. } = self;
        for (part, len) in parts.iter() {
            let store = |b: &[u8]| hash_and_store(merkle, writer, b);
            if read_stored(0, *len, |pos, buf| read_at(part, pos, buf), store)? < *len {
                return Err(Error::InvalidState("part shorter than its offset"));
            }
        }
        self.writer.sync()
    }
}

/// Read size when stored bytes are read back (final uploads, trailers, restarts).
const READ_BACK: usize = 256 * 1024;

/// Reads the `len` stored bytes at `start` through `read_at`, [`READ_BACK`] at a time, and hands
/// each read to `each`; returns how many there were (fewer than `len` if the store ran out).
fn read_stored(
    start: u64,
    len: u64,
    mut read_at: impl FnMut(u64, &mut [u8]) -> Result<usize, Error>,
    mut each: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<u64, Error> {
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).min(READ_BACK)];
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done).unwrap_or(usize::MAX).min(buf.len());
        let n = read_at(start.saturating_add(done), buf.get_mut(..want).unwrap_or(&mut []))?;
        if n == 0 {
            break;
        }
        each(buf.get(..n).unwrap_or(&[]))?;
        done += n as u64;
    }
    Ok(done)
}

/// How a PATCH body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    /// The body arrived whole; `trailer` is an `Upload-Checksum` trailer value.
    Complete {
        /// Raw trailer value, if any.
        trailer: Option<Vec<u8>>,
    },
    /// The connection dropped or stalled mid-body.
    Interrupted,
}

/// The tus server state machine over a [`Store`].
#[derive(Debug)]
pub struct Server<S: Store> {
    config: ServerConfig,
    store: S,
    uploads: HashMap<UploadId, Upload>,
}

impl<S: Store> Server<S> {
    /// Opens a server over `store`, loading every stored upload. The merkle
    /// state of unfinished uploads is rebuilt from the stored prefix, so a
    /// resumed upload still ends with a correct root.
    pub fn open(config: ServerConfig, mut store: S) -> Result<Self, Error> {
        let mut uploads = HashMap::new();
        for (id, mut info) in store.list()? {
            // A final upload whose assembly did not finish (the server stopped mid-copy):
            // its creation was never answered, and its parts are still there to retry.
            if matches!(info.concat, Some(Concat::Final(_))) && !info.is_finished() {
                store.remove(&id)?;
                continue;
            }
            let mut merkle = MerkleBuilder::new();
            if info.root.is_none() || !info.is_finished() {
                // Whole pieces below the offset whose roots were kept are not read again.
                let mut kept = store.load_piece_roots(&id);
                kept.truncate(
                    usize::try_from(info.offset / crate::merkle::PIECE_LENGTH).unwrap_or(usize::MAX),
                );
                let from = kept.len();
                merkle = MerkleBuilder::resume(kept);
                let resumed = merkle.len();
                let feed = |b: &[u8]| {
                    merkle.update(b);
                    Ok(())
                };
                let read_at = |pos: u64, buf: &mut [u8]| store.read_at(&id, pos, buf);
                info.offset =
                    resumed + read_stored(resumed, info.offset.saturating_sub(resumed), read_at, feed)?;
                save_new_piece_roots(&mut store, &id, &merkle, from);
                if info.is_finished() {
                    info.root = merkle.finish();
                    // The root is kept; the tree state is no longer needed.
                    merkle = MerkleBuilder::new();
                }
            }
            uploads.insert(id, Upload { info, merkle, busy: false });
        }
        Ok(Self { config, store, uploads })
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Info of an upload.
    pub fn info(&self, id: &UploadId) -> Option<&UploadInfo> {
        self.uploads.get(id).map(|u| &u.info)
    }

    /// Ids of every upload.
    pub fn ids(&self) -> impl Iterator<Item = &UploadId> {
        self.uploads.keys()
    }

    /// BEP 52 pieces root of a finished, non-empty upload.
    pub fn pieces_root(&self, id: &UploadId) -> Option<PiecesRoot> {
        self.uploads.get(id).and_then(|u| u.info.root)
    }

    /// `OPTIONS`: capabilities. No `Tus-Resumable` needed.
    pub fn handle_options(&self) -> Response {
        let algs: Vec<&str> = ChecksumAlgorithm::ALL.iter().map(|a| a.name()).collect();
        Response::new(204)
            .with(headers::TUS_VERSION_H, headers::TUS_VERSION)
            .with(headers::TUS_EXTENSION, EXTENSIONS)
            .with(headers::TUS_MAX_SIZE, self.config.max_size.to_string())
            .with(headers::TUS_CHECKSUM_ALGORITHM, algs.join(","))
    }

    fn lookup(&mut self, now: SystemTime, id: &str) -> Result<&mut Upload, Error> {
        let id = UploadId::new(id)?;
        let expired = match self.uploads.get(&id) {
            None => return Err(Error::UploadNotFound),
            Some(u) => !u.busy && is_expired(&u.info, now),
        };
        if expired {
            self.uploads.remove(&id);
            self.store.remove(&id)?;
            return Err(Error::UploadExpired);
        }
        self.uploads.get_mut(&id).ok_or(Error::UploadNotFound)
    }

    /// `HEAD /files/<id>`: current offset and length.
    pub fn handle_head<H: HeaderSource + ?Sized>(
        &mut self,
        now: SystemTime,
        id: &str,
        h: &H,
    ) -> Result<Response, Error> {
        headers::check_tus_resumable(h)?;
        let base = self.config.base_path.clone();
        let u = self.lookup(now, id)?;
        let mut r = Response::new(200)
            .with("Cache-Control", "no-store")
            .with(headers::UPLOAD_OFFSET, u.info.offset.to_string());
        r = match u.info.length {
            Some(l) => r.with(headers::UPLOAD_LENGTH, l.to_string()),
            None => r.with(headers::UPLOAD_DEFER_LENGTH, "1"),
        };
        if !u.info.metadata.is_empty() {
            r = r.with(headers::UPLOAD_METADATA, u.info.metadata.encode());
        }
        if let Some(c) = &u.info.concat {
            r = r.with(headers::UPLOAD_CONCAT, c.encode(&base));
        }
        if let Some(e) = u.info.expires.filter(|_| !u.info.is_finished()) {
            r = r.with(headers::UPLOAD_EXPIRES, headers::format_expires(e));
        }
        if let Some(root) = u.info.root {
            r = r.with(PIECES_ROOT, root.to_hex());
        } else if !u.info.is_finished()
            && let Some(root) = u.merkle.finish()
        {
            // O(log n): the running merkle state covers exactly the offset.
            r = r.with(PREFIX_ROOT, root.to_hex());
        }
        Ok(r)
    }

    /// `POST /files/`: creates upload `id` (a fresh random id from the
    /// adapter). Returns 201 with `Location`. For creation-with-upload, follow
    /// with [`Server::begin_patch`] at offset 0 using [`create_patch_headers`].
    ///
    /// A final upload (concatenation) is assembled here, the server held throughout; a
    /// server shared between requests uses [`Server::begin_create`] instead.
    pub fn handle_create<H: HeaderSource + ?Sized>(
        &mut self,
        now: SystemTime,
        id: UploadId,
        h: &H,
    ) -> Result<Response, Error> {
        match self.begin_create(now, id, h)? {
            Creation::Done(r) => Ok(r),
            Creation::Assemble(mut job) => {
                let store = &self.store;
                let copied = job.copy(|part, pos, buf| store.read_at(part, pos, buf));
                self.finish_final(job, copied)
            }
        }
    }

    /// [`Server::handle_create`] that leaves a final upload's copy to the caller: run
    /// [`FinalAssembly::copy`] without holding the server, then [`Server::finish_final`].
    pub fn begin_create<H: HeaderSource + ?Sized>(
        &mut self,
        now: SystemTime,
        id: UploadId,
        h: &H,
    ) -> Result<Creation<S::Writer>, Error> {
        headers::check_tus_resumable(h)?;
        let length = headers::get_u64(h, headers::UPLOAD_LENGTH)?;
        let defer = headers::get_defer_length(h)?;
        let metadata = match h.unique(headers::UPLOAD_METADATA)? {
            Some(v) => Metadata::parse(v, self.config.metadata)?,
            None => Metadata::new(),
        };
        let concat = h
            .unique(headers::UPLOAD_CONCAT)?
            .map(|v| Concat::parse(v, self.config.max_concat_parts))
            .transpose()?;
        if self.uploads.contains_key(&id) {
            return Err(Error::InvalidState("upload id already in use"));
        }
        if let Some(Concat::Final(parts)) = &concat {
            if length.is_some() || defer {
                return Err(Error::ConflictingHeaders {
                    a: headers::UPLOAD_CONCAT,
                    b: headers::UPLOAD_LENGTH,
                });
            }
            return self.begin_final(now, id, metadata, parts.clone()).map(Creation::Assemble);
        }
        let length = match (length, defer) {
            (Some(_), true) => {
                return Err(Error::ConflictingHeaders {
                    a: headers::UPLOAD_LENGTH,
                    b: headers::UPLOAD_DEFER_LENGTH,
                });
            }
            (None, false) => {
                return Err(Error::MissingHeader { name: headers::UPLOAD_LENGTH });
            }
            (l, _) => l,
        };
        if let Some(l) = length
            && l > self.config.max_size
        {
            return Err(Error::TooLarge { length: l, max: self.config.max_size });
        }
        let mut info = UploadInfo {
            length,
            offset: 0,
            metadata,
            concat,
            created: now,
            expires: self.config.expire_after.and_then(|d| now.checked_add(d)),
            root: None,
        };
        if length == Some(0) {
            info.expires = None;
        }
        self.store.create(&id, &info)?;
        let r = self.created_response(&id, &info);
        self.uploads.insert(id, Upload { info, merkle: MerkleBuilder::new(), busy: false });
        Ok(Creation::Done(r))
    }

    fn created_response(&self, id: &UploadId, info: &UploadInfo) -> Response {
        let mut r = Response::new(201).with("Location", format!("{}{}", self.config.base_path, id.as_str()));
        if let Some(e) = info.expires.filter(|_| !info.is_finished()) {
            r = r.with(headers::UPLOAD_EXPIRES, headers::format_expires(e));
        }
        r.with(headers::UPLOAD_OFFSET, info.offset.to_string())
    }

    /// Checks the parts, creates the final upload (empty, busy) and locks the parts.
    fn begin_final(
        &mut self,
        now: SystemTime,
        id: UploadId,
        metadata: Metadata,
        parts: Vec<UploadId>,
    ) -> Result<FinalAssembly<S::Writer>, Error> {
        let mut total: u64 = 0;
        let mut sized = Vec::with_capacity(parts.len());
        for p in &parts {
            let u = self.lookup(now, p.as_str())?;
            if u.info.concat != Some(Concat::Partial) {
                return Err(Error::NotPartial);
            }
            if !u.info.is_finished() || u.busy {
                return Err(Error::PartialNotFinished);
            }
            total = total.saturating_add(u.info.offset);
            sized.push((p.clone(), u.info.offset));
        }
        if total > self.config.max_size {
            return Err(Error::TooLarge { length: total, max: self.config.max_size });
        }
        let info = UploadInfo {
            length: Some(total),
            offset: 0,
            metadata,
            concat: Some(Concat::Final(parts)),
            created: now,
            expires: None,
            root: None,
        };
        self.store.create(&id, &info)?;
        let writer = match self.store.writer(&id, 0) {
            Ok(w) => w,
            Err(e) => {
                let _ = self.store.remove(&id);
                return Err(e);
            }
        };
        self.set_busy(sized.iter().map(|(p, _)| p), true);
        self.uploads.insert(id.clone(), Upload { info, merkle: MerkleBuilder::new(), busy: true });
        Ok(FinalAssembly { id, parts: sized, merkle: MerkleBuilder::new(), writer })
    }

    /// Ends a final upload's assembly: unlocks the parts and, if `copied` is `Ok`, marks the
    /// final upload finished with its pieces root and returns its 201; else removes it.
    pub fn finish_final(
        &mut self,
        job: FinalAssembly<S::Writer>,
        copied: Result<(), Error>,
    ) -> Result<Response, Error> {
        let FinalAssembly { id, parts, merkle, writer } = job;
        drop(writer);
        self.set_busy(parts.iter().map(|(p, _)| p), false);
        let saved = copied.and_then(|()| {
            let u = self.uploads.get_mut(&id).ok_or(Error::UploadNotFound)?;
            u.info.offset = u.info.length.unwrap_or_default();
            u.info.root = merkle.finish();
            u.busy = false;
            let info = u.info.clone();
            self.store.save_info(&id, &info).map(|()| info)
        });
        match saved {
            Ok(info) => Ok(self.created_response(&id, &info)),
            Err(e) => {
                self.uploads.remove(&id);
                let _ = self.store.remove(&id);
                Err(e)
            }
        }
    }

    fn set_busy<'a>(&mut self, ids: impl Iterator<Item = &'a UploadId>, busy: bool) {
        for p in ids {
            if let Some(u) = self.uploads.get_mut(p) {
                u.busy = busy;
            }
        }
    }

    /// `PATCH /files/<id>` headers: checks them and opens a body session. The
    /// upload is locked until the session is finished or aborted.
    pub fn begin_patch<H: HeaderSource + ?Sized>(
        &mut self,
        now: SystemTime,
        id: &str,
        h: &H,
    ) -> Result<PatchSession<S::Writer>, Error> {
        headers::check_tus_resumable(h)?;
        match h.unique_str(headers::CONTENT_TYPE)? {
            Some(ct) if ct.trim().eq_ignore_ascii_case(headers::OFFSET_OCTET_STREAM) => {}
            _ => return Err(Error::UnsupportedMediaType),
        }
        let offset = headers::get_u64(h, headers::UPLOAD_OFFSET)?
            .ok_or(Error::MissingHeader { name: headers::UPLOAD_OFFSET })?;
        let new_length = headers::get_u64(h, headers::UPLOAD_LENGTH)?;
        let expected = h.unique(headers::UPLOAD_CHECKSUM)?.map(headers::parse_checksum).transpose()?;
        let max_size = self.config.max_size;
        let u = self.lookup(now, id)?;
        if matches!(u.info.concat, Some(Concat::Final(_))) {
            return Err(Error::PatchOnFinal);
        }
        if u.busy {
            return Err(Error::UploadBusy);
        }
        if offset != u.info.offset {
            return Err(Error::OffsetMismatch { expected: u.info.offset, got: offset });
        }
        let length = match (u.info.length, new_length) {
            (Some(l), Some(n)) if l != n => return Err(Error::LengthImmutable),
            (None, Some(n)) if n < offset => return Err(Error::LengthImmutable),
            (None, Some(n)) if n > max_size => {
                return Err(Error::TooLarge { length: n, max: max_size });
            }
            (l, n) => l.or(n),
        };
        let limit = length.unwrap_or(max_size).saturating_sub(offset);
        let uid = UploadId::new(id)?;
        let writer = self.store.writer(&uid, offset)?;
        let u = self.uploads.get_mut(&uid).ok_or(Error::UploadNotFound)?;
        u.busy = true;
        Ok(PatchSession {
            id: uid,
            start: offset,
            written: 0,
            limit,
            new_length: new_length.filter(|_| u.info.length.is_none()),
            hasher: expected.as_ref().map(|c| c.algorithm().hasher()),
            expected,
            merkle: u.merkle.clone(),
            writer,
            failed: false,
        })
    }

    /// Ends a PATCH body: verifies the checksum (header or trailer), makes the
    /// bytes durable, then advances the offset. On any failure the stored data
    /// is cut back and the offset does not move. An interrupted body without a
    /// checksum keeps what arrived (like other tus servers).
    pub fn finish_patch(
        &mut self,
        now: SystemTime,
        mut s: PatchSession<S::Writer>,
        end: BodyEnd,
    ) -> Result<Response, Error> {
        let verdict = self.verify(&mut s, &end);
        let u = self.uploads.get_mut(&s.id).ok_or(Error::UploadNotFound)?;
        u.busy = false;
        if let Err(e) = verdict {
            drop(s.writer);
            self.store.truncate(&s.id, s.start)?;
            return Err(e);
        }
        if let Err(e) = s.writer.sync() {
            self.store.truncate(&s.id, s.start)?;
            return Err(e);
        }
        let mut info = u.info.clone();
        info.offset = s.start + s.written;
        if let Some(n) = s.new_length {
            info.length = Some(n);
        }
        if info.is_finished() {
            // An empty PATCH on a finished upload keeps its root: after a
            // restart its merkle state is not rebuilt (fuzz finding).
            if s.written > 0 || info.root.is_none() {
                info.root = s.merkle.finish();
            }
            info.expires = None;
        } else if let Some(d) = self.config.expire_after {
            info.expires = now.checked_add(d);
        }
        if info.is_finished() || s.new_length.is_some() {
            self.store.save_info(&s.id, &info)?;
        } else {
            self.store.save_progress(&s.id, &info)?;
        }
        if !info.is_finished() {
            // Its bytes are durable by now.
            save_new_piece_roots(&mut self.store, &s.id, &s.merkle, u.merkle.piece_roots().len());
        }
        u.info = info;
        // A finished upload keeps its root, not the tree state.
        u.merkle = if u.info.is_finished() { MerkleBuilder::new() } else { s.merkle };
        let mut r = Response::new(204).with(headers::UPLOAD_OFFSET, u.info.offset.to_string());
        if let Some(e) = u.info.expires {
            r = r.with(headers::UPLOAD_EXPIRES, headers::format_expires(e));
        }
        if matches!(end, BodyEnd::Interrupted) {
            // Nobody is listening; the caller still learns the new offset.
            r.status = 400;
        }
        Ok(r)
    }

    fn verify(&self, s: &mut PatchSession<S::Writer>, end: &BodyEnd) -> Result<(), Error> {
        if s.failed {
            return Err(Error::InvalidState("session failed"));
        }
        let trailer = match end {
            BodyEnd::Interrupted if s.expected.is_some() => return Err(Error::ChecksumMismatch),
            BodyEnd::Interrupted => return Ok(()),
            BodyEnd::Complete { trailer } => trailer,
        };
        let expected = match (&s.expected, trailer) {
            (Some(_), Some(_)) => {
                return Err(Error::DuplicateHeader { name: headers::UPLOAD_CHECKSUM });
            }
            (Some(c), None) => Some(c.clone()),
            (None, Some(t)) => {
                let c = headers::parse_checksum(t)?;
                // The algorithm was unknown while streaming: hash the stored bytes, unless
                // `hash_for_trailer` did already.
                let (store, id) = (&self.store, s.id.clone());
                s.hash_for_trailer(t, |pos, buf| store.read_at(&id, pos, buf))?;
                Some(c)
            }
            (None, None) => None,
        };
        if let (Some(want), Some(h)) = (expected, s.hasher.take())
            && !h.finish().matches(&want)
        {
            return Err(Error::ChecksumMismatch);
        }
        Ok(())
    }

    /// Gives up a body session: data cut back, offset unchanged, lock freed.
    pub fn abort_patch(&mut self, s: PatchSession<S::Writer>) -> Result<(), Error> {
        if let Some(u) = self.uploads.get_mut(&s.id) {
            u.busy = false;
        }
        drop(s.writer);
        self.store.truncate(&s.id, s.start)
    }

    /// `DELETE /files/<id>` (termination).
    pub fn handle_delete<H: HeaderSource + ?Sized>(
        &mut self,
        now: SystemTime,
        id: &str,
        h: &H,
    ) -> Result<Response, Error> {
        headers::check_tus_resumable(h)?;
        let u = self.lookup(now, id)?;
        if u.busy {
            return Err(Error::UploadBusy);
        }
        let id = UploadId::new(id)?;
        self.uploads.remove(&id);
        self.store.remove(&id)?;
        Ok(Response::new(204))
    }

    /// Removes every upload whose expiry is at or before `now`; returns them.
    pub fn handle_expire(&mut self, now: SystemTime) -> Result<Vec<UploadId>, Error> {
        let gone: Vec<UploadId> = self
            .uploads
            .iter()
            .filter(|(_, u)| !u.busy && is_expired(&u.info, now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.uploads.remove(id);
            self.store.remove(id)?;
        }
        Ok(gone)
    }

    /// The next time [`Server::handle_expire`] has work, if any.
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.uploads.values().filter(|u| !u.info.is_finished()).filter_map(|u| u.info.expires).min()
    }
}

fn is_expired(info: &UploadInfo, now: SystemTime) -> bool {
    !info.is_finished() && info.expires.is_some_and(|e| e <= now)
}

/// Headers to pass to [`Server::begin_patch`] for the body of a
/// creation-with-upload `POST`: the request's own headers plus offset 0.
pub fn create_patch_headers<H: HeaderSource + ?Sized>(h: &H) -> Result<Vec<(&'static str, Vec<u8>)>, Error> {
    let mut out: Vec<(&'static str, Vec<u8>)> = vec![
        (headers::TUS_RESUMABLE, headers::TUS_VERSION.as_bytes().to_vec()),
        (headers::UPLOAD_OFFSET, b"0".to_vec()),
    ];
    for name in [headers::CONTENT_TYPE, headers::UPLOAD_CHECKSUM] {
        if let Some(v) = h.unique(name)? {
            out.push((name, v.to_vec()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::pieces_root_of;
    use crate::store::{FileStore, MemoryStore};
    use base64::Engine as _;

    type H = Vec<(&'static str, String)>;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    fn tus(extra: &[(&'static str, &str)]) -> H {
        let mut h = vec![("Tus-Resumable", "1.0.0".to_owned())];
        h.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        h
    }

    fn server() -> Server<MemoryStore> {
        Server::open(ServerConfig::default(), MemoryStore::new()).unwrap()
    }

    fn id(s: &str) -> UploadId {
        UploadId::new(s).unwrap()
    }

    fn patch<S: Store>(
        s: &mut Server<S>,
        up: &str,
        offset: u64,
        data: &[u8],
        extra: &[(&'static str, &str)],
    ) -> Result<Response, Error> {
        let off = offset.to_string();
        let mut h = tus(&[("Content-Type", "application/offset+octet-stream"), ("Upload-Offset", &off)]);
        h.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let mut sess = s.begin_patch(t0(), up, &h)?;
        match sess.write(data) {
            Ok(()) => s.finish_patch(t0(), sess, BodyEnd::Complete { trailer: None }),
            Err(e) => {
                s.abort_patch(sess)?;
                Err(e)
            }
        }
    }

    #[test]
    fn create_append_head_finish_root() {
        let mut s = server();
        let r = s.handle_create(t0(), id("u1"), &tus(&[("Upload-Length", "40000")])).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Location"), Some("/files/u1"));
        let data: Vec<u8> = (0..40000u32).map(|i| (i % 253) as u8).collect();
        let r = patch(&mut s, "u1", 0, &data[..20000], &[]).unwrap();
        assert_eq!((r.status, r.header("Upload-Offset")), (204, Some("20000")));
        let r = s.handle_head(t0(), "u1", &tus(&[])).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Upload-Offset"), Some("20000"));
        assert_eq!(r.header("Upload-Length"), Some("40000"));
        assert_eq!(r.header("Cache-Control"), Some("no-store"));
        assert_eq!(r.header(PREFIX_ROOT), pieces_root_of(&data[..20000]).map(|r| r.to_hex()).as_deref());
        patch(&mut s, "u1", 20000, &data[20000..], &[]).unwrap();
        assert_eq!(s.store().data(&id("u1")).unwrap(), data);
        assert_eq!(s.pieces_root(&id("u1")), pieces_root_of(&data));
        let r = s.handle_head(t0(), "u1", &tus(&[])).unwrap();
        assert_eq!(r.header(PIECES_ROOT), pieces_root_of(&data).map(|r| r.to_hex()).as_deref());
    }

    #[test]
    fn status_codes() {
        let mut s = server();
        s.handle_create(t0(), id("u1"), &tus(&[("Upload-Length", "10")])).unwrap();
        let err = |r: Result<Response, Error>| r.unwrap_err().status();
        // 412 without Tus-Resumable.
        assert_eq!(err(s.handle_head(t0(), "u1", &tus(&[])[1..].to_vec())), 412);
        // 400 missing length, conflicting length, bad metadata, negative.
        assert_eq!(err(s.handle_create(t0(), id("x"), &tus(&[]))), 400);
        assert_eq!(
            err(s.handle_create(
                t0(),
                id("x"),
                &tus(&[("Upload-Length", "1"), ("Upload-Defer-Length", "1")])
            )),
            400
        );
        assert_eq!(
            err(s.handle_create(t0(), id("x"), &tus(&[("Upload-Length", "1"), ("Upload-Metadata", "k !!")]))),
            400
        );
        assert_eq!(err(s.handle_create(t0(), id("x"), &tus(&[("Upload-Length", "-1")]))), 400);
        // 413 over max size.
        let big = (64u64 << 30) + 1;
        assert_eq!(err(s.handle_create(t0(), id("x"), &tus(&[("Upload-Length", &big.to_string())]))), 413);
        // 404 unknown and escaping ids.
        assert_eq!(err(s.handle_head(t0(), "nope", &tus(&[]))), 404);
        assert_eq!(err(s.handle_head(t0(), "../u1", &tus(&[]))), 404);
        // 409 wrong offset, 413 body too long, 415 content type.
        assert_eq!(err(patch(&mut s, "u1", 3, b"x", &[])), 409);
        assert_eq!(err(patch(&mut s, "u1", 0, &[0u8; 11], &[])), 413);
        let h = tus(&[("Upload-Offset", "0"), ("Content-Type", "text/plain")]);
        assert_eq!(s.begin_patch(t0(), "u1", &h).unwrap_err().status(), 415);
        // 460 checksum mismatch: offset does not move, data not kept.
        let bad = format!("sha1 {}", base64::engine::general_purpose::STANDARD.encode([0u8; 20]));
        assert_eq!(err(patch(&mut s, "u1", 0, b"hello", &[("Upload-Checksum", &bad)])), 460);
        assert_eq!(s.info(&id("u1")).unwrap().offset, 0);
        assert_eq!(s.store().data(&id("u1")).unwrap(), b"");
        // 400 unsupported algorithm.
        assert_eq!(err(patch(&mut s, "u1", 0, b"hello", &[("Upload-Checksum", "crc32 AAAAAA==")])), 400);
        // Good checksum for every algorithm.
        for (i, alg) in ChecksumAlgorithm::ALL.into_iter().enumerate() {
            let c = Checksum::of(alg, b"ab");
            let hv = headers::encode_checksum(&c);
            let off = (i * 2) as u64;
            let r = patch(&mut s, "u1", off, b"ab", &[("Upload-Checksum", &hv)]).unwrap();
            assert_eq!(r.status, 204);
        }
        // 204 delete, then 404.
        assert_eq!(s.handle_delete(t0(), "u1", &tus(&[])).unwrap().status, 204);
        assert_eq!(err(s.handle_head(t0(), "u1", &tus(&[]))), 404);
        // OPTIONS.
        let o = s.handle_options();
        assert_eq!(o.status, 204);
        assert!(o.header("Tus-Extension").unwrap().contains("checksum"));
    }

    #[test]
    fn trailer_checksum() {
        let mut s = server();
        s.handle_create(t0(), id("u"), &tus(&[("Upload-Length", "5")])).unwrap();
        let h = tus(&[("Content-Type", "application/offset+octet-stream"), ("Upload-Offset", "0")]);
        let mut sess = s.begin_patch(t0(), "u", &h).unwrap();
        sess.write(b"hello").unwrap();
        let bad = headers::encode_checksum(&Checksum::of(ChecksumAlgorithm::Md5, b"nope"));
        let r = s.finish_patch(t0(), sess, BodyEnd::Complete { trailer: Some(bad.into_bytes()) });
        assert_eq!(r.unwrap_err().status(), 460);
        assert_eq!(s.info(&id("u")).unwrap().offset, 0);
        let mut sess = s.begin_patch(t0(), "u", &h).unwrap();
        sess.write(b"hello").unwrap();
        let good = headers::encode_checksum(&Checksum::of(ChecksumAlgorithm::Crc32c, b"hello"));
        let r = s.finish_patch(t0(), sess, BodyEnd::Complete { trailer: Some(good.into_bytes()) }).unwrap();
        assert_eq!(r.header("Upload-Offset"), Some("5"));
    }

    /// A trailer's hash made beforehand (without the server) is the one `finish_patch` checks.
    #[test]
    fn trailer_hashed_beforehand() {
        let mut s = server();
        s.handle_create(t0(), id("u"), &tus(&[("Upload-Length", "5")])).unwrap();
        let h = tus(&[("Content-Type", "application/offset+octet-stream"), ("Upload-Offset", "0")]);
        let good = headers::encode_checksum(&Checksum::of(ChecksumAlgorithm::Sha256, b"hello")).into_bytes();
        let store = s.store().clone();
        let mut sess = s.begin_patch(t0(), "u", &h).unwrap();
        sess.write(b"hello").unwrap();
        // Reading other bytes than the stored ones shows which hash is checked.
        sess.hash_for_trailer(&good, |_, buf| {
            buf.fill(b'x');
            Ok(buf.len())
        })
        .unwrap();
        let r = s.finish_patch(t0(), sess, BodyEnd::Complete { trailer: Some(good.clone()) });
        assert_eq!(r.unwrap_err().status(), 460);
        let mut sess = s.begin_patch(t0(), "u", &h).unwrap();
        sess.write(b"hello").unwrap();
        sess.hash_for_trailer(&good, |pos, buf| store.read_at(&id("u"), pos, buf)).unwrap();
        let r = s.finish_patch(t0(), sess, BodyEnd::Complete { trailer: Some(good) }).unwrap();
        assert_eq!(r.header("Upload-Offset"), Some("5"));
    }

    #[test]
    fn busy_upload_conflicts() {
        let mut s = server();
        s.handle_create(t0(), id("u"), &tus(&[("Upload-Length", "5")])).unwrap();
        let h = tus(&[("Content-Type", "application/offset+octet-stream"), ("Upload-Offset", "0")]);
        let sess = s.begin_patch(t0(), "u", &h).unwrap();
        assert_eq!(s.begin_patch(t0(), "u", &h).unwrap_err().status(), 409);
        s.abort_patch(sess).unwrap();
        assert!(s.begin_patch(t0(), "u", &h).is_ok());
    }

    #[test]
    fn interrupted_body_keeps_prefix_without_checksum() {
        let mut s = server();
        s.handle_create(t0(), id("u"), &tus(&[("Upload-Length", "10")])).unwrap();
        let h = tus(&[("Content-Type", "application/offset+octet-stream"), ("Upload-Offset", "0")]);
        let mut sess = s.begin_patch(t0(), "u", &h).unwrap();
        sess.write(b"abc").unwrap();
        s.finish_patch(t0(), sess, BodyEnd::Interrupted).unwrap();
        assert_eq!(s.info(&id("u")).unwrap().offset, 3);
    }

    #[test]
    fn defer_length() {
        let mut s = server();
        s.handle_create(t0(), id("d"), &tus(&[("Upload-Defer-Length", "1")])).unwrap();
        let r = s.handle_head(t0(), "d", &tus(&[])).unwrap();
        assert_eq!(r.header("Upload-Defer-Length"), Some("1"));
        patch(&mut s, "d", 0, b"abc", &[]).unwrap();
        assert_eq!(patch(&mut s, "d", 3, b"de", &[("Upload-Length", "2")]).unwrap_err().status(), 400);
        patch(&mut s, "d", 3, b"de", &[("Upload-Length", "5")]).unwrap();
        let info = s.info(&id("d")).unwrap();
        assert!(info.is_finished());
        assert_eq!(info.root, pieces_root_of(b"abcde"));
    }

    /// Creates partial upload `name` holding `data`.
    fn partial(s: &mut Server<MemoryStore>, name: &str, data: &[u8]) {
        let len = data.len().to_string();
        s.handle_create(t0(), id(name), &tus(&[("Upload-Length", &len), ("Upload-Concat", "partial")]))
            .unwrap();
        patch(s, name, 0, data, &[]).unwrap();
    }

    #[test]
    fn concatenation() {
        let mut s = server();
        partial(&mut s, "p1", b"hello ");
        s.handle_create(t0(), id("p2"), &tus(&[("Upload-Length", "5"), ("Upload-Concat", "partial")]))
            .unwrap();
        let fin = tus(&[("Upload-Concat", "final;/files/p1 /files/p2")]);
        assert_eq!(s.handle_create(t0(), id("f"), &fin).unwrap_err().status(), 400);
        let unknown = tus(&[("Upload-Concat", "final;/files/p1 /files/zz")]);
        assert_eq!(s.handle_create(t0(), id("f"), &unknown).unwrap_err().status(), 404);
        patch(&mut s, "p2", 0, b"world", &[]).unwrap();
        let r = s.handle_create(t0(), id("f"), &fin).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(s.store().data(&id("f")).unwrap(), b"hello world");
        assert_eq!(s.pieces_root(&id("f")), pieces_root_of(b"hello world"));
        let h = s.handle_head(t0(), "f", &tus(&[])).unwrap();
        assert_eq!(h.header("Upload-Concat"), Some("final;/files/p1 /files/p2"));
        assert_eq!(patch(&mut s, "f", 11, b"", &[]).unwrap_err().status(), 403);
        s.handle_create(t0(), id("n"), &tus(&[("Upload-Length", "0")])).unwrap();
        let notp = tus(&[("Upload-Concat", "final;/files/n")]);
        assert_eq!(s.handle_create(t0(), id("g"), &notp).unwrap_err().status(), 400);
    }

    /// The parts of a final upload being assembled are locked, and the server serves other
    /// requests meanwhile; a failed copy leaves no final upload and unlocks the parts.
    #[test]
    fn final_assembly_runs_without_the_server() {
        let mut s = server();
        partial(&mut s, "p1", b"hello ");
        partial(&mut s, "p2", b"world");
        s.handle_create(t0(), id("other"), &tus(&[("Upload-Length", "3")])).unwrap();
        let fin = tus(&[("Upload-Concat", "final;/files/p1 /files/p2")]);
        let Creation::Assemble(mut job) = s.begin_create(t0(), id("f"), &fin).unwrap() else {
            panic!("a final upload is assembled");
        };
        assert_eq!(job.parts(), &[(id("p1"), 6), (id("p2"), 5)]);
        // Meanwhile: other uploads go on; the parts cannot change or go.
        patch(&mut s, "other", 0, b"abc", &[]).unwrap();
        assert_eq!(s.handle_head(t0(), "p1", &tus(&[])).unwrap().header("Upload-Offset"), Some("6"));
        assert!(matches!(s.handle_delete(t0(), "p2", &tus(&[])), Err(Error::UploadBusy)));
        assert!(matches!(s.handle_delete(t0(), "f", &tus(&[])), Err(Error::UploadBusy)));
        assert!(matches!(s.begin_create(t0(), id("g"), &fin), Err(Error::PartialNotFinished)));
        let store = s.store().clone();
        job.copy(|p, pos, buf| store.read_at(p, pos, buf)).unwrap();
        let r = s.finish_final(job, Ok(())).unwrap();
        assert_eq!((r.status, r.header("Upload-Offset")), (201, Some("11")));
        assert_eq!(s.store().data(&id("f")).unwrap(), b"hello world");
        assert_eq!(s.pieces_root(&id("f")), pieces_root_of(b"hello world"));
        s.handle_delete(t0(), "p2", &tus(&[])).unwrap();

        // A copy that fails: no final upload, parts unlocked.
        let fin = tus(&[("Upload-Concat", "final;/files/p1")]);
        let Creation::Assemble(job) = s.begin_create(t0(), id("h"), &fin).unwrap() else {
            panic!("a final upload is assembled");
        };
        let e = s.finish_final(job, Err(Error::InvalidState("copy failed")));
        assert!(matches!(e, Err(Error::InvalidState("copy failed"))));
        assert!(s.info(&id("h")).is_none() && s.store().data(&id("h")).is_none());
        s.handle_delete(t0(), "p1", &tus(&[])).unwrap();
    }

    /// A final upload whose assembly never finished (the server stopped mid-copy) is dropped
    /// at start-up; its parts stay for the client's retry.
    #[test]
    fn unfinished_final_dropped_on_open() {
        let mut s = server();
        partial(&mut s, "p", b"hi");
        let fin = tus(&[("Upload-Concat", "final;/files/p")]);
        let Creation::Assemble(_job) = s.begin_create(t0(), id("f"), &fin).unwrap() else {
            panic!("a final upload is assembled");
        };
        let store = s.store().clone();
        let s = Server::open(ServerConfig::default(), store).unwrap();
        assert!(s.info(&id("f")).is_none());
        assert_eq!(s.info(&id("p")).map(|i| i.offset), Some(2));
    }

    /// Two whole merkle pieces and a bit of an unfinished upload in a file store, and the
    /// whole file it will hold.
    fn upload_with_two_pieces(dir: &std::path::Path) -> (Vec<u8>, usize) {
        let piece = crate::merkle::PIECE_LENGTH as usize;
        let whole: Vec<u8> = (0..2 * piece + 9000).map(|i| (i % 251) as u8 ^ (i >> 20) as u8).collect();
        let sent = 2 * piece + 1000;
        let mut s =
            Server::open(ServerConfig::default(), FileStore::open(dir).unwrap().without_fsync()).unwrap();
        let len = whole.len().to_string();
        s.handle_create(t0(), id("r"), &tus(&[("Upload-Length", &len)])).unwrap();
        patch(&mut s, "r", 0, &whole[..sent], &[]).unwrap();
        (whole, sent)
    }

    /// A restart resumes an unfinished upload's merkle tree from the kept piece roots and
    /// reads only what follows them: a change to the first piece's stored bytes after its
    /// root was kept does not reach the final root.
    #[test]
    fn restart_resumes_the_merkle_tree_from_kept_piece_roots() {
        let dir = tempfile::tempdir().unwrap();
        let (whole, sent) = upload_with_two_pieces(dir.path());
        assert_eq!(std::fs::metadata(dir.path().join("r.roots")).unwrap().len(), 2 * 36);
        let bin = dir.path().join("r.bin");
        let mut stored = std::fs::read(&bin).unwrap();
        stored[10] ^= 0xff;
        std::fs::write(&bin, &stored).unwrap();
        let mut s = Server::open(ServerConfig::default(), FileStore::open(dir.path()).unwrap()).unwrap();
        patch(&mut s, "r", sent as u64, &whole[sent..], &[]).unwrap();
        assert_eq!(s.pieces_root(&id("r")), pieces_root_of(&whole));
    }

    /// A torn piece-root record ends the usable roots: that piece and the rest are read and
    /// hashed again, and the records are written anew.
    #[test]
    fn torn_piece_root_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let (whole, sent) = upload_with_two_pieces(dir.path());
        let roots = dir.path().join("r.roots");
        let mut rec = std::fs::read(&roots).unwrap();
        rec[36 + 5] ^= 1;
        std::fs::write(&roots, &rec).unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(store.load_piece_roots(&id("r")).len(), 1);
        let mut s = Server::open(ServerConfig::default(), store).unwrap();
        assert_eq!(s.store().load_piece_roots(&id("r")).len(), 2);
        patch(&mut s, "r", sent as u64, &whole[sent..], &[]).unwrap();
        assert_eq!(s.pieces_root(&id("r")), pieces_root_of(&whole));
    }

    #[test]
    fn expiration_with_time_passed_in() {
        let cfg = ServerConfig { expire_after: Some(Duration::from_secs(60)), ..ServerConfig::default() };
        let mut s = Server::open(cfg, MemoryStore::new()).unwrap();
        let r = s.handle_create(t0(), id("e"), &tus(&[("Upload-Length", "5")])).unwrap();
        assert!(r.header("Upload-Expires").is_some());
        s.handle_create(t0(), id("k"), &tus(&[("Upload-Length", "5")])).unwrap();
        assert_eq!(s.poll_timeout(), Some(t0() + Duration::from_secs(60)));
        let later = t0() + Duration::from_secs(61);
        assert_eq!(s.handle_head(later, "e", &tus(&[])).unwrap_err().status(), 410);
        assert_eq!(s.handle_head(later, "e", &tus(&[])).unwrap_err().status(), 404);
        assert_eq!(s.handle_expire(later).unwrap(), vec![id("k")]);
        assert!(s.ids().next().is_none());
    }

    #[test]
    fn empty_patch_after_restart_keeps_root() {
        let mut s = server();
        s.handle_create(t0(), id("z"), &tus(&[("Upload-Length", "8")])).unwrap();
        patch(&mut s, "z", 0, b"abcdefgh", &[]).unwrap();
        let store = s.store().clone();
        let mut s = Server::open(ServerConfig::default(), store).unwrap();
        patch(&mut s, "z", 8, b"", &[]).unwrap();
        assert_eq!(s.pieces_root(&id("z")), pieces_root_of(b"abcdefgh"));
    }

    #[test]
    fn file_store_bodies_hashed_into_the_write_buffers() {
        // A durable store hands its O_DIRECT buffers to the session, which hashes the bytes
        // on their way in; odd write sizes and offsets cross leaf and buffer edges.
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::FileStore::open(dir.path()).unwrap();
        let mut s = Server::open(ServerConfig::default(), store).unwrap();
        let len = 2 * 1024 * 1024 + 40_000;
        let data: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
        s.handle_create(t0(), id("f"), &tus(&[("Upload-Length", &len.to_string())])).unwrap();
        let mut at = 0;
        for (end, write) in [(5000, 777), (1_100_000, 70_001), (len, 16_384)] {
            let off = at.to_string();
            let h = tus(&[("Content-Type", "application/offset+octet-stream"), ("Upload-Offset", &off)]);
            let mut sess = s.begin_patch(t0(), "f", &h).unwrap();
            for c in data[at..end].chunks(write) {
                sess.write(c).unwrap();
            }
            sess.sync().unwrap();
            let r = s.finish_patch(t0(), sess, BodyEnd::Complete { trailer: None }).unwrap();
            assert_eq!(r.header("Upload-Offset"), Some(end.to_string().as_str()));
            at = end;
        }
        assert_eq!(std::fs::read(s.store().data_path(&id("f"))).unwrap(), data);
        assert_eq!(s.pieces_root(&id("f")), pieces_root_of(&data));
    }

    #[test]
    fn reopen_rebuilds_merkle() {
        let mut s = server();
        s.handle_create(t0(), id("r"), &tus(&[("Upload-Length", "40000")])).unwrap();
        let data = vec![5u8; 40000];
        patch(&mut s, "r", 0, &data[..17000], &[]).unwrap();
        let store = s.store().clone();
        let mut s = Server::open(ServerConfig::default(), store).unwrap();
        patch(&mut s, "r", 17000, &data[17000..], &[]).unwrap();
        assert_eq!(s.pieces_root(&id("r")), pieces_root_of(&data));
    }
}
