//! The `loadtest` binary: parse the command line, run the scenario, print
//! the table and write the report files.
//!
//! Exit status: 0 on success, 1 on an error, 2 when a client that was not
//! evicted saw a sequence gap, duplicate or reordering (a server bug), 3
//! when a soak check failed (a descriptor leak, or connections the server
//! did not let go of).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use loadtest::{Cli, run};

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let out = cli.out.clone();
    let opts = cli.into_options()?;
    let report = run(&opts)?;
    print!("{}", report.table());
    let dir = out.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("out")
            .join(timestamp(report.started_unix))
    });
    report.write_to(&dir).context("writing the report")?;
    println!("report       {}", dir.display());
    Ok(if !report.sequence_ok() {
        ExitCode::from(2)
    } else if !report.failed_checks().is_empty() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// `YYYYMMDD-HHMMSS` (UTC) for a UNIX time, without a date crate.
fn timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamp_is_utc_calendar_time() {
        assert_eq!(timestamp(0), "19700101-000000");
        assert_eq!(timestamp(1_763_775_000), "20251122-013000");
    }
}
