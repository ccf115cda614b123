//! The decoder: one pass over the input into a flat token array (the "tape").
//!
//! Each value becomes one 16-byte [`Token`] holding its span in the input; containers also hold
//! the index of the token after their subtree, so a reader can skip a whole list or dictionary in
//! one step. Byte strings are never copied: a [`Node`] hands out slices of the input. The parser
//! is iterative (an explicit stack), so nesting depth costs heap, never the call stack.

use core::ops::Range;

use crate::Error;

/// Default for [`DecodeOptions::max_depth`].
pub const DEFAULT_MAX_DEPTH: usize = 128;
/// Default for [`DecodeOptions::max_tokens`].
pub const DEFAULT_MAX_TOKENS: usize = 4 << 20;
/// Default for [`DecodeOptions::max_input_len`].
pub const DEFAULT_MAX_INPUT_LEN: usize = 64 << 20;
/// The hard ceiling on input size: spans are stored as `u32`.
pub const MAX_INPUT_LEN: usize = u32::MAX as usize - 1;

/// Inline stack frames before the parser spills to the heap; validating typical documents
/// then allocates nothing.
const INLINE_FRAMES: usize = 8;

/// How to decode: strictness and limits. Build one, keep it, reuse it.
///
/// ```
/// use piecework_bencode::{DecodeOptions, Error};
/// // Strict (the default) refuses the leading zero; lenient accepts it.
/// assert!(matches!(DecodeOptions::new().decode(b"i007e"), Err(Error::NonCanonicalInteger { offset: 1 })));
/// let doc = DecodeOptions::lenient().decode(b"i007e").unwrap();
/// assert_eq!(doc.root().as_int(), Some(7));
/// assert_eq!(doc.root().raw(), b"i007e");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    max_depth: usize,
    max_tokens: usize,
    max_input_len: usize,
    lenient: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl DecodeOptions {
    /// Strict decoding with the default limits: canonical integers, strictly ascending keys,
    /// no trailing bytes (except through [`decode_prefix`](Self::decode_prefix)).
    pub const fn new() -> Self {
        DecodeOptions {
            max_depth: DEFAULT_MAX_DEPTH,
            max_tokens: DEFAULT_MAX_TOKENS,
            max_input_len: DEFAULT_MAX_INPUT_LEN,
            lenient: false,
        }
    }

    /// Lenient decoding with the default limits, for input from the wild (old torrents, sloppy
    /// trackers): dictionary keys in any order and repeated (lookups return the first), integers
    /// with leading zeros, `-0` or a `+` sign. Spans still give the exact original bytes, so an
    /// info-hash computed over a lenient document is still right.
    pub const fn lenient() -> Self {
        DecodeOptions { lenient: true, ..Self::new() }
    }

    /// Deepest nesting of lists and dictionaries allowed (default [`DEFAULT_MAX_DEPTH`]).
    /// The decoder never recurses, but readers of the result (and serde) may.
    pub const fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Most values (of any kind, containers included) in one document (default
    /// [`DEFAULT_MAX_TOKENS`]). Each costs 16 bytes of tape.
    pub const fn max_tokens(mut self, tokens: usize) -> Self {
        self.max_tokens = tokens;
        self
    }

    /// Longest input accepted (default [`DEFAULT_MAX_INPUT_LEN`], never more than
    /// [`MAX_INPUT_LEN`]).
    pub const fn max_input_len(mut self, len: usize) -> Self {
        self.max_input_len = if len > MAX_INPUT_LEN { MAX_INPUT_LEN } else { len };
        self
    }

    /// The nesting limit in force.
    pub const fn depth_limit(&self) -> usize {
        self.max_depth
    }

    /// The value-count limit in force.
    pub const fn token_limit(&self) -> usize {
        self.max_tokens
    }

    /// The input-size limit in force.
    pub const fn input_len_limit(&self) -> usize {
        self.max_input_len
    }

    /// Whether these options are lenient.
    pub const fn is_lenient(&self) -> bool {
        self.lenient
    }

    /// Decodes exactly one value that must span the whole input.
    pub fn decode<'a>(&self, input: &'a [u8]) -> Result<Document<'a>, Error> {
        let (doc, end) = self.decode_prefix(input)?;
        if end != input.len() {
            return Err(Error::TrailingData { offset: end });
        }
        Ok(doc)
    }

    /// Decodes one complete value from the start of `input` and returns it with the offset
    /// where it ended; bytes after it are left alone (BEP 9 `ut_metadata` data messages carry
    /// the metadata piece right after the dictionary).
    pub fn decode_prefix<'a>(&self, input: &'a [u8]) -> Result<(Document<'a>, usize), Error> {
        self.check_len(input)?;
        // A value takes at least two bytes (`0:`, `le`), so `len / 2 + 1` tokens always suffice:
        // small inputs (messages) get that, one allocation and no regrowth; large ones start
        // from a typical density and grow, so a big string is not paid for in tape.
        let guess = if input.len() <= 4096 { input.len() / 2 + 1 } else { input.len() / 12 + 4 };
        let guess = guess.min(self.max_tokens);
        let mut tape = Tape { tokens: Vec::with_capacity(guess) };
        let end = parse(input, 0, self, &mut tape)?;
        Ok((Document { input, tokens: tape.tokens }, end))
    }

    /// Checks that `input` is exactly one valid value under these options, without building a
    /// tape. Allocates nothing unless nesting is deeper than a couple of dozen levels.
    pub fn validate(&self, input: &[u8]) -> Result<(), Error> {
        self.check_len(input)?;
        let end = parse(input, 0, self, &mut NoTape { count: 0 })?;
        if end != input.len() {
            return Err(Error::TrailingData { offset: end });
        }
        Ok(())
    }

    fn check_len(&self, input: &[u8]) -> Result<(), Error> {
        if input.len() > self.max_input_len {
            return Err(Error::InputTooLarge { len: input.len(), limit: self.max_input_len });
        }
        Ok(())
    }
}

