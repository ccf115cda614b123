//! Safe file paths: sanitizing what a torrent says the way libtorrent does, so nothing can name
//! a path outside the download folder.
//!
//! Rules for one path element (a name or one entry of a `path` list):
//! - `/`, `\` and NUL are removed, and so are the Unicode bidi controls U+200E, U+200F and
//!   U+202A..U+202E (they disguise extensions);
//! - control characters and invalid UTF-8 become `_`;
//! - `.` and `..` are dropped;
//! - an element left empty (only separators, or empty to begin with) becomes `_` inside a
//!   file's `path` list, and a path left with no element at all becomes `_`, so a file never
//!   collapses onto its directory;
//! - elements are cut to about 240 bytes, keeping a short extension.
//!
//! The result is always valid UTF-8; the torrent's original bytes stay available on
//! [`crate::FileEntry::raw_path`].

use core::fmt;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Longest element in bytes before it is cut (libtorrent's figure).
const MAX_ELEMENT: usize = 240;

/// A relative path whose every component is safe to create under a download folder: never
/// empty, `.` or `..`, and never containing a separator, a NUL or a control character.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SafePath(Vec<String>);

impl SafePath {
    /// The components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.0
    }
    /// Number of components.
    pub fn depth(&self) -> usize {
        self.0.len()
    }
    /// Joins the components onto `root` (the download folder).
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for c in &self.0 {
            p.push(c);
        }
        p
    }
    /// The path as a relative [`PathBuf`].
    pub fn to_path_buf(&self) -> PathBuf {
        self.0.iter().collect()
    }
    /// Builds a safe path from arbitrary elements, sanitizing each as a required element.
    pub fn sanitize<'x>(elements: impl IntoIterator<Item = &'x [u8]>) -> Self {
        let mut v = Vec::new();
        for e in elements {
            append_element(&mut v, e, true);
        }
        if v.is_empty() {
            v.push("_".to_owned());
        }
        Self(v)
    }
    pub(crate) fn from_components(v: Vec<String>) -> Self {
        Self(v)
    }
    /// Whether every component obeys the invariant (used by tests and the fuzzer).
    pub fn is_safe(&self) -> bool {
        !self.0.is_empty()
            && self.0.iter().all(|c| {
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && !c.contains(['/', '\\', '\0'])
                    && !c.chars().any(char::is_control)
            })
    }
}

impl fmt::Display for SafePath {
    /// Components joined with `/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(c)?;
        }
        Ok(())
    }
}
impl fmt::Debug for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafePath({self})")
    }
}

/// Characters dropped outright: separators, NUL (libtorrent drops it too), bidi controls.
fn filtered(c: char) -> bool {
    matches!(c, '/' | '\\' | '\0' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}')
}

/// Sanitizes one element and appends it to `out`; returns whether it appended one.
/// `required`: an element of a `path` list, which turns into `_` when nothing is left of it
/// (`.` and `..` are dropped all the same).
pub(crate) fn append_element(out: &mut Vec<String>, element: &[u8], required: bool) -> bool {
    if element == b"." || element == b".." {
        return false;
    }
    if element.is_empty() {
        if required {
            out.push("_".to_owned());
        }
        return required;
    }
    // Fast path: plain printable ASCII, short, not only dots.
    if element.len() < MAX_ELEMENT
        && element.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'/' && b != b'\\')
        && element.iter().any(|&b| b != b'.')
        && let Ok(s) = core::str::from_utf8(element)
    {
        out.push(s.to_owned());
        return true;
    }
    let mut s = String::with_capacity(element.len().min(MAX_ELEMENT + 16));
    let mut dots = 0usize;
    let mut cut = false;
    'outer: for chunk in element.utf8_chunks() {
        for c in chunk.valid().chars() {
            if filtered(c) {
                continue;
            }
            if c.is_control() {
                s.push('_');
            } else {
                s.push(c);
                if c == '.' {
                    dots += 1;
                }
            }
            if s.len() >= MAX_ELEMENT {
                cut = true;
                break 'outer;
            }
        }
        if !chunk.invalid().is_empty() {
            s.push('_');
        }
    }
    if cut {
        // Keep a short extension from the original, as libtorrent does.
        let tail = &element[element.len().saturating_sub(10)..];
        if let Some(dot) = tail.iter().rposition(|&b| b == b'.') {
            let ext = &tail[dot..];
            if let Ok(ext) = core::str::from_utf8(ext)
                && !ext.contains(filtered)
                && !ext.chars().any(char::is_control)
                && !s.ends_with(ext)
            {
                s.push_str(ext);
            }
        }
    }
    if s.is_empty() {
        // Nothing but separators (or nothing at all): a required element becomes `_`.
        if required {
            out.push("_".to_owned());
            return true;
        }
        return false;
    }
    if s.len() == dots && dots <= 2 {
        // `.` and `..` never name anything: dropped, as libtorrent does.
        return false;
    }
    out.push(s);
    true
}

