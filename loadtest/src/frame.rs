//! WebSocket framing for the client side: parse server frames, encode
//! masked client frames.
//!
//! Sans-I/O: [`parse`] looks at a byte slice and either returns one whole
//! frame or says how many more bytes it needs; it never copies the payload.
//!
//! Invariant: the server never masks and never fragments (PROTOCOL.md), so a
//! masked or non-final frame, a continuation frame or a reserved bit is a
//! [`FrameError`], never a panic. Every frame this module encodes is masked
//! (RFC 6455 §5.3: a client must mask).

use thiserror::Error;

/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const OP_PONG: u8 = 0xA;

/// Largest payload we accept from a server, in bytes. Far above any
/// market-data message; a length beyond it means a corrupt stream.
pub const MAX_PAYLOAD: u64 = 64 << 20;

/// A server frame that breaks the protocol.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The server set the mask bit; server frames are never masked.
    #[error("server frame is masked")]
    Masked,
    /// FIN was clear or the opcode was 0: the server fragmented a message.
    #[error("server frame is fragmented (opcode {0:#x})")]
    Fragmented(u8),
    /// One of RSV1..RSV3 was set without a negotiated extension.
    #[error("reserved bits set in server frame")]
    Reserved,
    /// The opcode is not one RFC 6455 defines.
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// The declared payload length is over [`MAX_PAYLOAD`].
    #[error("frame payload of {0} bytes is over the limit")]
    TooLarge(u64),
}

/// One whole frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef {
    /// The frame's opcode (`OP_*`).
    pub opcode: u8,
    /// Offset of the payload from the start of the frame.
    pub header_len: usize,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl FrameRef {
    /// Total length of the frame (header + payload) in bytes.
    pub fn len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// Returns true if and only if the frame has no payload.
    pub fn is_empty(&self) -> bool {
        self.payload_len == 0
    }
}

/// Result of looking for a frame at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole frame is there.
    Frame(FrameRef),
    /// The frame is not complete yet; at least this many bytes in total are
    /// needed before calling [`parse`] again can succeed.
    Need(usize),
}

/// Looks for one server frame at the start of `buf`.
///
/// # Errors
/// Returns a [`FrameError`] if the header breaks the protocol.
pub fn parse(buf: &[u8]) -> Result<Parsed, FrameError> {
    if buf.len() < 2 {
        return Ok(Parsed::Need(2));
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let opcode = b0 & 0x0F;
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    match opcode {
        OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG => {}
        0 => return Err(FrameError::Fragmented(0)),
        other => return Err(FrameError::UnknownOpcode(other)),
    }
    if b0 & 0x80 == 0 {
        return Err(FrameError::Fragmented(opcode));
    }
    let (header_len, payload_len) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(Parsed::Need(4));
            }
            (4, u64::from(u16::from_be_bytes([buf[2], buf[3]])))
        }
        127 => {
            if buf.len() < 10 {
                return Ok(Parsed::Need(10));
            }
            let mut len = [0u8; 8];
            len.copy_from_slice(&buf[2..10]);
            (10, u64::from_be_bytes(len))
        }
        n => (2, u64::from(n)),
    };
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(payload_len));
    }
    // Fits: MAX_PAYLOAD is far below usize::MAX on every supported target.
    let payload_len = payload_len as usize;
    let total = header_len + payload_len;
    if buf.len() < total {
        return Ok(Parsed::Need(total));
    }
    Ok(Parsed::Frame(FrameRef {
        opcode,
        header_len,
        payload_len,
    }))
}

/// Appends one masked, final client frame with `opcode` and `payload` to
/// `out`, masking with `mask`.
pub fn encode_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | (opcode & 0x0F));
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// Appends a masked close frame with `code` and `reason` to `out`.
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str, mask: [u8; 4]) {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    encode_masked(out, OP_CLOSE, &payload, mask);
}

/// Splits a close frame's payload into its status code and reason.
///
/// An empty payload means "no status code" (RFC 6455 §7.1.5, reported as
/// 1005); a one-byte payload is malformed and reported as 1002.
pub fn close_payload(payload: &[u8]) -> (u16, String) {
    match payload {
        [] => (1005, String::new()),
        [_] => (1002, String::new()),
        [hi, lo, rest @ ..] => (
            u16::from_be_bytes([*hi, *lo]),
            String::from_utf8_lossy(rest).into_owned(),
        ),
    }
}

