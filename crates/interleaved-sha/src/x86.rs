//! SHA-1 and SHA-256 on the SHA extensions (SHA-NI), two streams interleaved.
//!
//! SHA-256 state is kept the way `sha256rnds2` wants it (ABEF and CDGH in two registers),
//! SHA-1 state as ABCD plus E in the top lane of a second register.

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_extract_epi32, _mm_set_epi32, _mm_setzero_si128,
    _mm_sha1msg1_epu32, _mm_sha1msg2_epu32, _mm_sha1nexte_epu32, _mm_sha1rnds4_epu32, _mm_sha256msg1_epu32,
    _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32, _mm_shuffle_epi32, _mm_xor_si128,
};

use crate::{Digest32, padding};

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

const H0: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// Tests set this to run the portable path on CPUs with the extensions.
#[cfg(test)]
pub(crate) static PORTABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True if this CPU has what the functions below are compiled for.
fn available() -> bool {
    #[cfg(test)]
    if PORTABLE.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("sse4.1")
        && std::is_x86_feature_detected!("ssse3")
}

/// SHA-256 of `a` and `b` (same length) interleaved, or `None` without the CPU features.
/// With `out`, also copies `a` and `b` there (same lengths), each block as it is hashed.
pub(crate) fn digest_pair(
    a: &[u8],
    b: &[u8],
    out: Option<(&mut [u8], &mut [u8])>,
) -> Option<(Digest32, Digest32)> {
    debug_assert_eq!(a.len(), b.len());
    if !available() {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: `pair_ni` needs the `sha`, `sse4.1` and `ssse3` features (and the baseline
    // `sse2`), detected on this CPU just above.
    Some(unsafe { pair_ni(a, b, out) })
}

/// Runs SHA-1 over `blocks`, or returns `false` without the CPU features.
pub(crate) fn sha1_blocks(state: &mut [u32; 5], blocks: &[[u8; 64]]) -> bool {
    if !available() {
        return false;
    }
    #[allow(unsafe_code)]
    // SAFETY: as in `digest_pair`: the features `sha1_ni` is compiled for were detected.
    unsafe {
        sha1_ni(state, blocks)
    };
    true
}

/// Runs SHA-1 over `blocks` and returns the SHA-256 of the same bytes, the two interleaved;
/// `None` without the CPU features.
pub(crate) fn sha1_blocks_with_sha256(state: &mut [u32; 5], blocks: &[[u8; 64]]) -> Option<Digest32> {
    if !available() {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: as in `digest_pair`: the features `fused_ni` is compiled for were detected.
    Some(unsafe { fused_ni(state, blocks) })
}

/// SHA-256 state as (ABEF, CDGH).
#[derive(Clone, Copy)]
struct State(__m128i, __m128i);

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn pair_ni(a: &[u8], b: &[u8], out: Option<(&mut [u8], &mut [u8])>) -> (Digest32, Digest32) {
    let (full_a, rest_a) = a.as_chunks::<64>();
    let (full_b, rest_b) = b.as_chunks::<64>();
    let (mut x, mut y) = (initial(), initial());
    match out {
        None => {
            for (ba, bb) in full_a.iter().zip(full_b) {
                compress2(&mut x, &mut y, ba, bb);
            }
        }
        Some((oa, ob)) => {
            // The stores ride along with the loads the rounds make anyway, and their
            // cache misses overlap the rounds' latency: far cheaper than a second pass.
            let (out_a, tail_a) = oa.as_chunks_mut::<64>();
            let (out_b, tail_b) = ob.as_chunks_mut::<64>();
            for (((ba, bb), da), db) in full_a.iter().zip(full_b).zip(out_a).zip(out_b) {
                *da = *ba;
                *db = *bb;
                compress2(&mut x, &mut y, ba, bb);
            }
            tail_a.copy_from_slice(rest_a);
            tail_b.copy_from_slice(rest_b);
        }
    }
    // The same length gives the same number of padding blocks (one or two).
    let ((ta, n), (tb, _)) = (padding(rest_a, a.len() as u64), padding(rest_b, b.len() as u64));
    for (pa, pb) in ta.iter().zip(&tb).take(n) {
        compress2(&mut x, &mut y, pa, pb);
    }
    (output(x), output(y))
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn initial() -> State {
    let h = H0.map(|v| v as i32);
    // Lanes high to low: A B E F and C D G H.
    State(_mm_set_epi32(h[0], h[1], h[4], h[5]), _mm_set_epi32(h[2], h[3], h[6], h[7]))
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn output(s: State) -> Digest32 {
    let (abef, cdgh) = (s.0, s.1);
    let words = [
        _mm_extract_epi32(abef, 3),
        _mm_extract_epi32(abef, 2),
        _mm_extract_epi32(cdgh, 3),
        _mm_extract_epi32(cdgh, 2),
        _mm_extract_epi32(abef, 1),
        _mm_extract_epi32(abef, 0),
        _mm_extract_epi32(cdgh, 1),
        _mm_extract_epi32(cdgh, 0),
    ];
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&(w as u32).to_be_bytes());
    }
    out
}

/// Message words `4i..4i + 4` of a block, big-endian.
fn words(block: &[u8; 64], i: usize) -> [i32; 4] {
    std::array::from_fn(|j| {
        let at = 16 * i + 4 * j;
        i32::from_be_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]])
    })
}

