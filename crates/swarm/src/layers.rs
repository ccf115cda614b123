//! BEP 52 piece layers over the wire: answering `hash request`s and fetching the layers a
//! torrent lacks (a v2 magnet link, or a .torrent without `piece layers`).
//!
//! Sans-IO: [`FileTree`] builds `hashes` answers from a verified piece layer; [`LayerFetch`]
//! decides which hash requests to send to which peer, checks every answer's proof against the
//! file's pieces root, and collects the layers. Time is passed in.
//!
//! Layers count up from the 16 KiB leaves (layer 0); a file's tree is padded to a power of two
//! of leaves and its root sits at layer `height`. A request for `2^k` hashes of layer `base`
//! with `proof_layers = p` is answered with those hashes followed by `p + 1 - k` uncle hashes,
//! one for each layer `base + k ..= base + p` (the layers below `base + k` follow from the
//! hashes themselves). That is the count libtorrent sends and expects; `p` may be at most
//! `height - base - 1`, which proves the hashes all the way up to the root.
//!
//! [BEP 52]: https://www.bittorrent.org/beps/bep_0052.html

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use piecework_metainfo::merkle::{MerkleHash, blocks_in, blocks_per_piece, hash_pair, zero_hash};
use piecework_wire::{HashRequest, Hashes};

use crate::picker::PeerKey;

/// Most hashes we ask for at once (libtorrent asks for 512 piece hashes per request).
pub(crate) const REQUEST_HASHES: u32 = 512;

/// A peer that refused a request (reject, timeout, bad proof) is asked for it again only
/// after this long, and only when no other peer can be asked (libtorrent waits 3 s).
pub(crate) const RETRY_REFUSED: Duration = Duration::from_secs(3);

/// The shape of one file's merkle tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TreeShape {
    /// Layer of the piece hashes: log2 of the blocks per piece.
    pub(crate) piece_layer: u32,
    /// Layer of the root: log2 of the leaves padded to a power of two.
    pub(crate) height: u32,
    /// Real (unpadded) pieces of the file.
    pub(crate) pieces: u32,
}

impl TreeShape {
    /// The shape of a file of `length` bytes; `None` unless the file is longer than one piece
    /// (shorter files have no piece layer: the root is the piece hash) and the piece length is
    /// a valid v2 one.
    pub(crate) fn new(length: u64, piece_length: u64) -> Option<Self> {
        let (_, piece_layer) = blocks_per_piece(piece_length)?;
        if length <= piece_length {
            return None;
        }
        let height = blocks_in(length).checked_next_power_of_two()?.trailing_zeros();
        let pieces = u32::try_from(length.div_ceil(piece_length)).ok()?;
        Some(Self { piece_layer, height, pieces })
    }

    /// Nodes (padding included) in layer `layer`.
    fn width(&self, layer: u32) -> u64 {
        1u64 << (self.height - layer.min(self.height))
    }
}

/// Why a hash request is refused (answered with `hash reject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A layer below the piece layer (we keep no block hashes) or at/above the root.
    Layer,
    /// Length zero, not a power of two, or over the cap.
    Length,
    /// Index not a multiple of the length, or the range leaves the layer.
    Range,
    /// More proof layers than there are below the root.
    ProofLayers,
}

/// One file's verified piece layer and every layer above it, for answering hash requests.
///
/// Memory: about twice the piece layer (32 bytes per piece, doubled for the upper layers).
#[derive(Clone, Debug)]
pub(crate) struct FileTree {
    shape: TreeShape,
    /// `layers[i]` holds the real nodes of layer `piece_layer + i`; padding is implied.
    layers: Vec<Vec<MerkleHash>>,
}

impl FileTree {
    /// Builds the tree over a piece layer; `None` if it does not hash to `root` or does not fit
    /// the file.
    pub(crate) fn new(
        root: MerkleHash,
        length: u64,
        piece_length: u64,
        layer: Vec<MerkleHash>,
    ) -> Option<Self> {
        let shape = TreeShape::new(length, piece_length)?;
        if layer.len() != shape.pieces as usize {
            return None;
        }
        let mut layers = vec![layer];
        let mut h = shape.piece_layer;
        while h < shape.height {
            let below = layers.last()?;
            let pad = zero_hash(h);
            let up: Vec<MerkleHash> =
                below.chunks(2).map(|c| hash_pair(&c[0], c.get(1).unwrap_or(&pad))).collect();
            layers.push(up);
            h += 1;
        }
        if layers.last()?.first()? != &root {
            return None;
        }
        Some(Self { shape, layers })
    }

