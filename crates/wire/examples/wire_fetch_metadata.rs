//! Talks to a real BitTorrent peer with nothing but `piecework-wire` and tokio.
//!
//! ```text
//! wire_fetch_metadata fetch --peer 127.0.0.1:6881 --info-hash HEX40 [--info-hash-v2 HEX64] [--pieces 3]
//! wire_fetch_metadata serve --torrent T --data FILE [--listen 127.0.0.1:0]
//! ```
//!
//! `fetch` does the handshake and the BEP 10 extension handshake, downloads the info dictionary
//! with BEP 9 `ut_metadata`, checks it hashes to the info-hash(es), then requests the first few
//! pieces and checks their SHA-1s. `serve` prints `READY port=N`, accepts one connection, and
//! serves the metadata (and, for a single-file torrent, the data) to it. Both print one
//! `RESULT ...` line and exit 0 on success. Every wait has a timeout (`--timeout`, default 60 s).

use std::os::unix::fs::FileExt;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::{Bytes, BytesMut};
use piecework_wire::{
    BlockRef, Decoder, ExtendedHandshake, Feature, Handshake, InfoHashV1, InfoHashV2, Message,
    MetadataMessage, PeerId, Piece, PieceIndex, Reserved,
};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// The id we ask peers to send `ut_metadata` messages to us under.
const OUR_UT_METADATA: u8 = 3;
const BLOCK: u32 = 16 * 1024;

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Conn { stream, buf: BytesMut::with_capacity(64 * 1024), decoder: Decoder::new() }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let n = self.stream.read_buf(&mut self.buf).await?;
        ensure!(n > 0, "peer closed the connection");
        Ok(())
    }

    async fn handshake(&mut self) -> anyhow::Result<Handshake> {
        loop {
            if let Some(h) = Handshake::decode(&mut self.buf)? {
                return Ok(h);
            }
            self.fill().await?;
        }
    }

    /// The next message, `None` when the peer closed the connection between messages.
    async fn next(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            if let Some(m) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(m));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                ensure!(self.buf.is_empty(), "peer closed mid-message");
                return Ok(None);
            }
        }
    }

    async fn send(&mut self, m: &Message) -> anyhow::Result<()> {
        if let Message::Piece(p) = m {
            // Vectored form: the 13-byte header, then the block straight from its buffer.
            let header = p.header().context("block too large")?;
            self.stream.write_all(&header).await?;
            self.stream.write_all(&p.data).await?;
        } else {
            let mut out = Vec::with_capacity(m.encoded_len());
            m.encode(&mut out)?;
            self.stream.write_all(&out).await?;
        }
        Ok(())
    }
}

fn peer_id() -> PeerId {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut tail = [0u8; 12];
    for (i, b) in tail.iter_mut().enumerate() {
        *b = b'0' + ((nanos >> (i * 3)) % 10) as u8;
    }
    PeerId::with_prefix(PeerId::PIECEWORK_PREFIX, tail)
}

fn our_ext_handshake(metadata_size: Option<u64>) -> anyhow::Result<Message> {
    let mut hs = ExtendedHandshake::default();
    hs.extensions.push((Bytes::from_static(b"ut_metadata"), OUR_UT_METADATA));
    hs.client = Some(Bytes::from_static(b"piecework-wire example"));
    hs.reqq = Some(256);
    hs.metadata_size = metadata_size;
    Ok(hs.to_message()?)
}

/// What the example needs from an info dictionary.
struct InfoSummary {
    piece_length: u64,
    total_length: u64,
    pieces: Vec<[u8; 20]>,
    single_file: bool,
}

