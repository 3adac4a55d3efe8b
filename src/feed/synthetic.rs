//! The built-in synthetic feed: random-walk quotes for a universe of
//! realistic symbols in named groups, published through the same
//! [`Publisher`] a real feed handler uses.
//!
//! Symbols are emitted round-robin, so every symbol ticks at
//! `rate / symbols` per second and the total rate is exact over any second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::feed::publisher::MAX_BATCH;
use crate::{Error, Publisher, Result, Symbol, Tick};

const US_TECH: &[&str] = &[
    "AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META", "TSLA", "AVGO", "ORCL", "ADBE", "CRM", "AMD",
    "INTC", "CSCO", "QCOM", "TXN", "IBM", "NOW", "INTU", "AMAT", "MU", "LRCX", "ADI", "KLAC",
    "SNPS", "CDNS", "PANW", "CRWD", "FTNT", "ANET", "MRVL", "NXPI", "ON", "MCHP", "DELL", "HPQ",
    "UBER", "SHOP", "SQ", "PLTR",
];
const US_FINANCE: &[&str] = &[
    "JPM", "BAC", "WFC", "C", "GS", "MS", "SCHW", "BLK", "AXP", "USB", "PNC", "TFC", "COF", "BK",
    "STT", "V", "MA", "PYPL", "SPGI", "ICE", "CME", "MCO", "AIG", "MET", "PRU",
];
const US_ENERGY: &[&str] = &[
    "XOM", "CVX", "COP", "EOG", "SLB", "PSX", "MPC", "VLO", "OXY", "KMI", "WMB", "HAL", "DVN",
    "HES", "BKR",
];
const FX_MAJORS: &[&str] = &[
    "EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "NZDUSD",
];
const FX_CROSSES: &[&str] = &[
    "EURGBP", "EURJPY", "GBPJPY", "EURCHF", "AUDJPY", "EURAUD", "GBPCHF", "CADJPY", "AUDNZD",
    "EURCAD",
];
const CRYPTO: &[&str] = &[
    "BTC-USD",
    "ETH-USD",
    "SOL-USD",
    "XRP-USD",
    "ADA-USD",
    "DOGE-USD",
    "AVAX-USD",
    "DOT-USD",
    "LINK-USD",
    "LTC-USD",
    "MATIC-USD",
    "ATOM-USD",
];

/// A plausible starting price for the well-known symbols.
fn known_price(name: &str) -> Option<f64> {
    Some(match name {
        "EURUSD" => 1.085,
        "GBPUSD" => 1.27,
        "USDJPY" => 151.5,
        "USDCHF" => 0.88,
        "AUDUSD" => 0.66,
        "USDCAD" => 1.36,
        "NZDUSD" => 0.61,
        "EURJPY" => 164.3,
        "GBPJPY" => 192.4,
        "CADJPY" => 111.4,
        "AUDJPY" => 100.0,
        "BTC-USD" => 67_000.0,
        "ETH-USD" => 3_400.0,
        "SOL-USD" => 150.0,
        "XRP-USD" => 0.52,
        "ADA-USD" => 0.45,
        "DOGE-USD" => 0.15,
        "AVAX-USD" => 35.0,
        "DOT-USD" => 7.1,
        "LINK-USD" => 14.2,
        "LTC-USD" => 82.0,
        "MATIC-USD" => 0.71,
        "ATOM-USD" => 8.4,
        "EURGBP" => 0.855,
        "EURCHF" => 0.955,
        "EURAUD" => 1.64,
        "GBPCHF" => 1.12,
        "AUDNZD" => 1.09,
        "EURCAD" => 1.47,
        "AAPL" => 189.0,
        "MSFT" => 415.0,
        "NVDA" => 880.0,
        _ => return None,
    })
}

/// The synthetic universe: symbols with a starting price, and groups.
#[derive(Debug, Clone, Default)]
pub(crate) struct Universe {
    pub(crate) symbols: Vec<(String, f64)>,
    pub(crate) groups: Vec<(String, Vec<String>)>,
}

/// The first `n` symbols of the universe, grouped. Beyond the named lists,
/// symbols are `EQ0001`, `EQ0002`, … in group `us-other`.
pub(crate) fn universe(n: usize) -> Universe {
    let lists: [(&str, &[&str], f64); 6] = [
        ("us-tech", US_TECH, 180.0),
        ("fx-majors", FX_MAJORS, 1.1),
        ("crypto", CRYPTO, 900.0),
        ("us-finance", US_FINANCE, 95.0),
        ("fx-crosses", FX_CROSSES, 1.4),
        ("us-energy", US_ENERGY, 70.0),
    ];
    let mut u = Universe::default();
    // Interleave the lists so that a small `n` still covers every group.
    let mut groups: Vec<(String, Vec<String>)> = lists
        .iter()
        .map(|(g, _, _)| (g.to_string(), Vec::new()))
        .collect();
    let longest = lists.iter().map(|l| l.1.len()).max().unwrap_or(0);
    'fill: for i in 0..longest {
        for (gi, (_, names, base)) in lists.iter().enumerate() {
            if u.symbols.len() >= n {
                break 'fill;
            }
            if let Some(name) = names.get(i) {
                let px = known_price(name)
                    .unwrap_or_else(|| base * (1.0 + (i as f64 * 0.37).sin() * 0.5));
                u.symbols.push((name.to_string(), px));
                groups[gi].1.push(name.to_string());
            }
        }
    }
    let mut other = Vec::new();
    let mut k = 1;
    while u.symbols.len() < n {
        let name = format!("EQ{k:04}");
        u.symbols.push((name.clone(), 20.0 + (k % 200) as f64));
        other.push(name);
        k += 1;
    }
    if !other.is_empty() {
        groups.push(("us-other".to_string(), other));
    }
    u.groups = groups.into_iter().filter(|(_, s)| !s.is_empty()).collect();
    u
}

