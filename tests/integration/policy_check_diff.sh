#!/usr/bin/env bash
# policy_check_diff.sh — random differential test of strict validation and
# request validation against the reference implementation:
# policy_check_diff_gen.mjs makes policies over a rich schema,
# policy_check_request_gen.mjs requests and policy_check_entity_gen.mjs
# entity data, each recording cedar-wasm's verdict;
# the unit test runner's corpus checks then run Keel on every case and
# require full agreement.  usage: policy_check_diff.sh [CASES] [SEED]
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${KEEL_BUILD_DIR:-$ROOT/build}"
NODE="$ROOT/tests/peers/node"
CASES="${1:-1500}"
SEED="${2:-$(( $(date +%s) % 100000 ))}"
if [ ! -x "$NODE" ] || [ ! -d "$ROOT/tests/peers/node_modules/@cedar-policy/cedar-wasm" ]; then
    echo "SKIP: the Node peer is not installed (run scripts/peers)"
    exit 0
fi
if [ ! -x "$BUILD/test_policy_validate" ]; then
    echo "FAIL: $BUILD/test_policy_validate is not built" >&2
    exit 1
fi
OUT="$(mktemp --suffix=.jsonl)"
trap 'rm -f "$OUT"' EXIT
echo "seed $SEED"
"$NODE" "$ROOT/tests/integration/policy_check_diff_gen.mjs" "$OUT" "$CASES" "$SEED" || exit 1
KEEL_VALIDATE_JSONL="$OUT" "$BUILD/test_policy_validate" corpus_agreement || exit 1
"$NODE" "$ROOT/tests/integration/policy_check_request_gen.mjs" "$OUT" "$CASES" "$SEED" || exit 1
KEEL_REQUESTS_JSONL="$OUT" "$BUILD/test_policy_validate" corpus_requests_and_entities || exit 1
"$NODE" "$ROOT/tests/integration/policy_check_entity_gen.mjs" "$OUT" "$CASES" "$SEED" || exit 1
KEEL_REQUESTS_JSONL="$OUT" "$BUILD/test_policy_validate" corpus_requests_and_entities