/// Four SHA-256 message words of a block, the first in the bottom lane.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load(block: &[u8; 64], i: usize) -> __m128i {
    let w = words(block, i);
    _mm_set_epi32(w[3], w[2], w[1], w[0])
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn round_constants(g: usize) -> __m128i {
    _mm_set_epi32(K[4 * g + 3] as i32, K[4 * g + 2] as i32, K[4 * g + 1] as i32, K[4 * g] as i32)
}

/// Rounds 4g..4g+4 of one stream, with the message schedule for the rounds ahead.
macro_rules! rounds {
    ($s:ident, $w:ident, $g:expr) => {{
        let g: usize = $g;
        let m = _mm_add_epi32($w[g % 4], round_constants(g));
        $s.1 = _mm_sha256rnds2_epu32($s.1, $s.0, m);
        if (3..=14).contains(&g) {
            let t = _mm_alignr_epi8::<4>($w[g % 4], $w[(g + 3) % 4]);
            $w[(g + 1) % 4] = _mm_sha256msg2_epu32(_mm_add_epi32($w[(g + 1) % 4], t), $w[g % 4]);
        }
        $s.0 = _mm_sha256rnds2_epu32($s.0, $s.1, _mm_shuffle_epi32::<0x0E>(m));
        if (1..=12).contains(&g) {
            $w[(g + 3) % 4] = _mm_sha256msg1_epu32($w[(g + 3) % 4], $w[g % 4]);
        }
    }};
}

/// One block of each stream, their rounds interleaved.
// The lint tracks the schedule array as one variable and misses that each element written
// is read by a later round (the known-answer and proptest tests pin the result).
#[allow(unused_assignments)]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress2(x: &mut State, y: &mut State, a: &[u8; 64], b: &[u8; 64]) {
    let (mut sa, mut sb) = (*x, *y);
    let mut wa = [load(a, 0), load(a, 1), load(a, 2), load(a, 3)];
    let mut wb = [load(b, 0), load(b, 1), load(b, 2), load(b, 3)];
    macro_rules! both {
        ($($g:expr),*) => {$( rounds!(sa, wa, $g); rounds!(sb, wb, $g); )*};
    }
    both!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    *x = State(_mm_add_epi32(x.0, sa.0), _mm_add_epi32(x.1, sa.1));
    *y = State(_mm_add_epi32(y.0, sb.0), _mm_add_epi32(y.1, sb.1));
}

/// One SHA-256 block of one stream.
#[allow(unused_assignments)] // See `compress2`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress1(x: &mut State, a: &[u8; 64]) {
    let mut s = *x;
    let mut w = [load(a, 0), load(a, 1), load(a, 2), load(a, 3)];
    macro_rules! one {
        ($($g:expr),*) => {$( rounds!(s, w, $g); )*};
    }
    one!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    *x = State(_mm_add_epi32(x.0, s.0), _mm_add_epi32(x.1, s.1));
}

/// Four SHA-1 message words of a block, the first in the top lane.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load_sha1(block: &[u8; 64], i: usize) -> __m128i {
    let w = words(block, i);
    _mm_set_epi32(w[0], w[1], w[2], w[3])
}