/// A xorshift generator: the feed needs noise, not cryptography.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [-1, 1).
    fn signed(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// One symbol's evolving quote. Prices are whole ticks divided by a power
/// of ten, so they print as short decimals (`1.09981`, not
/// `1.0998100000000002`).
#[derive(Debug, Clone)]
struct Quote {
    symbol: Symbol,
    /// Mid price in ticks.
    mid: f64,
    /// Ticks per unit of price: 100 (cents) or 100,000 (FX pips / 10).
    scale: f64,
    volume: u64,
}

impl Quote {
    fn new(symbol: &str, px: f64) -> Quote {
        let scale = if px < 20.0 { 100_000.0 } else { 100.0 };
        Quote {
            symbol: Symbol::new(symbol),
            mid: px * scale,
            scale,
            volume: 0,
        }
    }

    fn step(&mut self, rng: &mut Rng) -> Tick {
        self.mid = (self.mid * (1.0 + rng.signed() * 0.0005)).max(100.0);
        let spread = (1 + rng.next() % 3) as f64;
        let bid_ticks = (self.mid - spread / 2.0).round();
        let bid = bid_ticks / self.scale;
        let ask = (bid_ticks + spread) / self.scale;
        let last = if rng.next().is_multiple_of(2) {
            bid
        } else {
            ask
        };
        self.volume += 1 + rng.next() % 500;
        Tick::new(self.symbol.clone())
            .bid(bid)
            .ask(ask)
            .bid_size(100 * (1 + rng.next() % 20))
            .ask_size(100 * (1 + rng.next() % 20))
            .last(last)
            .volume(self.volume)
    }
}

/// Spawns the feed thread: `rate` ticks per second over `u.symbols` until
/// `stop` is set.
pub(crate) fn spawn(
    publisher: Publisher,
    u: &Universe,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let mut quotes: Vec<Quote> = u.symbols.iter().map(|(s, px)| Quote::new(s, *px)).collect();
    let name = "tickcast-synthetic".to_string();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let start = Instant::now();
            let mut sent: u64 = 0;
            let mut next = 0usize;
            while !stop.load(Relaxed) {
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                // After a stall, catch up by at most 100 ms worth of ticks.
                if due > sent + rate / 10 + 1 {
                    sent = due - rate / 10 - 1;
                }
                // One hand-off per burst of up to MAX_BATCH ticks: the
                // publisher wakes once per millisecond, not once per tick.
                while sent < due {
                    let n = ((due - sent) as usize).min(MAX_BATCH);
                    let mut step = || {
                        let len = quotes.len();
                        let q = &mut quotes[next];
                        next = (next + 1) % len;
                        q.step(&mut rng)
                    };
                    // A full publisher queue drops the burst before its
                    // ticks have a seq; the counter records them.
                    let _ = if n == 1 {
                        publisher.publish(step()).is_ok()
                    } else {
                        let mut batch = publisher.batch_buffer();
                        batch.extend((0..n).map(|_| step()));
                        publisher.publish_batch(batch).is_ok()
                    };
                    sent += n as u64;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .map_err(|source| Error::Spawn { name, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn universe_has_the_requested_size_and_unique_names() {
        for n in [1, 7, 100, 300, 1000] {
            let u = universe(n);
            assert_eq!(u.symbols.len(), n);
            let mut names: Vec<_> = u.symbols.iter().map(|s| s.0.clone()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), n);
            let grouped: usize = u.groups.iter().map(|g| g.1.len()).sum();
            assert_eq!(grouped, n, "every symbol is in exactly one group");
            for (s, _) in &u.symbols {
                crate::tick::validate_symbol(s).unwrap();
            }
        }
        let u = universe(100);
        assert!(
            u.groups
                .iter()
                .any(|g| g.0 == "fx-majors" && g.1.len() == 7)
        );
    }

    #[test]
    fn quotes_stay_sane() {
        let mut rng = Rng(1);
        for mut q in [Quote::new("X", 100.0), Quote::new("EURUSD", 1.1)] {
            for _ in 0..10_000 {
                let t = q.step(&mut rng);
                let (bid, ask) = (t.bid.unwrap().to_f64(), t.ask.unwrap().to_f64());
                assert!(bid > 0.0 && ask > bid, "{bid} {ask}");
                assert!(format!("{bid}").len() <= 12, "{bid}");
                t.validate().unwrap();
            }
        }
    }
}
