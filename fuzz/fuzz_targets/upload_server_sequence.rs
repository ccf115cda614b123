//! Random request sequences into the server state machine over a memory
//! store. Invariants: an upload's offset only grows and never passes its
//! length, the stored bytes are exactly the accepted bytes (checked against a
//! model), finished uploads carry the BEP 52 root of those bytes, and a
//! reopened server (restart) sees the same state.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use piecework_upload::checksum::{Checksum, ChecksumAlgorithm};
use piecework_upload::headers::encode_checksum;
use piecework_upload::merkle::pieces_root_of;
use piecework_upload::server::BodyEnd;
use piecework_upload::{MemoryStore, Server, ServerConfig, UploadId};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
}

#[derive(Default)]
struct Model {
    bytes: Vec<u8>,
    length: Option<u64>,
    partial: bool,
}

type H = Vec<(&'static str, String)>;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let cfg = ServerConfig {
        max_size: 4096,
        expire_after: Some(Duration::from_secs(100)),
        ..ServerConfig::default()
    };
    let mut server = Server::open(cfg.clone(), MemoryStore::new()).unwrap();
    let mut model: BTreeMap<UploadId, Model> = BTreeMap::new();
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let mut next_id = 0u32;
    let tus = |extra: &[(&'static str, String)]| -> H {
        let mut h = vec![("Tus-Resumable", "1.0.0".to_owned())];
        h.extend(extra.iter().cloned());
        h
    };

    while let Some(op) = input.byte() {
        let ids: Vec<UploadId> = model.keys().cloned().collect();
        let pick = |b: u8| ids.get(usize::from(b) % ids.len().max(1)).cloned();
        match op % 8 {
            0 => {
                let Some(len) = input.u16() else { break };
                let flags = input.byte().unwrap_or(0);
                let id = UploadId::new(&format!("u{next_id}")).unwrap();
                next_id += 1;
                let mut h = if flags & 1 == 1 {
                    tus(&[("Upload-Defer-Length", "1".into())])
                } else {
                    tus(&[("Upload-Length", len.to_string())])
                };
                if flags & 2 == 2 {
                    h.push(("Upload-Concat", "partial".into()));
                }
                if let Ok(r) = server.handle_create(now, id.clone(), &h) {
                    assert_eq!(r.status, 201);
                    let length = (flags & 1 == 0).then_some(u64::from(len));
                    model.insert(id, Model { bytes: vec![], length, partial: flags & 2 == 2 });
                } else {
                    assert!(flags & 1 == 0 && u64::from(len) > cfg.max_size);
                }
            }
            1 => {
                let (Some(which), Some(n), Some(flags)) = (input.byte(), input.byte(), input.byte()) else {
                    break;
                };
                let Some(id) = pick(which) else { continue };
                let body = input.bytes(usize::from(n) * 8);
                let m = model.get(&id).unwrap();
                let offset = if flags & 1 == 1 { u64::from(flags >> 4) } else { m.bytes.len() as u64 };
                let mut h = tus(&[
                    ("Content-Type", "application/offset+octet-stream".into()),
                    ("Upload-Offset", offset.to_string()),
                ]);
                let checksum = flags & 2 == 2;
                if checksum {
                    let good = flags & 4 == 4;
                    let c = Checksum::of(ChecksumAlgorithm::Crc32c, if good { &body } else { b"x" });
                    h.push(("Upload-Checksum", encode_checksum(&c)));
                }
                if flags & 8 == 8 && m.length.is_none() {
                    h.push(("Upload-Length", (m.bytes.len() + body.len()).to_string()));
                }
                let Ok(mut s) = server.begin_patch(now, id.as_str(), &h) else { continue };
                if s.write(&body).is_err() {
                    server.abort_patch(s).unwrap();
                    continue;
                }
                let end = if flags & 0x40 == 0x40 {
                    BodyEnd::Interrupted
                } else {
                    BodyEnd::Complete { trailer: None }
                };
                let interrupted = end == BodyEnd::Interrupted;
                if server.finish_patch(now, s, end).is_ok() {
                    assert!(!(interrupted && checksum));
                    let m = model.get_mut(&id).unwrap();
                    assert_eq!(offset, m.bytes.len() as u64);
                    m.bytes.extend_from_slice(&body);
                    if flags & 8 == 8 && m.length.is_none() {
                        m.length = Some(m.bytes.len() as u64);
                    }
                }
            }
            2 => {
                let Some(which) = input.byte() else { break };
                let Some(id) = pick(which) else { continue };
                let _ = server.handle_head(now, id.as_str(), &tus(&[]));
            }
            3 => {
                let Some(which) = input.byte() else { break };
                let Some(id) = pick(which) else { continue };
                if server.handle_delete(now, id.as_str(), &tus(&[])).is_ok() {
                    model.remove(&id);
                }
            }
            4 => {
                let Some(secs) = input.byte() else { break };
                now += Duration::from_secs(u64::from(secs));
                let _ = server.handle_expire(now);
            }
            5 => {
                let (Some(a), Some(b)) = (input.byte(), input.byte()) else { break };
                let (Some(a), Some(b)) = (pick(a), pick(b)) else { continue };
                let id = UploadId::new(&format!("u{next_id}")).unwrap();
                next_id += 1;
                let h = tus(&[("Upload-Concat", format!("final;/files/{a} /files/{b}"))]);
                if server.handle_create(now, id.clone(), &h).is_ok() {
                    let (ma, mb) = (model.get(&a).unwrap(), model.get(&b).unwrap());
                    assert!(ma.partial && mb.partial);
                    let bytes = [ma.bytes.clone(), mb.bytes.clone()].concat();
                    let length = Some(bytes.len() as u64);
                    model.insert(id, Model { bytes, length, partial: false });
                }
            }
            6 => {
                let store = server.store().clone();
                server = Server::open(cfg.clone(), store).unwrap();
            }
            _ => {
                let Some(which) = input.byte() else { break };
                let Some(id) = pick(which) else { continue };
                let _ = server.handle_head(now + Duration::from_secs(1000), id.as_str(), &tus(&[]));
            }
        }
        // Uploads that expired disappear from both sides.
        model.retain(|id, _| server.info(id).is_some());
        for (id, m) in &model {
            let info = server.info(id).unwrap();
            assert_eq!(info.offset, m.bytes.len() as u64, "offset == accepted bytes");
            assert_eq!(info.length, m.length);
            if let Some(l) = info.length {
                assert!(info.offset <= l, "offset past length");
            }
            assert_eq!(server.store().data(id).unwrap(), m.bytes, "stored == accepted");
            if info.is_finished() {
                assert_eq!(info.root, pieces_root_of(&m.bytes));
            }
        }
        assert_eq!(server.ids().count(), model.len());
    }
});
