//! serde support: a borrowing deserializer that enforces the same rules as the decoder, a
//! serializer that sorts dictionary keys, and [`RawValue`] for keeping a field's exact bytes.

use core::fmt;
use core::ops::Range;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

use crate::decode::{parse_int, parse_string, skip_value};
use crate::encode::{put_bytes, put_int};
use crate::{DecodeOptions, Error};

/// The newtype-struct name that marks [`RawValue`] to our (de)serializer.
const RAW_VALUE_TOKEN: &str = "$piecework_bencode::RawValue";

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom { message: msg.to_string(), offset: None }
    }
}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom { message: msg.to_string(), offset: None }
    }
}

/// Deserializes a `T` from the whole of `input`, strictly, with the default limits.
/// Byte strings can be borrowed (`&[u8]` via `serde_bytes`, `&str`, [`RawValue`]).
///
/// ```
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Handshake<'a> {
///     #[serde(borrow)]
///     v: Option<&'a str>,
///     reqq: Option<u32>,
/// }
/// let h: Handshake = piecework_bencode::from_bytes(b"d4:reqqi250e1:v9:pieceworke")?;
/// assert_eq!(h, Handshake { v: Some("piecework"), reqq: Some(250) });
/// # Ok::<(), piecework_bencode::Error>(())
/// ```
pub fn from_bytes<'de, T: de::Deserialize<'de>>(input: &'de [u8]) -> Result<T, Error> {
    from_bytes_with(input, &DecodeOptions::new())
}

/// Like [`from_bytes`] under `options` (strictness, depth and input-size limits).
pub fn from_bytes_with<'de, T: de::Deserialize<'de>>(
    input: &'de [u8],
    options: &DecodeOptions,
) -> Result<T, Error> {
    if input.len() > options.input_len_limit() {
        return Err(Error::InputTooLarge { len: input.len(), limit: options.input_len_limit() });
    }
    let mut de = Deserializer { input, pos: 0, opts: *options, depth: 0 };
    let value = T::deserialize(&mut de).map_err(|e| match e {
        Error::Custom { message, offset: None } => Error::Custom { message, offset: Some(de.pos) },
        e => e,
    })?;
    if de.pos != input.len() {
        return Err(Error::TrailingData { offset: de.pos });
    }
    Ok(value)
}

/// A serde deserializer over borrowed bencode input. Usually reached through [`from_bytes`].
#[derive(Debug)]
pub struct Deserializer<'de> {
    input: &'de [u8],
    pos: usize,
    opts: DecodeOptions,
    depth: usize,
}

impl<'de> Deserializer<'de> {
    /// A deserializer positioned at the start of `input`.
    pub fn new(input: &'de [u8], options: DecodeOptions) -> Self {
        Deserializer { input, pos: 0, opts: options, depth: 0 }
    }

    /// Where the next value starts (after a value: where it ended).
    pub fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    fn peek(&self) -> Result<u8, Error> {
        self.input.get(self.pos).copied().ok_or(Error::UnexpectedEnd { offset: self.input.len() })
    }

    #[inline]
    fn read_int(&mut self) -> Result<i64, Error> {
        match self.peek()? {
            b'i' => {
                let (v, end) = parse_int(self.input, self.pos, self.opts.is_lenient())?;
                self.pos = end;
                Ok(v)
            }
            byte => Err(Error::UnexpectedByte { offset: self.pos, byte }),
        }
    }