/// Encodes an unmasked server frame; used by tests to play the server.
pub fn encode_server(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(buf: &[u8]) -> FrameRef {
        match parse(buf) {
            Ok(Parsed::Frame(f)) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn parses_7_bit_length() {
        let bytes = encode_server(OP_TEXT, b"hello");
        let f = frame(&bytes);
        assert_eq!((f.opcode, f.header_len, f.payload_len), (OP_TEXT, 2, 5));
        assert_eq!(&bytes[f.header_len..f.len()], b"hello");
    }

    #[test]
    fn parses_16_bit_length() {
        let payload = vec![b'x'; 300];
        let bytes = encode_server(OP_TEXT, &payload);
        let f = frame(&bytes);
        assert_eq!((f.header_len, f.payload_len), (4, 300));
    }

    #[test]
    fn parses_64_bit_length() {
        let payload = vec![b'y'; 70_000];
        let bytes = encode_server(OP_BINARY, &payload);
        let f = frame(&bytes);
        assert_eq!(
            (f.opcode, f.header_len, f.payload_len),
            (OP_BINARY, 10, 70_000)
        );
    }

    #[test]
    fn incomplete_frame_reports_bytes_needed() {
        let bytes = encode_server(OP_TEXT, &[b'z'; 300]);
        assert_eq!(parse(&bytes[..1]), Ok(Parsed::Need(2)));
        assert_eq!(parse(&bytes[..3]), Ok(Parsed::Need(4)));
        assert_eq!(parse(&bytes[..100]), Ok(Parsed::Need(304)));
        let big = encode_server(OP_TEXT, &[b'z'; 70_000]);
        assert_eq!(parse(&big[..5]), Ok(Parsed::Need(10)));
    }

    #[test]
    fn several_frames_in_one_buffer_parse_in_order() {
        let mut buf = encode_server(OP_TEXT, b"one");
        buf.extend(encode_server(OP_PING, b"p"));
        buf.extend(encode_server(OP_TEXT, &[b'3'; 200]));
        let mut at = 0;
        let mut seen = Vec::new();
        while at < buf.len() {
            let f = frame(&buf[at..]);
            seen.push((f.opcode, f.payload_len));
            at += f.len();
        }
        assert_eq!(seen, vec![(OP_TEXT, 3), (OP_PING, 1), (OP_TEXT, 200)]);
    }

    #[test]
    fn protocol_violations_are_errors() {
        assert_eq!(parse(&[0x81, 0x81, 0, 0, 0, 0, 0]), Err(FrameError::Masked));
        assert_eq!(parse(&[0x01, 0x00]), Err(FrameError::Fragmented(1)));
        assert_eq!(parse(&[0x80, 0x00]), Err(FrameError::Fragmented(0)));
        assert_eq!(parse(&[0xC1, 0x00]), Err(FrameError::Reserved));
        assert_eq!(parse(&[0x83, 0x00]), Err(FrameError::UnknownOpcode(3)));
        let mut huge = vec![0x81, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse(&huge), Err(FrameError::TooLarge(u64::MAX)));
    }

    #[test]
    fn masked_client_frame_unmasks_to_payload() {
        let mut out = Vec::new();
        let payload = vec![7u8; 130];
        encode_masked(&mut out, OP_PONG, &payload, [1, 2, 3, 4]);
        assert_eq!(out[0], 0x8A);
        assert_eq!(out[1], 0x80 | 126);
        assert_eq!(&out[2..4], &130u16.to_be_bytes());
        let mask = &out[4..8];
        let unmasked: Vec<u8> = out[8..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3])
            .collect();
        assert_eq!(unmasked, payload);
    }

    #[test]
    fn close_payload_splits_code_and_reason() {
        let mut p = 4001u16.to_be_bytes().to_vec();
        p.extend_from_slice(b"slow consumer");
        assert_eq!(close_payload(&p), (4001, "slow consumer".to_string()));
        assert_eq!(close_payload(&[]), (1005, String::new()));
        assert_eq!(close_payload(&[3]), (1002, String::new()));
    }
}
