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

    /// A frame of bytes already shared (tickcast's own frames, back from
    /// [`crate::recycle`]).
    pub(crate) fn from_shared(bytes: Arc<[u8]>) -> Frame {
        Frame(bytes)
    }

    /// Whether this is the only reference to these bytes. Exact when
    /// true (only this holder could make another); when false, the other
    /// holders may let go at any time.
    pub(crate) fn is_sole(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }

    /// Asks the CPU to bring the frame's reference counts into the cache,
    /// ahead of a clone or a drop: a hint, with no effect on what the
    /// program does.
    #[inline]
    pub(crate) fn prefetch_counts(&self) {
        // The counts are the 16 bytes just before the data in the `Arc`'s
        // allocation (a 16-byte-aligned header, so the byte before the
        // data is on the counts' cache line). If that layout ever changed,
        // the hint would fetch the wrong line and cost a little time, no
        // more.
        prefetch(self.0.as_ptr().wrapping_sub(1));
    }

    /// The bytes of `parts`, one after the other, as a frame: one
    /// allocation, one copy. Every tick frame is built here (once per tick
    /// and node), so it skips zeroing memory it is about to overwrite:
    /// `Arc<[u8]>::from(Vec)` would allocate and copy twice, and a zeroed
    /// `Arc` (what this did before) cost ~7 % of a node catching up on a
    /// stream (`perf record`, issue 10).
    pub(crate) fn from_parts<'a>(parts: impl Iterator<Item = &'a [u8]> + Clone) -> Frame {
        let len = parts.clone().map(<[u8]>::len).sum();
        let mut arc = Arc::<[u8]>::new_uninit_slice(len);
        let Some(buf) = Arc::get_mut(&mut arc) else {
            unreachable!("a new Arc has no other reference");
        };
        let mut at = 0;
        for p in parts {
            let dst = &mut buf[at..at + p.len()];
            // SAFETY: `dst` is `p.len()` bytes of memory we own exclusively
            // (a unique, fresh allocation); `p` is another allocation, so
            // they do not overlap; `u8` and `MaybeUninit<u8>` have the same
            // layout.
            unsafe {
                std::ptr::copy_nonoverlapping(p.as_ptr(), dst.as_mut_ptr().cast::<u8>(), p.len());
            }
            at += p.len();
        }
        // A `Clone` of an iterator yields the same items (the callers pass
        // slice iterators), so the parts' lengths sum to `len`; if one ever
        // did not, the slicing above panics on a longer part, and a shorter
        // run is caught here before any byte is read.
        assert_eq!(at, len, "the parts changed between the two passes");
        // SAFETY: the loop wrote `at` bytes, and `at == len` (asserted), so
        // every element is initialized.
        Frame(unsafe { arc.assume_init() })
    }

    /// The concatenation of `parts` (whole frames) as one shared frame.
    ///
    /// ```
    /// use tickcast::Frame;
    /// let ab = Frame::concat(&[Frame::from(&b"a"[..]), Frame::from(&b"bc"[..])]);
    /// assert_eq!(ab.as_bytes(), b"abc");
    /// ```
    pub fn concat(parts: &[Frame]) -> Frame {
        Frame::from_parts(parts.iter().map(Frame::as_bytes))
    }
}

/// Asks the CPU to bring all of `bytes`' allocation (counts and data)
/// into the cache: a hint, as [`Frame::prefetch_counts`].
pub(crate) fn prefetch_all(bytes: &Arc<[u8]>) {
    const LINE: usize = 64;
    let counts = bytes.as_ptr().wrapping_sub(1);
    for at in (0..=bytes.len()).step_by(LINE) {
        prefetch(counts.wrapping_add(at));
    }
}

/// Asks the CPU to bring the cache line holding `at` into the cache, to
/// be written. Every caller is about to change the line: a count (a clone
/// or a drop) or the bytes (the publisher refilling a frame), on a line
/// another thread changed last, or a queue's next entry (the fan-out). A
/// read prefetch fetches such a line shared, and the write then waits on
/// the other core a second time: `prefetchw` takes it exclusive at once.
/// Interleaved runs of `benches/publisher.rs` (3 pairs each, 2-vCPU EPYC
/// VM): `publish_batch` 2.95-3.39 M ticks/s with read prefetches,
/// 3.18-3.52 M with `prefetchw` on the pool's frames; `publish`
/// 2.00-2.51 M against 2.32-3.13 M.
#[inline]
pub(crate) fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    if *HAS_PREFETCHW {
        // SAFETY: `prefetchw` is a hint: it never faults and changes no
        // register, flag or memory the program sees, whatever the address
        // (the callers' are inside a live allocation, or one past its
        // end); it runs only on a CPU that reports it (see
        // `HAS_PREFETCHW`).
        unsafe {
            std::arch::asm!(
                "prefetchw [{0}]",
                in(reg) at,
                options(nostack, preserves_flags, readonly)
            );
        }
        return;
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    // SAFETY: `_mm_prefetch` needs the `sse` target feature, which the
    // `cfg` above guarantees (every x86-64 CPU has it). The instruction is
    // a hint: it never faults and reads nothing into the program, whatever
    // the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = at;
}

/// Whether the CPU has `prefetchw` (CPUID leaf 0x8000_0001, ECX bit 8,
/// "3DNowPrefetch"/PRFCHW: every AMD64 CPU, Intel since Broadwell). Rust
/// has no stable target feature for it, hence the look at CPUID, once.
#[cfg(target_arch = "x86_64")]
static HAS_PREFETCHW: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    use std::arch::x86_64::__cpuid;
    const EXTENDED: u32 = 0x8000_0001;
    const PREFETCHW_BIT: u32 = 1 << 8;
    __cpuid(0x8000_0000).eax >= EXTENDED && __cpuid(EXTENDED).ecx & PREFETCHW_BIT != 0
});

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parts_copies_every_byte_in_order() {
        let f = Frame::from_parts([&b"ab"[..], b"", b"cde", b"f"].into_iter());
        assert_eq!(f.as_bytes(), b"abcdef");
        assert!(Frame::from_parts(std::iter::empty()).is_empty());
        let big: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        let f = Frame::from_parts([&big[..10], &big[10..]].into_iter());
        assert_eq!(f.as_bytes(), &big[..]);
    }

    #[test]
    fn prefetching_changes_nothing() {
        // Runs `prefetchw` where the CPU has it (every AMD64 CPU, the CI
        // machines included), the read prefetch elsewhere.
        #[cfg(target_arch = "x86_64")]
        eprintln!("prefetchw: {}", *HAS_PREFETCHW);
        let f = Frame::from(&b"\x81\x02hi"[..]);
        let g = f.clone();
        f.prefetch_counts();
        Frame::from(&b""[..]).prefetch_counts();
        prefetch_all(&Frame::from(&[0u8; 300][..]).into_shared());
        assert_eq!(f.as_bytes(), b"\x81\x02hi");
        assert_eq!(Arc::strong_count(&g.into_shared()), 2);
    }

    #[test]
    fn concat_joins_frames() {
        let parts = [
            Frame::from(&b"x"[..]),
            Frame::from(&b""[..]),
            Frame::from(&b"yz"[..]),
        ];
        assert_eq!(Frame::concat(&parts).as_bytes(), b"xyz");
    }
}
