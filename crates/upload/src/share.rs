//! Sharing finished uploads: signed expiring links, Argon2id passwords,
//! multi-file manifests and `Range` parsing. Pure functions: secrets, salts
//! and time are passed in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac as _};

use crate::Error;
use crate::id::UploadId;

type HmacSha256 = Hmac<sha2::Sha256>;

fn mac(secret: &[u8], share: &str, expires: u64) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut m = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(b"piecework-share-v1\0");
    m.update(share.as_bytes());
    m.update(b"\0");
    m.update(expires.to_string().as_bytes());
    m
}

/// Signs a link to `share` valid until `expires` (Unix seconds); returns
/// the base64url signature.
pub fn sign_link(secret: &[u8], share: &str, expires: u64) -> String {
    B64URL.encode(mac(secret, share, expires).finalize().into_bytes())
}

/// Builds the query string `exp=..&sig=..` for a share link.
pub fn link_query(secret: &[u8], share: &str, expires: u64) -> String {
    format!("exp={expires}&sig={}", sign_link(secret, share, expires))
}

/// Checks a link: a bad signature is [`Error::LinkTampered`] (403), checked in
/// constant time before the expiry, which gives [`Error::LinkExpired`] (410).
pub fn verify_link(
    secret: &[u8],
    share: &str,
    expires: u64,
    sig: &str,
    now: SystemTime,
) -> Result<(), Error> {
    let raw = B64URL.decode(sig).map_err(|_| Error::LinkTampered)?;
    mac(secret, share, expires).verify_slice(&raw).map_err(|_| Error::LinkTampered)?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    if now >= expires {
        return Err(Error::LinkExpired);
    }
    Ok(())
}

/// Argon2id cost settings. Defaults follow OWASP (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1 }
    }
}

/// Hashes a share password with Argon2id; `salt` comes from the caller's RNG.
/// Returns a PHC string.
pub fn hash_password(password: &[u8], salt: [u8; 16], p: PasswordParams) -> Result<String, Error> {
    let params =
        argon2::Params::new(p.m_cost_kib, p.t_cost, p.p_cost, None).map_err(|_| Error::PasswordHash)?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(&salt).map_err(|_| Error::PasswordHash)?;
    Ok(a.hash_password(password, &salt).map_err(|_| Error::PasswordHash)?.to_string())
}

/// Checks a password against a PHC string ([`Error::WrongPassword`] = 401).
pub fn verify_password(phc: &str, password: &[u8]) -> Result<(), Error> {
    let h = PasswordHash::new(phc).map_err(|_| Error::PasswordHash)?;
    argon2::Argon2::default().verify_password(password, &h).map_err(|_| Error::WrongPassword)
}

/// Most files in one share.
pub const MAX_SHARE_FILES: usize = 1024;

/// One or more finished uploads shared under one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareManifest {
    /// Files in order: upload id and the name to download it as.
    pub files: Vec<(UploadId, String)>,
    /// Argon2id PHC hash, if a password is required.
    pub password: Option<String>,
}

/// Makes a download name safe: one path component, no control characters.
pub fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_control() || c == '/' || c == '\\' || c == '"' { '_' } else { c })
        .take(100)
        .collect();
    if s.is_empty() || s == "." || s == ".." { "file".to_owned() } else { s }
}

impl ShareManifest {
    /// Serializes to lines (`file <id> <base64url name>`, `password <phc>`).
    pub fn encode(&self) -> String {
        let mut s = String::from("piecework-share 1\n");
        for (id, name) in &self.files {
            s.push_str(&format!("file {} {}\n", id.as_str(), B64URL.encode(name)));
        }
        if let Some(p) = &self.password {
            s.push_str(&format!("password {p}\n"));
        }
        s
    }

