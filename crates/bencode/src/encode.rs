//! Canonical encoding: a streaming [`Encoder`] that checks key order, and the primitive writers.

use bytes::BufMut;

use crate::Error;

/// Number of decimal characters (sign included) of `i`.
pub(crate) fn encoded_int_len(i: i64) -> usize {
    let n = i.unsigned_abs();
    usize::from(i < 0) + n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// "00" "01" ... "99": two digits per division.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `i` in decimal without a heap allocation.
#[inline]
fn put_decimal<B: BufMut + ?Sized>(buf: &mut B, i: i64) {
    let mut tmp = [0u8; 20];
    let mut pos = tmp.len();
    let mut n = i.unsigned_abs();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        pos -= 2;
        tmp[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        pos -= 2;
        tmp[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        pos -= 1;
        tmp[pos] = b'0' + n as u8;
    }
    if i < 0 {
        buf.put_u8(b'-');
    }
    buf.put_slice(&tmp[pos..]);
}

/// Writes `i...e`.
#[inline]
pub(crate) fn put_int<B: BufMut + ?Sized>(buf: &mut B, i: i64) {
    buf.put_u8(b'i');
    put_decimal(buf, i);
    buf.put_u8(b'e');
}

/// Writes `N:bytes`.
#[inline]
pub(crate) fn put_bytes<B: BufMut + ?Sized>(buf: &mut B, b: &[u8]) {
    put_decimal(buf, b.len() as i64);
    buf.put_u8(b':');
    buf.put_slice(b);
}

#[derive(Debug, Clone, Copy)]
struct Open {
    dict: bool,
    /// A key was written and its value is due.
    awaiting_value: bool,
    /// Where this dict's previous key starts in `Encoder::keys` (`None`: no key yet).
    key_at: Option<usize>,
}

/// Writes one bencode value piece by piece into any [`BufMut`], refusing out-of-order or
/// duplicated keys and misuse (a value where a key is due, unbalanced `end`).
///
/// ```
/// use piecework_bencode::Encoder;
/// let mut e = Encoder::new(Vec::new());
/// e.begin_dict()?;
/// e.key(b"m")?;
/// e.begin_dict()?;
/// e.key(b"ut_metadata")?;
/// e.int(3)?;
/// e.end()?;
/// e.key(b"v")?;
/// e.str("piecework 0.1")?;
/// e.end()?;
/// assert_eq!(e.finish()?, b"d1:md11:ut_metadatai3ee1:v13:piecework 0.1e");
/// # Ok::<(), piecework_bencode::Error>(())
/// ```
#[derive(Debug)]
pub struct Encoder<B> {
    buf: B,
    stack: Vec<Open>,
    /// The previous key of every open dictionary, back to back.
    keys: Vec<u8>,
    done: bool,
}

impl<B: BufMut> Encoder<B> {
    /// An encoder appending to `buf`.
    pub fn new(buf: B) -> Self {
        Encoder { buf, stack: Vec::new(), keys: Vec::new(), done: false }
    }

    fn value_start(&mut self) -> Result<(), Error> {
        if self.done {
            return Err(Error::EncoderState("a value after the top-level value was complete"));
        }
        if let Some(top) = self.stack.last_mut()
            && top.dict
        {
            if !top.awaiting_value {
                return Err(Error::EncoderState("a value where a dictionary key is due"));
            }
            top.awaiting_value = false;
        }
        Ok(())
    }

    fn value_end(&mut self) {
        if self.stack.is_empty() {
            self.done = true;
        }
    }

    /// Writes an integer.
    pub fn int(&mut self, i: i64) -> Result<(), Error> {
        self.value_start()?;
        put_int(&mut self.buf, i);
        self.value_end();
        Ok(())
    }

    /// Writes a byte string.
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        self.value_start()?;
        put_bytes(&mut self.buf, b);
        self.value_end();
        Ok(())
    }

    /// Writes a UTF-8 string as a byte string.
    pub fn str(&mut self, s: &str) -> Result<(), Error> {
        self.bytes(s.as_bytes())
    }

    /// Writes one complete, already-encoded value verbatim (for example a [`Node::raw`]
    /// span kept from a decoded document, so unknown keys survive a re-encode byte for byte).
    /// The caller vouches that `raw` is exactly one valid value.
    ///
    /// [`Node::raw`]: crate::Node::raw
    pub fn raw(&mut self, raw: &[u8]) -> Result<(), Error> {
        self.value_start()?;
        self.buf.put_slice(raw);
        self.value_end();
        Ok(())
    }

    /// Opens a list; close it with [`end`](Self::end).
    pub fn begin_list(&mut self) -> Result<(), Error> {
        self.value_start()?;
        self.buf.put_u8(b'l');
        self.stack.push(Open { dict: false, awaiting_value: false, key_at: None });
        Ok(())
    }

    /// Opens a dictionary; write [`key`](Self::key) then a value for each entry, then
    /// [`end`](Self::end).
    pub fn begin_dict(&mut self) -> Result<(), Error> {
        self.value_start()?;
        self.buf.put_u8(b'd');
        self.stack.push(Open { dict: true, awaiting_value: false, key_at: None });
        Ok(())
    }

    /// Writes the next key of the open dictionary; it must sort strictly after the previous one.
    pub fn key(&mut self, key: &[u8]) -> Result<(), Error> {
        let keys_len = self.keys.len();
        let Some(top) = self.stack.last_mut() else {
            return Err(Error::EncoderState("a key outside a dictionary"));
        };
        if !top.dict || top.awaiting_value {
            return Err(Error::EncoderState("a key where a value is due"));
        }
        let at = match top.key_at {
            Some(at) => {
                if key <= &self.keys[at..] {
                    return Err(Error::EncoderKeyOrder);
                }
                at
            }
            None => keys_len,
        };
        top.key_at = Some(at);
        top.awaiting_value = true;
        self.keys.truncate(at);
        self.keys.extend_from_slice(key);
        put_bytes(&mut self.buf, key);
        Ok(())
    }

    /// Closes the innermost open list or dictionary.
    pub fn end(&mut self) -> Result<(), Error> {
        let Some(&top) = self.stack.last() else {
            return Err(Error::EncoderState("end with nothing open"));
        };
        if top.awaiting_value {
            return Err(Error::EncoderState("a dictionary key without a value"));
        }
        self.stack.pop();
        if let Some(at) = top.key_at {
            self.keys.truncate(at);
        }
        self.buf.put_u8(b'e');
        self.value_end();
        Ok(())
    }

    /// Returns the buffer once exactly one complete value has been written.
    pub fn finish(self) -> Result<B, Error> {
        if !self.done {
            return Err(Error::EncoderState("finish before the value is complete"));
        }
        Ok(self.buf)
    }

    /// The buffer written so far.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        for i in [0, 1, -1, 9, 10, -10, 99, 100, i64::MAX, i64::MIN, 1234567890] {
            let mut v = Vec::new();
            put_int(&mut v, i);
            assert_eq!(v, format!("i{i}e").as_bytes());
            assert_eq!(encoded_int_len(i), i.to_string().len());
        }
    }

    #[test]
    fn misuse_is_an_error() {
        let mut e = Encoder::new(Vec::new());
        e.begin_dict().unwrap();
        assert_eq!(e.int(1), Err(Error::EncoderState("a value where a dictionary key is due")));
        e.key(b"b").unwrap();
        assert!(e.key(b"c").is_err());
        e.int(1).unwrap();
        assert_eq!(e.key(b"a"), Err(Error::EncoderKeyOrder));
        assert_eq!(e.key(b"b"), Err(Error::EncoderKeyOrder));
        e.key(b"c").unwrap();
        e.begin_dict().unwrap();
        // A nested dictionary starts its own key order.
        e.key(b"a").unwrap();
        e.raw(b"le").unwrap();
        e.end().unwrap();
        e.key(b"d").unwrap();
        assert!(e.end().is_err());
        let mut e = Encoder::new(Vec::new());
        e.begin_list().unwrap();
        assert!(e.key(b"x").is_err());
        e.end().unwrap();
        assert!(e.end().is_err());
        assert!(e.int(1).is_err());
        assert_eq!(e.finish().unwrap(), b"le");
        assert!(Encoder::new(Vec::new()).finish().is_err());
    }
}
