//! [`Bitfield`]: which pieces a peer or a download has ([BEP 3] `bitfield` message layout).
//!
//! [BEP 3]: https://www.bittorrent.org/beps/bep_0003.html

use crate::{Error, PieceIndex};

/// A fixed-length set of piece indices.
///
/// Stored as big-endian `u64` words so the wire form (bit 0 is the high bit of byte 0) maps onto
/// whole-word operations. Bits past `len` are always zero, so counts and comparisons need no masks.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitfield {
    words: Vec<u64>,
    len: u32,
}

impl core::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Bitfield({}/{})", self.count_ones(), self.len)
    }
}

impl Bitfield {
    /// An empty bitfield of `len` bits.
    pub fn new(len: u32) -> Self {
        Self { words: vec![0; words_for(len)], len }
    }
    /// A bitfield of `len` bits, all set.
    pub fn full(len: u32) -> Self {
        let mut b = Self { words: vec![!0; words_for(len)], len };
        b.clear_spare();
        b
    }
    /// Reads the wire form: exactly `ceil(len / 8)` bytes, spare bits zero.
    ///
    /// Call with the piece count from the metainfo; a peer whose bitfield fails this check
    /// should be disconnected.
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Self, Error> {
        let want = byte_len(len);
        if bytes.len() != want {
            return Err(Error::InvalidBitfield { len: bytes.len(), expected: want });
        }
        let mut words = vec![0u64; words_for(len)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_be_bytes(buf);
        }
        let b = Self { words, len };
        if b.spare_mask_bits() {
            return Err(Error::InvalidBitfield { len: bytes.len(), expected: want });
        }
        Ok(b)
    }
    /// The wire form: `ceil(len / 8)` bytes, spare bits zero.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.words.len() * 8);
        for w in &self.words {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.truncate(byte_len(self.len));
        out
    }
    /// Number of bits.
    pub const fn len(&self) -> u32 {
        self.len
    }
    /// Whether the bitfield has no bits at all.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether bit `i` is set (`false` when out of range).
    pub fn get(&self, i: PieceIndex) -> bool {
        let i = i.get();
        if i >= self.len {
            return false;
        }
        let (w, m) = pos(i);
        self.words.get(w).is_some_and(|x| x & m != 0)
    }
    /// Sets bit `i`; returns `false` (and changes nothing) when out of range.
    pub fn set(&mut self, i: PieceIndex) -> bool {
        self.assign(i, true)
    }
    /// Clears bit `i`; returns `false` (and changes nothing) when out of range.
    pub fn clear(&mut self, i: PieceIndex) -> bool {
        self.assign(i, false)
    }
    fn assign(&mut self, i: PieceIndex, v: bool) -> bool {
        let i = i.get();
        if i >= self.len {
            return false;
        }
        let (w, m) = pos(i);
        match self.words.get_mut(w) {
            Some(x) if v => *x |= m,
            Some(x) => *x &= !m,
            None => return false,
        }
        true
    }
    /// Number of set bits.
    pub fn count_ones(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }
    /// Whether every bit is set.
    pub fn is_full(&self) -> bool {
        self.count_ones() == self.len
    }
    /// Whether no bit is set.
    pub fn is_clear(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }
    /// The lowest clear bit, if any.
    pub fn first_missing(&self) -> Option<PieceIndex> {
        for (wi, &w) in self.words.iter().enumerate() {
            if w != !0 {
                let bit = wi as u64 * 64 + u64::from(w.leading_ones());
                return (bit < u64::from(self.len)).then(|| PieceIndex::new(bit as u32));
            }
        }
        None
    }
    /// The lowest set bit, if any.
    pub fn first_set(&self) -> Option<PieceIndex> {
        self.iter_ones().next()
    }
    /// Iterates the set bits in increasing order.
    pub fn iter_ones(&self) -> impl Iterator<Item = PieceIndex> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            core::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let lz = w.leading_zeros();
                w &= !(1u64 << (63 - lz));
                // wi < words_for(len), so the bit index fits u32.
                Some(PieceIndex::new(wi as u32 * 64 + lz))
            })
        })
    }
    /// `self &= other`. Lengths must match.
    pub fn and_assign(&mut self, other: &Self) -> Result<(), Error> {
        self.zip(other, |a, b| a & b)
    }
    /// `self |= other`. Lengths must match.
    pub fn or_assign(&mut self, other: &Self) -> Result<(), Error> {
        self.zip(other, |a, b| a | b)
    }
    /// `self &= !other` (what `self` has that `other` lacks). Lengths must match.
    pub fn andnot_assign(&mut self, other: &Self) -> Result<(), Error> {
        self.zip(other, |a, b| a & !b)
    }
    /// Whether `other` has any bit that `self` lacks (are we interested in that peer?).
    pub fn wants_any_from(&self, other: &Self) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| b & !a != 0)
    }
    fn zip(&mut self, other: &Self, f: impl Fn(u64, u64) -> u64) -> Result<(), Error> {
        if self.len != other.len {
            return Err(Error::BitfieldLengthMismatch { left: self.len, right: other.len });
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a = f(*a, *b);
        }
        Ok(())
    }
    fn spare_mask_bits(&self) -> bool {
        let used = self.len % 64;
        match self.words.last() {
            Some(&w) if used != 0 => w & (!0u64 >> used) != 0,
            _ => false,
        }
    }
    fn clear_spare(&mut self) {
        let used = self.len % 64;
        if used != 0
            && let Some(w) = self.words.last_mut()
        {
            *w &= !(!0u64 >> used);
        }
    }
}