    #[inline]
    fn read_bytes(&mut self) -> Result<&'de [u8], Error> {
        match self.peek()? {
            b'0'..=b'9' => {
                let (payload, end) = parse_string(self.input, self.pos, self.opts.is_lenient())?;
                self.pos = end;
                Ok(&self.input[payload..end])
            }
            byte => Err(Error::UnexpectedByte { offset: self.pos, byte }),
        }
    }

    #[inline]
    fn read_str(&mut self) -> Result<&'de str, Error> {
        let at = self.pos;
        let b = self.read_bytes()?;
        core::str::from_utf8(b)
            .map_err(|_| Error::Custom { message: "byte string is not valid UTF-8".into(), offset: Some(at) })
    }

    fn enter(&mut self, open: u8) -> Result<(), Error> {
        match self.peek()? {
            b if b == open => {
                if self.depth >= self.opts.depth_limit() {
                    return Err(Error::DepthExceeded { offset: self.pos, limit: self.opts.depth_limit() });
                }
                self.depth += 1;
                self.pos += 1;
                Ok(())
            }
            byte => Err(Error::UnexpectedByte { offset: self.pos, byte }),
        }
    }

    fn leave(&mut self) -> Result<(), Error> {
        match self.peek()? {
            b'e' => {
                self.depth -= 1;
                self.pos += 1;
                Ok(())
            }
            byte => Err(Error::UnexpectedByte { offset: self.pos, byte }),
        }
    }

    /// Skips one value (validating it under the same rules) and returns its span.
    fn skip(&mut self) -> Result<Range<usize>, Error> {
        let start = self.pos;
        // Scalars (most skipped fields) need no container walk.
        match self.peek()? {
            b'0'..=b'9' => {
                self.read_bytes()?;
                return Ok(start..self.pos);
            }
            b'i' => {
                self.read_int()?;
                return Ok(start..self.pos);
            }
            _ => {}
        }
        let remaining_depth = self.opts.depth_limit().saturating_sub(self.depth);
        let end = skip_value(self.input, start, &self.opts.max_depth(remaining_depth))?;
        self.pos = end;
        Ok(start..end)
    }
}

macro_rules! forward_int {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_i64(self.read_int()?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.peek()? {
            b'i' => visitor.visit_i64(self.read_int()?),
            b'0'..=b'9' => visitor.visit_borrowed_bytes(self.read_bytes()?),
            b'l' => self.deserialize_seq(visitor),
            b'd' => self.deserialize_map(visitor),
            byte => Err(Error::UnexpectedByte { offset: self.pos, byte }),
        }
    }

    forward_int!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
                 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.pos;
        match self.read_int()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            _ => Err(Error::InvalidInteger { offset: at }),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported("floating-point numbers"))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported("floating-point numbers"))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.pos;
        let s = self.read_str()?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(Error::Custom { message: "expected a single character".into(), offset: Some(at) }),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.read_str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.read_str()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.read_bytes()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.read_bytes()?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Absence is the only `None` bencode has: a missing dictionary entry.
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported("the unit type"))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> Result<V::Value, Error> {
        Err(Error::Unsupported("unit structs"))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == RAW_VALUE_TOKEN {
            let span = self.skip()?;
            return visitor.visit_borrowed_bytes(&self.input[span]);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.enter(b'l')?;
        let value = visitor.visit_seq(SeqAccess { de: &mut *self })?;
        self.leave()?;
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.enter(b'd')?;
        let value = visitor.visit_map(MapAccess { de: &mut *self, prev_key: None, pending_value: false })?;
        self.leave()?;
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.peek()? {
            b'0'..=b'9' => visitor.visit_enum(self.read_str()?.into_deserializer()),
            b'd' => {
                self.enter(b'd')?;
                let value = visitor.visit_enum(EnumAccess { de: &mut *self })?;
                self.leave()?;
                Ok(value)
            }
            byte => Err(Error::UnexpectedByte { offset: self.pos, byte }),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Derived field and variant visitors match on bytes: no UTF-8 check needed.
        visitor.visit_borrowed_bytes(self.read_bytes()?)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip()?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

struct SeqAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if self.de.peek()? == b'e' {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
}

struct MapAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    prev_key: Option<&'de [u8]>,
    pending_value: bool,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let at = self.de.pos;
        match self.de.peek()? {
            b'e' => return Ok(None),
            b'0'..=b'9' => {}
            _ => return Err(Error::KeyNotString { offset: at }),
        }
        // Read the key once to check its order, then let the seed read it again.
        let key = self.de.read_bytes()?;
        if !self.de.opts.is_lenient()
            && let Some(prev) = self.prev_key
        {
            match prev.cmp(key) {
                core::cmp::Ordering::Less => {}
                core::cmp::Ordering::Equal => return Err(Error::DuplicateKey { offset: at }),
                core::cmp::Ordering::Greater => return Err(Error::UnsortedKey { offset: at }),
            }
        }
        self.prev_key = Some(key);
        self.pending_value = true;
        // Hand the seed the key already read instead of parsing it a second time.
        seed.deserialize(KeyDeserializer { key, offset: at }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        if !core::mem::take(&mut self.pending_value) {
            return Err(Error::EncoderState("map value requested before its key"));
        }
        if self.de.peek()? == b'e' {
            return Err(Error::MissingValue { offset: self.de.pos });
        }
        seed.deserialize(&mut *self.de)
    }
}

/// Deserializes a dictionary key that has already been read.
struct KeyDeserializer<'de> {
    key: &'de [u8],
    offset: usize,
}

impl<'de> de::Deserializer<'de> for KeyDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.key)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.key)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match core::str::from_utf8(self.key) {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(_) => Err(Error::Custom {
                message: "dictionary key is not valid UTF-8".into(),
                offset: Some(self.offset),
            }),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let s = core::str::from_utf8(self.key).map_err(|_| Error::Custom {
            message: "dictionary key is not valid UTF-8".into(),
            offset: Some(self.offset),
        })?;
        visitor.visit_enum(s.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf option unit
        unit_struct seq tuple tuple_struct map struct ignored_any
    }
}

