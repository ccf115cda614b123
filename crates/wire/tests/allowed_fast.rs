//! BEP 6's own allowed-fast test vectors: 1313 pieces, info-hash twenty 0xAA bytes, peer
//! 80.4.4.200; k = 7 and k = 9 (the 9-set extends the 7-set).

use std::net::Ipv4Addr;

use piecework_wire::{InfoHashV1, allowed_fast_set};

fn set(ip: Ipv4Addr, k: usize) -> Vec<u32> {
    allowed_fast_set(ip, &InfoHashV1::from_bytes([0xaa; 20]), 1313, k).iter().map(|p| p.get()).collect()
}

#[test]
fn bep6_vector_k7() {
    assert_eq!(set(Ipv4Addr::new(80, 4, 4, 200), 7), [1059, 431, 808, 1217, 287, 376, 1188]);
}

#[test]
fn bep6_vector_k9() {
    assert_eq!(set(Ipv4Addr::new(80, 4, 4, 200), 9), [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]);
}

#[test]
fn only_the_slash_24_matters() {
    assert_eq!(set(Ipv4Addr::new(80, 4, 4, 1), 9), set(Ipv4Addr::new(80, 4, 4, 200), 9));
    assert_ne!(set(Ipv4Addr::new(80, 4, 5, 200), 9), set(Ipv4Addr::new(80, 4, 4, 200), 9));
}
