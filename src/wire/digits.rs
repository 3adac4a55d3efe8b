//! The decimal text of a tick's numbers, built in registers and stored
//! eight bytes at a time.
//!
//! Why not `itoa` and `zmij` alone: they write a number's digits into a
//! buffer of their own, a byte or two per store, and the encoder then
//! copied that text out with 4-, 8- or 16-byte loads. A load that spans
//! several recent smaller stores cannot take its bytes from them (no
//! store-to-load forwarding) and waits until they reach the cache: in
//! `perf annotate` of the publisher, the moves after those loads held
//! about half of `TickEncoder::encode_bytes`' samples, and `zmij` (two
//! prices per tick) was another 17 % of the publisher thread
//! (`benches/publisher.rs`, issue 11). Here eight digits are computed at
//! once in one `u64` (SWAR: a few multiplications and masks, no division
//! per digit) and stored with one move.
//!
//! A price whose shortest text has at most eight decimals (every price a
//! market quotes below 10^7) is written as its integer and fraction parts;
//! any other finite price goes to `zmij`. The result is the same text
//! byte for byte (the tests compare both on millions of values): the
//! shortest decimal that reads back as the same `f64`, as `serde_json`
//! prints it.
//!
//! Every writer here stores up to [`SLACK`] bytes past the end of the text
//! it writes: the caller's buffer has that much room after the longest
//! text, and what lies past the text is overwritten next or never read.

/// Bytes a writer may store past the end of its text.
pub(crate) const SLACK: usize = 8;

/// Eight ASCII `'0'`s: added to eight digit values (0..=9, one per byte),
/// they make the digits' text.
const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

const TEN_TO_8: u64 = 100_000_000;
const TEN_TO_16: u64 = TEN_TO_8 * TEN_TO_8;

/// The eight decimal digits of `n` (below 10^8, with leading zeros) as
/// values 0..=9, one per byte, the most significant in the lowest byte
/// (so that `to_le_bytes` puts them in reading order).
///
/// Two 4-digit halves go in 32-bit lanes, are split into 2-digit parts in
/// 16-bit lanes (`x * 10_486 >> 20` is `x / 100` for `x < 10_000`), then
/// into digits in 8-bit lanes (`x * 103 >> 10` is `x / 10` for
/// `x < 100`); no lane's product reaches the next lane.
#[inline(always)]
fn digit_values(n: u32) -> u64 {
    debug_assert!(u64::from(n) < TEN_TO_8);
    let fours = u64::from(n / 10_000) | (u64::from(n % 10_000) << 32);
    let high_pairs = ((fours * 10_486) >> 20) & 0x0000_007F_0000_007F;
    let low_pairs = fours - 100 * high_pairs;
    let pairs = high_pairs | (low_pairs << 16);
    let tens = ((pairs * 103) >> 10) & 0x000F_000F_000F_000F;
    let ones = pairs - 10 * tens;
    tens | (ones << 8)
}

/// Stores the eight bytes of `word` at `at`.
#[inline(always)]
fn store(buf: &mut [u8], at: usize, word: u64) {
    buf[at..at + 8].copy_from_slice(&word.to_le_bytes());
}

/// The four decimal digits of `n` (below 10^4), one per byte, the most
/// significant in the lowest byte, in the low four bytes (where
/// [`digit_values`] of the same `n` has them in its high four): one split
/// fewer, for the sizes and the whole part of prices, which are mostly
/// this short.
#[inline(always)]
fn digit_values_4(n: u32) -> u64 {
    debug_assert!(n < 10_000);
    let pairs = u64::from(n / 100) | (u64::from(n % 100) << 16);
    let tens = ((pairs * 103) >> 10) & 0x000F_000F;
    let ones = pairs - 10 * tens;
    tens | (ones << 8)
}