struct EnumAccess<'a, 'de> {
    de: &'a mut Deserializer<'de>,
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let at = self.de.pos;
        if !self.de.peek()?.is_ascii_digit() {
            return Err(Error::KeyNotString { offset: at });
        }
        let v = seed.deserialize(&mut *self.de)?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for EnumAccess<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Err(Error::Unsupported("a unit variant inside a dictionary"))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(&mut *self.de, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(&mut *self.de, visitor)
    }
}

// ---------------------------------------------------------------------------------------------
// RawValue

/// A field's exact original bytes, kept as they were in the input (borrowed, not re-encoded).
/// Serializing writes them back verbatim.
///
/// ```
/// use piecework_bencode::RawValue;
/// #[derive(serde::Deserialize)]
/// struct Torrent<'a> {
///     #[serde(borrow)]
///     info: RawValue<'a>,
/// }
/// let t: Torrent = piecework_bencode::from_bytes(b"d4:infod4:name1:xee")?;
/// assert_eq!(t.info.as_bytes(), b"d4:name1:xe"); // hash these for the info-hash
/// # Ok::<(), piecework_bencode::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawValue<'a>(&'a [u8]);

impl<'a> RawValue<'a> {
    /// Wraps bytes that hold exactly one valid value (checked strictly).
    pub fn new(raw: &'a [u8]) -> Result<Self, Error> {
        crate::validate(raw)?;
        Ok(RawValue(raw))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Decodes the raw bytes (leniently: they were accepted under the caller's options).
    pub fn decode(&self) -> Result<crate::Document<'a>, Error> {
        DecodeOptions::lenient().decode(self.0)
    }
}

impl fmt::Debug for RawValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawValue(b\"{}\")", self.0.escape_ascii())
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for RawValue<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a raw bencode value (only piecework_bencode's deserializer provides one)")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(RawValue(v))
            }
        }
        deserializer.deserialize_newtype_struct(RAW_VALUE_TOKEN, RawVisitor)
    }
}

impl Serialize for RawValue<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct AsBytes<'b>(&'b [u8]);
        impl Serialize for AsBytes<'_> {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        serializer.serialize_newtype_struct(RAW_VALUE_TOKEN, &AsBytes(self.0))
    }
}

// ---------------------------------------------------------------------------------------------
// Value <-> serde

impl Serialize for crate::Value<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use ser::{SerializeMap, SerializeSeq};
        match self {
            crate::Value::Int(i) => serializer.serialize_i64(*i),
            crate::Value::Bytes(b) => serializer.serialize_bytes(b),
            crate::Value::List(l) => {
                let mut seq = serializer.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            crate::Value::Dict(d) => {
                let mut map = serializer.serialize_map(Some(d.len()))?;
                for (k, v) in d.iter() {
                    map.serialize_entry(&BytesRef(k), v)?;
                }
                map.end()
            }
        }
    }
}