/// A decoder that keeps its tape between calls, so a connection decoding message after
/// message (extension handshakes, tracker responses) allocates once rather than per message.
///
/// ```
/// use piecework_bencode::{DecodeOptions, Decoder};
/// let mut decoder = Decoder::new(DecodeOptions::new());
/// for msg in [&b"d1:pi6881ee"[..], b"d4:reqqi250ee"] {
///     let root = decoder.decode(msg)?;
///     assert_eq!(root.as_dict().unwrap().len(), 1);
/// }
/// # Ok::<(), piecework_bencode::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    options: DecodeOptions,
    tokens: Vec<Token>,
}

impl Decoder {
    /// A decoder applying `options` to every input.
    pub fn new(options: DecodeOptions) -> Self {
        Decoder { options, tokens: Vec::new() }
    }

    /// Decodes exactly one value spanning `input`; the result borrows the decoder until the
    /// next call.
    pub fn decode<'s, 'a>(&'s mut self, input: &'a [u8]) -> Result<Node<'s, 'a>, Error> {
        let (root, end) = self.decode_prefix(input)?;
        if end != input.len() {
            return Err(Error::TrailingData { offset: end });
        }
        Ok(root)
    }

    /// Decodes one value from the start of `input` and returns it with the offset where it
    /// ended (see [`DecodeOptions::decode_prefix`]).
    pub fn decode_prefix<'s, 'a>(&'s mut self, input: &'a [u8]) -> Result<(Node<'s, 'a>, usize), Error> {
        self.options.check_len(input)?;
        self.tokens.clear();
        let mut tape = Tape { tokens: core::mem::take(&mut self.tokens) };
        let result = parse(input, 0, &self.options, &mut tape);
        self.tokens = tape.tokens;
        let end = result?;
        Ok((Node { input, tokens: &self.tokens, idx: 0 }, end))
    }

    /// The options in force.
    pub fn options(&self) -> &DecodeOptions {
        &self.options
    }
}

/// Decodes `input` strictly with the default limits. See [`DecodeOptions`].
pub fn decode(input: &[u8]) -> Result<Document<'_>, Error> {
    DecodeOptions::new().decode(input)
}

/// Decodes one value from the start of `input` strictly, returning where it ended.
pub fn decode_prefix(input: &[u8]) -> Result<(Document<'_>, usize), Error> {
    DecodeOptions::new().decode_prefix(input)
}

/// Checks `input` strictly with the default limits without building anything.
pub fn validate(input: &[u8]) -> Result<(), Error> {
    DecodeOptions::new().validate(input)
}

/// One decoded value on the tape.
///
/// `aux` depends on the kind (which is read from the input byte at `start`): an integer's
/// value; a byte string's payload offset; a container's `next | count << 32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    start: u32,
    end: u32,
    aux: u64,
}

/// What kind of value a [`Node`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `i...e`
    Int,
    /// `N:...`
    Bytes,
    /// `l...e`
    List,
    /// `d...e`
    Dict,
}

/// A decoded document: the input it borrows and the tape describing it.
///
/// Cheap to navigate: [`root`](Self::root) and everything below it are small `Copy` handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    input: &'a [u8],
    tokens: Vec<Token>,
}

