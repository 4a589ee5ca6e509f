//! Runtime warnings and errors reach the user: unless the program installed
//! a `tracing` subscriber of its own first, [`install`] (called by `init`,
//! `#[ferry::main]` and the loopback world) sets one that writes to standard
//! error, each line prefixed with the rank (`ferry[rank 3] WARN …`).
//!
//! The filter is `FERRY_LOG`, else `RUST_LOG` (`tracing-subscriber`'s
//! `EnvFilter` syntax: `warn`, `ferry_core=debug,info`, …), else `warn`.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::error::{Error, Result};

/// The rank of this process, for lines from threads that serve no runtime.
static PROCESS_RANK: OnceLock<u32> = OnceLock::new();

thread_local! {
    /// The rank a runtime thread without a current runtime works for (the
    /// message and heartbeat threads; loopback ranks share a process).
    static THREAD_RANK: Cell<Option<u32>> = const { Cell::new(None) };
    /// The rank of this thread's current runtime, kept beside it by
    /// whoever sets it (see `task::context`).
    static RUNTIME_RANK: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Says which rank this thread's log lines are from.
pub(crate) fn set_thread_rank(rank: u32) {
    THREAD_RANK.with(|r| r.set(Some(rank)));
}

/// Says which rank this thread's current runtime is (`None`: it has none);
/// returns the one it replaces. Lines name it unless
/// [`set_thread_rank`] named another.
pub(crate) fn set_runtime_rank(rank: Option<u32>) -> Option<u32> {
    RUNTIME_RANK.with(|r| r.replace(rank))
}

/// The filter the environment asks for, or the default (`warn`).
fn filter() -> Result<EnvFilter> {
    for name in ["FERRY_LOG", "RUST_LOG"] {
        if let Ok(v) = std::env::var(name)
            && !v.trim().is_empty()
        {
            return EnvFilter::try_new(v.trim()).map_err(|e| {
                Error::InvalidArgument(format!("{name}={v:?} is not a log filter: {e}"))
            });
        }
    }
    Ok(EnvFilter::new("warn"))
}

/// Installs the stderr subscriber if no global one is set yet; a malformed
/// `FERRY_LOG`/`RUST_LOG` is an error. Returns whether Ferry's was installed.
pub(crate) fn install(process_rank: u32) -> Result<bool> {
    let _ = PROCESS_RANK.set(process_rank);
    let filter = filter()?;
    if tracing::dispatcher::has_been_set() {
        return Ok(false);
    }
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(RankPrefix)
        .try_init()
        .is_ok();
    Ok(installed)
}

/// `ferry[rank R] LEVEL message`: R is the rank whose thread logs (loopback
/// ranks share a process), else this process's rank.
struct RankPrefix;

impl<S, N> FormatEvent<S, N> for RankPrefix
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let rank = THREAD_RANK
            .with(Cell::get)
            .or_else(|| RUNTIME_RANK.with(Cell::get))
            .or_else(|| PROCESS_RANK.get().copied());
        match rank {
            Some(r) => write!(writer, "ferry[rank {r}] {} ", event.metadata().level())?,
            None => write!(writer, "ferry {} ", event.metadata().level())?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
