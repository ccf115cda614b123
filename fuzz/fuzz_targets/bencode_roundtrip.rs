//! Round trips: the first value of arbitrary input (prefix decoding, as for BEP 9 messages),
//! re-encoded through the value tree and through the streaming encoder, decodes back equal; a
//! canonical value re-encodes byte-identical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use piecework_bencode::{DecodeOptions, Encoder, Node, Value};

fn stream(e: &mut Encoder<Vec<u8>>, node: Node<'_, '_>) {
    use piecework_bencode::Kind;
    match node.kind() {
        Kind::Int => e.int(node.as_int().unwrap()).unwrap(),
        Kind::Bytes => e.bytes(node.as_bytes().unwrap()).unwrap(),
        Kind::List => {
            e.begin_list().unwrap();
            for item in node.as_list().unwrap() {
                stream(e, item);
            }
            e.end().unwrap();
        }
        Kind::Dict => {
            e.begin_dict().unwrap();
            for (k, v) in node.as_dict().unwrap().iter() {
                e.key(k).unwrap();
                stream(e, v);
            }
            e.end().unwrap();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok((doc, end)) = DecodeOptions::new().decode_prefix(data) else { return };
    assert!(end <= data.len());
    let raw = doc.root().raw();
    assert_eq!(raw, &data[..end]);
    let value = doc.root().to_value();
    let encoded = value.to_vec();
    assert_eq!(encoded, raw, "strict input is canonical");
    let mut e = Encoder::new(Vec::new());
    stream(&mut e, doc.root());
    assert_eq!(e.finish().unwrap(), raw);
    assert_eq!(Value::decode(&encoded).unwrap(), value);
    assert_eq!(piecework_bencode::to_vec(&value).unwrap(), encoded);
});
