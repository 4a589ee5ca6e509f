//! `ferry bench`: Ferry versions of Ray's single-process microbenchmark,
//! then Ferry's own measurements, each beside the raw operation it stands
//! on. One module per group of metrics; each stands on the layer below it
//! (the runner, the shared fixtures, `timeit`, Ray's figures), never on
//! another group.

mod anchors;
mod fixtures;
mod progress;
mod runner;
mod timeit;

mod async_metrics;
mod cross_rank;
mod gpu;
mod locality;
mod placement;
mod put_file;
mod ray_metrics;
mod spill;

pub(crate) use runner::BenchArgs;

use crate::CliError;

/// `ferry bench`: the groups, in the order they run and print.
pub(crate) fn run(args: &BenchArgs) -> Result<(), CliError> {
    runner::run(args, |rt, r| {
        ray_metrics::run(rt, r)?;
        async_metrics::run(rt, r)?;
        placement::run(rt, r)?;
        cross_rank::run(rt, r)?;
        locality::run(rt, r)?;
        gpu::run(r)?;
        put_file::run(rt, r, args.quick)?;
        spill::run(r, args.quick)?;
        spill::run_million(rt, r, args.quick)
    })
}
