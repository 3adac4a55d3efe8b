//! The one WebSocket frame-header codec of the crate (RFC 6455 §5.2), for
//! the frames the *server* sends: final, unmasked, with the shortest length
//! form. [`encode`](super::encode) writes headers with it; the
//! [`Outbox`](crate::outbox::Outbox) reads them to find frame boundaries
//! inside a batch. Client frames are read by tungstenite, not here.

/// Text frame opcode.
pub(crate) const OP_TEXT: u8 = 0x1;
/// Close frame opcode.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub(crate) const OP_PING: u8 = 0x9;

/// Largest header of an unmasked frame: 2 bytes plus a 64-bit length.
pub(crate) const MAX_HEADER: usize = 10;

/// The header of one server frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The opcode (low four bits of the first byte).
    pub(crate) opcode: u8,
    /// Bytes of header: 2, 4 or 10.
    pub(crate) header_len: usize,
    /// Bytes of payload after the header.
    pub(crate) payload_len: usize,
}

impl Header {
    /// Writes the header of a final, unmasked frame with `opcode` and a
    /// payload of `len` bytes into `out`; returns the header's length.
    pub(crate) fn write(out: &mut [u8; MAX_HEADER], opcode: u8, len: usize) -> usize {
        out[0] = 0x80 | opcode;
        if len < 126 {
            out[1] = len as u8;
            2
        } else if len <= usize::from(u16::MAX) {
            out[1] = 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            out[1] = 127;
            out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    }

    /// Parses the header at the start of `b`. `None` if `b` is too short
    /// to hold it, or the mask bit is set (server frames are never masked).
    pub(crate) fn parse(b: &[u8]) -> Option<Header> {
        let (first, second) = (*b.first()?, *b.get(1)?);
        if second & 0x80 != 0 {
            return None;
        }
        let (header_len, payload_len) = match second & 0x7f {
            126 => (4, usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]))),
            127 => {
                let raw: [u8; 8] = b.get(2..10)?.try_into().ok()?;
                (10, usize::try_from(u64::from_be_bytes(raw)).ok()?)
            }
            n => (2, usize::from(n)),
        };
        Some(Header {
            opcode: first & 0x0f,
            header_len,
            payload_len,
        })
    }

    /// Header plus payload, in bytes (`None` on overflow).
    pub(crate) fn frame_len(&self) -> Option<usize> {
        self.header_len.checked_add(self.payload_len)
    }
}

/// The payload of the server frame at the start of `frame`.
pub(crate) fn payload(frame: &[u8]) -> Option<&[u8]> {
    let h = Header::parse(frame)?;
    frame.get(h.header_len..h.frame_len()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_in_the_shortest_form() {
        for (len, hlen) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = [0u8; MAX_HEADER];
            let n = Header::write(&mut out, OP_TEXT, len);
            assert_eq!(n, hlen, "len {len}");
            let h = Header::parse(&out[..n]).unwrap();
            assert_eq!(
                (h.opcode, h.header_len, h.payload_len),
                (OP_TEXT, hlen, len)
            );
        }
    }

    #[test]
    fn short_or_masked_input_is_not_a_header() {
        assert_eq!(Header::parse(b"\x81"), None);
        assert_eq!(Header::parse(b"\x81\x7e\x01"), None);
        assert_eq!(Header::parse(b"\x81\x85abcd"), None, "masked");
        assert_eq!(payload(b"\x81\x05ab"), None, "truncated payload");
        assert_eq!(payload(b"\x81\x02hi!"), Some(&b"hi"[..]));
    }
}