    /// Parses [`ShareManifest::encode`] output.
    pub fn decode(text: &str) -> Result<Self, Error> {
        let bad = || Error::CorruptRecord { what: "share" };
        let mut lines = text.lines();
        if lines.next() != Some("piecework-share 1") {
            return Err(bad());
        }
        let mut m = ShareManifest { files: Vec::new(), password: None };
        for line in lines {
            let (k, v) = line.split_once(' ').ok_or_else(bad)?;
            match k {
                "file" => {
                    if m.files.len() >= MAX_SHARE_FILES {
                        return Err(bad());
                    }
                    let (id, name) = v.split_once(' ').ok_or_else(bad)?;
                    let name = B64URL.decode(name).map_err(|_| bad())?;
                    let name = String::from_utf8(name).map_err(|_| bad())?;
                    m.files.push((UploadId::new(id)?, sanitize_name(&name)));
                }
                "password" => m.password = Some(v.to_owned()),
                _ => return Err(bad()),
            }
        }
        if m.files.is_empty() {
            return Err(bad());
        }
        Ok(m)
    }
}

/// Parses a single-range `Range` header against a resource of `len` bytes.
/// Returns the inclusive byte range; `Ok(None)` means "serve everything"
/// (absent, multi-range or a unit we ignore, as RFC 9110 allows).
pub fn parse_range(value: Option<&[u8]>, len: u64) -> Result<Option<(u64, u64)>, Error> {
    let Some(v) = value else { return Ok(None) };
    let Ok(v) = std::str::from_utf8(v) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Error::RangeNotSatisfiable)?;
    let num = |s: &str| {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            Err(Error::RangeNotSatisfiable)
        } else {
            s.parse::<u64>().map_err(|_| Error::RangeNotSatisfiable)
        }
    };
    let (start, end) = if a.is_empty() {
        let n = num(b)?;
        if n == 0 || len == 0 {
            return Err(Error::RangeNotSatisfiable);
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let s = num(a)?;
        let e = if b.is_empty() { u64::MAX } else { num(b)? };
        if s >= len || e < s {
            return Err(Error::RangeNotSatisfiable);
        }
        (s, e.min(len - 1))
    };
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_tamper_expire() {
        let secret = b"k".repeat(32);
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let sig = sign_link(&secret, "s1", 2000);
        assert!(verify_link(&secret, "s1", 2000, &sig, now).is_ok());
        assert!(matches!(verify_link(&secret, "s1", 2001, &sig, now), Err(Error::LinkTampered)));
        assert!(matches!(verify_link(&secret, "s2", 2000, &sig, now), Err(Error::LinkTampered)));
        assert!(matches!(verify_link(b"other", "s1", 2000, &sig, now), Err(Error::LinkTampered)));
        assert!(matches!(verify_link(&secret, "s1", 2000, "!!", now), Err(Error::LinkTampered)));
        let later = UNIX_EPOCH + Duration::from_secs(2000);
        let e = verify_link(&secret, "s1", 2000, &sig, later).unwrap_err();
        assert_eq!(e.status(), 410);
    }

    #[test]
    fn passwords() {
        let p = PasswordParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };
        let h = hash_password(b"hunter2", [7; 16], p).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, b"hunter2").is_ok());
        assert_eq!(verify_password(&h, b"hunter3").unwrap_err().status(), 401);
        assert!(verify_password("junk", b"x").is_err());
    }

    #[test]
    fn manifest_roundtrip() {
        let m = ShareManifest {
            files: vec![
                (UploadId::new("a").unwrap(), "report 1.pdf".into()),
                (UploadId::new("b").unwrap(), "ü.txt".into()),
            ],
            password: Some("$argon2id$x".into()),
        };
        assert_eq!(ShareManifest::decode(&m.encode()).unwrap(), m);
        assert!(ShareManifest::decode("piecework-share 1\n").is_err());
        assert_eq!(sanitize_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(sanitize_name(".."), "file");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10).unwrap(), None);
        assert_eq!(parse_range(Some(b"bytes=0-3"), 10).unwrap(), Some((0, 3)));
        assert_eq!(parse_range(Some(b"bytes=5-"), 10).unwrap(), Some((5, 9)));
        assert_eq!(parse_range(Some(b"bytes=-3"), 10).unwrap(), Some((7, 9)));
        assert_eq!(parse_range(Some(b"bytes=2-99"), 10).unwrap(), Some((2, 9)));
        assert_eq!(parse_range(Some(b"bytes=0-1,3-4"), 10).unwrap(), None);
        for bad in [&b"bytes=10-"[..], b"bytes=5-2", b"bytes=-0", b"bytes=x-1", b"bytes=-"] {
            assert!(parse_range(Some(bad), 10).is_err(), "{bad:?}");
        }
    }
}