fn words_for(len: u32) -> usize {
    len.div_ceil(64) as usize
}
fn byte_len(len: u32) -> usize {
    len.div_ceil(8) as usize
}
fn pos(i: u32) -> (usize, u64) {
    ((i / 64) as usize, 1u64 << (63 - i % 64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_layout_high_bit_first() {
        let mut b = Bitfield::new(10);
        b.set(PieceIndex::new(0));
        b.set(PieceIndex::new(9));
        assert_eq!(b.to_bytes(), vec![0x80, 0x40]);
        assert_eq!(Bitfield::from_bytes(&[0x80, 0x40], 10).unwrap(), b);
        // Spare bit set, or wrong length: refused.
        assert!(Bitfield::from_bytes(&[0x80, 0x60], 10).is_err());
        assert!(Bitfield::from_bytes(&[0x80], 10).is_err());
        assert!(!b.set(PieceIndex::new(10)));
    }

    #[test]
    fn full_and_first_missing() {
        let mut b = Bitfield::full(130);
        assert!(b.is_full());
        assert_eq!(b.count_ones(), 130);
        assert_eq!(b.first_missing(), None);
        assert_eq!(b.to_bytes().len(), 17);
        assert_eq!(*b.to_bytes().last().unwrap(), 0xC0);
        b.clear(PieceIndex::new(129));
        assert_eq!(b.first_missing(), Some(PieceIndex::new(129)));
        assert_eq!(Bitfield::new(0).first_missing(), None);
    }

    #[test]
    fn set_ops() {
        let mut a = Bitfield::new(70);
        let mut b = Bitfield::new(70);
        a.set(PieceIndex::new(1));
        a.set(PieceIndex::new(65));
        b.set(PieceIndex::new(65));
        b.set(PieceIndex::new(69));
        assert!(a.wants_any_from(&b));
        let mut c = a.clone();
        c.and_assign(&b).unwrap();
        assert_eq!(c.iter_ones().collect::<Vec<_>>(), vec![PieceIndex::new(65)]);
        let mut c = a.clone();
        c.or_assign(&b).unwrap();
        assert_eq!(c.count_ones(), 3);
        let mut c = a.clone();
        c.andnot_assign(&b).unwrap();
        assert_eq!(c.iter_ones().collect::<Vec<_>>(), vec![PieceIndex::new(1)]);
        assert!(c.and_assign(&Bitfield::new(71)).is_err());
    }

    proptest! {
        #[test]
        fn matches_naive_oracle(bits in proptest::collection::vec(any::<bool>(), 0..300)) {
            let n = bits.len() as u32;
            let mut b = Bitfield::new(n);
            for (i, &v) in bits.iter().enumerate() {
                if v { b.set(PieceIndex::new(i as u32)); }
            }
            let ones: Vec<u32> = bits.iter().enumerate().filter(|(_, v)| **v).map(|(i, _)| i as u32).collect();
            prop_assert_eq!(b.iter_ones().map(PieceIndex::get).collect::<Vec<_>>(), ones.clone());
            prop_assert_eq!(b.count_ones() as usize, ones.len());
            prop_assert_eq!(b.first_missing().map(PieceIndex::get), bits.iter().position(|v| !v).map(|p| p as u32));
            let bytes = b.to_bytes();
            prop_assert_eq!(bytes.len(), bits.len().div_ceil(8));
            prop_assert_eq!(Bitfield::from_bytes(&bytes, n).unwrap(), b);
        }
    }
}
