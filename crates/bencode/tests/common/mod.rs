//! Generators shared by the property and differential tests.
#![allow(unreachable_pub, dead_code)]

use piecework_bencode::{Dictionary, Value};
use proptest::prelude::*;

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..max),
        // Mostly-ASCII keys collide and sort in interesting ways.
        prop::collection::vec(prop::sample::select(b"ab0:e".to_vec()), 0..4),
    ]
}

pub fn arb_value() -> impl Strategy<Value = Value<'static>> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        (-1000i64..1000).prop_map(Value::Int),
        arb_bytes(24).prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            prop::collection::vec((arb_bytes(8), inner), 0..8)
                .prop_map(|entries| Value::Dict(entries.into_iter().collect::<Dictionary<'static>>())),
        ]
    })
}

#[derive(Debug, Clone)]
pub enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

pub fn arb_mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let interesting = prop::sample::select(b"ilde0123456789:-+x".to_vec());
    let byte = prop_oneof![interesting, any::<u8>()];
    let m = prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), byte).prop_map(|(p, b)| Mutation::Insert(p, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ];
    prop::collection::vec(m, 0..3)
}

pub fn mutate(mut data: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = data.len();
        match *m {
            Mutation::Flip(p, b) if n > 0 => data[p % n] = b,
            Mutation::Insert(p, b) => data.insert(p % (n + 1), b),
            Mutation::Remove(p) if n > 0 => {
                data.remove(p % n);
            }
            Mutation::Truncate(p) => data.truncate(p % (n + 1)),
            _ => {}
        }
    }
    data
}
