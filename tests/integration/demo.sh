#!/usr/bin/env bash
# demo.sh — `keel demo` (the README's first command after the build) runs
# the support-triage story end to end and says what happened: the run
# succeeds, the drafting agent's attempt to file an issue is refused by
# policy, the lead's approval survives an engine restart, and explain names
# the tool result behind the switch.
set -u
KEEL=${KEEL_BIN:-build/keel}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
out=$("$KEEL" demo --no-color 2>&1)
rc=$?
[ $rc -eq 0 ] && ok || bad "keel demo exited $rc: $(echo "$out" | tail -20)"
for want in "status: waiting" "resumed from the journal; status: waiting" \
    "succeeded; \`keel explain" "policy deny by [\"drafter-never-files-issues\"]" \
    "refused (denied)" "approved by human:lead" \
    "route → open_issue" "read crm/lookup_account"; do
    grep -qF -- "$want" <<<"$out" && ok || bad "no '$want' in the demo's output"
done
# Nothing is left behind without --keep.
home=$(grep -o '/[^ :]*keel-demo\.[A-Za-z0-9]*' <<<"$out" | head -1)
[ -n "$home" ] && [ ! -e "$home" ] && ok || bad "temporary home $home not removed"
"$KEEL" demo --bogus >/dev/null 2>&1
[ $? -eq 2 ] && ok || bad "unknown flag should exit 2"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
