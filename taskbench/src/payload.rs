//! What a task writes and what its readers check, as Task Bench's core does.
//!
//! Every task's output is [`TaskGraph::output_bytes`] long (at least
//! [`MIN_OUTPUT_BYTES`]) and holds the task's own coordinates `(t, p)` as two
//! little-endian `u64`s, repeated over the whole buffer (a final partial copy
//! is truncated). A reader checks that each input it was handed carries
//! exactly the coordinates of the dependency it expected, so a runtime that
//! delivers the wrong buffer, a stale one or a torn one is caught:
//! [`TaskGraph::execute_point`] checks the inputs, runs the kernel and writes
//! the output.
//!
//! ```
//! use ferry_taskbench::{DependenceType, TaskGraph, check_input, write_output};
//!
//! let g = TaskGraph::new(3, 4, DependenceType::Stencil1d);
//! let mut step0 = vec![vec![0u8; g.output_bytes]; 4];
//! for (p, out) in step0.iter_mut().enumerate() {
//!     write_output(out, 0, p);
//! }
//! assert!(check_input(&step0[2], 0, 2).is_ok());
//! assert!(check_input(&step0[2], 0, 1).is_err());
//!
//! // Point (1, 1) reads points 0, 1 and 2 of step 0.
//! let inputs: Vec<&[u8]> = g.dependencies(1, 1).iter().map(|&q| &step0[q][..]).collect();
//! let mut out = vec![0u8; g.output_bytes];
//! g.execute_point(1, 1, &inputs, &mut out, &mut []).unwrap();
//! assert!(check_input(&out, 1, 1).is_ok());
//! ```

use std::fmt;

use crate::{MIN_OUTPUT_BYTES, TaskGraph};

/// A point of the graph, `(step, point)`.
pub type Point = (usize, usize);

/// Why a task's inputs (or its output buffer) are not what the graph says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The task that was checking its inputs, when known ([`check_input`]
    /// alone does not know who reads the buffer; [`TaskGraph::execute_point`]
    /// fills it in).
    pub reader: Option<Point>,
    /// Which of its inputs (an index into
    /// [`TaskGraph::dependencies`]), when the problem is one input.
    pub input: Option<usize>,
    /// What is wrong.
    pub kind: InputErrorKind,
}

/// What is wrong with a task's inputs; see [`InputError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputErrorKind {
    /// The task is not active at its step (no such task in the graph).
    Inactive,
    /// The task was handed a different number of inputs than it has
    /// dependencies.
    Count {
        /// Its number of dependencies.
        expected: usize,
        /// How many inputs it was handed.
        found: usize,
    },
    /// An input is not one task output long: shorter than
    /// [`MIN_OUTPUT_BYTES`] for [`check_input`], other than the graph's
    /// `output_bytes` for [`TaskGraph::execute_point`].
    Length {
        /// The length it must have (the minimum, for [`check_input`]).
        expected: usize,
        /// Its length.
        found: usize,
    },
    /// The output buffer is not the graph's `output_bytes` long.
    OutputLength {
        /// `output_bytes`.
        expected: usize,
        /// The buffer's length.
        found: usize,
    },
    /// An input is another task's output.
    Producer {
        /// The dependency it should have come from.
        expected: Point,
        /// The task whose coordinates it carries.
        found: Point,
    },
    /// An input starts with the right coordinates but a later byte differs
    /// (a torn or partly overwritten buffer).
    Corrupt {
        /// The dependency it should have come from.
        expected: Point,
        /// The first byte that differs.
        offset: usize,
    },
}

