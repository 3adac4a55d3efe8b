//! One short end-to-end run against tickcast started in-process (no
//! `--url`): the path `cargo run -p loadtest` takes on a fresh machine.

use clap::Parser;
use loadtest::options::Cli;

#[test]
fn a_short_run_against_an_in_process_tickcast_has_no_gaps() {
    let cli = Cli::try_parse_from([
        "loadtest",
        "--clients",
        "20",
        "--symbols",
        "20",
        "--rate",
        "400",
        "--duration",
        "2",
        "--warmup",
        "1",
        "--quiet",
    ])
    .expect("valid options");
    let opts = cli.into_options().expect("valid options");
    assert!(opts.targets.is_empty(), "no --url means in-process");
    let report = loadtest::run(&opts).expect("run completes");
    assert_eq!(report.clients.connected, 20);
    assert!(report.sequence_ok(), "gaps, duplicates or reorders");
    // 400 ticks/s to 20 clients over a 2 s window: ~16,000 ticks.
    assert!(
        report.throughput.ticks_per_sec > 4_000.0,
        "{:?}",
        report.throughput
    );
    assert!(report.latency.count > 0);
}
