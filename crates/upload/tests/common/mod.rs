//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use piecework_upload::http_server::{RunningServer, ServeConfig, spawn};

/// Deterministic, poorly compressible test data.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

pub fn config(dir: &Path) -> ServeConfig {
    let mut c = ServeConfig::new(dir);
    c.secret = SECRET.to_vec();
    c.idle_timeout = Duration::from_millis(500);
    c
}

pub async fn start(cfg: ServeConfig) -> RunningServer {
    spawn(cfg).await.expect("server starts")
}

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The id at the end of an upload URL.
pub fn id_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// Bytes stored for upload `url` in store `dir`.
pub fn stored(dir: &Path, url: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("{}.bin", id_of(url)))).unwrap()
}