impl InputError {
    fn new(kind: InputErrorKind) -> InputError {
        InputError {
            reader: None,
            input: None,
            kind,
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reader {
            Some((t, p)) => write!(f, "task ({t}, {p})")?,
            None => f.write_str("a task")?,
        }
        if let Some(i) = self.input {
            write!(f, ", input {i}")?;
        }
        match &self.kind {
            InputErrorKind::Inactive => f.write_str(": no such point at this step"),
            InputErrorKind::Count { expected, found } => {
                write!(f, ": expected {expected} inputs, got {found}")
            }
            InputErrorKind::Length { expected, found } => {
                write!(f, ": expected {expected} bytes, got {found}")
            }
            InputErrorKind::OutputLength { expected, found } => {
                write!(f, ": output buffer is {found} bytes, expected {expected}")
            }
            InputErrorKind::Producer { expected, found } => write!(
                f,
                ": expected the output of ({}, {}), found that of ({}, {})",
                expected.0, expected.1, found.0, found.1
            ),
            InputErrorKind::Corrupt { expected, offset } => write!(
                f,
                ": the output of ({}, {}) differs at byte {offset}",
                expected.0, expected.1
            ),
        }
    }
}

impl std::error::Error for InputError {}

/// The 16 bytes task `(t, p)` repeats over its output.
fn pattern(t: usize, p: usize) -> [u8; MIN_OUTPUT_BYTES] {
    let mut b = [0u8; MIN_OUTPUT_BYTES];
    b[..8].copy_from_slice(&(t as u64).to_le_bytes());
    b[8..].copy_from_slice(&(p as u64).to_le_bytes());
    b
}

/// Fills `out` with task `(t, p)`'s coordinates: `t` then `p` as
/// little-endian `u64`s, repeated (the last copy truncated if `out.len()` is
/// not a multiple of 16).
///
/// ```
/// let mut out = [0u8; 20];
/// ferry_taskbench::write_output(&mut out, 2, 5);
/// assert_eq!(out[0], 2);
/// assert_eq!(out[8], 5);
/// assert_eq!(out[16], 2);
/// ```
pub fn write_output(out: &mut [u8], t: usize, p: usize) {
    let pat = pattern(t, p);
    let mut chunks = out.chunks_exact_mut(MIN_OUTPUT_BYTES);
    for c in &mut chunks {
        c.copy_from_slice(&pat);
    }
    let rest = chunks.into_remainder();
    let n = rest.len();
    rest.copy_from_slice(&pat[..n]);
}

/// Checks that `input` is task `(t, p)`'s output as [`write_output`] writes
/// it: at least [`MIN_OUTPUT_BYTES`] long and holding `(t, p)` throughout.
/// The error's `reader` and `input` are `None`.
///
/// ```
/// use ferry_taskbench::{InputErrorKind, check_input, write_output};
///
/// let mut buf = [0u8; 32];
/// write_output(&mut buf, 3, 1);
/// assert!(check_input(&buf, 3, 1).is_ok());
/// let err = check_input(&buf, 3, 2).unwrap_err();
/// assert_eq!(err.kind, InputErrorKind::Producer { expected: (3, 2), found: (3, 1) });
/// ```
pub fn check_input(input: &[u8], t: usize, p: usize) -> Result<(), InputError> {
    if input.len() < MIN_OUTPUT_BYTES {
        return Err(InputError::new(InputErrorKind::Length {
            expected: MIN_OUTPUT_BYTES,
            found: input.len(),
        }));
    }
    let pat = pattern(t, p);
    if input[..MIN_OUTPUT_BYTES] != pat {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&input[i..i + 8]);
            u64::from_le_bytes(w) as usize
        };
        return Err(InputError::new(InputErrorKind::Producer {
            expected: (t, p),
            found: (word(0), word(8)),
        }));
    }
    let differs = input
        .iter()
        .enumerate()
        .skip(MIN_OUTPUT_BYTES)
        .find(|&(i, &b)| b != pat[i % MIN_OUTPUT_BYTES]);
    if let Some((offset, _)) = differs {
        return Err(InputError::new(InputErrorKind::Corrupt {
            expected: (t, p),
            offset,
        }));
    }
    Ok(())
}

