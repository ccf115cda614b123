//! An owned-shape value tree, for building documents and for callers who want plain enums.

use std::borrow::Cow;

use bytes::BufMut;

use crate::decode::{Kind, Node};
use crate::encode::{encoded_int_len, put_bytes, put_int};
use crate::{DecodeOptions, Error};

/// A bencode value. Byte strings borrow (`Cow::Borrowed`) when the value came from a decoded
/// document; [`into_owned`](Self::into_owned) makes the copy explicit.
///
/// ```
/// use piecework_bencode::{Dictionary, Value};
/// let mut d = Dictionary::new();
/// d.insert("name", Value::from("x.bin"));
/// d.insert("length", Value::from(5));
/// // Keys are kept sorted, so the encoding is canonical whatever the insertion order.
/// assert_eq!(Value::Dict(d).to_vec(), b"d6:lengthi5e4:name5:x.bine");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value<'a> {
    /// An integer.
    Int(i64),
    /// A byte string (not necessarily UTF-8).
    Bytes(Cow<'a, [u8]>),
    /// A list.
    List(Vec<Value<'a>>),
    /// A dictionary with byte-string keys, kept sorted.
    Dict(Dictionary<'a>),
}

impl<'a> Value<'a> {
    /// Decodes `input` strictly into a value tree (byte strings borrow `input`).
    pub fn decode(input: &'a [u8]) -> Result<Value<'a>, Error> {
        Self::decode_with(input, &DecodeOptions::new())
    }

    /// Decodes `input` under `options` into a value tree.
    pub fn decode_with(input: &'a [u8], options: &DecodeOptions) -> Result<Value<'a>, Error> {
        Ok(options.decode(input)?.root().to_value())
    }

    pub(crate) fn from_node(node: Node<'_, 'a>) -> Value<'a> {
        match node.kind() {
            Kind::Int => Value::Int(node.as_int().unwrap_or_default()),
            Kind::Bytes => Value::Bytes(Cow::Borrowed(node.as_bytes().unwrap_or_default())),
            Kind::List => Value::List(
                node.as_list().map(|l| l.iter().map(Value::from_node).collect()).unwrap_or_default(),
            ),
            Kind::Dict => {
                let Some(d) = node.as_dict() else { return Value::Dict(Dictionary::new()) };
                let mut entries: Vec<(Cow<'a, [u8]>, Value<'a>)> =
                    d.iter().map(|(k, v)| (Cow::Borrowed(k), Value::from_node(v))).collect();
                // Only lenient documents can be out of order; stable sort keeps the first of
                // repeated keys in front, and dedup then drops the later ones.
                if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    entries.dedup_by(|later, earlier| later.0 == earlier.0);
                }
                Value::Dict(Dictionary { entries })
            }
        }
    }

    /// The same value with every byte string owned.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Int(i) => Value::Int(i),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::List(l) => Value::List(l.into_iter().map(Value::into_owned).collect()),
            Value::Dict(d) => Value::Dict(d.into_owned()),
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if it is one and valid.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dictionary<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// Appends the canonical encoding to `buf`.
    pub fn encode_into<B: BufMut + ?Sized>(&self, buf: &mut B) {
        match self {
            Value::Int(i) => put_int(buf, *i),
            Value::Bytes(b) => put_bytes(buf, b),
            Value::List(l) => {
                buf.put_u8(b'l');
                for v in l {
                    v.encode_into(buf);
                }
                buf.put_u8(b'e');
            }
            Value::Dict(d) => {
                buf.put_u8(b'd');
                for (k, v) in d.iter() {
                    put_bytes(buf, k);
                    v.encode_into(buf);
                }
                buf.put_u8(b'e');
            }
        }
    }

    /// Length of the canonical encoding in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Value::Int(i) => encoded_int_len(*i) + 2,
            Value::Bytes(b) => bytes_len(b.len()),
            Value::List(l) => 2 + l.iter().map(Value::encoded_len).sum::<usize>(),
            Value::Dict(d) => 2 + d.iter().map(|(k, v)| bytes_len(k.len()) + v.encoded_len()).sum::<usize>(),
        }
    }

    /// The canonical encoding, in a buffer allocated once at the right size.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

fn bytes_len(n: usize) -> usize {
    encoded_int_len(n as i64) + 1 + n
}

impl core::fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => write!(f, "b\"{}\"", b.escape_ascii()),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => f.debug_map().entries(d.iter().map(|(k, v)| (ByteKey(k), v))).finish(),
        }
    }
}

struct ByteKey<'k>(&'k [u8]);

impl core::fmt::Debug for ByteKey<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<i32> for Value<'_> {
    fn from(i: i32) -> Self {
        Value::Int(i.into())
    }
}

impl From<u32> for Value<'_> {
    fn from(i: u32) -> Self {
        Value::Int(i.into())
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(b: &'a [u8]) -> Self {
        Value::Bytes(Cow::Borrowed(b))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Bytes(Cow::Borrowed(s.as_bytes()))
    }
}

