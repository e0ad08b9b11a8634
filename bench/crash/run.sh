#!/usr/bin/env bash
# The crash test in its long mode: 200 runs of the 10-step workflow over the
# example tool servers, `keel serve` killed with SIGKILL at random instants
# and restarted.  Prints the runs, kills, resumed runs, retried keys and
# time; exits nonzero if any run did not succeed, any effect happened twice
# or any journal fails verification.
#
#   bench/crash/run.sh [BUILD_DIR] [RUNS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
export KEEL_BIN=$PWD/$build/keel KEEL_BUILD_DIR=$PWD/$build
export KEEL_CRASH_RUNS=${2:-200}
[ -n "${3:-}" ] && export KEEL_CRASH_SEED=$3
exec python3 tests/integration/crash.py