impl TaskGraph {
    /// Runs task `(t, p)` as Task Bench's core does: checks that it was
    /// handed one input per [dependency](Self::dependencies), in that order,
    /// each the `output_bytes`-long output of `(t - 1, dependency)`; runs
    /// the kernel on `scratch`; and writes `(t, p)` into `output`, which
    /// must be `output_bytes` long.
    ///
    /// ```
    /// use ferry_taskbench::{DependenceType, InputErrorKind, TaskGraph, write_output};
    ///
    /// let g = TaskGraph::new(2, 2, DependenceType::NoComm);
    /// let mut wrong = vec![0u8; 16];
    /// write_output(&mut wrong, 0, 0);
    /// let mut out = vec![0u8; 16];
    /// // Point (1, 1) reads (0, 1), not (0, 0).
    /// let err = g.execute_point(1, 1, &[&wrong], &mut out, &mut []).unwrap_err();
    /// assert_eq!(err.reader, Some((1, 1)));
    /// assert_eq!(err.input, Some(0));
    /// assert_eq!(err.kind, InputErrorKind::Producer { expected: (0, 1), found: (0, 0) });
    /// ```
    pub fn execute_point(
        &self,
        t: usize,
        p: usize,
        inputs: &[&[u8]],
        output: &mut [u8],
        scratch: &mut [u8],
    ) -> Result<(), InputError> {
        let at = |input, kind| InputError {
            reader: Some((t, p)),
            input,
            kind,
        };
        if !self.active_points(t).contains(&p) {
            return Err(at(None, InputErrorKind::Inactive));
        }
        if output.len() != self.output_bytes {
            return Err(at(
                None,
                InputErrorKind::OutputLength {
                    expected: self.output_bytes,
                    found: output.len(),
                },
            ));
        }
        let deps = self.dependencies(t, p);
        if inputs.len() != deps.len() {
            return Err(at(
                None,
                InputErrorKind::Count {
                    expected: deps.len(),
                    found: inputs.len(),
                },
            ));
        }
        for (i, (input, &q)) in inputs.iter().zip(&deps).enumerate() {
            if input.len() != self.output_bytes {
                return Err(at(
                    Some(i),
                    InputErrorKind::Length {
                        expected: self.output_bytes,
                        found: input.len(),
                    },
                ));
            }
            check_input(input, t - 1, q).map_err(|e| at(Some(i), e.kind))?;
        }
        self.kernel.execute(scratch);
        write_output(output, t, p);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DependenceType;

    fn output(g: &TaskGraph, t: usize, p: usize) -> Vec<u8> {
        let mut v = vec![0u8; g.output_bytes];
        write_output(&mut v, t, p);
        v
    }

    #[test]
    fn round_trip_with_a_partial_tail() {
        let mut buf = vec![0xAAu8; 40];
        write_output(&mut buf, 7, 9);
        assert!(check_input(&buf, 7, 9).is_ok());
        assert_eq!(&buf[32..40], &7u64.to_le_bytes());
    }

    #[test]
    fn short_wrong_and_torn_inputs_are_caught() {
        let mut buf = vec![0u8; 48];
        write_output(&mut buf, 1, 2);
        assert_eq!(
            check_input(&buf[..8], 1, 2).unwrap_err().kind,
            InputErrorKind::Length {
                expected: 16,
                found: 8
            }
        );
        assert_eq!(
            check_input(&buf, 0, 2).unwrap_err().kind,
            InputErrorKind::Producer {
                expected: (0, 2),
                found: (1, 2)
            }
        );
        buf[40] ^= 1;
        assert_eq!(
            check_input(&buf, 1, 2).unwrap_err().kind,
            InputErrorKind::Corrupt {
                expected: (1, 2),
                offset: 40
            }
        );
    }

    #[test]
    fn a_whole_graph_runs_step_by_step() {
        for d in DependenceType::ALL {
            let mut g = TaskGraph::new(6, 8, d);
            g.output_bytes = 24;
            let mut prev: Vec<Vec<u8>> = Vec::new();
            for t in 0..g.steps {
                let mut cur = vec![Vec::new(); g.width];
                for p in g.active_points(t) {
                    let inputs: Vec<&[u8]> =
                        g.dependencies(t, p).iter().map(|&q| &prev[q][..]).collect();
                    let mut out = vec![0u8; g.output_bytes];
                    g.execute_point(t, p, &inputs, &mut out, &mut [])
                        .unwrap_or_else(|e| panic!("{d}: {e}"));
                    cur[p] = out;
                }
                prev = cur;
            }
        }
    }

    #[test]
    fn execute_point_names_the_reader_and_the_input() {
        let g = TaskGraph::new(3, 4, DependenceType::Stencil1d);
        let (a, b, c) = (output(&g, 0, 0), output(&g, 0, 1), output(&g, 0, 2));
        let mut out = vec![0u8; 16];
        // (1, 1) reads 0, 1, 2; swap the last two.
        let err = g
            .execute_point(1, 1, &[&a, &c, &b], &mut out, &mut [])
            .unwrap_err();
        assert_eq!(err.reader, Some((1, 1)));
        assert_eq!(err.input, Some(1));
        assert_eq!(
            err.kind,
            InputErrorKind::Producer {
                expected: (0, 1),
                found: (0, 2)
            }
        );
        assert_eq!(
            err.to_string(),
            "task (1, 1), input 1: expected the output of (0, 1), found that of (0, 2)"
        );
        // Too few inputs, a stale (step 1) input, a short output buffer.
        let err = g
            .execute_point(1, 1, &[&a, &b], &mut out, &mut [])
            .unwrap_err();
        assert_eq!(
            err.kind,
            InputErrorKind::Count {
                expected: 3,
                found: 2
            }
        );
        let stale = output(&g, 1, 0);
        let err = g
            .execute_point(2, 0, &[&stale, &a], &mut out, &mut [])
            .unwrap_err();
        assert_eq!(err.input, Some(1));
        let err = g
            .execute_point(1, 1, &[&a, &b, &c], &mut out[..8], &mut [])
            .unwrap_err();
        assert!(matches!(err.kind, InputErrorKind::OutputLength { .. }));
        let err = g
            .execute_point(1, 1, &[&a, &b[..15], &c], &mut out, &mut [])
            .unwrap_err();
        assert_eq!(
            err.kind,
            InputErrorKind::Length {
                expected: 16,
                found: 15
            }
        );
        // Step 0 takes no inputs; the right inputs pass and write the output.
        g.execute_point(0, 3, &[], &mut out, &mut []).unwrap();
        assert!(check_input(&out, 0, 3).is_ok());
        g.execute_point(1, 1, &[&a, &b, &c], &mut out, &mut [])
            .unwrap();
        assert!(check_input(&out, 1, 1).is_ok());
        assert_eq!(
            g.execute_point(1, 4, &[], &mut out, &mut [])
                .unwrap_err()
                .kind,
            InputErrorKind::Inactive
        );
    }
}
