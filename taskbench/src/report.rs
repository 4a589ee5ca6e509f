//! Task Bench's summary lines, written and read back.
//!
//! Every implementation (plain MPI, Ferry) prints the same lines after a run,
//! in the format of Task Bench's `App::report_timing`, so that one sweep
//! script reads them all:
//!
//! ```text
//! Total Tasks 12
//! Total Dependencies 20
//! Total FLOPs 0
//! Total Bytes 320
//! Elapsed Time 1.234567e-02 seconds
//! FLOP/s 0.000000e+00
//! B/s 2.592000e+04
//! ```
//!
//! `Total Bytes` is the bytes the dependencies carry (`Total Dependencies ×
//! output_bytes`); the rates are the totals over the elapsed time.
//!
//! ```
//! use std::time::Duration;
//! use ferry_taskbench::{DependenceType, TaskGraph, report};
//!
//! let g = TaskGraph::new(3, 4, DependenceType::Stencil1d);
//! let text = report::summary(&g, Duration::from_millis(20));
//! assert!(text.contains("Elapsed Time 2.000000e-02 seconds\n"));
//! let s = report::Summary::parse(&text).unwrap();
//! assert_eq!((s.total_tasks, s.total_dependencies), (12, 20));
//! assert_eq!(report::parse_elapsed(&text), Some(0.02));
//! ```

use std::time::Duration;

use crate::TaskGraph;

/// Formats `x` as C's `printf("%e")` does: one digit, a point, six digits,
/// `e`, a sign and at least two exponent digits (`1.234567e-02`); `inf`,
/// `-inf` and `nan` for the non-finite values.
///
/// ```
/// use ferry_taskbench::report::format_e;
///
/// assert_eq!(format_e(0.01234567), "1.234567e-02");
/// assert_eq!(format_e(0.0), "0.000000e+00");
/// assert_eq!(format_e(1.5e100), "1.500000e+100");
/// assert_eq!(format_e(f64::INFINITY), "inf");
/// ```
pub fn format_e(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let s = format!("{x:.6e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => match exp.parse::<i32>() {
            Ok(exp) => format!("{mantissa}e{exp:+03}"),
            Err(_) => s,
        },
        None => s,
    }
}

/// Task Bench's summary of one run of `graph` that took `elapsed`: the
/// seven lines shown in the [module docs](self), each ending in a newline.
pub fn summary(graph: &TaskGraph, elapsed: Duration) -> String {
    let tasks = graph.total_tasks();
    let deps = graph.total_dependencies();
    let flops = graph.total_flops();
    let bytes = deps * graph.output_bytes as u64;
    let secs = elapsed.as_secs_f64();
    format!(
        "Total Tasks {tasks}\n\
         Total Dependencies {deps}\n\
         Total FLOPs {flops}\n\
         Total Bytes {bytes}\n\
         Elapsed Time {} seconds\n\
         FLOP/s {}\n\
         B/s {}\n",
        format_e(secs),
        format_e(flops as f64 / secs),
        format_e(bytes as f64 / secs),
    )
}

/// The value after `prefix` on the first line of `text` that starts with
/// `prefix` followed by a space, up to the next space (or the line's end).
fn field<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(prefix)?;
        let rest = rest.strip_prefix(' ')?;
        rest.split_whitespace().next()
    })
}

/// The seconds on the `Elapsed Time X seconds` line of `text`, if there is
/// one and it parses.
pub fn parse_elapsed(text: &str) -> Option<f64> {
    field(text, "Elapsed Time")?.parse().ok()
}

/// The integer on the `NAME N` line of `text` (e.g. `parse_total(text,
/// "Total Tasks")`), if there is one and it parses.
///
/// ```
/// let text = "noise\nTotal Dependencies 20\n";
/// assert_eq!(ferry_taskbench::report::parse_total(text, "Total Dependencies"), Some(20));
/// assert_eq!(ferry_taskbench::report::parse_total(text, "Total Tasks"), None);
/// ```
pub fn parse_total(text: &str, name: &str) -> Option<u64> {
    field(text, name)?.parse().ok()
}

/// A summary read back from a run's output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// `Total Tasks`.
    pub total_tasks: u64,
    /// `Total Dependencies`.
    pub total_dependencies: u64,
    /// `Total FLOPs`.
    pub total_flops: u64,
    /// `Total Bytes`.
    pub total_bytes: u64,
    /// `Elapsed Time`, in seconds.
    pub elapsed: f64,
    /// `FLOP/s`.
    pub flops_per_sec: f64,
    /// `B/s`.
    pub bytes_per_sec: f64,
}

impl Summary {
    /// Reads the seven summary lines from `text` (other lines are ignored);
    /// `None` if any is missing or does not parse.
    pub fn parse(text: &str) -> Option<Summary> {
        let rate = |name| field(text, name)?.parse::<f64>().ok();
        Some(Summary {
            total_tasks: parse_total(text, "Total Tasks")?,
            total_dependencies: parse_total(text, "Total Dependencies")?,
            total_flops: parse_total(text, "Total FLOPs")?,
            total_bytes: parse_total(text, "Total Bytes")?,
            elapsed: parse_elapsed(text)?,
            flops_per_sec: rate("FLOP/s")?,
            bytes_per_sec: rate("B/s")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DependenceType, KernelType};

    #[test]
    fn format_e_matches_printf() {
        assert_eq!(format_e(1.0), "1.000000e+00");
        assert_eq!(format_e(123456.0), "1.234560e+05");
        assert_eq!(format_e(-0.5), "-5.000000e-01");
        assert_eq!(format_e(9.9999999), "1.000000e+01");
        assert_eq!(format_e(1e-300), "1.000000e-300");
        assert_eq!(format_e(f64::NAN), "nan");
        assert_eq!(format_e(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn summary_lines_exactly() {
        let mut g = TaskGraph::new(3, 4, DependenceType::Stencil1d);
        g.kernel.kind = KernelType::ComputeBound;
        g.kernel.iterations = 10;
        g.output_bytes = 32;
        let text = summary(&g, Duration::from_millis(500));
        // 12 tasks x (2 x 64 x 10 + 64) FLOPs; 20 deps x 32 bytes.
        assert_eq!(
            text,
            "Total Tasks 12\n\
             Total Dependencies 20\n\
             Total FLOPs 16128\n\
             Total Bytes 640\n\
             Elapsed Time 5.000000e-01 seconds\n\
             FLOP/s 3.225600e+04\n\
             B/s 1.280000e+03\n"
        );
        let s = Summary::parse(&text).unwrap();
        assert_eq!(
            s,
            Summary {
                total_tasks: 12,
                total_dependencies: 20,
                total_flops: 16128,
                total_bytes: 640,
                elapsed: 0.5,
                flops_per_sec: 32256.0,
                bytes_per_sec: 1280.0,
            }
        );
    }

    #[test]
    fn parsers_skip_noise_and_reject_garbage() {
        let text = "Running Task Benchmark\nTotal Tasksx 3\nTotal Tasks 7\n";
        assert_eq!(parse_total(text, "Total Tasks"), Some(7));
        assert_eq!(parse_elapsed(text), None);
        assert_eq!(parse_elapsed("Elapsed Time abc seconds"), None);
        assert_eq!(parse_elapsed("Elapsed Time 1e-3 seconds"), Some(1e-3));
        assert_eq!(parse_total("Total Tasks -1", "Total Tasks"), None);
        assert_eq!(Summary::parse(text), None);
        let zero = summary(&TaskGraph::default(), Duration::ZERO);
        assert!(zero.contains("FLOP/s nan\n"));
        assert!(zero.contains("B/s nan\n"));
    }
}
