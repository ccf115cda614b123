//! Hard limits hold against hostile input without touching the call stack or the allocator in
//! proportion to what the input declares.

use piecework_bencode::{DecodeOptions, Error};

#[test]
fn a_million_nested_lists_on_a_small_stack() {
    let input = vec![b'l'; 1_000_000];
    let handle = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let strict = piecework_bencode::decode(&input).unwrap_err();
            let validated = piecework_bencode::validate(&input).unwrap_err();
            let serde = piecework_bencode::from_bytes::<serde::de::IgnoredAny>(&input).unwrap_err();
            // Even a caller who raises the limit a lot gets an error, not an overflow.
            let raised = DecodeOptions::new().max_depth(100_000).decode(&input).unwrap_err();
            (strict, validated, serde, raised)
        })
        .unwrap();
    let (strict, validated, serde, raised) = handle.join().expect("no stack overflow");
    let want = Error::DepthExceeded { offset: 128, limit: 128 };
    assert_eq!(strict, want);
    assert_eq!(validated, want);
    assert_eq!(serde, want);
    assert_eq!(raised, Error::DepthExceeded { offset: 100_000, limit: 100_000 });
}

#[test]
fn declared_lengths_allocate_nothing_up_front() {
    // A 4 GiB string declared in 12 bytes is just an unexpected end.
    assert_eq!(piecework_bencode::decode(b"4294967295:x"), Err(Error::UnexpectedEnd { offset: 12 }));
    assert_eq!(
        piecework_bencode::from_bytes::<serde_bytes::ByteBuf>(b"18446744073709551615:"),
        Err(Error::InvalidLength { offset: 0 })
    );
}

#[test]
fn token_limit_caps_tape_memory() {
    let mut input = b"l".to_vec();
    input.extend(std::iter::repeat_n(&b"0:"[..], 10_000).flatten());
    input.push(b'e');
    let opts = DecodeOptions::new().max_tokens(5_000);
    assert_eq!(opts.decode(&input), Err(Error::TooManyValues { offset: 1 + 2 * 4_999, limit: 5_000 }));
    assert_eq!(opts.validate(&input), Err(Error::TooManyValues { offset: 1 + 2 * 4_999, limit: 5_000 }));
    assert_eq!(DecodeOptions::new().decode(&input).unwrap().token_count(), 10_001);
}

#[test]
fn input_limit() {
    let opts = DecodeOptions::new().max_input_len(10);
    assert!(opts.decode(b"10:aaaaaaa").is_err());
    assert_eq!(opts.decode(b"11:aaaaaaaaaaa"), Err(Error::InputTooLarge { len: 14, limit: 10 }));
    assert_eq!(
        piecework_bencode::from_bytes_with::<serde::de::IgnoredAny>(b"11:aaaaaaaaaaa", &opts).unwrap_err(),
        Error::InputTooLarge { len: 14, limit: 10 }
    );
}
