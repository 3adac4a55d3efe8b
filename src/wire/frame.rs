//! [`Frame`]: complete, unmasked server WebSocket frames (headers included),
//! shared by every connection that sends them.
//!
//! Invariant: the bytes are immutable and always form one or more whole
//! server frames: one tick, reply or control frame, or a *batch* (the ticks
//! a subscription class received in one shard turn, concatenated once). HTTP
//! responses are not frames; the outbox queues them apart. Cloning is a
//! reference-count increment: the publisher serializes a tick once and every
//! connection queues a clone.

use std::fmt;
use std::sync::Arc;

/// One or more whole, ready-to-write server frames shared between
/// connections. Cloning a `Frame` never copies the bytes.
///
/// The `From` conversions take bytes as they are: the caller promises they
/// are whole server frames (tickcast builds its own frames in `encode`).
///
/// ```
/// use tickcast::Frame;
/// let f = Frame::from(&b"\x81\x02hi"[..]);
/// let g = f.clone();
/// assert_eq!(f.as_bytes(), g.as_bytes());
/// assert_eq!(f.len(), 4);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Frame(Arc<[u8]>);

impl Frame {
    /// The wire bytes of this frame.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Number of wire bytes, header included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns true if and only if the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The shared bytes, for a queue that also holds other byte strings.
    pub(crate) fn into_shared(self) -> Arc<[u8]> {
        self.0
    }

    /// A frame of `len` bytes filled by `fill`, in one allocation.
    ///
    /// `Arc<[u8]>::from(Vec)` would allocate and copy a second time; a
    /// zero-filled `Arc` built from a `TrustedLen` iterator is allocated
    /// once, and zeroing is far cheaper than the copy it replaces.
    pub(crate) fn build(len: usize, fill: impl FnOnce(&mut [u8])) -> Frame {
        let mut arc: Arc<[u8]> = std::iter::repeat_n(0u8, len).collect();
        // A freshly collected Arc has no other reference.
        if let Some(buf) = Arc::get_mut(&mut arc) {
            fill(buf);
        }
        Frame(arc)
    }

    /// The concatenation of `parts` (whole frames) as one shared frame.
    ///
    /// ```
    /// use tickcast::Frame;
    /// let ab = Frame::concat(&[Frame::from(&b"a"[..]), Frame::from(&b"bc"[..])]);
    /// assert_eq!(ab.as_bytes(), b"abc");
    /// ```
    pub fn concat(parts: &[Frame]) -> Frame {
        let len = parts.iter().map(Frame::len).sum();
        Frame::build(len, |buf| {
            let mut at = 0;
            for p in parts {
                buf[at..at + p.len()].copy_from_slice(p.as_bytes());
                at += p.len();
            }
        })
    }
}

impl From<&[u8]> for Frame {
    fn from(bytes: &[u8]) -> Frame {
        Frame(Arc::from(bytes))
    }
}

impl From<Vec<u8>> for Frame {
    fn from(bytes: Vec<u8>) -> Frame {
        Frame(Arc::from(bytes))
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({} bytes)", self.0.len())
    }
}
