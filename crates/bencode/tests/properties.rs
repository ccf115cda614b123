//! Property tests: round trips on generated values, and agreement of every entry point on
//! generated-then-mutated input.

use piecework_bencode::{DecodeOptions, Value};
use proptest::prelude::*;

mod common;
use common::{arb_mutations, arb_value, mutate};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_round_trip(v in arb_value()) {
        let enc = v.to_vec();
        prop_assert_eq!(enc.len(), v.encoded_len());
        let doc = piecework_bencode::decode(&enc).unwrap();
        prop_assert_eq!(doc.root().to_value(), v.clone());
        prop_assert_eq!(doc.root().raw(), &enc[..]);
        prop_assert!(piecework_bencode::validate(&enc).is_ok());
        prop_assert_eq!(Value::decode_with(&enc, &DecodeOptions::lenient()).unwrap(), v.clone());
        // serde agrees in both directions.
        let via_serde: Value<'_> = piecework_bencode::from_bytes(&enc).unwrap();
        prop_assert_eq!(&via_serde, &v);
        prop_assert_eq!(piecework_bencode::to_vec(&v).unwrap(), enc.clone());
        // The streaming encoder writes the same bytes.
        let mut e = piecework_bencode::Encoder::new(Vec::new());
        stream(&mut e, &v);
        prop_assert_eq!(e.finish().unwrap(), enc);
    }

    #[test]
    fn entry_points_agree_on_mutated_input(v in arb_value(), muts in arb_mutations()) {
        let data = mutate(v.to_vec(), &muts);
        for opts in [DecodeOptions::new(), DecodeOptions::lenient()] {
            let decoded = opts.decode(&data);
            let validated = opts.validate(&data);
            let serde = piecework_bencode::from_bytes_with::<serde::de::IgnoredAny>(&data, &opts).map(|_| ());
            prop_assert_eq!(decoded.as_ref().err(), validated.as_ref().err());
            prop_assert_eq!(decoded.as_ref().err(), serde.as_ref().err());
            if let Ok(doc) = decoded {
                prop_assert_eq!(doc.root().raw(), &data[..]);
                if !opts.is_lenient() {
                    // Strictly accepted input is canonical: it re-encodes byte for byte.
                    prop_assert_eq!(doc.root().to_value().to_vec(), data.clone());
                    prop_assert!(DecodeOptions::lenient().decode(&data).is_ok());
                } else {
                    // Anything accepted re-encodes to something that decodes strictly and equal.
                    let v1 = doc.root().to_value();
                    let re = v1.to_vec();
                    prop_assert_eq!(Value::decode(&re).unwrap(), v1);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let a = piecework_bencode::decode(&data).err();
        let b = piecework_bencode::validate(&data).err();
        prop_assert_eq!(a, b);
        let _ = DecodeOptions::lenient().decode(&data);
        let _ = piecework_bencode::from_bytes::<Value<'_>>(&data);
    }
}

fn stream(e: &mut piecework_bencode::Encoder<Vec<u8>>, v: &Value<'_>) {
    match v {
        Value::Int(i) => e.int(*i).unwrap(),
        Value::Bytes(b) => e.bytes(b).unwrap(),
        Value::List(l) => {
            e.begin_list().unwrap();
            for x in l {
                stream(e, x);
            }
            e.end().unwrap();
        }
        Value::Dict(d) => {
            e.begin_dict().unwrap();
            for (k, x) in d.iter() {
                e.key(k).unwrap();
                stream(e, x);
            }
            e.end().unwrap();
        }
    }
}