    fn node(&self, layer: u32, index: u64) -> MerkleHash {
        let real = layer
            .checked_sub(self.shape.piece_layer)
            .and_then(|i| self.layers.get(i as usize))
            .and_then(|l| l.get(usize::try_from(index).ok()?));
        real.copied().unwrap_or_else(|| zero_hash(layer))
    }

    /// The hashes answering `r` (base hashes, then uncles bottom-up), or why not.
    ///
    /// A length of 1 is accepted although BEP 52 asks for at least 2: libtorrent sends it for
    /// the last 512-piece bucket of a file when one piece is left over.
    pub(crate) fn answer(&self, r: &HashRequest, max_hashes: u32) -> Result<Vec<MerkleHash>, Refusal> {
        let s = self.shape;
        if r.base_layer < s.piece_layer || r.base_layer >= s.height {
            return Err(Refusal::Layer);
        }
        if r.length == 0 || !r.length.is_power_of_two() || r.length > max_hashes {
            return Err(Refusal::Length);
        }
        let (index, len) = (u64::from(r.index), u64::from(r.length));
        if !index.is_multiple_of(len) || index + len > s.width(r.base_layer) {
            return Err(Refusal::Range);
        }
        if r.proof_layers >= s.height - r.base_layer {
            return Err(Refusal::ProofLayers);
        }
        let k = r.length.trailing_zeros();
        let mut out: Vec<MerkleHash> = (index..index + len).map(|i| self.node(r.base_layer, i)).collect();
        for layer in r.base_layer + k..=r.base_layer + r.proof_layers {
            let pos = index >> (layer - r.base_layer);
            out.push(self.node(layer, pos ^ 1));
        }
        Ok(out)
    }
}

/// Checks a `hashes` answer to `r` against the file's root: the base hashes, climbed through
/// the uncles, must reach `root` at layer `height`. Returns the base hashes.
pub(crate) fn verify_answer(
    r: &HashRequest,
    hashes: &[MerkleHash],
    root: &MerkleHash,
    height: u32,
) -> Option<Vec<MerkleHash>> {
    if r.length == 0 || !r.length.is_power_of_two() || !r.index.is_multiple_of(r.length) {
        return None;
    }
    let k = r.length.trailing_zeros();
    let uncles = r.proof_layers.saturating_add(1).saturating_sub(k) as usize;
    if hashes.len() != r.length as usize + uncles {
        return None;
    }
    let (base, proof) = hashes.split_at(r.length as usize);
    let mut level: Vec<MerkleHash> = base.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|c| hash_pair(&c[0], &c[1])).collect();
    }
    let mut acc = *level.first()?;
    let mut pos = u64::from(r.index) >> k;
    let mut layer = r.base_layer.checked_add(k)?;
    for u in proof {
        acc = if pos & 1 == 0 { hash_pair(&acc, u) } else { hash_pair(u, &acc) };
        pos >>= 1;
        layer = layer.saturating_add(1);
    }
    (layer == height && pos == 0 && &acc == root).then(|| base.to_vec())
}

/// What became of a `hashes` message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// Verified and stored.
    Stored,
    /// Not an answer to an outstanding request of this peer (late, or never asked): ignored.
    Unsolicited,
    /// The hashes do not prove to the root: the peer sent bad data.
    Bad,
}

#[derive(Debug)]
struct Chunk {
    request: HashRequest,
    hashes: Option<Vec<MerkleHash>>,
    asked: Option<(PeerKey, Instant)>,
    /// Peers that rejected it, let it time out or lied, and when.
    refused: Vec<(PeerKey, Instant)>,
}

#[derive(Debug)]
struct FileFetch {
    root: MerkleHash,
    length: u64,
    shape: TreeShape,
    chunks: Vec<Chunk>,
}

/// Fetches missing piece layers with hash requests: at most `per_peer` requests outstanding at
/// a peer, one peer per request, a request unanswered after `timeout` goes to someone else.
#[derive(Debug)]
pub(crate) struct LayerFetch {
    files: Vec<FileFetch>,
    per_peer: usize,
    timeout: Duration,
}

