//! tus checksum extension: algorithms and streaming hashers.

use md5::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::Error;

/// A checksum algorithm of the tus checksum extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChecksumAlgorithm {
    /// SHA-1 (20 bytes).
    Sha1,
    /// SHA-256 (32 bytes).
    Sha256,
    /// MD5 (16 bytes).
    Md5,
    /// CRC-32C, big-endian (4 bytes).
    Crc32c,
}

impl ChecksumAlgorithm {
    /// All supported algorithms, in `Tus-Checksum-Algorithm` order.
    pub const ALL: [ChecksumAlgorithm; 4] = [
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Md5,
        ChecksumAlgorithm::Crc32c,
    ];

    /// Name as used in headers.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Md5 => "md5",
            ChecksumAlgorithm::Crc32c => "crc32c",
        }
    }

    /// Looks an algorithm up by its header name (case-insensitive).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
            ChecksumAlgorithm::Md5 => 16,
            ChecksumAlgorithm::Crc32c => 4,
        }
    }

    /// A fresh streaming hasher.
    pub fn hasher(self) -> ChecksumHasher {
        ChecksumHasher(match self {
            ChecksumAlgorithm::Sha1 => Inner::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Inner::Sha256(sha2::Sha256::new()),
            ChecksumAlgorithm::Md5 => Inner::Md5(md5::Md5::new()),
            ChecksumAlgorithm::Crc32c => Inner::Crc32c(0),
        })
    }
}

/// An expected checksum: algorithm plus digest of the right length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    algorithm: ChecksumAlgorithm,
    digest: Vec<u8>,
}

impl Checksum {
    /// Checks the digest length against the algorithm.
    pub fn new(algorithm: ChecksumAlgorithm, digest: Vec<u8>) -> Result<Self, Error> {
        if digest.len() != algorithm.digest_len() {
            return Err(Error::MalformedHeader { name: crate::headers::UPLOAD_CHECKSUM });
        }
        Ok(Self { algorithm, digest })
    }

    /// Computes the checksum of `data`.
    pub fn of(algorithm: ChecksumAlgorithm, data: &[u8]) -> Self {
        let mut h = algorithm.hasher();
        h.update(data);
        h.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// The raw digest.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &Checksum) -> bool {
        self.algorithm == other.algorithm && bool::from(self.digest.ct_eq(&other.digest))
    }
}

#[derive(Clone)]
enum Inner {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Md5(md5::Md5),
    Crc32c(u32),
}

/// Streaming hasher for one [`ChecksumAlgorithm`].
#[derive(Clone)]
pub struct ChecksumHasher(Inner);

impl std::fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChecksumHasher")
    }
}

impl ChecksumHasher {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Inner::Sha1(h) => h.update(data),
            Inner::Sha256(h) => h.update(data),
            Inner::Md5(h) => h.update(data),
            Inner::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
        }
    }

    /// The algorithm it hashes with.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self.0 {
            Inner::Sha1(_) => ChecksumAlgorithm::Sha1,
            Inner::Sha256(_) => ChecksumAlgorithm::Sha256,
            Inner::Md5(_) => ChecksumAlgorithm::Md5,
            Inner::Crc32c(_) => ChecksumAlgorithm::Crc32c,
        }
    }

    /// The finished checksum.
    pub fn finish(self) -> Checksum {
        let algorithm = self.algorithm();
        let digest = match self.0 {
            Inner::Sha1(h) => h.finalize().to_vec(),
            Inner::Sha256(h) => h.finalize().to_vec(),
            Inner::Md5(h) => h.finalize().to_vec(),
            Inner::Crc32c(c) => c.to_be_bytes().to_vec(),
        };
        Checksum { algorithm, digest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let hex = |c: Checksum| c.digest().iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(Checksum::of(ChecksumAlgorithm::Sha1, b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(Checksum::of(ChecksumAlgorithm::Md5, b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(Checksum::of(ChecksumAlgorithm::Sha256, b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 3720 test vector: 32 bytes of zeros.
        assert_eq!(hex(Checksum::of(ChecksumAlgorithm::Crc32c, &[0u8; 32])), "8a9136aa");
    }

    #[test]
    fn streaming_equals_oneshot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        for alg in ChecksumAlgorithm::ALL {
            let mut h = alg.hasher();
            for c in data.chunks(333) {
                h.update(c);
            }
            assert!(h.finish().matches(&Checksum::of(alg, &data)));
        }
        assert!(
            !Checksum::of(ChecksumAlgorithm::Md5, b"a").matches(&Checksum::of(ChecksumAlgorithm::Md5, b"b"))
        );
    }
}
