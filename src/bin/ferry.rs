//! The `ferry` command-line tool.
//!
//! * `ferry info [-n N] [--json]`: this node's topology and the binding plan
//!   for `N` ranks per node.
//! * `ferry bench [--filter S] [--json FILE] [--quick] [--num-cpus N]`: Ferry
//!   versions of Ray's single-process microbenchmark (`ray microbenchmark`,
//!   python/ray/_private/ray_perf.py), printed the way Ray prints them, then
//!   compared with Ray's figures measured on a 2-core machine.

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