struct BytesRef<'b>(&'b [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> de::Deserialize<'de> for crate::Value<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = crate::Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bencode value")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(crate::Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(crate::Value::Int).map_err(|_| E::custom("integer above i64::MAX"))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(crate::Value::Int(v.into()))
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        Ok(crate::Value::from(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(crate::Value::from(v.to_vec()))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(crate::Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(crate::Value::from(v.to_string()))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(crate::Value::List(out))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut d = crate::Dictionary::new();
        while let Some(k) = map.next_key::<crate::Value<'de>>()? {
            let crate::Value::Bytes(k) = k else {
                return Err(de::Error::custom("dictionary key is not a string"));
            };
            let v: crate::Value<'de> = map.next_value()?;
            // Lenient input may repeat a key: the first one wins, as in the decoder.
            if d.get(&k).is_none() {
                d.insert(k, v);
            }
        }
        Ok(crate::Value::Dict(d))
    }
}

// ---------------------------------------------------------------------------------------------
// Serializer

/// Serializes `value` canonically: dictionary keys sorted, `None` fields left out.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Ext<'a> { v: &'a str, reqq: u32, p: Option<u16> }
/// let out = piecework_bencode::to_vec(&Ext { v: "pw", reqq: 250, p: None })?;
/// assert_eq!(out, b"d4:reqqi250e1:v2:pwe");
/// # Ok::<(), piecework_bencode::Error>(())
/// ```
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    value.serialize(&mut Serializer { out: &mut out })?;
    if out.is_empty() {
        return Err(Error::Unsupported("a top-level None"));
    }
    Ok(out)
}

/// Serializes `value` canonically into a writer.
pub fn to_writer<W: std::io::Write, T: Serialize + ?Sized>(mut writer: W, value: &T) -> Result<(), Error> {
    let out = to_vec(value)?;
    writer.write_all(&out).map_err(|e| Error::Custom { message: e.to_string(), offset: None })
}

/// A serde serializer appending to a `Vec<u8>`. Usually reached through [`to_vec`].
#[derive(Debug)]
pub struct Serializer<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Serializer<'o> {
    /// A serializer appending to `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        Serializer { out }
    }
}

/// Writes a dictionary's entries straight to the output. Entries almost always arrive in key
/// order (derived structs list fields alphabetically more often than not, and sorted maps are
/// sorted); when one does not, the entries written so far are re-read and rewritten sorted at
/// the end, so the common case copies nothing.
#[doc(hidden)]
pub struct DictSer<'s, 'o> {
    ser: &'s mut Serializer<'o>,
    /// Where the entries start in the output (right after the `d`).
    start: usize,
    /// Payload span of the previous key in the output.
    prev_key: Option<Range<usize>>,
    sorted: bool,
    /// The map API's pending key, serialized but not yet written.
    key: Vec<u8>,
    has_key: bool,
    variant: bool,
}

impl<'s, 'o> DictSer<'s, 'o> {
    fn new(ser: &'s mut Serializer<'o>, variant: Option<&'static str>) -> Self {
        if let Some(v) = variant {
            ser.out.push(b'd');
            put_bytes(ser.out, v.as_bytes());
        }
        ser.out.push(b'd');
        let start = ser.out.len();
        DictSer {
            ser,
            start,
            prev_key: None,
            sorted: true,
            key: Vec::new(),
            has_key: false,
            variant: variant.is_some(),
        }
    }

    fn entry<T: Serialize + ?Sized>(&mut self, key: &[u8], value: &T) -> Result<(), Error> {
        let entry_start = self.ser.out.len();
        put_bytes(self.ser.out, key);
        let key_span = self.ser.out.len() - key.len()..self.ser.out.len();
        let value_start = self.ser.out.len();
        value.serialize(&mut *self.ser)?;
        if self.ser.out.len() == value_start {
            // A `None` writes nothing: leave the whole entry out.
            self.ser.out.truncate(entry_start);
            return Ok(());
        }
        if let Some(prev) = &self.prev_key {
            match self.ser.out[prev.clone()].cmp(&self.ser.out[key_span.clone()]) {
                core::cmp::Ordering::Less => {}
                core::cmp::Ordering::Equal => return Err(Error::EncoderKeyOrder),
                core::cmp::Ordering::Greater => self.sorted = false,
            }
        }
        self.prev_key = Some(key_span);
        Ok(())
    }

