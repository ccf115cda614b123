//! tokio-util `Decoder`/`Encoder` implementations (feature `tokio`).
//!
//! Use [`HandshakeCodec`] for the first 68 bytes, then switch the `Framed` to
//! [`MessageCodec`] with `Framed::map_codec`; buffered bytes carry over. Encoding a `piece`
//! through `Framed` copies the block into the write buffer; to avoid the copy, write
//! [`Piece::header`](crate::Piece::header) and the block yourself (or use the `futures`
//! adapter, which does).

use bytes::BytesMut;

use crate::{Decoder, Error, Handshake, Message};

/// Frames the 68-byte handshake.
#[derive(Debug, Clone, Copy, Default)]
pub struct HandshakeCodec;

impl tokio_util::codec::Decoder for HandshakeCodec {
    type Item = Handshake;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Handshake>, Error> {
        Handshake::decode(src)
    }
}

impl tokio_util::codec::Encoder<Handshake> for HandshakeCodec {
    type Error = Error;

    fn encode(&mut self, item: Handshake, dst: &mut BytesMut) -> Result<(), Error> {
        item.encode(dst);
        Ok(())
    }
}

/// Frames length-prefixed messages with a [`Decoder`].
#[derive(Debug, Clone, Default)]
pub struct MessageCodec {
    /// The decoder (limits and piece count).
    pub decoder: Decoder,
}

impl MessageCodec {
    /// A codec using `decoder`.
    pub fn new(decoder: Decoder) -> Self {
        MessageCodec { decoder }
    }
}

impl tokio_util::codec::Decoder for MessageCodec {
    type Item = Message;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, Error> {
        self.decoder.decode(src)
    }
}

impl tokio_util::codec::Encoder<Message> for MessageCodec {
    type Error = Error;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), Error> {
        dst.reserve(item.encoded_len());
        item.encode(dst)
    }
}

impl tokio_util::codec::Encoder<&Message> for MessageCodec {
    type Error = Error;

    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), Error> {
        dst.reserve(item.encoded_len());
        item.encode(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Feature, InfoHashV1, PeerId, PieceIndex, Reserved};
    use tokio_util::codec::{Decoder as _, Encoder as _};

    #[test]
    fn handshake_then_messages_through_the_codecs() {
        let hs = Handshake {
            reserved: Reserved::NONE.with(Feature::Fast),
            info_hash: InfoHashV1::from_bytes([3; 20]),
            peer_id: PeerId::from_bytes([4; 20]),
        };
        let mut buf = BytesMut::new();
        HandshakeCodec.encode(hs, &mut buf).unwrap();
        let mut codec = MessageCodec::default();
        codec.encode(Message::HaveAll, &mut buf).unwrap();
        codec.encode(&Message::Have(PieceIndex::new(5)), &mut buf).unwrap();
        assert_eq!(HandshakeCodec.decode(&mut buf).unwrap(), Some(hs));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Message::HaveAll));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Message::Have(PieceIndex::new(5))));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }
}
