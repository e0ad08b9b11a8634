#!/usr/bin/env bash
# diff.sh N [SEED] — differential fuzzing of Keel's Cedar engine against
# cedar-wasm on demand: N checks (e.g. 100000) in chunks of 10,000, each
# chunk with its own seed, so any disagreement is reproducible with
#   POLICY_DIFF_N=10000 POLICY_DIFF_SEED=<seed> tests/integration/policy_diff_cedar.sh
# Exits nonzero on the first chunk with a disagreement.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
n="${1:?usage: bench/policy/diff.sh N [SEED]}"
seed="${2:-1000}"
export KEEL_BIN="${KEEL_BIN:-$root/build/keel}"
done_n=0
while [ "$done_n" -lt "$n" ]; do
    chunk=$(( n - done_n < 10000 ? n - done_n : 10000 ))
    echo "== seed $seed: $chunk checks"
    POLICY_DIFF_N="$chunk" POLICY_DIFF_SEED="$seed" "$root/tests/integration/policy_diff_cedar.sh"
    done_n=$(( done_n + chunk ))
    seed=$(( seed + 1 ))
done
echo "diff.sh: $done_n checks, zero disagreements"