impl<'a> Document<'a> {
    /// The top-level value.
    pub fn root(&self) -> Node<'_, 'a> {
        Node { input: self.input, tokens: &self.tokens, idx: 0 }
    }

    /// The bytes the document was decoded from (for [`decode_prefix`] including what followed
    /// the value).
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// How many values (tokens) the document holds.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Ties the document to a shared buffer so byte strings can be handed out as
    /// [`bytes::Bytes`] without copying. `bytes` must be the buffer the document was decoded
    /// from.
    pub fn into_shared(self, bytes: bytes::Bytes) -> Option<SharedDocument> {
        if bytes.as_ptr() != self.input.as_ptr() || bytes.len() != self.input.len() {
            return None;
        }
        Some(SharedDocument { bytes, tokens: self.tokens })
    }
}

/// A document that owns its input as a [`bytes::Bytes`]: no lifetime to carry around, and byte
/// strings can be shared out as `Bytes` (reference counted, not copied).
///
/// ```
/// use bytes::Bytes;
/// let buf = Bytes::from_static(b"d4:spam4:eggse");
/// let doc = piecework_bencode::SharedDocument::decode(buf, &Default::default()).unwrap();
/// let eggs = doc.share(doc.root().as_dict().unwrap().get(b"spam").unwrap().as_bytes().unwrap());
/// assert_eq!(eggs, Bytes::from_static(b"eggs"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDocument {
    bytes: bytes::Bytes,
    tokens: Vec<Token>,
}

impl SharedDocument {
    /// Decodes `bytes` (the whole buffer) under `options`.
    pub fn decode(bytes: bytes::Bytes, options: &DecodeOptions) -> Result<Self, Error> {
        let tokens = options.decode(&bytes)?.tokens;
        Ok(SharedDocument { bytes, tokens })
    }

    /// The top-level value.
    pub fn root(&self) -> Node<'_, '_> {
        Node { input: &self.bytes, tokens: &self.tokens, idx: 0 }
    }

    /// The whole input buffer.
    pub fn bytes(&self) -> &bytes::Bytes {
        &self.bytes
    }

    /// A `Bytes` for `slice`, which must lie within this document's buffer (anything returned
    /// by its nodes' [`as_bytes`](Node::as_bytes) or [`raw`](Node::raw)); no copy is made.
    ///
    /// # Panics
    /// If `slice` is not part of the buffer: that is caller misuse, not bad input.
    pub fn share(&self, slice: &[u8]) -> bytes::Bytes {
        self.bytes.slice_ref(slice)
    }
}

/// A handle to one value of a document. `'d` is the tape's lifetime, `'a` the input's.
#[derive(Clone, Copy)]
pub struct Node<'d, 'a> {
    input: &'a [u8],
    tokens: &'d [Token],
    idx: usize,
}

impl core::fmt::Debug for Node<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.to_value(), f)
    }
}

impl PartialEq for Node<'_, '_> {
    /// Nodes are equal when their values are equal (compared through their raw bytes, which
    /// is exact for strict documents).
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl<'d, 'a> Node<'d, 'a> {
    #[inline]
    fn token(&self) -> Token {
        // Invariant: `idx` always names a token of a finished tape.
        self.tokens[self.idx]
    }

    #[inline]
    fn first_byte(&self) -> u8 {
        // Invariant: a token's start lies inside the input it was parsed from.
        self.input[self.token().start as usize]
    }

    /// What kind of value this is.
    #[inline]
    pub fn kind(&self) -> Kind {
        match self.first_byte() {
            b'i' => Kind::Int,
            b'l' => Kind::List,
            b'd' => Kind::Dict,
            _ => Kind::Bytes,
        }
    }

    /// The integer, if this is one.
    #[inline]
    pub fn as_int(&self) -> Option<i64> {
        (self.kind() == Kind::Int).then(|| self.token().aux as i64)
    }

    /// The byte string's contents (without the length prefix), if this is one.
    #[inline]
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        let t = self.token();
        (self.kind() == Kind::Bytes).then(|| &self.input[t.aux as usize..t.end as usize])
    }

    /// The byte string as UTF-8 text, if it is a byte string and valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        core::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The list, if this is one.
    #[inline]
    pub fn as_list(&self) -> Option<ListNode<'d, 'a>> {
        (self.kind() == Kind::List).then_some(ListNode { node: *self })
    }

    /// The dictionary, if this is one.
    #[inline]
    pub fn as_dict(&self) -> Option<DictNode<'d, 'a>> {
        (self.kind() == Kind::Dict).then_some(DictNode { node: *self })
    }