fn summarize(info: &[u8]) -> anyhow::Result<InfoSummary> {
    let doc = piecework_bencode::DecodeOptions::lenient().decode(info)?;
    let d = doc.root().as_dict().context("info is not a dictionary")?;
    let piece_length = d.get(b"piece length").and_then(|n| n.as_int()).context("piece length")?;
    let pieces = d.get(b"pieces").and_then(|n| n.as_bytes()).context("pieces (v1 hashes)")?;
    let (total_length, single_file) = match d.get(b"length").and_then(|n| n.as_int()) {
        Some(l) => (l, true),
        None => {
            let files = d.get(b"files").and_then(|n| n.as_list()).context("files")?;
            let mut sum = 0i64;
            for f in files.iter() {
                sum += f
                    .as_dict()
                    .and_then(|f| f.get(b"length"))
                    .and_then(|n| n.as_int())
                    .context("file length")?;
            }
            (sum, false)
        }
    };
    ensure!(pieces.len().is_multiple_of(20), "pieces is not a multiple of 20");
    Ok(InfoSummary {
        piece_length: u64::try_from(piece_length)?,
        total_length: u64::try_from(total_length)?,
        pieces: pieces.chunks_exact(20).map(|c| c.try_into().expect("chunks_exact(20)")).collect(),
        single_file,
    })
}

fn hex_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    ensure!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len()).step_by(2).map(|i| Ok(u8::from_str_radix(&s[i..i + 2], 16)?)).collect()
}

async fn fetch(
    peer: &str,
    v1: InfoHashV1,
    v2: Option<InfoHashV2>,
    want_pieces: usize,
) -> anyhow::Result<String> {
    let mut c = Conn::new(TcpStream::connect(peer).await.with_context(|| format!("connect {peer}"))?);
    let mut reserved = Reserved::NONE.with(Feature::Extension).with(Feature::Fast);
    if v2.is_some() {
        reserved = reserved.with(Feature::V2Upgrade);
    }
    let ours = Handshake { reserved, info_hash: v1, peer_id: peer_id() };
    c.stream.write_all(&ours.to_bytes()).await?;
    let theirs = c.handshake().await?;
    // A hybrid-torrent peer that sees our v2-upgrade bit answers with the truncated v2 hash
    // (BEP 52): the connection is then a v2 one.
    let upgraded = v2.is_some_and(|h| theirs.info_hash == h.truncated_id());
    ensure!(theirs.info_hash == v1 || upgraded, "peer answered for another torrent");
    ensure!(theirs.reserved.contains(Feature::Extension), "peer lacks the extension protocol");
    let client = theirs.peer_id.client().and_then(|c| c.name()).unwrap_or("unknown");
    c.send(&our_ext_handshake(None)?).await?;

    // Metadata.
    let mut their_ut = None;
    let mut metadata: Vec<Option<Bytes>> = Vec::new();
    let mut total = 0u64;
    let mut unchoked = false;
    while metadata.is_empty() || metadata.iter().any(Option::is_none) {
        let m = c.next().await?.context("closed during metadata exchange")?;
        match m {
            Message::Extended(e) if e.is_handshake() => {
                let hs = ExtendedHandshake::decode(&e.payload)?;
                let ut = hs.extension_id(b"ut_metadata").context("peer has no ut_metadata")?;
                total = hs.metadata_size.context("peer sent no metadata_size")?;
                ensure!(total > 0 && total < 64 << 20, "implausible metadata_size {total}");
                let n = MetadataMessage::piece_count(total) as usize;
                metadata = vec![None; n];
                for piece in 0..n {
                    c.send(&MetadataMessage::Request { piece: piece as u32 }.to_message(ut)?).await?;
                }
                their_ut = Some(ut);
            }
            Message::Extended(e) if e.id == OUR_UT_METADATA => match MetadataMessage::decode(&e.payload)? {
                MetadataMessage::Data { piece, total_size, data } => {
                    ensure!(total_size == total, "total_size changed");
                    let slot = metadata.get_mut(piece as usize).context("piece out of range")?;
                    *slot = Some(data);
                }
                MetadataMessage::Reject { piece } => bail!("peer rejected metadata piece {piece}"),
                other => bail!("unexpected ut_metadata message {other:?}"),
            },
            Message::Unchoke => unchoked = true,
            Message::Choke => unchoked = false,
            _ => {}
        }
    }
    ensure!(their_ut.is_some(), "no extension handshake");
    let info: Vec<u8> = metadata.into_iter().flatten().flat_map(|b| b.to_vec()).collect();
    ensure!(info.len() as u64 == total, "metadata is {} bytes, expected {total}", info.len());
    ensure!(InfoHashV1::of_info_bytes(&info) == v1, "metadata does not hash to the v1 info-hash");
    if let Some(v2) = v2 {
        ensure!(InfoHashV2::of_info_bytes(&info) == v2, "metadata does not hash to the v2 info-hash");
    }
    let summary = summarize(&info)?;
    c.decoder.set_piece_count(Some(u32::try_from(summary.pieces.len())?));

    // A few pieces.
    c.send(&Message::Interested).await?;
    while !unchoked {
        match c.next().await?.context("closed before unchoke")? {
            Message::Unchoke => unchoked = true,
            Message::Choke => unchoked = false,
            _ => {}
        }
    }
    let n = want_pieces.min(summary.pieces.len());
    let mut bufs = Vec::with_capacity(n);
    let mut outstanding = 0usize;
    for i in 0..n {
        let start = i as u64 * summary.piece_length;
        let size = summary.piece_length.min(summary.total_length - start) as u32;
        bufs.push(vec![0u8; size as usize]);
        let mut offset = 0;
        while offset < size {
            let length = BLOCK.min(size - offset);
            c.send(&Message::Request(BlockRef { piece: PieceIndex::new(i as u32), offset, length })).await?;
            outstanding += 1;
            offset += length;
        }
    }
    while outstanding > 0 {
        match c.next().await?.context("closed while downloading")? {
            Message::Piece(Piece { index, begin, data }) => {
                let buf = bufs.get_mut(index.as_usize()).context("unrequested piece")?;
                let dst =
                    buf.get_mut(begin as usize..begin as usize + data.len()).context("block out of range")?;
                dst.copy_from_slice(&data);
                outstanding -= 1;
            }
            Message::Reject(b) => bail!("peer rejected {b:?}"),
            Message::Choke => bail!("peer choked us mid-download"),
            _ => {}
        }
    }
    for (i, buf) in bufs.iter().enumerate() {
        let got: [u8; 20] = Sha1::digest(buf).into();
        ensure!(got == summary.pieces[i], "piece {i} fails its SHA-1");
    }
    Ok(format!(
        "RESULT mode=fetch status=ok metadata_bytes={} metadata_pieces={} v1_ok=1 v2_ok={} upgraded_to_v2={} pieces_checked={n} peer_client={client}",
        info.len(),
        MetadataMessage::piece_count(total),
        u8::from(v2.is_some()),
        u8::from(upgraded),
    ))
}