/// Writes `n` (below 10^8) with no leading zeros at `at`; returns the end.
#[inline(always)]
fn write_up_to_8(buf: &mut [u8], at: usize, n: u32) -> usize {
    let digits = if n < 10_000 {
        // Four digits, the four high bytes zero: as the eight digits of
        // `n * 10^4` shifted down, so the count of leading zeros below
        // (low zero bytes) is the same.
        digit_values_4(n) << 32
    } else {
        digit_values(n)
    };
    // Leading zeros are the low bytes that are zero; zero itself keeps
    // its last digit.
    let leading = if n == 0 {
        7
    } else {
        digits.trailing_zeros() as usize / 8
    };
    store(buf, at, (digits | ASCII_ZEROS) >> (8 * leading));
    at + 8 - leading
}

/// Writes all eight digits of `n` (below 10^8) at `at`; returns the end.
#[inline(always)]
fn write_8(buf: &mut [u8], at: usize, n: u32) -> usize {
    store(buf, at, digit_values(n) | ASCII_ZEROS);
    at + 8
}

/// Writes `v` in decimal at `at` (the text `itoa` writes); returns the end.
#[inline(always)]
pub(crate) fn write_u64(buf: &mut [u8], at: usize, v: u64) -> usize {
    if v < TEN_TO_8 {
        write_up_to_8(buf, at, v as u32)
    } else if v < TEN_TO_16 {
        let at = write_up_to_8(buf, at, (v / TEN_TO_8) as u32);
        write_8(buf, at, (v % TEN_TO_8) as u32)
    } else {
        // At most 1,844 (`u64::MAX` has 20 digits).
        let at = write_up_to_8(buf, at, (v / TEN_TO_16) as u32);
        let at = write_8(buf, at, ((v / TEN_TO_8) % TEN_TO_8) as u32);
        write_8(buf, at, (v % TEN_TO_8) as u32)
    }
}

/// The text of a timestamp's digits above its last eight, kept from the
/// last timestamp written: they change every 100 ms (`ts` is in
/// nanoseconds), and every tick of a batch has the same `ts`. A 19-digit
/// `ts` is then one 16-byte copy and eight digits, not three times eight.
#[derive(Debug)]
pub(crate) struct TimestampText {
    /// `ts / 10^8` of the text held (`u64::MAX`: none yet; no `u64`
    /// divided by 10^8 is that large).
    high: u64,
    /// Its digits (at most 12), then garbage.
    text: [u8; 16],
    /// How many of `text` are its digits.
    len: usize,
}

impl Default for TimestampText {
    fn default() -> TimestampText {
        TimestampText {
            high: u64::MAX,
            text: [0; 16],
            len: 0,
        }
    }
}

impl TimestampText {
    /// Writes `ts` in decimal at `at` (as [`write_u64`]); returns the end.
    #[inline(always)]
    pub(crate) fn write(&mut self, buf: &mut [u8], at: usize, ts: u64) -> usize {
        if ts < TEN_TO_8 {
            return write_u64(buf, at, ts);
        }
        let high = ts / TEN_TO_8;
        if high != self.high {
            let mut text = [0u8; 16 + SLACK];
            self.len = write_u64(&mut text, 0, high);
            self.text.copy_from_slice(&text[..16]);
            self.high = high;
        }
        // 16 bytes for at least one digit: the eight below then end at
        // most 7 (SLACK) bytes before this copy's end.
        buf[at..at + 16].copy_from_slice(&self.text);
        write_8(buf, at + self.len, (ts % TEN_TO_8) as u32)
    }
}

/// Prices at or above this go to `zmij`: below it, `x * 10^8` is under
/// 2^50, so it and its rounding are exact enough that the one candidate
/// (see [`write_price_fast`]) is found whenever it exists.
const FAST_BELOW: f64 = 1e7;

/// `zmij` writes a price below 10^-5 with an exponent (`9.99e-6`): the
/// smallest number of hundred-millionths written here (but zero).
const FAST_FROM_UNITS: u64 = 1_000;

