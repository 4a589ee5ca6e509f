#!/usr/bin/env bash
# A soak of Ferry's fault tolerance (not run in CI): `bash scripts/soak.sh [minutes]`.
#
# 1. Builds examples/soak.rs in release (with --features mpi where mpirun and
#    mpicc exist).
# 2. The loopback soak for the minutes given (default 10): tasks, nested
#    tasks rebuilt from lineage, actors re-created from their constructor or
#    their checkpoint, puts and gets of 64 B to 1 MiB, and wait, over 4
#    loopback ranks, one killed every 3 s; every result checked.
# 3. Where mpirun exists: MPI soak jobs (`mpirun -n 3`) one after another
#    with the same FERRY_JOB_ID and checkpoint directory. Each job checks
#    that its checkpointed actor comes back no older than the count the job
#    before saw acknowledged (the example keeps it in a state file). One job
#    has a rank killed with SIGKILL mid-run: it must end by itself within
#    KILL_BOUND seconds, and the next job must restore a checkpoint no older
#    than the last count the killed job saw acknowledged.
#
# Every command runs under `timeout`. Prints each summary line and a final
# verdict; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-10}
if ! awk -v m="$minutes" 'BEGIN { exit !(m + 0 == m && m > 0 && m <= 10000) }'; then
  echo "usage: bash scripts/soak.sh [minutes]   (minutes: a number above 0, at most 10000)" >&2
  exit 2
fi
# Seconds the whole of a timed command may take: its soak plus room to start and stop.
seconds_for() { awk -v m="$1" 'BEGIN { printf "%d", m * 60 + 300 }'; }

KILL_BOUND=30     # seconds a job with a SIGKILLed rank may take to end by itself
RANKS=3           # ranks of each MPI job
EVERY=10          # the ledger actor checkpoints every EVERY calls
export CARGO_TERM_COLOR=never

failures=()
fail() { echo "soak.sh: FAILURE: $*" >&2; failures+=("$*"); }
say() { printf '\n== %s\n' "$*"; }

features=()
mpi=no
if command -v mpirun >/dev/null && command -v mpicc >/dev/null; then
  mpi=yes
  features=(--features mpi)
fi

say "build: cargo build --release --example soak ${features[*]}"
if ! timeout 3600 cargo build --release --example soak "${features[@]}"; then
  echo "soak.sh: FAIL: the build failed" >&2
  exit 1
fi
bin="${CARGO_TARGET_DIR:-target}/release/examples/soak"

say "loopback: $minutes minute(s), 4 ranks, a rank killed every 3 s"
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-soak.XXXXXX") || exit 1
# Logs are kept when something failed.
trap '[ "${#failures[@]}" -eq 0 ] && rm -rf "$log_dir" || echo "soak.sh: logs kept in $log_dir"' EXIT
timeout "$(seconds_for "$minutes")" "$bin" loopback --ranks 4 --minutes "$minutes" --kill-every 3 \
  > "$log_dir/loopback.log" 2> "$log_dir/loopback.err"
rc=$?
grep '^soak' "$log_dir/loopback.log"
if [ "$rc" != 0 ]; then
  grep 'FAILURE' "$log_dir/loopback.err" | head -20 >&2
  if [ "$rc" = 124 ]; then
    fail "loopback: still running after $(seconds_for "$minutes") s: hung"
  else
    fail "loopback: exit status $rc"
  fi
fi
summaries=("$(grep -m1 '^soak: [0-9]' "$log_dir/loopback.log")")

