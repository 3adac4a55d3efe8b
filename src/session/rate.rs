//! [`TokenBucket`]: a connection's request rate limit (`request_rate` per
//! second on average, bursts of `request_burst`).

use std::time::Instant;

/// What the bucket says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the budget: handle it.
    Allowed,
    /// Over the budget: refuse it with `rate_limited`.
    Refused,
    /// Another whole burst refused in a row: the client keeps flooding,
    /// close it (4008).
    Flood,
}

/// A token bucket limiting a connection's request rate.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f32,
    rate: f32,
    burst: f32,
    last: Instant,
    /// Requests refused since the last allowed one.
    refused: u32,
    /// `refused` past this is a flood.
    flood_after: u32,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` per second.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst as f32,
            rate: rate as f32,
            burst: burst as f32,
            last: now,
            refused: 0,
            flood_after: burst,
        }
    }

    /// Takes one token for a request made at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> Verdict {
        let dt = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            Verdict::Allowed
        } else {
            self.refused += 1;
            if self.refused > self.flood_after {
                Verdict::Flood
            } else {
                Verdict::Refused
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 2, t0);
        assert_eq!(b.take(t0), Verdict::Allowed);
        assert_eq!(b.take(t0), Verdict::Allowed);
        assert_eq!(b.take(t0), Verdict::Refused);
        assert_eq!(b.take(t0 + Duration::from_millis(110)), Verdict::Allowed);
    }

    #[test]
    fn a_whole_burst_refused_in_a_row_is_a_flood() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1, 2, t0);
        b.take(t0);
        b.take(t0);
        assert_eq!(b.take(t0), Verdict::Refused);
        assert_eq!(b.take(t0), Verdict::Refused);
        assert_eq!(b.take(t0), Verdict::Flood, "refused > burst");
    }
}