/// SHA-1 rounds 4g..4g+4 of a block: `abcd` and `e` the state at the block's start,
/// `prev` the ABCD before the previous group, `w` the message schedule.
macro_rules! sha1_rounds {
    ($abcd:ident, $e:ident, $prev:ident, $w:ident, $block:ident, $g:literal) => {{
        let g: usize = $g;
        if g < 4 {
            $w[g] = load_sha1($block, g);
        }
        let e = if g == 0 { _mm_add_epi32($e, $w[0]) } else { _mm_sha1nexte_epu32($prev, $w[g % 4]) };
        $prev = $abcd;
        if (3..=18).contains(&g) {
            $w[(g + 1) % 4] = _mm_sha1msg2_epu32($w[(g + 1) % 4], $w[g % 4]);
        }
        $abcd = _mm_sha1rnds4_epu32::<{ $g / 5 }>($abcd, e);
        if (1..=16).contains(&g) {
            $w[(g + 3) % 4] = _mm_sha1msg1_epu32($w[(g + 3) % 4], $w[g % 4]);
        }
        if (2..=17).contains(&g) {
            $w[(g + 2) % 4] = _mm_xor_si128($w[(g + 2) % 4], $w[g % 4]);
        }
    }};
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha1_load_state(h: &[u32; 5]) -> (__m128i, __m128i) {
    let h = h.map(|v| v as i32);
    (_mm_set_epi32(h[0], h[1], h[2], h[3]), _mm_set_epi32(h[4], 0, 0, 0))
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha1_store_state(abcd: __m128i, e: __m128i) -> [u32; 5] {
    [
        _mm_extract_epi32(abcd, 3),
        _mm_extract_epi32(abcd, 2),
        _mm_extract_epi32(abcd, 1),
        _mm_extract_epi32(abcd, 0),
        _mm_extract_epi32(e, 3),
    ]
    .map(|v| v as u32)
}

#[allow(unused_assignments)] // See `compress2`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha1_ni(state: &mut [u32; 5], blocks: &[[u8; 64]]) {
    let (mut abcd, mut e0) = sha1_load_state(state);
    for b in blocks {
        let (start, e) = (abcd, e0);
        let mut w = [_mm_setzero_si128(); 4];
        let mut prev = abcd;
        macro_rules! all {
            ($($g:literal),*) => {$( sha1_rounds!(abcd, e, prev, w, b, $g); )*};
        }
        all!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19);
        e0 = _mm_sha1nexte_epu32(prev, e);
        abcd = _mm_add_epi32(abcd, start);
    }
    *state = sha1_store_state(abcd, e0);
}

/// SHA-1 over `blocks` with the SHA-256 of the same bytes, their rounds interleaved: the
/// SHA-256 message is exactly `blocks`.
#[allow(unused_assignments)] // See `compress2`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn fused_ni(state: &mut [u32; 5], blocks: &[[u8; 64]]) -> Digest32 {
    let (mut abcd, mut e0) = sha1_load_state(state);
    let mut x = initial();
    for b in blocks {
        let (start, e) = (abcd, e0);
        let mut w = [_mm_setzero_si128(); 4];
        let mut prev = abcd;
        let mut s = x;
        let mut w2 = [load(b, 0), load(b, 1), load(b, 2), load(b, 3)];
        // 20 SHA-1 groups against 16 SHA-256 groups, spread evenly.
        macro_rules! all {
            ($($g:literal [$($h:literal)?]),*) => {$(
                sha1_rounds!(abcd, e, prev, w, b, $g);
                $( rounds!(s, w2, $h); )?
            )*};
        }
        all!(0 [0], 1 [], 2 [1], 3 [2], 4 [3], 5 [4], 6 [], 7 [5], 8 [6], 9 [7],
             10 [8], 11 [], 12 [9], 13 [10], 14 [11], 15 [12], 16 [], 17 [13], 18 [14], 19 [15]);
        e0 = _mm_sha1nexte_epu32(prev, e);
        abcd = _mm_add_epi32(abcd, start);
        x = State(_mm_add_epi32(x.0, s.0), _mm_add_epi32(x.1, s.1));
    }
    *state = sha1_store_state(abcd, e0);
    // A whole number of blocks: the padding is one block.
    let (t, _) = padding(&[], (blocks.len() * 64) as u64);
    compress1(&mut x, &t[0]);
    output(x)
}
