//! Task Bench's command-line flags.

use std::fmt;
use std::str::FromStr;

use crate::{DEFAULT_PERIOD, DependenceType, KernelType, MIN_OUTPUT_BYTES, TaskGraph};

/// Why a set of flags does not describe a task graph.
#[derive(Debug, Clone, PartialEq)]
pub enum GraphError {
    /// A flag Task Bench's graph does not have.
    UnknownFlag(String),
    /// A flag that needs a value came last.
    MissingValue {
        /// The flag, e.g. `-steps`.
        flag: &'static str,
    },
    /// A flag's value is not a number of the right kind.
    BadValue {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// `-type` named no dependence type.
    UnknownType(String),
    /// `-kernel` named no kernel.
    UnknownKernel(String),
    /// A value is outside what the graph allows.
    OutOfRange {
        /// The flag whose value is wrong.
        flag: &'static str,
        /// What was given (or defaulted).
        value: String,
        /// What it must be.
        expected: String,
    },
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::UnknownFlag(flag) => write!(f, "unknown flag \"{flag}\""),
            GraphError::MissingValue { flag } => write!(f, "flag \"{flag}\" needs a value"),
            GraphError::BadValue { flag, value } => {
                write!(f, "flag \"{flag}\": \"{value}\" is not a valid value")
            }
            GraphError::UnknownType(name) => {
                let names: Vec<_> = DependenceType::ALL.iter().map(|d| d.name()).collect();
                write!(
                    f,
                    "unknown dependence type \"{name}\" (one of: {})",
                    names.join(", ")
                )
            }
            GraphError::UnknownKernel(name) => {
                let names: Vec<_> = KernelType::ALL.iter().map(|k| k.name()).collect();
                write!(
                    f,
                    "unknown kernel \"{name}\" (one of: {})",
                    names.join(", ")
                )
            }
            GraphError::OutOfRange {
                flag,
                value,
                expected,
            } => write!(f, "flag \"{flag} {value}\": must be {expected}"),
        }
    }
}

impl std::error::Error for GraphError {}

fn value<'a>(
    flag: &'static str,
    args: &mut impl Iterator<Item = &'a str>,
) -> Result<&'a str, GraphError> {
    args.next().ok_or(GraphError::MissingValue { flag })
}

fn number<'a, T: FromStr>(
    flag: &'static str,
    args: &mut impl Iterator<Item = &'a str>,
) -> Result<T, GraphError> {
    let v = value(flag, args)?;
    v.parse().map_err(|_| GraphError::BadValue {
        flag,
        value: v.to_owned(),
    })
}

impl TaskGraph {
    /// Parses Task Bench's graph flags (`-steps N -width N -type NAME
    /// -kernel NAME -iter N -output N -radix N -period N -fraction F`; no
    /// program name first). Flags not given keep [`TaskGraph::new`]'s
    /// defaults (4 steps, width 4, trivial); the result is
    /// [validated](Self::validate).
    pub fn from_flags<I, S>(args: I) -> Result<TaskGraph, GraphError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let mut it = args.iter().map(|s| s.as_ref());
        let mut g = TaskGraph::default();
        let mut period = None;
        while let Some(flag) = it.next() {
            match flag {
                "-steps" => g.steps = number("-steps", &mut it)?,
                "-width" => g.width = number("-width", &mut it)?,
                "-type" => {
                    let name = value("-type", &mut it)?;
                    g.dependence = DependenceType::from_name(name)
                        .ok_or_else(|| GraphError::UnknownType(name.to_owned()))?;
                }
                "-kernel" => {
                    let name = value("-kernel", &mut it)?;
                    g.kernel.kind = KernelType::from_name(name)
                        .ok_or_else(|| GraphError::UnknownKernel(name.to_owned()))?;
                }
                "-iter" => g.kernel.iterations = number("-iter", &mut it)?,
                "-output" => g.output_bytes = number("-output", &mut it)?,
                "-radix" => g.radix = number("-radix", &mut it)?,
                "-period" => period = Some(number("-period", &mut it)?),
                "-fraction" => g.fraction_connected = number("-fraction", &mut it)?,
                other => return Err(GraphError::UnknownFlag(other.to_owned())),
            }
        }
        g.period = period.unwrap_or(if g.dependence.needs_period() {
            DEFAULT_PERIOD
        } else {
            0
        });
        g.validate()?;
        Ok(g)
    }

    /// Checks that the fields make a well-formed graph: steps and width at
    /// least 1; output at least 16 bytes; fraction in `[0, 1]`; radix at
    /// least 1 for nearest, spread and random_nearest, and at most the
    /// width for spread (so its dependencies are distinct); a period of at
    /// least 1 for spread and random_nearest and none for the other types;
    /// spread's period at most `ceil(width / radix)` (so its shifted
    /// dependencies never wrap onto each other).
    pub fn validate(&self) -> Result<(), GraphError> {
        let out = |flag, value: &dyn fmt::Display, expected: String| {
            Err(GraphError::OutOfRange {
                flag,
                value: value.to_string(),
                expected,
            })
        };
        if self.steps == 0 {
            return out("-steps", &self.steps, "at least 1".into());
        }
        if self.width == 0 {
            return out("-width", &self.width, "at least 1".into());
        }
        if self.output_bytes < MIN_OUTPUT_BYTES {
            return out(
                "-output",
                &self.output_bytes,
                format!("at least {MIN_OUTPUT_BYTES}"),
            );
        }
        if !(0.0..=1.0).contains(&self.fraction_connected) {
            return out(
                "-fraction",
                &self.fraction_connected,
                "between 0 and 1".into(),
            );
        }
        let d = self.dependence;
        if d.uses_radix() && self.radix == 0 {
            return out("-radix", &self.radix, format!("at least 1 for {d}"));
        }
        if d == DependenceType::Spread && self.radix > self.width {
            return out(
                "-radix",
                &self.radix,
                format!("at most the width ({}) for {d}", self.width),
            );
        }
        if d.needs_period() && self.period == 0 {
            return out("-period", &self.period, format!("at least 1 for {d}"));
        }
        if !d.needs_period() && self.period != 0 {
            return out("-period", &self.period, format!("0 (unused) for {d}"));
        }
        if d == DependenceType::Spread {
            let most = self.width.div_ceil(self.radix);
            if self.period > most {
                return out(
                    "-period",
                    &self.period,
                    format!("at most ceil(width / radix) = {most} for {d}"),
                );
            }
        }
        Ok(())
    }
}
