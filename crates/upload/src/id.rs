//! Newtypes for upload ids and offsets.

use crate::Error;

/// Longest upload id accepted.
pub const MAX_ID_LEN: usize = 64;

/// An upload id: 1 to 64 of `[A-Za-z0-9_-]`, so it can never name a path
/// outside the store directory (no `/`, `.`, `\` or NUL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

impl UploadId {
    /// Validates an id taken from a URL or a file name.
    pub fn new(s: &str) -> Result<Self, Error> {
        if s.is_empty()
            || s.len() > MAX_ID_LEN
            || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::InvalidUploadId);
        }
        Ok(Self(s.to_owned()))
    }

    /// Builds an id from 16 random bytes (hex encoded).
    pub fn from_random(bytes: [u8; 16]) -> Self {
        let mut s = String::with_capacity(32);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A byte offset within an upload (`Upload-Offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UploadOffset(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape() {
        for bad in ["", "..", "../etc", "a/b", "a\\b", ".hidden", "a\0", "a b", "é"] {
            assert!(UploadId::new(bad).is_err(), "{bad:?}");
        }
        assert!(UploadId::new(&"a".repeat(65)).is_err());
        assert!(UploadId::new("abc_DEF-123").is_ok());
        assert_eq!(UploadId::from_random([0xab; 16]).as_str().len(), 32);
    }
}