impl LayerFetch {
    /// A fetch of the layers of `files` (pieces root, length); files of one piece or less need
    /// none and are skipped (so is everything if the piece length is not a valid v2 one).
    pub(crate) fn new(
        files: impl IntoIterator<Item = (MerkleHash, u64)>,
        piece_length: u64,
        per_peer: usize,
        timeout: Duration,
    ) -> Self {
        let mut out = Vec::new();
        for (root, length) in files {
            let Some(shape) = TreeShape::new(length, piece_length) else { continue };
            if out.iter().any(|f: &FileFetch| f.root == root) {
                continue; // identical files share a root and a layer
            }
            let width = shape.width(shape.piece_layer);
            let proof_layers = shape.height - shape.piece_layer - 1;
            let mut chunks = Vec::new();
            let mut index = 0u64;
            while index < u64::from(shape.pieces) {
                let left = u64::from(shape.pieces) - index;
                // Whole buckets of 512 like libtorrent, the last one cut to the padded layer;
                // never 1 hash, which libtorrent answers with one uncle too few.
                let len = left.next_power_of_two().clamp(2, u64::from(REQUEST_HASHES)).min(width);
                chunks.push(Chunk {
                    request: HashRequest {
                        pieces_root: root,
                        base_layer: shape.piece_layer,
                        // index < pieces <= u32::MAX; len <= 512
                        index: index as u32,
                        length: len as u32,
                        proof_layers,
                    },
                    hashes: None,
                    asked: None,
                    refused: Vec::new(),
                });
                index += len;
            }
            out.push(FileFetch { root, length, shape, chunks });
        }
        Self { files: out, per_peer: per_peer.max(1), timeout }
    }

    /// Whether every layer has arrived.
    pub(crate) fn is_complete(&self) -> bool {
        self.files.iter().all(|f| f.chunks.iter().all(|c| c.hashes.is_some()))
    }

    /// The next requests to send to `peer` now (none while it has `per_peer` outstanding).
    pub(crate) fn requests_for(&mut self, peer: PeerKey, now: Instant) -> Vec<HashRequest> {
        let timeout = self.timeout;
        let mut outstanding = self
            .files
            .iter()
            .flat_map(|f| &f.chunks)
            .filter(|c| c.hashes.is_none() && c.asked.is_some_and(|(k, at)| k == peer && now < at + timeout))
            .count();
        let mut out = Vec::new();
        // First pass: chunks this peer has not refused; second: chunks it refused a while ago
        // (a lone peer may have been briefly unable, e.g. while it checked its files).
        for retry_refused in [false, true] {
            for c in self.files.iter_mut().flat_map(|f| &mut f.chunks) {
                if outstanding >= self.per_peer {
                    return out;
                }
                let refused_at = c.refused.iter().find(|(k, _)| *k == peer).map(|(_, at)| *at);
                let eligible = match refused_at {
                    None => !retry_refused,
                    Some(at) => retry_refused && now >= at + RETRY_REFUSED,
                };
                if c.hashes.is_some() || !eligible {
                    continue;
                }
                match c.asked {
                    Some((_, at)) if now < at + timeout => continue,
                    Some((k, _)) => refuse(&mut c.refused, k, now),
                    None => {}
                }
                c.asked = Some((peer, now));
                out.push(c.request);
                outstanding += 1;
            }
            if !out.is_empty() {
                break;
            }
        }
        out
    }

    /// A `hashes` message from `peer`.
    pub(crate) fn on_hashes(&mut self, peer: PeerKey, h: &Hashes, now: Instant) -> Received {
        let Some((f, c)) = self.find(&h.request) else { return Received::Unsolicited };
        let file = &mut self.files[f];
        let chunk = &mut file.chunks[c];
        if chunk.hashes.is_some() || chunk.asked.is_none_or(|(k, _)| k != peer) {
            return Received::Unsolicited;
        }
        chunk.asked = None;
        if !h.hashes.len().is_multiple_of(32) {
            return Received::Bad;
        }
        let hashes: Vec<MerkleHash> = h.iter().collect();
        match verify_answer(&h.request, &hashes, &file.root, file.shape.height) {
            Some(base) => {
                let real = (file.shape.pieces - h.request.index).min(h.request.length) as usize;
                chunk.hashes = Some(base.into_iter().take(real).collect());
                Received::Stored
            }
            None => {
                refuse(&mut chunk.refused, peer, now);
                Received::Bad
            }
        }
    }

