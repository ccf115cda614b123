//! The allowed-fast set generator of [BEP 6].
//!
//! [BEP 6]: https://www.bittorrent.org/beps/bep_0006.html

use std::net::Ipv4Addr;

use piecework_metainfo::{InfoHashV1, PieceIndex};
use sha1::{Digest, Sha1};

/// The pieces a peer at `ip` may request while choked, exactly as [BEP 6] specifies: SHA-1 of
/// the peer's /24 network followed by the info-hash, re-hashed until `k` distinct indices
/// (`big-endian u32 % piece_count`, five per digest) are found. Order is generation order.
///
/// Returns at most `piece_count` indices (an empty set for a torrent with no pieces), so it
/// always terminates. BEP 6 defines the set for IPv4 only; for an IPv6 peer use its
/// IPv4-mapped address if it has one, or send no allowed-fast set.
///
/// ```
/// use std::net::Ipv4Addr;
/// use piecework_wire::{allowed_fast_set, InfoHashV1, PieceIndex};
/// // The BEP's own vector.
/// let set = allowed_fast_set(Ipv4Addr::new(80, 4, 4, 200), &InfoHashV1::from_bytes([0xaa; 20]), 1313, 7);
/// let got: Vec<u32> = set.iter().map(|p| p.get()).collect();
/// assert_eq!(got, [1059, 431, 808, 1217, 287, 376, 1188]);
/// ```
///
/// [BEP 6]: https://www.bittorrent.org/beps/bep_0006.html
pub fn allowed_fast_set(ip: Ipv4Addr, info_hash: &InfoHashV1, piece_count: u32, k: usize) -> Vec<PieceIndex> {
    let want = k.min(piece_count as usize);
    let mut out: Vec<PieceIndex> = Vec::with_capacity(want);
    if want == 0 {
        return out;
    }
    let masked = u32::from(ip) & 0xffff_ff00;
    let mut x = [0u8; 24];
    x[..4].copy_from_slice(&masked.to_be_bytes());
    x[4..].copy_from_slice(info_hash.as_bytes());
    let mut digest: [u8; 20] = Sha1::digest(x).into();
    loop {
        for word in digest.chunks_exact(4) {
            if out.len() == want {
                return out;
            }
            let y = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let index = PieceIndex::new(y % piece_count);
            if !out.contains(&index) {
                out.push(index);
            }
        }
        if out.len() == want {
            return out;
        }
        digest = Sha1::digest(digest).into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_sizes_terminate() {
        let h = InfoHashV1::from_bytes([1; 20]);
        assert!(allowed_fast_set(Ipv4Addr::LOCALHOST, &h, 0, 10).is_empty());
        let all = allowed_fast_set(Ipv4Addr::LOCALHOST, &h, 3, 10);
        let mut v: Vec<u32> = all.iter().map(|p| p.get()).collect();
        v.sort_unstable();
        assert_eq!(v, [0, 1, 2]);
    }

    #[test]
    fn same_slash_24_same_set() {
        let h = InfoHashV1::from_bytes([0x5a; 20]);
        assert_eq!(
            allowed_fast_set(Ipv4Addr::new(10, 1, 2, 3), &h, 5000, 10),
            allowed_fast_set(Ipv4Addr::new(10, 1, 2, 250), &h, 5000, 10)
        );
    }
}