impl From<Vec<u8>> for Value<'_> {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(Cow::Owned(b))
    }
}

impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::Bytes(Cow::Owned(s.into_bytes()))
    }
}

impl<'a> From<Vec<Value<'a>>> for Value<'a> {
    fn from(l: Vec<Value<'a>>) -> Self {
        Value::List(l)
    }
}

impl<'a> From<Dictionary<'a>> for Value<'a> {
    fn from(d: Dictionary<'a>) -> Self {
        Value::Dict(d)
    }
}

/// A dictionary: byte-string keys, kept strictly ascending so encoding is canonical.
///
/// Backed by a sorted `Vec`: lookups are binary searches, building from sorted input (what a
/// strict decode yields) appends.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dictionary<'a> {
    entries: Vec<(Cow<'a, [u8]>, Value<'a>)>,
}

impl core::fmt::Debug for Dictionary<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (ByteKey(k), v))).finish()
    }
}

impl<'a> Dictionary<'a> {
    /// An empty dictionary.
    pub fn new() -> Self {
        Dictionary { entries: Vec::new() }
    }

    /// Inserts `value` under `key`, returning the value it replaced.
    pub fn insert(&mut self, key: impl IntoKey<'a>, value: impl Into<Value<'a>>) -> Option<Value<'a>> {
        let key = key.into_key();
        let value = value.into();
        // Appending in order is the common case (building from sorted data).
        if self.entries.last().is_none_or(|(last, _)| *last < key) {
            self.entries.push((key, value));
            return None;
        }
        match self.entries.binary_search_by(|(k, _)| k.as_ref().cmp(&key)) {
            Ok(i) => Some(core::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok().map(|i| &self.entries[i].1)
    }

    /// Removes and returns the value under `key`.
    pub fn remove(&mut self, key: &[u8]) -> Option<Value<'a>> {
        let i = self.entries.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The same dictionary with every byte string owned.
    pub fn into_owned(self) -> Dictionary<'static> {
        Dictionary {
            entries: self
                .entries
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                .collect(),
        }
    }
}

impl<'a, K: IntoKey<'a>, V: Into<Value<'a>>> FromIterator<(K, V)> for Dictionary<'a> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut d = Dictionary::new();
        for (k, v) in iter {
            d.insert(k, v);
        }
        d
    }
}

/// Anything that can name a dictionary entry: byte slices, strings, and their owned forms.
pub trait IntoKey<'a> {
    /// The key's bytes.
    fn into_key(self) -> Cow<'a, [u8]>;
}

impl<'a> IntoKey<'a> for &'a [u8] {
    fn into_key(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a, const N: usize> IntoKey<'a> for &'a [u8; N] {
    fn into_key(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a> IntoKey<'a> for &'a str {
    fn into_key(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl<'a> IntoKey<'a> for Vec<u8> {
    fn into_key(self) -> Cow<'a, [u8]> {
        Cow::Owned(self)
    }
}

impl<'a> IntoKey<'a> for String {
    fn into_key(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}

impl<'a> IntoKey<'a> for Cow<'a, [u8]> {
    fn into_key(self) -> Cow<'a, [u8]> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_dict_sorted_first_wins() {
        let v = Value::decode_with(b"d1:bi1e1:ai2e1:ai3ee", &DecodeOptions::lenient()).unwrap();
        assert_eq!(v.to_vec(), b"d1:ai2e1:bi1ee");
    }

    #[test]
    fn builder_and_lengths() {
        let mut d: Dictionary<'_> = [("z", 1), ("a", -10)].into_iter().collect();
        assert_eq!(d.insert("a", 2), Some(Value::Int(-10)));
        d.insert(&b"m"[..], Value::List(vec![Value::from("x"), Value::from(Vec::from(&b"\xff"[..]))]));
        let v = Value::Dict(d);
        let enc = v.to_vec();
        assert_eq!(enc, b"d1:ai2e1:ml1:x1:\xffe1:zi1ee");
        assert_eq!(enc.len(), v.encoded_len());
        assert_eq!(Value::decode(&enc).unwrap(), v);
        assert_eq!(format!("{v:?}"), r#"{b"a": 2, b"m": [b"x", b"\xff"], b"z": 1}"#);
        let owned: Value<'static> = Value::decode(&enc).unwrap().into_owned();
        assert_eq!(owned, v);
        assert_eq!(owned.as_dict().unwrap().get(b"z").and_then(Value::as_int), Some(1));
    }

    #[test]
    fn remove_and_lookup() {
        let mut d = Dictionary::new();
        d.insert("b", 1);
        d.insert("a", 2);
        assert_eq!(d.remove(b"a"), Some(Value::Int(2)));
        assert_eq!(d.remove(b"a"), None);
        assert_eq!(d.len(), 1);
        assert!(d.get(b"b").is_some());
    }
}