/// Writes `x`'s shortest round-tripping text at `at` if it has at most
/// eight decimals and `x` is below [`FAST_BELOW`]; returns the end, or
/// `None` (nothing written that counts) for any other `x`.
///
/// Why it is the shortest text: if a decimal `d` with at most eight
/// decimals reads back as `x`, `m = round(|x| * 10^8)` is `|d| * 10^8`
/// (`|x|` is within half an ulp, under 2^-30, of `|d|`, which is 0.09
/// once scaled; the product and the `+ 0.5` each round by at most 2^-4,
/// as they are below 2^50: 0.22 in all, under a half); and
/// `m as f64 / 10^8 == |x|` is exactly "the decimal `m / 10^8` reads back
/// as `x`" (both operands are exact, the division is correctly rounded).
/// All decimals that read back as `x` lie within one ulp of it (under
/// 2^-29 here), so only one has at most eight decimals, and any other has
/// more digits: `m / 10^8` without its trailing zeros is the shortest.
#[inline(always)]
fn write_price_fast(buf: &mut [u8], at: usize, x: f64) -> Option<usize> {
    let abs = x.abs();
    // NaN too (which `Tick::validate` refuses anyway).
    if abs >= FAST_BELOW || abs.is_nan() {
        return None;
    }
    // `+ 0.5` then truncation rounds half up; any rounding would do, as
    // the check below decides. Through `i64` (the product is below 2^50):
    // one instruction each way, where `u64` takes a dozen.
    let m = (abs * TEN_TO_8 as f64 + 0.5) as i64;
    if m as f64 / TEN_TO_8 as f64 != abs || (m != 0 && m < FAST_FROM_UNITS as i64) {
        return None;
    }
    let m = m as u64;
    let mut at = at;
    if x.is_sign_negative() {
        buf[at] = b'-';
        at += 1;
    }
    // Below 10^7: at most seven digits.
    at = write_up_to_8(buf, at, (m / TEN_TO_8) as u32);
    let fraction = (m % TEN_TO_8) as u32;
    if fraction == 0 {
        // A whole number keeps one decimal, as `zmij` writes it: `105.0`.
        buf[at..at + 2].copy_from_slice(b".0");
        return Some(at + 2);
    }
    buf[at] = b'.';
    at += 1;
    let digits = digit_values(fraction);
    // Trailing zeros are the high bytes that are zero.
    let trailing = digits.leading_zeros() as usize / 8;
    store(buf, at, digits | ASCII_ZEROS);
    Some(at + 8 - trailing)
}

/// Writes finite `x`'s shortest round-tripping text at `at` (the text
/// `zmij` and `serde_json` write); returns the end.
#[inline(always)]
pub(crate) fn write_f64(buf: &mut [u8], at: usize, x: f64) -> usize {
    if let Some(end) = write_price_fast(buf, at, x) {
        return end;
    }
    let mut text = zmij::Buffer::new();
    let text = text.format_finite(x).as_bytes();
    buf[at..at + text.len()].copy_from_slice(text);
    at + text.len()
}