if [ "$mpi" = yes ]; then
  if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  job="soak-$$-$(date +%s)"
  ckpt="$log_dir/checkpoints"
  state="$log_dir/ledger.ack"
  mkdir -m 0700 "$ckpt"
  # A job's share of the run; at least 6 s.
  job_minutes=$(awk -v m="$minutes" 'BEGIN { j = m / 4; if (j < 0.1) j = 0.1; print j }')
  mkdir -m 0700 "$log_dir/spill"
  mpi_cmd=(mpirun --oversubscribe -n "$RANKS"
    -x FERRY_JOB_ID="$job" -x FERRY_CHECKPOINT_DIR="$ckpt" -x FERRY_SPILL_DIR="$log_dir/spill"
    -x FERRY_OBJECT_STORE_MEMORY=$((128 << 20))
    "$bin" mpi --state "$state" --checkpoint-every "$EVERY")
  # The count the last job saw acknowledged (0 before the first).
  ack() { sed -n 's/^ack=\([0-9]*\) .*/\1/p' "$state" 2>/dev/null | grep . || echo 0; }
  # The count a job's summary says the ledger came back at.
  restored_at() { sed -n 's/.*ledger restored at \([0-9]*\) .*/\1/p' "$1" | head -1; }
  run_job() { # name minutes
    local name=$1 m=$2 rc
    timeout "$(seconds_for "$m")" "${mpi_cmd[@]}" --minutes "$m" > "$log_dir/$name.log" 2>&1
    rc=$?
    grep '^soak' "$log_dir/$name.log"
    if [ "$rc" != 0 ]; then
      grep -i 'FAILURE\|error' "$log_dir/$name.log" | head -20 >&2
      if [ "$rc" = 124 ]; then
        fail "$name: still running after $(seconds_for "$m") s: hung"
      else
        fail "$name: exit status $rc"
      fi
    fi
    summaries+=("$name: $(grep -m1 '^soak mpi: [0-9]' "$log_dir/$name.log")")
  }

  for j in 1 2 3; do
    say "mpi job $j of 3: mpirun -n $RANKS, $job_minutes minute(s), job id $job"
    run_job "mpi-job-$j" "$job_minutes"
  done

  victim=$((RANKS - 1))
  say "mpi job 4: rank $victim (the ledger's) killed with SIGKILL mid-run; it must end within $KILL_BOUND s"
  pids="$log_dir/pids"
  mkdir -m 0700 "$pids"
  before=$(ack)
  timeout 900 "${mpi_cmd[@]}" --minutes 10 --pid-dir "$pids" > "$log_dir/mpi-killed.log" 2>&1 &
  job_pid=$!
  # Until the job has acknowledged 20 more checkpoints (at most 120 s).
  for _ in $(seq 1200); do
    [ "$(ack)" -ge $((before + 20 * EVERY)) ] && [ -s "$pids/rank$victim.pid" ] && break
    kill -0 "$job_pid" 2>/dev/null || break
    sleep 0.1
  done
  # Ends the job from outside (when it did not end by itself).
  end_job() {
    kill -9 "$job_pid" 2>/dev/null
    for f in "$pids"/rank*.pid; do [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
    wait "$job_pid" 2>/dev/null
  }
  if ! [ -s "$pids/rank$victim.pid" ] || ! kill -0 "$job_pid" 2>/dev/null; then
    cat "$log_dir/mpi-killed.log" >&2
    fail "mpi job 4: the job did not get going (or ended early) before the kill"
    end_job
  else
    kill -9 "$(cat "$pids/rank$victim.pid")"
    killed_at=$(date +%s.%N)
    while kill -0 "$job_pid" 2>/dev/null; do
      if awk -v a="$killed_at" -v b="$(date +%s.%N)" -v k="$KILL_BOUND" 'BEGIN { exit !(b - a > k) }'; then
        break
      fi
      sleep 0.1
    done
    took=$(awk -v a="$killed_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if kill -0 "$job_pid" 2>/dev/null; then
      fail "mpi job 4: still running $KILL_BOUND s after rank $victim was killed"
      end_job
    else
      wait "$job_pid"
      rc=$?
      echo "soak.sh: the job ended by itself ${took} s after rank $victim was killed (bound: $KILL_BOUND s), exit status $rc"
      [ "$rc" = 0 ] && fail "mpi job 4: a job with a killed rank exited 0"
      summaries+=("mpi job 4: rank $victim killed with SIGKILL; the job ended by itself in ${took} s (bound $KILL_BOUND s), exit status $rc")
    fi
  fi
  killed_ack=$(ack)
  echo "soak.sh: the killed job saw up to $killed_ack acknowledged (the job before it: $before)"
  [ "$killed_ack" -gt "$before" ] || fail "mpi job 4: no acknowledged progress before the kill"
  left=$(find /dev/shm -maxdepth 1 -name "ferry-$job-r*" -print -delete 2>/dev/null)
  if [ -n "$left" ]; then
    echo "soak.sh: note: the killed job left these in /dev/shm (removed now):" $left
  fi

  say "mpi job 5: restores a checkpoint no older than $killed_ack"
  run_job "mpi-job-5" "$job_minutes"
  got=$(restored_at "$log_dir/mpi-job-5.log")
  if [ -z "$got" ]; then
    fail "mpi job 5: no 'ledger restored at' in its summary"
  elif [ "$got" -lt "$killed_ack" ]; then
    fail "mpi job 5: the ledger came back at $got, older than the $killed_ack acknowledged before the kill"
  else
    echo "soak.sh: after the kill the ledger came back at $got (acknowledged before the kill: $killed_ack)"
  fi
else
  say "mpi: skipped (mpirun and mpicc not found: install openmpi-bin libopenmpi-dev)"
fi

say "summary"
for s in "${summaries[@]}"; do echo "$s"; done
if [ "${#failures[@]}" -eq 0 ]; then
  echo "soak.sh: PASS"
else
  echo "soak.sh: FAIL (${#failures[@]}):"
  for f in "${failures[@]}"; do echo "  - $f"; done
  exit 1
fi