async fn serve(listener: TcpListener, torrent: &[u8], data: Option<std::fs::File>) -> anyhow::Result<String> {
    let doc = piecework_bencode::DecodeOptions::lenient().decode(torrent)?;
    let info = doc.root().as_dict().and_then(|d| d.get(b"info")).context("torrent has no info")?.raw();
    let info = Bytes::copy_from_slice(info);
    let v1 = InfoHashV1::of_info_bytes(&info);
    let v2 = InfoHashV2::of_info_bytes(&info).truncated_id();
    let summary = summarize(&info)?;
    let data = if summary.single_file { data } else { None };

    let (stream, _) = listener.accept().await?;
    let mut c = Conn::new(stream);
    let theirs = c.handshake().await?;
    ensure!(theirs.info_hash == v1 || theirs.info_hash == v2, "peer asked for another torrent");
    let fast = theirs.reserved.contains(Feature::Fast);
    let ours = Handshake {
        reserved: Reserved::NONE.with(Feature::Extension).with(Feature::Fast),
        info_hash: theirs.info_hash,
        peer_id: peer_id(),
    };
    c.stream.write_all(&ours.to_bytes()).await?;
    c.decoder.set_piece_count(Some(u32::try_from(summary.pieces.len())?));
    c.send(&our_ext_handshake(Some(info.len() as u64))?).await?;
    let have = data.is_some();
    match (have, fast) {
        (true, true) => c.send(&Message::HaveAll).await?,
        (false, true) => c.send(&Message::HaveNone).await?,
        (true, false) => {
            let all = piecework_wire::Bitfield::full(u32::try_from(summary.pieces.len())?);
            c.send(&Message::bitfield(&all)).await?
        }
        (false, false) => {}
    }
    let mut their_ut = None;
    let (mut md_served, mut blocks_served) = (0usize, 0usize);
    while let Some(m) = c.next().await? {
        match m {
            Message::Extended(e) if e.is_handshake() => {
                their_ut = ExtendedHandshake::decode(&e.payload)?.extension_id(b"ut_metadata");
            }
            Message::Extended(e) if e.id == OUR_UT_METADATA => {
                let ut = their_ut.context("ut_metadata request before the extension handshake")?;
                let reply = match MetadataMessage::decode(&e.payload)? {
                    MetadataMessage::Request { piece } => {
                        let start = piece as usize * piecework_wire::METADATA_PIECE_LEN;
                        match info.get(start..(start + piecework_wire::METADATA_PIECE_LEN).min(info.len())) {
                            Some(chunk) if !chunk.is_empty() => {
                                md_served += 1;
                                MetadataMessage::Data {
                                    piece,
                                    total_size: info.len() as u64,
                                    data: info.slice_ref(chunk),
                                }
                            }
                            _ => MetadataMessage::Reject { piece },
                        }
                    }
                    _ => continue,
                };
                c.send(&reply.to_message(ut)?).await?;
            }
            Message::Interested if have => c.send(&Message::Unchoke).await?,
            Message::Request(b) => {
                let start = u64::from(b.piece.get()) * summary.piece_length + u64::from(b.offset);
                match &data {
                    Some(f) if start + u64::from(b.length) <= summary.total_length => {
                        let mut block = vec![0u8; b.length as usize];
                        f.read_exact_at(&mut block, start)?;
                        c.send(&Message::Piece(Piece {
                            index: b.piece,
                            begin: b.offset,
                            data: Bytes::from(block),
                        }))
                        .await?;
                        blocks_served += 1;
                    }
                    _ if fast => c.send(&Message::Reject(b)).await?,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    ensure!(md_served > 0, "the peer never asked for metadata");
    Ok(format!(
        "RESULT mode=serve status=ok metadata_pieces_served={md_served} blocks_served={blocks_served}"
    ))
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

async fn run(args: Vec<String>) -> anyhow::Result<String> {
    let secs: u64 = arg(&args, "--timeout").map(|s| s.parse()).transpose()?.unwrap_or(60);
    let limit = Duration::from_secs(secs);
    match args.first().map(String::as_str) {
        Some("fetch") => {
            let peer = arg(&args, "--peer").context("--peer HOST:PORT")?;
            let v1 =
                InfoHashV1::from_slice(&hex_decode(&arg(&args, "--info-hash").context("--info-hash HEX")?)?)
                    .context("--info-hash must be 40 hex digits")?;
            let v2 = match arg(&args, "--info-hash-v2") {
                Some(h) => {
                    Some(InfoHashV2::from_slice(&hex_decode(&h)?).context("--info-hash-v2: 64 hex digits")?)
                }
                None => None,
            };
            let pieces = arg(&args, "--pieces").map(|s| s.parse()).transpose()?.unwrap_or(3);
            timeout(limit, fetch(&peer, v1, v2, pieces)).await.context("timed out")?
        }
        Some("serve") => {
            let torrent = std::fs::read(arg(&args, "--torrent").context("--torrent FILE")?)?;
            let data = arg(&args, "--data").map(std::fs::File::open).transpose()?;
            let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
            let listener = TcpListener::bind(&listen).await?;
            println!("READY port={}", listener.local_addr()?.port());
            timeout(limit, serve(listener, &torrent, data)).await.context("timed out")?
        }
        _ => bail!("usage: wire_fetch_metadata fetch|serve ... (see the source)"),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    match rt.block_on(run(std::env::args().skip(1).collect())) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            println!("RESULT status=error error={e:#}");
            std::process::exit(2);
        }
    }
}