    /// A `hash reject` from `peer`: someone else is asked.
    pub(crate) fn on_reject(&mut self, peer: PeerKey, r: &HashRequest, now: Instant) {
        if let Some((f, c)) = self.find(r) {
            let chunk = &mut self.files[f].chunks[c];
            if chunk.asked.is_some_and(|(k, _)| k == peer) {
                chunk.asked = None;
                refuse(&mut chunk.refused, peer, now);
            }
        }
    }

    /// The connection to `peer` closed: its outstanding requests go to others.
    pub(crate) fn peer_gone(&mut self, peer: PeerKey) {
        for c in self.files.iter_mut().flat_map(|f| &mut f.chunks) {
            if c.asked.is_some_and(|(k, _)| k == peer) {
                c.asked = None;
            }
            c.refused.retain(|(k, _)| *k != peer);
        }
    }

    fn find(&self, r: &HashRequest) -> Option<(usize, usize)> {
        let f = self.files.iter().position(|f| f.root == r.pieces_root)?;
        let c = self.files[f].chunks.iter().position(|c| c.request == *r)?;
        Some((f, c))
    }

    /// The complete layers: (pieces root, file length, layer); `None` until
    /// [`is_complete`](Self::is_complete).
    pub(crate) fn layers(&self) -> Option<Vec<FetchedLayer>> {
        let mut out = Vec::with_capacity(self.files.len());
        for f in &self.files {
            let mut layer = Vec::with_capacity(f.shape.pieces as usize);
            for c in &f.chunks {
                layer.extend_from_slice(c.hashes.as_ref()?);
            }
            out.push((f.root, f.length, layer));
        }
        Some(out)
    }
}

fn refuse(refused: &mut Vec<(PeerKey, Instant)>, peer: PeerKey, now: Instant) {
    refused.retain(|(k, _)| *k != peer);
    refused.push((peer, now));
}

/// A fetched piece layer: the file's pieces root, its length, the layer.
pub(crate) type FetchedLayer = (MerkleHash, u64, Vec<MerkleHash>);

/// A .torrent around raw info bytes plus `piece layers` (keys sorted, as bencode wants).
pub(crate) fn torrent_with_layers(info: &[u8], layers: &[FetchedLayer]) -> Vec<u8> {
    let mut sorted: Vec<&FetchedLayer> = layers.iter().collect();
    sorted.sort_by_key(|l| l.0);
    sorted.dedup_by_key(|l| l.0);
    let mut t =
        BytesMut::with_capacity(info.len() + 64 + layers.iter().map(|l| 40 + 32 * l.2.len()).sum::<usize>());
    t.put_slice(b"d4:info");
    t.put_slice(info);
    if !sorted.is_empty() {
        t.put_slice(b"12:piece layersd");
        for (root, _, layer) in sorted {
            t.put_slice(b"32:");
            t.put_slice(root);
            t.put_slice(format!("{}:", layer.len() * 32).as_bytes());
            for h in layer {
                t.put_slice(h);
            }
        }
        t.put_u8(b'e');
    }
    t.put_u8(b'e');
    t.to_vec()
}

