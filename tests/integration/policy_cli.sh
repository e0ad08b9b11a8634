#!/usr/bin/env bash
# policy_cli.sh — drives `keel policy eval|test` as users do: decisions and
# exit codes (0 allow / 1 deny / 2 usage / 3 bad input / 4 missing file),
# positioned errors, --json output, and `policy test` on Cedar's integration
# tests and corpus (100% expected) and on a failing test file (exit 1).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
KEEL_BIN="${KEEL_BIN:-$root/build/keel}"
shared="${KEEL_SHARED:-$root/../shared}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0
expect() { # expect NAME WANT_RC GOT_RC [OUTPUT PATTERN]
    if [ "$2" != "$3" ]; then
        echo "FAIL $1: exit $3, want $2"; fails=$((fails + 1)); return
    fi
    if [ $# -ge 5 ] && ! grep -q -- "$5" <<<"$4"; then
        echo "FAIL $1: output lacks '$5':"; echo "$4"; fails=$((fails + 1)); return
    fi
    echo "ok   $1"
}

cat >"$tmp/agents.cedar" <<'POL'
@id("support-read")
permit(principal in Team::"support", action == Action::"call", resource in Server::"helpdesk");

@id("refunds") @approval("support-leads")
permit(principal in Team::"support", action == Action::"call", resource == Tool::"crm/refund")
when { context.args.amount <= 500 };

@id("no-night-refunds")
forbid(principal, action, resource == Tool::"crm/refund") when { context.hour < 6 };
POL
cat >"$tmp/entities.json" <<'ENT'
[{"uid": {"type": "Agent", "id": "triage"}, "attrs": {}, "parents": [{"type": "Team", "id": "support"}]},
 {"uid": {"type": "Team", "id": "support"}, "attrs": {}, "parents": []},
 {"uid": {"type": "Tool", "id": "helpdesk/get"}, "attrs": {}, "parents": [{"type": "Server", "id": "helpdesk"}]}]
ENT
ev() { "$KEEL_BIN" policy eval "$tmp/agents.cedar" --entities "$tmp/entities.json" \
       --principal 'Agent::"triage"' --action 'Action::"call"' "$@" 2>&1; }

out=$(ev --resource 'Tool::"helpdesk/get"'); expect "eval allow via hierarchy" 0 $? "$out" "support-read"
out=$(ev --resource 'Tool::"crm/refund"' --context '{"args": {"amount": 10}, "hour": 12}')
expect "eval allow needing approval" 0 $? "$out" "needs approval by: support-leads"
out=$(ev --resource 'Tool::"crm/refund"' --context '{"args": {"amount": 10}, "hour": 3}' --json)
expect "eval forbid overrides (json)" 1 $? "$out" '"reasons":\["no-night-refunds"\]'
out=$(ev --resource 'Tool::"crm/refund"' --context '{"hour": 12}')
expect "eval error skipped and reported" 1 $? "$out" "agents.cedar:6:8: record has no attribute"
out=$(ev --resource '{"type": "Tool", "id": "other"}'); expect "eval default deny" 1 $? "$out" "^deny"
printf 'permit(principal, action, resource) when { context.x == };\n' >"$tmp/bad.cedar"
out=$("$KEEL_BIN" policy eval "$tmp/bad.cedar" --principal 'A::"a"' --action 'Action::"b"' --resource 'C::"c"' 2>&1)
expect "eval parse error positioned" 3 $? "$out" "bad.cedar:1:57: expected an expression"
out=$("$KEEL_BIN" policy eval "$tmp/none.cedar" --principal 'A::"a"' --action 'Action::"b"' --resource 'C::"c"' 2>&1)
expect "eval missing file" 4 $? "$out"
out=$("$KEEL_BIN" policy eval "$tmp/agents.cedar" 2>&1); expect "eval usage" 2 $? "$out" "needs policy FILEs"
out=$("$KEEL_BIN" policy frob 2>&1); expect "unknown subcommand" 2 $? "$out" "unknown subcommand"

out=$("$KEEL_BIN" policy test --root "$shared/data/cedar-integration" "$shared/data/cedar-integration"/tests/*/*.json 2>&1)
expect "test cedar-integration" 0 $? "$out" "passed, 0 failed; 0 tests"
out=$("$KEEL_BIN" policy test "$shared/data/cedar-corpus-public.jsonl" 2>&1)
expect "test cedar corpus" 0 $? "$out" "31656 passed, 0 failed"
cat >"$tmp/mine.jsonl" <<'T'
{"name": "wrong", "policies": "permit(principal, action, resource);", "entities": [], "requests": [{"description": "expects deny", "principal": {"type": "A", "id": "a"}, "action": {"type": "Action", "id": "x"}, "resource": {"type": "R", "id": "r"}, "context": {}, "decision": "deny", "reason": [], "errors": []}]}
T
out=$("$KEEL_BIN" policy test "$tmp/mine.jsonl" 2>&1)
expect "test mismatch reported" 1 $? "$out" "expected deny reasons \[\] errors \[\]; got allow reasons \[policy0\]"

[ "$fails" -eq 0 ] && echo "policy_cli: all passed" || { echo "policy_cli: $fails failed"; exit 1; }
