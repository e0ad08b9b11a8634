#!/usr/bin/env bash
# schema_diff_ajv.sh — bounded differential test: generated instances for
# the realistic MCP tool schemas (bench/schema/mcp_tools.json), judged by
# ajv 8 and by `keel schema check`; any disagreement fails.  The long run:
#   tests/peers/node bench/schema/diff_ajv.cjs build/keel 20000
set -eu
KEEL=${KEEL_BIN:?set KEEL_BIN to the keel binary}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NODE="$ROOT/tests/peers/node"
if [ ! -x "$NODE" ] || [ ! -d "$ROOT/tests/peers/node_modules/ajv" ]; then
    echo "schema_diff_ajv: test peers missing; run scripts/peers" >&2
    exit 1
fi
# 8 tools x 400 = 3200 instances, fixed seed (reproducible).
exec "$NODE" "$ROOT/bench/schema/diff_ajv.cjs" "$KEEL" 400 12345
