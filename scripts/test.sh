#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests, doc
# tests, every example (each asserts what its Ray tutorial shows), the
# benchmarks' build, and a short `ferry bench` smoke run.
#
# Needs a Rust toolchain. System packages that later features need are
# installed with apt when running as root; otherwise the script says what to
# install. Run from anywhere: `bash scripts/test.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# System packages. The default build needs none; the `mpi` and `hwloc`
# features need these (checked here so one command prepares a fresh machine).
packages=(pkg-config libclang-dev libopenmpi-dev openmpi-bin libhwloc-dev libudev-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null \
      || echo "warning: apt-get could not install ${missing[*]}; the default build does not need them"
  else
    echo "note: not root, so not installing: ${missing[*]} (needed only for the mpi/hwloc features):"
    echo "      sudo apt-get install ${missing[*]}"
  fi
fi

export CARGO_TERM_COLOR=never
export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
export FERRY_IGNORE_UNHANDLED_ERRORS=1

say "format"
cargo fmt --all -- --check

say "lints"
cargo clippy --workspace --all-targets --release -- -D warnings

# core/src in layers: no module names a layer above it, no import circle
# leaves a folder or spans more than three files, no file over 700 lines.
say "layers of core"
timeout 600 cargo test --release -p ferry-core --test layers

# Every cargo test and mpirun below runs under a bound, so a hang fails CI
# with the step's name instead of stalling it.
say "tests (unit, integration, doc)"
timeout 2700 cargo test --workspace --release

say "examples"
cargo build --release --examples
for src in examples/*.rs; do
  name=$(basename "$src" .rs)
  echo "-- example $name"
  start=$(date +%s)
  # As the README runs them: no variables added.
  timeout 600 "target/release/examples/$name"
  echo "-- example $name passed in $(( $(date +%s) - start )) s"
done

say "MPI: the mpi feature, the transport and the multi-rank suite over real mpirun, every example on 2, 3 and 4 ranks"
if command -v mpirun >/dev/null && command -v mpicc >/dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  cargo clippy --workspace --all-targets --release --features mpi -- -D warnings
  timeout 900 cargo test --release -p ferry-transport --features mpi
  # The multi-rank suite (tests/multirank) under mpirun -n 2, 3 and 4: the
  # same scenarios tests/cluster_suite.rs runs over loopback.
  timeout 2400 cargo test --release --features mpi --test mpi_suite
  cargo build --release --features mpi --examples
  for n in 2 3 4; do
    for src in examples/*.rs; do
      name=$(basename "$src" .rs)
      echo "-- mpirun -n $n example $name"
      timeout 600 mpirun --oversubscribe -x FERRY_NUM_CPUS=2 -n "$n" "target/release/examples/$name" > "target/mpi-$name-$n.log" 2>&1 \
        || { cat "target/mpi-$name-$n.log"; echo "example $name failed on $n ranks" >&2; exit 1; }
    done
  done
  # The README's command as written (OpenMPI's root variables are set
  # above; more ranks than cores need --oversubscribe, as the README says).
  for n in 1 2 3 4; do
    echo "-- README: mpirun -n $n target/release/examples/quickstart"
    over=(); [ "$n" -gt "$(nproc)" ] && over=(--oversubscribe)
    timeout 300 mpirun "${over[@]}" -n "$n" target/release/examples/quickstart > "target/readme-quickstart-$n.log" 2>&1 \
      || { cat "target/readme-quickstart-$n.log"; echo "the README's quickstart failed on $n ranks" >&2; exit 1; }
    grep -q "sum of 1 GiB of ones" "target/readme-quickstart-$n.log"
  done
  echo "-- faults under mpirun: a stopped rank, rank 0's exit and panic, a killed rank (each bounded)"
  timeout 900 cargo test --release --features mpi --test mpi_faults
  echo "-- mpirun -n 2 ferry bench --quick --filter cross-rank"
  cargo build --release --features mpi --bin ferry
  timeout 600 mpirun --oversubscribe -x FERRY_NUM_CPUS=1 -n 2 target/release/ferry bench --quick --filter cross-rank
  echo "-- Slurm: srun -n 2, and sbatch of a script from ferry sbatch, on a one-node Slurm here"
  if [ "$(id -u)" = 0 ] && timeout 600 bash scripts/start-local-slurm.sh > target/slurm-start.log 2>&1; then
    timeout 300 srun --mpi=pmix -n 2 target/release/examples/timeline "$PWD/target/srun-timeline.json" > target/srun.log 2>&1 \
      || { cat target/srun.log; echo "srun -n 2 failed" >&2; exit 1; }
    grep -q 'rank(s) {0, 1}' target/srun.log || { cat target/srun.log; echo "srun did not run 2 ranks" >&2; exit 1; }
    # The README's srun line as written (-O: more ranks than cores here).
    timeout 300 srun --mpi=pmix -O -n 4 target/release/examples/quickstart > target/srun-quickstart.log 2>&1 \
      || { cat target/srun-quickstart.log; echo "srun -n 4 quickstart failed" >&2; exit 1; }
    grep -q "sum of 1 GiB of ones" target/srun-quickstart.log
    rm -f target/sbatch-*.txt
    timeout 600 target/release/ferry sbatch --ranks-per-node 2 --output "$PWD/target/sbatch-%j.txt" --submit --wait \
      -- "$PWD/target/release/examples/timeline" "$PWD/target/sbatch-timeline.json"
    grep -q 'rank(s) {0, 1}' target/sbatch-*.txt || { cat target/sbatch-*.txt; echo "the sbatch job did not run 2 ranks" >&2; exit 1; }
    echo "Slurm: srun and sbatch ran the example on 2 ranks"
  else
    echo "skipped: a one-node Slurm needs root here (scripts/start-local-slurm.sh)"
    cat target/slurm-start.log 2>/dev/null || true
  fi
  echo "-- Task Bench over plain MPI: taskbench-mpi on 1, 2, 3 ranks for every pattern; the METG sweep's checks and a tiny sweep"
  timeout 900 cargo test --release -p ferry-taskbench --features mpi
  timeout 300 python3 scripts/test_taskbench_metg.py
  # Leave the default (no-MPI) builds in place.
  cargo build --release --examples --bin ferry
else
  echo "skipped: mpirun/mpicc not found (install openmpi-bin libopenmpi-dev)"
fi

say "scripts/sched_share.py: a run's core time by thread, from perf sched (on a fixed record)"
timeout 60 python3 scripts/test_sched_share.py

say "hwloc: topology, binding plan and real binding read through hwloc"
if pkg-config --exists hwloc 2>/dev/null; then
  cargo clippy --workspace --all-targets --release --features hwloc -- -D warnings
  timeout 900 cargo test --release -p ferry-launcher --features hwloc
  timeout 900 cargo test --release --features hwloc --test binding --test binding_threads --test gpu_no_driver
  cargo run --release --features hwloc --bin ferry -- info -n 2
  cargo run --release --features hwloc --bin ferry -- info -n 2 --json > target/info-hwloc.json
  grep -q '"source": "hwloc"' target/info-hwloc.json || { echo "ferry info did not read hwloc" >&2; exit 1; }
else
  echo "skipped: hwloc not found by pkg-config (install libhwloc-dev libudev-dev)"
fi

say "fault suite: issue 12's cases, each a typed error or a bounded exit"
# Each line: the case, then the tests that reproduce it (they also ran
# above; here they are named case by case).
faults=(
  "lineage: a lost rank's memory is never read|lineage"
  "/dev/shm full while running; killed jobs leave nothing; corrupt spill|shm_faults"
  "default store divided among a node's ranks|shm_faults"
  "checkpoints: unwritable, not private, FIFO, 4 GiB header, forged zero state, symlink|checkpoint_faults"
  "FERRY_* bounds, Duration::MAX, SIGUSR1 without a status file|config_bounds"
  "ferry sbatch injection, script 0600, --kill-on-bad-exit|cli_sbatch"
  "ferry status --pid 0, ferry info -n 4294967295|cli_args"
  "ferry clean removes only what is Ferry's|cli_clean"
  "a stopped or garbled rank is declared lost (heartbeat)|heartbeat"
  "infeasible requests name the largest rank and how to give it more|resource_infeasible"
  "runtime warnings reach stderr with the rank|log_stderr"
)
for f in "${faults[@]}"; do
  echo "-- ${f%%|*}"
  timeout 900 cargo test --release -q --test "${f##*|}" 2>&1 | grep -E "^test result|FAILED|panicked" \
    || { echo "fault case failed: ${f%%|*}" >&2; exit 1; }
done

say "benchmarks build; ferry bench smoke run"
cargo bench --workspace --no-run
cargo run --release --bin ferry -- bench --quick

say "no shared-memory files left behind"
leftover=$(ls /dev/shm 2>/dev/null | grep '^ferry-' || true)
if [ -n "$leftover" ]; then
  echo "left in /dev/shm: $leftover" >&2
  exit 1
fi
say "all passed"