    /// The exact input bytes of this value, prefix and terminator included. For the `info`
    /// dictionary of a torrent this is what the info-hash is computed over.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        &self.input[self.span()]
    }

    /// Where this value lies in the input.
    #[inline]
    pub fn span(&self) -> Range<usize> {
        let t = self.token();
        t.start as usize..t.end as usize
    }

    /// A copy-free owned-shape [`Value`](crate::Value) of this node and everything below it
    /// (byte strings still borrow the input). Lenient dictionaries come out sorted, first
    /// occurrence of a repeated key kept.
    pub fn to_value(&self) -> crate::Value<'a> {
        crate::Value::from_node(*self)
    }

    /// Index of the token after this value's subtree.
    #[inline]
    fn next_index(&self) -> usize {
        let t = self.token();
        match self.first_byte() {
            b'l' | b'd' => (t.aux & 0xffff_ffff) as usize,
            _ => self.idx + 1,
        }
    }

    #[inline]
    fn child_count(&self) -> usize {
        (self.token().aux >> 32) as usize
    }

    #[inline]
    fn at(&self, idx: usize) -> Node<'d, 'a> {
        Node { input: self.input, tokens: self.tokens, idx }
    }
}

/// A list value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ListNode<'d, 'a> {
    node: Node<'d, 'a>,
}

impl<'d, 'a> ListNode<'d, 'a> {
    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.node.child_count()
    }

    /// True when the list has no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` (walks `i` siblings, skipping subtrees in one step each).
    pub fn get(&self, i: usize) -> Option<Node<'d, 'a>> {
        self.iter().nth(i)
    }

    /// The elements in order.
    pub fn iter(&self) -> Children<'d, 'a> {
        Children { next: self.node.at(self.node.idx + 1), left: self.len() }
    }

    /// The list as a [`Node`].
    pub fn as_node(&self) -> Node<'d, 'a> {
        self.node
    }
}

impl<'d, 'a> IntoIterator for ListNode<'d, 'a> {
    type Item = Node<'d, 'a>;
    type IntoIter = Children<'d, 'a>;
    fn into_iter(self) -> Children<'d, 'a> {
        self.iter()
    }
}

/// Iterator over a container's children in input order.
#[derive(Clone, Debug)]
pub struct Children<'d, 'a> {
    next: Node<'d, 'a>,
    left: usize,
}

impl<'d, 'a> Iterator for Children<'d, 'a> {
    type Item = Node<'d, 'a>;
    #[inline]
    fn next(&mut self) -> Option<Node<'d, 'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let cur = self.next;
        self.next.idx = cur.next_index();
        Some(cur)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Children<'_, '_> {}

/// A dictionary value. Keys come in input order (sorted, for strict documents).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DictNode<'d, 'a> {
    node: Node<'d, 'a>,
}

impl<'d, 'a> DictNode<'d, 'a> {
    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.node.child_count() / 2
    }

    /// True when the dictionary has no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for `key` (the first one, if a lenient document repeats it).
    pub fn get(&self, key: &[u8]) -> Option<Node<'d, 'a>> {
        self.entries().find(|(k, _)| k.as_bytes() == Some(key)).map(|(_, v)| v)
    }

    /// `(key, value)` pairs in input order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Node<'d, 'a>)> + use<'d, 'a> {
        // Keys are byte strings: the parser refuses anything else.
        self.entries().map(|(k, v)| (k.as_bytes().unwrap_or_default(), v))
    }

    /// `(key node, value node)` pairs in input order, for callers who need the keys' spans.
    pub fn entries(&self) -> Entries<'d, 'a> {
        Entries { inner: Children { next: self.node.at(self.node.idx + 1), left: self.len() * 2 } }
    }

    /// The dictionary as a [`Node`].
    pub fn as_node(&self) -> Node<'d, 'a> {
        self.node
    }
}

/// Iterator over a dictionary's `(key, value)` node pairs.
#[derive(Clone, Debug)]
pub struct Entries<'d, 'a> {
    inner: Children<'d, 'a>,
}