/// The longest text [`write_f64`] writes: a sign, 17 digits, a point and
/// an exponent of a sign and three digits, as `zmij` writes it at most.
pub(crate) const MAX_F64_LEN: usize = 24;

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_text(v: u64) -> String {
        let mut buf = [0u8; 20 + SLACK];
        let end = write_u64(&mut buf, 0, v);
        String::from_utf8(buf[..end].to_vec()).unwrap()
    }

    fn f64_text(x: f64) -> String {
        let mut buf = [0u8; MAX_F64_LEN + SLACK];
        let end = write_f64(&mut buf, 0, x);
        String::from_utf8(buf[..end].to_vec()).unwrap()
    }

    fn zmij_text(x: f64) -> String {
        zmij::Buffer::new().format_finite(x).to_string()
    }

    /// A small deterministic generator (xorshift64*), so a failure
    /// reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn eight_digits_are_right_for_every_value_below_ten_to_the_eight() {
        // Every value, in strides that cover each lane's every digit, and
        // every value below 10^5 exactly.
        let mut n = 0u32;
        while u64::from(n) < TEN_TO_8 {
            let mut buf = [0u8; 16];
            write_8(&mut buf, 0, n);
            assert_eq!(&buf[..8], format!("{n:08}").as_bytes(), "{n}");
            n += if n < 100_000 { 1 } else { 7_919 };
        }
    }

    #[test]
    fn integers_read_as_itoa_writes_them() {
        let mut edges = vec![0, 1, 9, 10, 99, 100, u64::MAX, u64::MAX - 1];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            edges.extend([p - 1, p, p + 1, next - 1]);
            p = next;
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..200_000 {
            // Random values of every length.
            let bits = rng.next() % 65;
            edges.push(rng.next().checked_shr(bits as u32).unwrap_or(0));
        }
        for v in edges {
            assert_eq!(u64_text(v), itoa::Buffer::new().format(v), "{v}");
        }
    }

    #[test]
    fn prices_read_as_zmij_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            105.0,
            105.37,
            0.001,
            0.00001,
            0.000015,
            0.00000999,
            1e-6,
            9_999_999.999_999_99,
            9_999_999.999_999_999,
            1e7,
            1e7 - 0.5,
            0.1 + 0.2,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            123_456.789_012_34,
        ];
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        for _ in 0..1_000_000 {
            // Prices as feeds send them: up to 7 integer digits and up to
            // 9 decimals (one more than the fast path takes).
            let decimals = (rng.next() % 10) as i32;
            let units = rng.next() % 10u64.pow(7 + decimals as u32);
            let x = units as f64 / 10f64.powi(decimals);
            values.push(x);
            values.push(-x);
            // Its neighbours, which have no short decimal text.
            values.push(f64::from_bits(x.to_bits() + 1));
            values.push(f64::from_bits(x.to_bits().saturating_sub(1)));
        }
        for _ in 0..1_000_000 {
            // Any finite f64.
            let x = f64::from_bits(rng.next());
            if x.is_finite() {
                values.push(x);
            }
        }
        for x in values {
            assert_eq!(f64_text(x), zmij_text(x), "{x:e} ({:#x})", x.to_bits());
        }
    }

    #[test]
    fn timestamps_read_as_itoa_writes_them_whatever_came_before() {
        let mut cache = TimestampText::default();
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut ts = 1_765_130_000_000_000_000u64;
        let mut values = vec![0, 1, TEN_TO_8 - 1, TEN_TO_8, TEN_TO_8 + 1, u64::MAX];
        for _ in 0..100_000 {
            // Mostly a few microseconds apart, sometimes a jump either
            // way, sometimes any value.
            ts = match rng.next() % 10 {
                0 => rng.next() >> (rng.next() % 64),
                1 => ts.wrapping_sub(rng.next() % 1_000_000_000),
                _ => ts.wrapping_add(rng.next() % 10_000),
            };
            values.push(ts);
        }
        for v in values {
            let mut buf = [b'#'; 20 + SLACK + 1];
            let end = cache.write(&mut buf, 0, v);
            assert_eq!(&buf[..end], itoa::Buffer::new().format(v).as_bytes(), "{v}");
            assert_eq!(buf[20 + SLACK], b'#', "{v}: past the slack");
        }
    }

    #[test]
    fn writers_store_no_further_than_their_slack() {
        let mut buf = [b'#'; 20 + SLACK + 1];
        let end = write_u64(&mut buf, 0, u64::MAX);
        assert_eq!(end, 20);
        assert_eq!(buf[20 + SLACK], b'#');
        let mut buf = [b'#'; MAX_F64_LEN + SLACK + 1];
        let end = write_f64(&mut buf, 0, -1.234_567_890_123_456_7e-300);
        assert!(end <= MAX_F64_LEN, "{end}");
        assert_eq!(buf[MAX_F64_LEN + SLACK], b'#');
    }
}