/// Appends `c` lowercased (ASCII in place, a whole-string copy; char by char is slow).
fn push_lowercase(out: &mut String, c: &str) {
    if c.is_ascii() {
        let start = out.len();
        out.push_str(c);
        out[start..].make_ascii_lowercase();
    } else {
        out.push_str(&c.to_lowercase());
    }
}

/// Lowercased `a/b/c` form of a path, the key duplicates are found by.
fn key_of(p: &SafePath) -> String {
    let mut k = String::with_capacity(p.0.iter().map(|c| c.len() + 1).sum());
    for (i, c) in p.0.iter().enumerate() {
        if i > 0 {
            k.push('/');
        }
        push_lowercase(&mut k, c);
    }
    k
}

/// A hasher for values that are already keyed SipHash outputs: hashing them again would only
/// cost time, and an attacker cannot predict them.
#[derive(Clone, Copy, Default)]
struct PreHashed;
impl std::hash::BuildHasher for PreHashed {
    type Hasher = PreHashedHasher;
    fn build_hasher(&self) -> PreHashedHasher {
        PreHashedHasher(0)
    }
}
struct PreHashedHasher(u64);
impl std::hash::Hasher for PreHashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here; fold anything else in so the hasher stays total.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The common case, cheaply: hash every lowercased path and directory (one reused buffer, no
/// per-file allocation). No hash seen twice means no duplicates; any repeat (a real duplicate,
/// pad files sharing a name, or a hash collision) sends the caller to the exact pass.
fn no_duplicates_fast(files: &[(&mut SafePath, bool, u64)]) -> bool {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    let mut dirs: HashSet<u64, PreHashed> = HashSet::default();
    let mut names: HashSet<u64, PreHashed> = HashSet::with_capacity_and_hasher(files.len(), PreHashed);
    let mut buf = String::new();
    let mut prev = String::new();
    for (p, _, _) in files {
        core::mem::swap(&mut buf, &mut prev);
        buf.clear();
        for (i, c) in p.0.iter().enumerate() {
            if i > 0 {
                // Files of one directory usually come together: skip directories already seen.
                let n = buf.len();
                let seen =
                    prev.as_bytes().get(..n) == Some(buf.as_bytes()) && prev.as_bytes().get(n) == Some(&b'/');
                if !seen {
                    dirs.insert(state.hash_one(buf.as_str()));
                }
                buf.push('/');
            }
            push_lowercase(&mut buf, c);
        }
        if !names.insert(state.hash_one(buf.as_str())) {
            return false;
        }
    }
    names.is_disjoint(&dirs)
}

/// Renames duplicate paths (compared case-insensitively, and against directories) to
/// `name.1.ext`, `name.2.ext`, ... Pad files of equal size may share a name.
/// Fails once more than `max_collisions` candidate names were taken.
pub(crate) fn resolve_duplicates(
    mut files: Vec<(&mut SafePath, bool, u64)>,
    max_collisions: usize,
) -> Result<(), usize> {
    use std::collections::HashMap;
    if no_duplicates_fast(&files) {
        return Ok(());
    }
    let keys: Vec<String> = files.iter().map(|(p, _, _)| key_of(p)).collect();
    // Every directory is a prefix of some key, cut at a `/`.
    let mut dirs: HashSet<&str> = HashSet::new();
    for k in &keys {
        let mut rest = k.as_str();
        while let Some(i) = rest.rfind('/') {
            rest = &k[..i];
            if !dirs.insert(rest) {
                break; // its parents are in already
            }
        }
    }
    // name -> (is pad, size) of the file that holds it; original names borrow from `keys`.
    let mut taken: HashMap<&str, (bool, u64)> = HashMap::with_capacity(keys.len());
    let mut renamed: HashMap<String, (bool, u64)> = HashMap::new();
    let mut collisions = 0usize;
    for ((p, pad, size), key) in files.iter_mut().zip(&keys) {
        let holder = taken.get(key.as_str()).or_else(|| renamed.get(key));
        let clash = dirs.contains(key.as_str())
            || holder.is_some_and(|&(opad, osize)| !(*pad && opad && *size == osize));
        if !clash {
            taken.entry(key.as_str()).or_insert((*pad, *size));
            continue;
        }
        let Some(last) = p.0.last().cloned() else { continue };
        let (base, ext) = match last.rfind('.') {
            Some(i) if i > 0 => (last[..i].to_owned(), last[i..].to_owned()),
            _ => (last.clone(), String::new()),
        };
        let mut n = 1usize;
        loop {
            if let Some(slot) = p.0.last_mut() {
                *slot = format!("{base}.{n}{ext}");
            }
            let k = key_of(p);
            if !dirs.contains(k.as_str()) && !taken.contains_key(k.as_str()) && !renamed.contains_key(&k) {
                renamed.insert(k, (*pad, *size));
                break;
            }
            collisions += 1;
            if collisions > max_collisions {
                return Err(max_collisions);
            }
            n += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn el(e: &[u8], required: bool) -> Vec<String> {
        let mut v = Vec::new();
        append_element(&mut v, e, required);
        v
    }

    #[test]
    fn libtorrent_element_rules() {
        assert_eq!(el(b"..", false), Vec::<String>::new());
        assert_eq!(el(b"..", true), Vec::<String>::new());
        assert_eq!(el(b".", true), Vec::<String>::new());
        assert_eq!(el(b"/..", true), Vec::<String>::new());
        assert_eq!(el(b"/", true), vec!["_"]);
        assert_eq!(el(b"", true), vec!["_"]);
        assert_eq!(el(b"abc/../../def", true), vec!["abc....def"]);
        assert_eq!(el(b"temp/../../abc", false), vec!["temp....abc"]);
        assert_eq!(el(b"/foobar", true), vec!["foobar"]);
        assert_eq!(el(b"\x82est/MB", true), vec!["_estMB"]);
        assert_eq!(el(b"a\x01b", true), vec!["a_b"]);
        assert_eq!(el("x\u{202e}gpj.exe".as_bytes(), true), vec!["xgpj.exe"]);
        assert_eq!(el(b"foobar ", false), vec!["foobar "]);
        assert_eq!(el(b"...", true), vec!["..."]);
        let long = [b'a'; 300].iter().copied().chain(*b".txt").collect::<Vec<u8>>();
        let v = el(&long, true);
        assert!(v[0].len() <= 250 && v[0].ends_with(".txt"), "{v:?}");
    }

    #[test]
    fn duplicates_get_numbered() {
        let p = |s: &str| SafePath::from_components(s.split('/').map(str::to_owned).collect());
        let mut files = [p("t/foo/bar.txt"), p("T/FOO/bar.txt"), p("t/foo")];
        resolve_duplicates(files.iter_mut().map(|f| (f, false, 1)).collect(), 100).unwrap();
        assert_eq!(files[1].to_string(), "T/FOO/bar.1.txt");
        assert_eq!(files[2].to_string(), "t/foo.1");
        let mut pads = [p("t/.pad/5"), p("t/.pad/5")];
        resolve_duplicates(pads.iter_mut().map(|f| (f, true, 5)).collect(), 100).unwrap();
        assert_eq!(pads[1].to_string(), "t/.pad/5");
        let mut many: Vec<_> = (0..200).map(|_| p("t/a")).collect();
        assert_eq!(resolve_duplicates(many.iter_mut().map(|f| (f, false, 1)).collect(), 1000), Err(1000));
    }

    proptest! {
        /// The fast check never hides a duplicate the exact pass would rename, and after the
        /// exact pass every path is unique (case-insensitively) and no file is a directory.
        #[test]
        fn duplicate_resolution_matches_oracle(paths in proptest::collection::vec("[aA](/[abB]){0,2}", 1..12)) {
            let mk = |s: &String| SafePath::from_components(s.split('/').map(str::to_owned).collect());
            let mut a: Vec<SafePath> = paths.iter().map(mk).collect();
            let before = a.clone();
            let fast = no_duplicates_fast(&a.iter_mut().map(|f| (f, false, 1)).collect::<Vec<_>>());
            resolve_duplicates(a.iter_mut().map(|f| (f, false, 1)).collect(), 10_000).unwrap();
            if fast {
                prop_assert_eq!(&a, &before);
            }
            let keys: Vec<String> = a.iter().map(|p| p.to_string().to_lowercase()).collect();
            let unique: HashSet<&String> = keys.iter().collect();
            prop_assert_eq!(unique.len(), keys.len());
            for k in &keys {
                prop_assert!(!keys.iter().any(|o| o.starts_with(&format!("{k}/"))), "{} is a directory too", k);
            }
        }

        #[test]
        fn any_bytes_give_a_safe_path(elems in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..5)) {
            let p = SafePath::sanitize(elems.iter().map(Vec::as_slice));
            prop_assert!(p.is_safe(), "{:?}", p);
            let pb = p.under(Path::new("/dl"));
            prop_assert!(pb.starts_with("/dl"));
            prop_assert!(pb.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::RootDir)));
        }
    }
}