impl<'d, 'a> Iterator for Entries<'d, 'a> {
    type Item = (Node<'d, 'a>, Node<'d, 'a>);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let k = self.inner.next()?;
        let v = self.inner.next()?;
        Some((k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.inner.left / 2;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Entries<'_, '_> {}

// ---------------------------------------------------------------------------------------------
// The parser.

/// Where parsed tokens go: a real tape, or nowhere (validation).
trait Sink {
    /// Appends a token and returns its index, or refuses when over the limit.
    fn push(&mut self, token: Token) -> usize;
    fn len(&self) -> usize;
    /// Finishes a container: records its end and the skip pointer.
    fn close(&mut self, idx: usize, end: u32, count: u32);
}

struct Tape {
    tokens: Vec<Token>,
}

impl Sink for Tape {
    #[inline(always)]
    fn push(&mut self, token: Token) -> usize {
        let idx = self.tokens.len();
        self.tokens.push(token);
        idx
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.tokens.len()
    }
    #[inline(always)]
    fn close(&mut self, idx: usize, end: u32, count: u32) {
        let next = self.tokens.len() as u64;
        if let Some(t) = self.tokens.get_mut(idx) {
            t.end = end;
            t.aux = next | (u64::from(count) << 32);
        }
    }
}

struct NoTape {
    count: usize,
}

impl Sink for NoTape {
    #[inline(always)]
    fn push(&mut self, _: Token) -> usize {
        self.count += 1;
        self.count - 1
    }
    #[inline(always)]
    fn len(&self) -> usize {
        self.count
    }
    #[inline(always)]
    fn close(&mut self, _: usize, _: u32, _: u32) {}
}

/// An open container on the parse stack.
#[derive(Clone, Copy, Default)]
struct Frame {
    token: u32,
    count: u32,
    /// Payload span of the previous key (dicts with `count > 0` only).
    key_start: u32,
    key_end: u32,
    dict: bool,
}

/// A stack that lives on the call stack for shallow documents and spills to the heap.
struct FrameStack {
    inline: [Frame; INLINE_FRAMES],
    len: usize,
    spill: Vec<Frame>,
}

impl FrameStack {
    #[inline(always)]
    fn push(&mut self, f: Frame) {
        if self.len < INLINE_FRAMES {
            self.inline[self.len] = f;
        } else {
            self.spill.push(f);
        }
        self.len += 1;
    }

    #[inline(always)]
    fn pop(&mut self) -> Option<Frame> {
        match self.len {
            0 => None,
            n if n <= INLINE_FRAMES => {
                self.len -= 1;
                Some(self.inline[n - 1])
            }
            _ => {
                self.len -= 1;
                self.spill.pop()
            }
        }
    }
}

/// Validates the one value starting at `start` under `opts` and returns where it ends.
#[cfg(feature = "serde")]
pub(crate) fn skip_value(input: &[u8], start: usize, opts: &DecodeOptions) -> Result<usize, Error> {
    parse(input, start, opts, &mut NoTape { count: 0 })
}

/// Parses one value from `input[start..]` into `sink`; returns the end offset.
fn parse<S: Sink>(input: &[u8], start: usize, opts: &DecodeOptions, sink: &mut S) -> Result<usize, Error> {
    let len = input.len();
    let mut pos = start;
    // The innermost open container lives in `cur` (valid while `depth > 0`); the ones around it
    // wait on `outer`, touched only when a container opens or closes.
    let mut depth = 0usize;
    let mut cur = Frame::default();
    let mut outer = FrameStack { inline: [Frame::default(); INLINE_FRAMES], len: 0, spill: Vec::new() };
    loop {
        let Some(&b) = input.get(pos) else {
            return Err(Error::UnexpectedEnd { offset: len });
        };

        if depth > 0 {
            if b == b'e' {
                if cur.dict && cur.count % 2 == 1 {
                    return Err(Error::MissingValue { offset: pos });
                }
                pos += 1;
                sink.close(cur.token as usize, pos as u32, cur.count);
                depth -= 1;
                if depth == 0 {
                    return Ok(pos);
                }
                // Invariant: `outer` holds exactly `depth` frames here.
                cur = outer.pop().unwrap_or_default();
                continue;
            }
            if cur.dict && cur.count % 2 == 0 {
                if !b.is_ascii_digit() {
                    return Err(Error::KeyNotString { offset: pos });
                }
                let (payload, end) = parse_string(input, pos, opts.lenient)?;
                if !opts.lenient && cur.count > 0 {
                    let prev = &input[cur.key_start as usize..cur.key_end as usize];
                    match compare_keys(prev, &input[payload..end]) {
                        core::cmp::Ordering::Less => {}
                        core::cmp::Ordering::Equal => return Err(Error::DuplicateKey { offset: pos }),
                        core::cmp::Ordering::Greater => return Err(Error::UnsortedKey { offset: pos }),
                    }
                }
                cur.key_start = payload as u32;
                cur.key_end = end as u32;
                cur.count += 1;
                push_checked(
                    sink,
                    opts,
                    pos,
                    Token { start: pos as u32, end: end as u32, aux: payload as u64 },
                )?;
                pos = end;
                continue;
            }
            cur.count += 1;
        }

        match b {
            b'0'..=b'9' => {
                let (payload, end) = parse_string(input, pos, opts.lenient)?;
                push_checked(
                    sink,
                    opts,
                    pos,
                    Token { start: pos as u32, end: end as u32, aux: payload as u64 },
                )?;
                pos = end;
            }
            b'i' => {
                let (value, end) = parse_int(input, pos, opts.lenient)?;
                push_checked(
                    sink,
                    opts,
                    pos,
                    Token { start: pos as u32, end: end as u32, aux: value as u64 },
                )?;
                pos = end;
            }
            b'l' | b'd' => {
                if depth >= opts.max_depth {
                    return Err(Error::DepthExceeded { offset: pos, limit: opts.max_depth });
                }
                let idx = push_checked(sink, opts, pos, Token { start: pos as u32, end: 0, aux: 0 })?;
                if depth > 0 {
                    outer.push(cur);
                }
                cur = Frame { token: idx as u32, count: 0, key_start: 0, key_end: 0, dict: b == b'd' };
                depth += 1;
                pos += 1;
                continue;
            }
            _ => return Err(Error::UnexpectedByte { offset: pos, byte: b }),
        }
        if depth == 0 {
            return Ok(pos);
        }
    }
}

/// Byte-wise key order; short keys (the usual case) are compared inline rather than through
/// a `memcmp` call.
#[inline(always)]
fn compare_keys(a: &[u8], b: &[u8]) -> core::cmp::Ordering {
    // Neighbouring keys usually differ in their first byte.
    if let (Some(x), Some(y)) = (a.first(), b.first())
        && x != y
    {
        return x.cmp(y);
    }
    if a.len() <= 16 && b.len() <= 16 {
        for (x, y) in a.iter().zip(b) {
            if x != y {
                return x.cmp(y);
            }
        }
        a.len().cmp(&b.len())
    } else {
        a.cmp(b)
    }
}

#[inline(always)]
fn push_checked<S: Sink>(sink: &mut S, opts: &DecodeOptions, pos: usize, t: Token) -> Result<usize, Error> {
    if sink.len() >= opts.max_tokens {
        return Err(Error::TooManyValues { offset: pos, limit: opts.max_tokens });
    }
    Ok(sink.push(t))
}

/// Parses `N:` at `pos` and checks the payload is there. Returns (payload start, end).
#[inline(always)]
pub(crate) fn parse_string(input: &[u8], pos: usize, lenient: bool) -> Result<(usize, usize), Error> {
    let mut i = pos;
    let mut n: u64 = 0;
    loop {
        let Some(&c) = input.get(i) else {
            return Err(Error::UnexpectedEnd { offset: input.len() });
        };
        match c {
            b'0'..=b'9' => {
                // More than 10 digits cannot fit a u32-bounded input anyway; stop before overflow.
                if i - pos >= 19 {
                    return Err(Error::InvalidLength { offset: pos });
                }
                n = n * 10 + u64::from(c - b'0');
                i += 1;
            }
            b':' => break,
            _ => return Err(Error::InvalidLength { offset: pos }),
        }
    }
    if !lenient && i - pos > 1 && input[pos] == b'0' {
        return Err(Error::InvalidLength { offset: pos });
    }
    let payload = i + 1;
    let remaining = (input.len() - payload) as u64;
    if n > remaining {
        return Err(Error::UnexpectedEnd { offset: input.len() });
    }
    Ok((payload, payload + n as usize))
}

/// Parses `i...e` at `pos`. Returns (value, end).
#[inline(always)]
pub(crate) fn parse_int(input: &[u8], pos: usize, lenient: bool) -> Result<(i64, usize), Error> {
    let digits_at = pos + 1;
    let mut i = digits_at;
    let mut negative = false;
    match input.get(i) {
        Some(b'-') => {
            negative = true;
            i += 1;
        }
        Some(b'+') if lenient => i += 1,
        Some(b'+') => return Err(Error::NonCanonicalInteger { offset: digits_at }),
        Some(_) => {}
        None => return Err(Error::UnexpectedEnd { offset: input.len() }),
    }
    let first_digit = i;
    let mut magnitude: u64 = 0;
    loop {
        let Some(&c) = input.get(i) else {
            return Err(Error::UnexpectedEnd { offset: input.len() });
        };
        match c {
            b'0'..=b'9' => {
                magnitude = magnitude
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u64::from(c - b'0')))
                    .ok_or(Error::IntegerOverflow { offset: digits_at })?;
                i += 1;
            }
            b'e' => break,
            _ => return Err(Error::InvalidInteger { offset: i }),
        }
    }
    let ndigits = i - first_digit;
    if ndigits == 0 {
        return Err(Error::InvalidInteger { offset: i });
    }
    if !lenient && (ndigits > 1 && input[first_digit] == b'0' || negative && magnitude == 0) {
        return Err(Error::NonCanonicalInteger { offset: digits_at });
    }
    let value = if negative {
        if magnitude > 1u64 << 63 {
            return Err(Error::IntegerOverflow { offset: digits_at });
        }
        0i64.wrapping_sub(magnitude as i64)
    } else {
        i64::try_from(magnitude).map_err(|_| Error::IntegerOverflow { offset: digits_at })?
    };
    Ok((value, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(input: &[u8]) -> Result<Document<'_>, Error> {
        decode(input)
    }

    #[test]
    fn scalars() {
        assert_eq!(strict(b"i0e").unwrap().root().as_int(), Some(0));
        assert_eq!(strict(b"i-42e").unwrap().root().as_int(), Some(-42));
        assert_eq!(strict(b"i9223372036854775807e").unwrap().root().as_int(), Some(i64::MAX));
        assert_eq!(strict(b"i-9223372036854775808e").unwrap().root().as_int(), Some(i64::MIN));
        assert_eq!(strict(b"0:").unwrap().root().as_bytes(), Some(&b""[..]));
        assert_eq!(strict(b"4:spam").unwrap().root().as_str(), Some("spam"));
    }

    #[test]
    fn integer_errors_carry_offsets() {
        assert_eq!(strict(b"ie"), Err(Error::InvalidInteger { offset: 1 }));
        assert_eq!(strict(b"i-e"), Err(Error::InvalidInteger { offset: 2 }));
        assert_eq!(strict(b"i01e"), Err(Error::NonCanonicalInteger { offset: 1 }));
        assert_eq!(strict(b"i-0e"), Err(Error::NonCanonicalInteger { offset: 1 }));
        assert_eq!(strict(b"i+1e"), Err(Error::NonCanonicalInteger { offset: 1 }));
        assert_eq!(strict(b"i1.5e"), Err(Error::InvalidInteger { offset: 2 }));
        assert_eq!(strict(b"i9223372036854775808e"), Err(Error::IntegerOverflow { offset: 1 }));
        assert_eq!(strict(b"i-9223372036854775809e"), Err(Error::IntegerOverflow { offset: 1 }));
        assert_eq!(strict(b"i99999999999999999999999e"), Err(Error::IntegerOverflow { offset: 1 }));
        assert_eq!(strict(b"li1ei1x"), Err(Error::InvalidInteger { offset: 6 }));
    }

    #[test]
    fn lenient_integers() {
        let l = DecodeOptions::lenient();
        assert_eq!(l.decode(b"i007e").unwrap().root().as_int(), Some(7));
        assert_eq!(l.decode(b"i-0e").unwrap().root().as_int(), Some(0));
        assert_eq!(l.decode(b"i+5e").unwrap().root().as_int(), Some(5));
        assert_eq!(l.decode(b"ie"), Err(Error::InvalidInteger { offset: 1 }));
        assert_eq!(l.decode(b"03:abc").unwrap().root().as_bytes(), Some(&b"abc"[..]));
    }

    #[test]
    fn string_errors() {
        assert_eq!(strict(b"03:abc"), Err(Error::InvalidLength { offset: 0 }));
        assert_eq!(strict(b"3x"), Err(Error::InvalidLength { offset: 0 }));
        assert_eq!(strict(b"5:abc"), Err(Error::UnexpectedEnd { offset: 5 }));
        assert_eq!(strict(b"99999999999999999999:"), Err(Error::InvalidLength { offset: 0 }));
        assert_eq!(strict(b"4294967296:"), Err(Error::UnexpectedEnd { offset: 11 }));
    }

    #[test]
    fn dict_rules() {
        assert_eq!(strict(b"d1:bi1e1:ai2ee"), Err(Error::UnsortedKey { offset: 7 }));
        assert_eq!(strict(b"d1:ai1e1:ai2ee"), Err(Error::DuplicateKey { offset: 7 }));
        assert_eq!(strict(b"di1ei2ee"), Err(Error::KeyNotString { offset: 1 }));
        assert_eq!(strict(b"d1:ae"), Err(Error::MissingValue { offset: 4 }));
        assert_eq!(strict(b"d0:i1e1:ai2ee").unwrap().root().as_dict().unwrap().len(), 2);
        let lenient = DecodeOptions::lenient().decode(b"d1:bi1e1:ai2e1:ai3ee").unwrap();
        let d = lenient.root().as_dict().unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.get(b"a").and_then(|n| n.as_int()), Some(2));
        // Keys compare as raw bytes: a prefix sorts first.
        assert!(strict(b"d1:a0:2:aa0:e").is_ok());
        assert_eq!(strict(b"d2:aa0:1:a0:e"), Err(Error::UnsortedKey { offset: 7 }));
    }

    #[test]
    fn structure_errors() {
        assert_eq!(strict(b""), Err(Error::UnexpectedEnd { offset: 0 }));
        assert_eq!(strict(b"e"), Err(Error::UnexpectedByte { offset: 0, byte: b'e' }));
        assert_eq!(strict(b"x"), Err(Error::UnexpectedByte { offset: 0, byte: b'x' }));
        assert_eq!(strict(b"l"), Err(Error::UnexpectedEnd { offset: 1 }));
        assert_eq!(strict(b"i1ei2e"), Err(Error::TrailingData { offset: 3 }));
        assert_eq!(strict(b"lee"), Err(Error::TrailingData { offset: 2 }));
    }

    #[test]
    fn navigation_and_spans() {
        let input = b"d4:infod6:lengthi5e4:name1:xe5:otherli1el0:eee";
        let doc = strict(input).unwrap();
        let root = doc.root().as_dict().unwrap();
        let info = root.get(b"info").unwrap();
        assert_eq!(info.raw(), b"d6:lengthi5e4:name1:xe");
        assert_eq!(info.span(), 7..29);
        assert_eq!(info.as_dict().unwrap().get(b"length").unwrap().as_int(), Some(5));
        let other = root.get(b"other").unwrap().as_list().unwrap();
        assert_eq!(other.len(), 2);
        assert_eq!(other.get(1).unwrap().as_list().unwrap().get(0).unwrap().as_bytes(), Some(&b""[..]));
        assert!(other.get(2).is_none());
        let keys: Vec<&[u8]> = root.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"info"[..], b"other"]);
        assert!(root.get(b"missing").is_none());
        assert_eq!(doc.root().kind(), Kind::Dict);
    }

    #[test]
    fn prefix_reports_end() {
        let (doc, end) = decode_prefix(b"d8:msg_typei1e5:piecei0eeRAWBYTES").unwrap();
        assert_eq!(end, 25);
        assert_eq!(doc.root().as_dict().unwrap().get(b"piece").unwrap().as_int(), Some(0));
    }

    #[test]
    fn limits() {
        let deep = vec![b'l'; 200];
        assert_eq!(strict(&deep), Err(Error::DepthExceeded { offset: 128, limit: 128 }));
        let opts = DecodeOptions::new().max_depth(2);
        assert!(opts.decode(b"llee").is_ok());
        assert_eq!(opts.decode(b"llleee"), Err(Error::DepthExceeded { offset: 2, limit: 2 }));
        let opts = DecodeOptions::new().max_tokens(3);
        assert!(opts.decode(b"li1ei2ee").is_ok());
        assert_eq!(opts.decode(b"li1ei2ei3ee"), Err(Error::TooManyValues { offset: 7, limit: 3 }));
        let opts = DecodeOptions::new().max_input_len(4);
        assert_eq!(opts.decode(b"i100e"), Err(Error::InputTooLarge { len: 5, limit: 4 }));
        // Deeper than the inline stack still validates (spill to heap).
        let mut nested = vec![b'l'; 100];
        nested.extend(vec![b'e'; 100]);
        assert!(validate(&nested).is_ok());
        assert_eq!(strict(&nested).unwrap().token_count(), 100);
    }

    #[test]
    fn validate_matches_decode() {
        for input in [&b"d1:ai1ee"[..], b"d1:bi1e1:ai2ee", b"i-0e", b"l", b"lee", b"4:abcd"] {
            assert_eq!(validate(input).err(), decode(input).err(), "{input:?}");
        }
    }

    #[test]
    fn shared_document_hands_out_bytes() {
        let buf = bytes::Bytes::from_static(b"l3:abc3:defe");
        let doc = SharedDocument::decode(buf.clone(), &DecodeOptions::new()).unwrap();
        let second = doc.root().as_list().unwrap().get(1).unwrap().as_bytes().unwrap();
        let shared = doc.share(second);
        assert_eq!(shared, "def");
        assert_eq!(shared.as_ptr(), buf[8..].as_ptr());
        let doc2 = decode(&buf).unwrap().into_shared(buf.clone()).unwrap();
        assert_eq!(doc2.root().raw(), &buf[..]);
    }
}
