//! Differential tests against `bendy`, a strict bencode decoder: on generated and mutated
//! input, both accept or both reject, and accepted values agree.
//!
//! One deliberate difference: bendy hands integers out as text and accepts any length, while
//! we refuse integers outside `i64` (`IntegerOverflow`); the tests check exactly that.

use bendy::decoding::Decoder;
use bendy::state_tracker::Token;
use piecework_bencode::{Dictionary, Error, Value};
use proptest::prelude::*;

mod common;

enum Bendy<'a> {
    Accepts(Value<'a>),
    /// Structurally valid, but an integer does not fit `i64`.
    AcceptsBigInt,
    Rejects,
}

fn bendy(input: &[u8]) -> Bendy<'_> {
    let mut stack: Vec<(bool, Vec<Value<'_>>)> = Vec::new();
    let mut root = None;
    let mut big = false;
    for tok in Decoder::new(input).with_max_depth(piecework_bencode::DEFAULT_MAX_DEPTH).tokens() {
        let Ok(tok) = tok else { return Bendy::Rejects };
        if root.is_some() {
            return Bendy::Rejects; // a second top-level value: trailing data
        }
        let done = match tok {
            Token::List => {
                stack.push((false, Vec::new()));
                None
            }
            Token::Dict => {
                stack.push((true, Vec::new()));
                None
            }
            Token::String(b) => Some(Value::from(b)),
            Token::Num(n) => Some(Value::Int(n.parse().unwrap_or_else(|_| {
                big = true;
                0
            }))),
            Token::End => {
                let (dict, items) = stack.pop().expect("bendy balances containers");
                Some(if dict {
                    let mut d = Dictionary::new();
                    let mut it = items.into_iter();
                    while let (Some(Value::Bytes(k)), Some(v)) = (it.next(), it.next()) {
                        d.insert(k, v);
                    }
                    Value::Dict(d)
                } else {
                    Value::List(items)
                })
            }
        };
        if let Some(v) = done {
            match stack.last_mut() {
                Some((_, items)) => items.push(v),
                None => root = Some(v),
            }
        }
    }
    match root {
        Some(_) if big => Bendy::AcceptsBigInt,
        Some(v) => Bendy::Accepts(v),
        None => Bendy::Rejects,
    }
}

fn check(data: &[u8]) -> Result<(), TestCaseError> {
    let ours = piecework_bencode::decode(data);
    match (bendy(data), ours) {
        (Bendy::Accepts(theirs), Ok(doc)) => prop_assert_eq!(doc.root().to_value(), theirs),
        (Bendy::Rejects, Err(_)) => {}
        (Bendy::AcceptsBigInt, Err(Error::IntegerOverflow { .. })) => {}
        (Bendy::Accepts(_), Err(e)) => {
            prop_assert!(false, "bendy accepts, we reject with {:?}: {:?}", e, data)
        }
        (Bendy::AcceptsBigInt, r) => {
            prop_assert!(false, "bendy accepts a big int, we say {:?}: {:?}", r, data)
        }
        (Bendy::Rejects, Ok(_)) => prop_assert!(false, "bendy rejects, we accept: {:?}", data),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_on_generated(v in common::arb_value()) {
        check(&v.to_vec())?;
    }

    #[test]
    fn agrees_on_mutated(v in common::arb_value(), muts in common::arb_mutations()) {
        check(&common::mutate(v.to_vec(), &muts))?;
    }
}

#[test]
fn agrees_on_hand_picked_edges() {
    for input in [
        &b"i99999999999999999999e"[..],
        b"d1:ai1e1:ai1ee",
        b"d1:bi1e1:ai1ee",
        b"i-0e",
        b"i03e",
        b"03:abc",
        b"le",
        b"lle",
        b"i1ei2e",
        b"",
    ] {
        check(input).unwrap();
    }
}