/// A `hashes` message answering `r`.
pub(crate) fn hashes_message(r: HashRequest, hashes: &[MerkleHash]) -> Hashes {
    let mut b = BytesMut::with_capacity(hashes.len() * 32);
    for h in hashes {
        b.put_slice(h);
    }
    Hashes { request: r, hashes: Bytes::from(b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use piecework_metainfo::merkle::{FileHasher, leaf_hash, root_from_leaves};

    const PL: u64 = 32 * 1024; // 2 blocks per piece: piece layer 1

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 % 251) as u8).collect()
    }

    /// Root and piece layer of `len` bytes, and the naive full tree of leaves for an oracle.
    fn file(len: usize, pl: u64) -> (MerkleHash, Vec<MerkleHash>, Vec<Vec<MerkleHash>>) {
        let d = data(len);
        let mut h = FileHasher::new(pl).unwrap();
        h.update(&d);
        let (root, layer) = h.finish();
        let mut leaves: Vec<MerkleHash> = d.chunks(16384).map(leaf_hash).collect();
        leaves.resize(leaves.len().next_power_of_two(), [0; 32]);
        let mut tree = vec![leaves];
        while tree.last().unwrap().len() > 1 {
            let up = tree.last().unwrap().chunks(2).map(|c| hash_pair(&c[0], &c[1])).collect();
            tree.push(up);
        }
        assert_eq!(root_from_leaves(&tree[0][..blocks_in(len as u64) as usize]), root.unwrap());
        (root.unwrap(), layer, tree)
    }

    fn req(root: MerkleHash, base: u32, index: u32, length: u32, proof: u32) -> HashRequest {
        HashRequest { pieces_root: root, base_layer: base, index, length, proof_layers: proof }
    }

    #[test]
    fn every_offset_length_and_proof_depth_answers_and_verifies() {
        // 11 pieces of 2 blocks, the last one short: 21 blocks, padded to 32; piece layer 1
        // has 16 slots (11 real), the root is layer 5.
        let len = 10 * 32768 + 5000;
        let (root, layer, tree) = file(len, PL);
        let t = FileTree::new(root, len as u64, PL, layer).unwrap();
        assert_eq!(t.shape, TreeShape { piece_layer: 1, height: 5, pieces: 11 });
        let mut checked = 0;
        for base in 1..5u32 {
            let width = 1u32 << (5 - base);
            for k in 0..=(5 - base) {
                let length = 1u32 << k;
                for index in (0..width).step_by(length as usize) {
                    for proof in 0..(5 - base) {
                        let r = req(root, base, index, length, proof);
                        let got = t.answer(&r, 8192).unwrap();
                        // Base hashes against the naive tree (padding included).
                        let want: Vec<MerkleHash> =
                            (index..index + length).map(|i| tree[base as usize][i as usize]).collect();
                        assert_eq!(&got[..length as usize], &want[..], "{r:?}");
                        let uncles = (proof + 1).saturating_sub(k);
                        assert_eq!(got.len(), (length + uncles) as usize, "{r:?}");
                        // A full proof (or a range that is the whole layer) verifies.
                        let full = base + proof + 1 == 5 || (proof < k && base + k == 5);
                        assert_eq!(verify_answer(&r, &got, &root, 5).is_some(), full, "{r:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 50);
    }

    /// Many file shapes (synthetic leaves, so no data is hashed): every request the tree
    /// accepts matches a naive padded tree, and a full proof verifies with every offset.
    #[test]
    fn every_shape_matches_a_naive_tree() {
        use piecework_metainfo::merkle::{piece_layer_from_leaves, root_from_leaves};
        for bpp_log in 0..3u32 {
            let pl = 16384u64 << bpp_log;
            for blocks in (1u64 << bpp_log) + 1..70 {
                let leaves: Vec<MerkleHash> = (0..blocks).map(|i| leaf_hash(&i.to_le_bytes())).collect();
                let layer = piece_layer_from_leaves(&leaves, pl).unwrap();
                let root = root_from_leaves(&leaves);
                let len = blocks * 16384 - 100;
                let t = FileTree::new(root, len, pl, layer).unwrap();
                let mut tree = vec![leaves.clone()];
                tree[0].resize(leaves.len().next_power_of_two(), [0; 32]);
                while tree.last().unwrap().len() > 1 {
                    let up = tree.last().unwrap().chunks(2).map(|c| hash_pair(&c[0], &c[1])).collect();
                    tree.push(up);
                }
                let height = (tree.len() - 1) as u32;
                assert_eq!(t.shape.height, height);
                for base in bpp_log..height {
                    let width = 1u32 << (height - base);
                    for k in 0..=(height - base) {
                        let length = 1u32 << k;
                        for index in (0..width).step_by(length as usize) {
                            let proof = height - base - 1;
                            let r = req(root, base, index, length, proof);
                            let got = t.answer(&r, 8192).unwrap();
                            let want = &tree[base as usize][index as usize..(index + length) as usize];
                            assert_eq!(&got[..length as usize], want, "{blocks} blocks {r:?}");
                            assert!(
                                verify_answer(&r, &got, &root, height).is_some(),
                                "{blocks} blocks {r:?}"
                            );
                            assert!(verify_answer(&r, &got, &root, height + 1).is_none());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bad_proofs_and_hashes_fail() {
        let len = 10 * 32768 + 5000;
        let (root, layer, _) = file(len, PL);
        let t = FileTree::new(root, len as u64, PL, layer).unwrap();
        let r = req(root, 1, 4, 4, 3);
        let good = t.answer(&r, 8192).unwrap();
        assert!(verify_answer(&r, &good, &root, 5).is_some());
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i][7] ^= 0x40;
            assert!(verify_answer(&r, &bad, &root, 5).is_none(), "flipped hash {i}");
        }
        // Missing or extra hashes, the answer moved to another index, swapped uncles.
        assert!(verify_answer(&r, &good[..good.len() - 1], &root, 5).is_none());
        let mut extra = good.clone();
        extra.push([0; 32]);
        assert!(verify_answer(&r, &extra, &root, 5).is_none());
        assert!(verify_answer(&req(root, 1, 8, 4, 3), &good, &root, 5).is_none());
        let mut swapped = good.clone();
        swapped.swap(4, 5);
        assert!(verify_answer(&r, &swapped, &root, 5).is_none());
        // Another root, a bad index/length.
        assert!(verify_answer(&r, &good, &[9; 32], 5).is_none());
        assert!(verify_answer(&req(root, 1, 2, 4, 3), &good, &root, 5).is_none());
        assert!(verify_answer(&req(root, 1, 4, 3, 3), &good, &root, 5).is_none());
    }

    #[test]
    fn invalid_requests_are_refused() {
        let len = 10 * 32768 + 5000;
        let (root, layer, _) = file(len, PL);
        let t = FileTree::new(root, len as u64, PL, layer).unwrap();
        assert_eq!(t.answer(&req(root, 0, 0, 2, 0), 8192), Err(Refusal::Layer), "block layer");
        assert_eq!(t.answer(&req(root, 5, 0, 1, 0), 8192), Err(Refusal::Layer), "the root");
        assert_eq!(t.answer(&req(root, u32::MAX, 0, 2, 0), 8192), Err(Refusal::Layer));
        assert_eq!(t.answer(&req(root, 1, 0, 0, 0), 8192), Err(Refusal::Length));
        assert_eq!(t.answer(&req(root, 1, 0, 3, 0), 8192), Err(Refusal::Length));
        assert_eq!(t.answer(&req(root, 1, 0, 16, 0), 8), Err(Refusal::Length), "over the cap");
        assert_eq!(t.answer(&req(root, 1, 2, 4, 0), 8192), Err(Refusal::Range), "unaligned");
        assert_eq!(t.answer(&req(root, 1, 16, 2, 0), 8192), Err(Refusal::Range), "past the layer");
        assert_eq!(t.answer(&req(root, 1, 0, 32, 0), 8192), Err(Refusal::Range), "wider than the layer");
        assert_eq!(t.answer(&req(root, 1, u32::MAX - 1, 2, 0), 8192), Err(Refusal::Range));
        assert_eq!(t.answer(&req(root, 1, 0, 2, 4), 8192), Err(Refusal::ProofLayers));
        assert_eq!(t.answer(&req(root, 1, 0, 2, u32::MAX), 8192), Err(Refusal::ProofLayers));
        // Padding slots of the layer may be asked for: they are zero subtrees.
        let pad = t.answer(&req(root, 1, 14, 2, 0), 8192).unwrap();
        assert_eq!(pad[..2], [zero_hash(1), zero_hash(1)]);
    }

    #[test]
    fn tree_rejects_a_wrong_layer() {
        let len = 5 * 32768;
        let (root, mut layer, _) = file(len, PL);
        assert!(FileTree::new(root, len as u64, PL, layer.clone()).is_some());
        assert!(FileTree::new(root, len as u64, PL, layer[..4].to_vec()).is_none());
        assert!(FileTree::new(root, PL, PL, layer.clone()).is_none(), "one-piece files have no layer");
        layer[2][0] ^= 1;
        assert!(FileTree::new(root, len as u64, PL, layer).is_none());
    }

    /// A seeder tree and a fetch driven against each other, with a liar and a refuser.
    #[test]
    fn fetch_with_rejects_timeouts_and_a_liar() {
        let pl = 16384; // one block per piece: piece layer 0
        let len = 1300 * 16384 + 77; // 1301 pieces: three requests of 512, 512, 512 (cut)
        let (root, layer, _) = file(len, pl);
        let (small_root, small_layer, _) = file(3 * 16384, pl);
        let seed = FileTree::new(root, len as u64, pl, layer.clone()).unwrap();
        let small = FileTree::new(small_root, 3 * 16384, pl, small_layer.clone()).unwrap();
        let one_piece = [7u8; 32];
        let t0 = Instant::now();
        let timeout = Duration::from_secs(5);
        let mut f = LayerFetch::new(
            [(root, len as u64), (one_piece, 100), (small_root, 3 * 16384), (root, len as u64)],
            pl,
            2,
            timeout,
        );
        let answer = |r: &HashRequest| {
            let t = if r.pieces_root == root { &seed } else { &small };
            hashes_message(*r, &t.answer(r, 8192).unwrap())
        };
        // Peer 1 lies, peer 2 rejects, peer 3 is silent, peer 4 is honest.
        let r1 = f.requests_for(1, t0);
        assert_eq!(r1.len(), 2);
        assert!(f.requests_for(1, t0).is_empty(), "two outstanding per peer");
        let mut lie = answer(&r1[0]);
        let mut b = BytesMut::from(&lie.hashes[..]);
        b[40] ^= 1;
        lie.hashes = b.freeze();
        assert_eq!(f.on_hashes(1, &lie, t0), Received::Bad);
        assert_eq!(f.on_hashes(1, &answer(&r1[1]), t0), Received::Stored);
        assert_eq!(f.on_hashes(1, &answer(&r1[1]), t0), Received::Unsolicited, "answered once");
        let r2 = f.requests_for(2, t0);
        assert_eq!(r2[0], r1[0], "the lied-about chunk goes to another peer");
        for r in &r2 {
            f.on_reject(2, r, t0);
        }
        let r3 = f.requests_for(3, t0);
        assert_eq!(r3, r2, "rejected chunks go to the next peer");
        assert_eq!(f.on_hashes(4, &answer(&r3[0]), t0), Received::Unsolicited, "not asked of peer 4");
        assert_eq!(f.requests_for(4, t0).len(), 1, "only the small file's chunk is free");
        f.peer_gone(4);
        // Peer 3 times out; peer 4 (reconnected as 5) gets everything left.
        let later = t0 + timeout;
        let mut done = 0;
        while !f.is_complete() {
            let rs = f.requests_for(5, later);
            assert!(!rs.is_empty(), "work remains but none handed out");
            for r in rs {
                assert_eq!(f.on_hashes(5, &answer(&r), later), Received::Stored);
                done += 1;
            }
        }
        assert!(done >= 3);
        let layers = f.layers().unwrap();
        assert_eq!(layers, vec![(root, len as u64, layer), (small_root, 3 * 16384, small_layer)]);
        assert!(f.requests_for(6, later).is_empty());
    }

    /// Two sans-IO peers, messages encoded and decoded on the way: the leecher's hash
    /// requests are answered by the seeder's tree until the whole layer is in.
    #[test]
    fn two_peers_exchange_a_layer_over_the_wire() {
        use crate::{Peer, PeerEvent, PeerSettings, Transmit};
        use piecework_metainfo::{Bitfield, InfoHashV1};
        use piecework_wire::{Decoder, Feature, Handshake, Message, PeerId, Reserved};

        fn pump(now: Instant, from: &mut Peer, to: &mut Peer, dec: &mut Decoder) {
            while let Some(t) = from.poll_transmit() {
                match t {
                    Transmit::Handshake(h) => to.handle_handshake(now, &h).unwrap(),
                    Transmit::Message(m) => {
                        let mut b = BytesMut::new();
                        m.encode(&mut b).unwrap();
                        while let Some(m) = dec.decode(&mut b).unwrap() {
                            to.handle_message(now, m).unwrap();
                        }
                    }
                }
            }
        }

        let pl = 16384;
        let len = 700 * 16384 + 3; // 701 pieces: two requests of 512
        let (root, layer, _) = file(len, pl);
        let tree = FileTree::new(root, len as u64, pl, layer.clone()).unwrap();
        let mut fetch = LayerFetch::new([(root, len as u64)], pl, 2, Duration::from_secs(20));
        let hs = |id| Handshake {
            reserved: Reserved::NONE.with(Feature::Fast).with(Feature::Extension),
            info_hash: InfoHashV1::from_bytes([3; 20]),
            peer_id: PeerId::from_bytes([id; 20]),
        };
        let now = Instant::now();
        let s = PeerSettings::default();
        let mut seed = Peer::new(now, s, hs(1), false, None, Some(Bitfield::full(701)), None);
        let mut leech = Peer::new(now, s, hs(2), true, None, None, None);
        let (mut to_seed, mut to_leech) = (Decoder::new(), Decoder::new());
        pump(now, &mut leech, &mut seed, &mut to_seed);
        pump(now, &mut seed, &mut leech, &mut to_leech);
        let mut rounds = 0;
        while !fetch.is_complete() {
            rounds += 1;
            assert!(rounds < 10);
            for r in fetch.requests_for(1, now) {
                leech.send_message(Message::HashRequest(r));
            }
            pump(now, &mut leech, &mut seed, &mut to_seed);
            while let Some(e) = seed.poll_event() {
                if let PeerEvent::HashRequest(r) = e {
                    seed.send_message(Message::Hashes(hashes_message(r, &tree.answer(&r, 8192).unwrap())));
                }
            }
            pump(now, &mut seed, &mut leech, &mut to_leech);
            while let Some(e) = leech.poll_event() {
                if let PeerEvent::Hashes(h) = e {
                    assert_eq!(fetch.on_hashes(1, &h, now), Received::Stored);
                }
            }
        }
        assert_eq!(fetch.layers().unwrap(), vec![(root, len as u64, layer)]);
    }

    /// A lone peer that rejects is asked again, but not before [`RETRY_REFUSED`].
    #[test]
    fn a_lone_refusing_peer_is_retried_after_a_pause() {
        let t0 = Instant::now();
        let mut f = LayerFetch::new([([1; 32], 5 * 16384)], 16384, 2, Duration::from_secs(20));
        let r = f.requests_for(1, t0);
        assert_eq!(r.len(), 1);
        f.on_reject(1, &r[0], t0);
        assert!(f.requests_for(1, t0).is_empty());
        assert!(f.requests_for(1, t0 + RETRY_REFUSED / 2).is_empty());
        assert_eq!(f.requests_for(1, t0 + RETRY_REFUSED), r, "asked again after the pause");
        // Another peer is asked at once, even while the first one waits.
        f.on_reject(1, &r[0], t0 + RETRY_REFUSED);
        assert_eq!(f.requests_for(2, t0 + RETRY_REFUSED), r);
    }

    #[test]
    fn requests_match_libtorrents_shape() {
        let pl = 16384;
        let f = LayerFetch::new([([1; 32], 1300 * 16384 + 1), ([2; 32], 5 * 16384)], pl, 2, Duration::ZERO);
        let rs: Vec<(u32, u32, u32)> = f
            .files
            .iter()
            .flat_map(|f| {
                f.chunks.iter().map(|c| (c.request.index, c.request.length, c.request.proof_layers))
            })
            .collect();
        // 1301 pieces: height 11; 5 pieces: 8 slots, height 3 (whole layer: no uncles needed).
        assert_eq!(rs, [(0, 512, 10), (512, 512, 10), (1024, 512, 10), (0, 8, 2)]);
    }

    #[test]
    fn torrent_with_layers_parses_and_verifies() {
        let len = 5 * 32768 + 1;
        let d = data(len);
        let t = piecework_metainfo::TorrentBuilder::new(piecework_metainfo::Version::V2)
            .piece_length(Some(PL))
            .build_files(
                "x",
                vec![piecework_metainfo::InputFile::from_reader(
                    vec!["f".into()],
                    len as u64,
                    std::io::Cursor::new(d),
                )],
                &mut |_, _| {},
            )
            .unwrap();
        let m = piecework_metainfo::Metainfo::parse(&t).unwrap();
        let layers: Vec<FetchedLayer> = m
            .piece_layers()
            .iter()
            .map(|(r, l)| (*r, len as u64, l.chunks_exact(32).map(|c| c.try_into().unwrap()).collect()))
            .collect();
        let rebuilt = torrent_with_layers(m.info_bytes(), &layers);
        let m2 = piecework_metainfo::Metainfo::parse(&rebuilt).unwrap();
        assert_eq!(m2.info_hashes(), m.info_hashes());
        assert_eq!(m2.piece_layers(), m.piece_layers());
    }
}