    /// Rewrites the entries after `start` in key order.
    fn sort_entries(&mut self) -> Result<(), Error> {
        let body = self.ser.out.split_off(self.start);
        // Our own output, so strict rules hold; limits are lifted because the caller's data,
        // not an attacker's, decided its shape.
        let opts =
            DecodeOptions::new().max_depth(usize::MAX).max_tokens(usize::MAX).max_input_len(usize::MAX);
        let mut entries = Vec::new();
        let mut pos = 0;
        while pos < body.len() {
            let (payload, key_end) = parse_string(&body, pos, false)?;
            let value_end = skip_value(&body, key_end, &opts)?;
            entries.push((payload..key_end, pos..value_end));
            pos = value_end;
        }
        entries.sort_by(|a, b| body[a.0.clone()].cmp(&body[b.0.clone()]));
        if entries.windows(2).any(|w| body[w[0].0.clone()] == body[w[1].0.clone()]) {
            return Err(Error::EncoderKeyOrder);
        }
        for (_, entry) in entries {
            self.ser.out.extend_from_slice(&body[entry]);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        if !self.sorted {
            self.sort_entries()?;
        }
        self.ser.out.push(b'e');
        if self.variant {
            self.ser.out.push(b'e');
        }
        Ok(())
    }
}

/// Writes a list's elements; `None` elements are refused (a list has no way to skip one).
#[doc(hidden)]
pub struct ListSer<'s, 'o> {
    ser: &'s mut Serializer<'o>,
    variant: bool,
}

impl ListSer<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let before = self.ser.out.len();
        value.serialize(&mut *self.ser)?;
        if self.ser.out.len() == before {
            return Err(Error::Unsupported("None inside a list"));
        }
        Ok(())
    }

    fn close(self) -> Result<(), Error> {
        self.ser.out.push(b'e');
        if self.variant {
            self.ser.out.push(b'e');
        }
        Ok(())
    }
}

impl<'s, 'o> ser::Serializer for &'s mut Serializer<'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ListSer<'s, 'o>;
    type SerializeTuple = ListSer<'s, 'o>;
    type SerializeTupleStruct = ListSer<'s, 'o>;
    type SerializeTupleVariant = ListSer<'s, 'o>;
    type SerializeMap = DictSer<'s, 'o>;
    type SerializeStruct = DictSer<'s, 'o>;
    type SerializeStructVariant = DictSer<'s, 'o>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        put_int(self.out, i64::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        put_int(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.serialize_i64(i64::try_from(v).map_err(|_| Error::Unsupported("integers above i64::MAX"))?)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        Err(Error::Unsupported("floating-point numbers"))
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        Err(Error::Unsupported("floating-point numbers"))
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        put_bytes(self.out, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        put_bytes(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(Error::Unsupported("the unit type"))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Err(Error::Unsupported("unit structs"))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name == RAW_VALUE_TOKEN {
            let mut raw = Vec::new();
            value.serialize(&mut Serializer { out: &mut raw })?;
            // `raw` is `N:<bytes>`: take the payload, check it is one value, write it verbatim.
            let (payload, _) = parse_string(&raw, 0, false)?;
            crate::validate(&raw[payload..])?;
            self.out.extend_from_slice(&raw[payload..]);
            return Ok(());
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'd');
        put_bytes(self.out, variant.as_bytes());
        let before = self.out.len();
        value.serialize(&mut *self)?;
        if self.out.len() == before {
            return Err(Error::Unsupported("None as an enum variant's value"));
        }
        self.out.push(b'e');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<ListSer<'s, 'o>, Error> {
        self.out.push(b'l');
        Ok(ListSer { ser: self, variant: false })
    }
    fn serialize_tuple(self, len: usize) -> Result<ListSer<'s, 'o>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<ListSer<'s, 'o>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<ListSer<'s, 'o>, Error> {
        self.out.push(b'd');
        put_bytes(self.out, variant.as_bytes());
        self.out.push(b'l');
        Ok(ListSer { ser: self, variant: true })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<DictSer<'s, 'o>, Error> {
        Ok(DictSer::new(self, None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<DictSer<'s, 'o>, Error> {
        Ok(DictSer::new(self, None))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<DictSer<'s, 'o>, Error> {
        Ok(DictSer::new(self, Some(variant)))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl ser::SerializeSeq for ListSer<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTuple for ListSer<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleStruct for ListSer<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleVariant for ListSer<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeMap for DictSer<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key.clear();
        key.serialize(KeySerializer { out: &mut self.key })?;
        self.has_key = true;
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !core::mem::take(&mut self.has_key) {
            return Err(Error::EncoderState("a map value before its key"));
        }
        let key = core::mem::take(&mut self.key);
        let result = self.entry(&key, value);
        self.key = key;
        result
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for DictSer<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.entry(key.as_bytes(), value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for DictSer<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// Serializes a map key: only strings and byte strings are keys in bencode. Writes the raw
/// key bytes (no length prefix).
struct KeySerializer<'k> {
    out: &'k mut Vec<u8>,
}

impl ser::Serializer for KeySerializer<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_i8(self, _: i8) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_i16(self, _: i16) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_i32(self, _: i32) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_i64(self, _: i64) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_u8(self, _: u8) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_u16(self, _: u16) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_u32(self, _: u32) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_u64(self, _: u64) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(NON_STRING_KEY)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(NON_STRING_KEY)
    }
}

const NON_STRING_KEY: Error = Error::Unsupported("dictionary keys that are not strings");

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct File<'a> {
        length: i64,
        #[serde(borrow)]
        path: Vec<&'a str>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        md5sum: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Info<'a> {
        name: &'a str,
        #[serde(rename = "piece length")]
        piece_length: u32,
        #[serde(with = "serde_bytes")]
        pieces: &'a [u8],
        #[serde(borrow)]
        files: Vec<File<'a>>,
        private: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    struct Torrent<'a> {
        announce: Option<&'a str>,
        #[serde(borrow)]
        info: RawValue<'a>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Msg {
        Ping,
        Get(u32),
        Pair(u8, u8),
        Named { a: i64, b: String },
    }

    const INFO: &[u8] = b"d5:filesld6:lengthi5e4:pathl1:a1:beed6:lengthi7e6:md5sum3:abc4:pathl1:ceee\
4:name3:dir12:piece lengthi16384e6:pieces3:\x00\x01\x027:privatei1ee";

    #[test]
    fn struct_round_trip_borrows() {
        let info: Info<'_> = from_bytes(INFO).unwrap();
        assert_eq!(info.name, "dir");
        assert_eq!(info.pieces, b"\x00\x01\x02");
        assert_eq!(info.files[1].md5sum.as_deref(), Some("abc"));
        assert_eq!(info.private, Some(true));
        // Borrowed from the input, not copied.
        assert!(INFO.as_ptr_range().contains(&info.name.as_ptr()));
        assert_eq!(to_vec(&info).unwrap(), INFO);
    }

    #[test]
    fn raw_value_keeps_original_bytes() {
        let mut input = b"d8:announce3:url4:info".to_vec();
        input.extend_from_slice(INFO);
        input.push(b'e');
        let t: Torrent<'_> = from_bytes(&input).unwrap();
        assert_eq!(t.announce, Some("url"));
        assert_eq!(t.info.as_bytes(), INFO);
        assert_eq!(t.info.decode().unwrap().root().raw(), INFO);
        #[derive(Serialize)]
        struct Out<'a> {
            info: RawValue<'a>,
        }
        let out = to_vec(&Out { info: t.info }).unwrap();
        assert_eq!(&out[..7], b"d4:info");
        assert_eq!(&out[7..out.len() - 1], INFO);
        assert!(RawValue::new(b"i01e").is_err());
    }

    #[test]
    fn strictness_applies() {
        assert_eq!(
            from_bytes::<BTreeMap<String, i64>>(b"d1:bi1e1:ai2ee"),
            Err(Error::UnsortedKey { offset: 7 })
        );
        assert_eq!(
            from_bytes::<BTreeMap<String, i64>>(b"d1:ai1e1:ai2ee"),
            Err(Error::DuplicateKey { offset: 7 })
        );
        assert_eq!(from_bytes::<i64>(b"i01e"), Err(Error::NonCanonicalInteger { offset: 1 }));
        assert_eq!(from_bytes::<i64>(b"i1ee"), Err(Error::TrailingData { offset: 3 }));
        let lenient: BTreeMap<String, i64> =
            from_bytes_with(b"d1:bi1e1:ai02ee", &DecodeOptions::lenient()).unwrap();
        assert_eq!(lenient.get("a"), Some(&2));
        // Unknown fields are skipped, but still validated.
        #[derive(Deserialize, Debug)]
        struct Only {
            #[allow(dead_code)]
            b: i64,
        }
        assert!(from_bytes::<Only>(b"d1:ali1ee1:bi1ee").is_ok());
        assert_eq!(
            from_bytes::<Only>(b"d1:ali01ee1:bi1ee").unwrap_err(),
            Error::NonCanonicalInteger { offset: 6 }
        );
    }

    #[test]
    fn depth_limit() {
        let deep: Vec<u8> = [vec![b'l'; 200], vec![b'e'; 200]].concat();
        let err = from_bytes::<serde::de::IgnoredAny>(&deep).unwrap_err();
        assert_eq!(err, Error::DepthExceeded { offset: 128, limit: 128 });
        #[derive(Deserialize, Debug)]
        struct Nest {
            #[allow(dead_code)]
            n: Vec<Nest>,
        }
        let mut n = Vec::new();
        for _ in 0..70 {
            n.extend_from_slice(b"d1:nl");
        }
        for _ in 0..70 {
            n.extend_from_slice(b"ee");
        }
        assert!(matches!(from_bytes::<Nest>(&n), Err(Error::DepthExceeded { limit: 128, .. })));
    }

    #[test]
    fn enums_and_maps() {
        for (m, enc) in [
            (Msg::Ping, &b"4:Ping"[..]),
            (Msg::Get(3), b"d3:Geti3ee"),
            (Msg::Pair(1, 2), b"d4:Pairli1ei2eee"),
            (Msg::Named { b: "x".into(), a: -1 }, b"d5:Namedd1:ai-1e1:b1:xee"),
        ] {
            assert_eq!(to_vec(&m).unwrap(), enc);
            assert_eq!(from_bytes::<Msg>(enc).unwrap(), m);
        }
        let mut map = BTreeMap::new();
        map.insert("zeta".to_string(), vec![1u8, 2]);
        map.insert("alpha".to_string(), vec![]);
        let enc = to_vec(&map).unwrap();
        assert_eq!(enc, b"d5:alphale4:zetali1ei2eee");
        assert_eq!(from_bytes::<BTreeMap<String, Vec<u8>>>(&enc).unwrap(), map);
        let mut bad = BTreeMap::new();
        bad.insert(1, 2);
        assert_eq!(to_vec(&bad), Err(NON_STRING_KEY));
        assert_eq!(to_vec(&1.5f64), Err(Error::Unsupported("floating-point numbers")));
        assert_eq!(to_vec(&vec![Some(1), None]), Err(Error::Unsupported("None inside a list")));
        assert_eq!(to_vec(&u64::MAX), Err(Error::Unsupported("integers above i64::MAX")));
        assert_eq!(from_bytes::<bool>(b"i2e"), Err(Error::InvalidInteger { offset: 0 }));
        assert_eq!(from_bytes::<(u8, char)>(b"li7e1:xe").unwrap(), (7, 'x'));
        assert!(from_bytes::<u8>(b"i300e").is_err());
    }

    #[test]
    fn custom_errors_get_offsets() {
        let err = from_bytes::<File<'_>>(b"d6:lengthi5ee").unwrap_err();
        assert!(matches!(err, Error::Custom { offset: Some(12), .. }), "{err:?}");
        let err = from_bytes::<&str>(b"1:\xff").unwrap_err();
        assert!(matches!(err, Error::Custom { offset: Some(0), .. }), "{err:?}");
    }
}
