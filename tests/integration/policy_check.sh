#!/usr/bin/env bash
# policy_check.sh — drives `keel policy check` end to end: valid and invalid
# policies against human and JSON schemas, positioned errors, exit codes,
# --json output, and Cedar's integration tests (each must validate exactly
# when its "shouldValidate" says so).
set -u
KEEL="$(realpath "${KEEL_BIN:-build/keel}")"
SHARED="$(cd "$(dirname "$0")/../../.." && pwd)/shared/data"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

cat > "$T/s.cedarschema" <<'S'
entity User in [Group] = { name: String, age?: Long };
entity Group;
entity Photo = { owner: User, private: Bool };
action view, edit appliesTo { principal: [User], resource: [Photo], context: { mfa: Bool } };
S
cat > "$T/s.json" <<'S'
{"": {"entityTypes": {
   "User": {"memberOfTypes": ["Group"], "shape": {"type": "Record", "attributes": {
       "name": {"type": "String"}, "age": {"type": "Long", "required": false}}}},
   "Group": {},
   "Photo": {"shape": {"type": "Record", "attributes": {
       "owner": {"type": "Entity", "name": "User"}, "private": {"type": "Boolean"}}}}},
 "actions": {
   "view": {"appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Photo"],
            "context": {"type": "Record", "attributes": {"mfa": {"type": "Boolean"}}}}},
   "edit": {"appliesTo": {"principalTypes": ["User"], "resourceTypes": ["Photo"],
            "context": {"type": "Record", "attributes": {"mfa": {"type": "Boolean"}}}}}}}}
S
cat > "$T/good.cedar" <<'P'
@id("owner-views")
permit(principal, action == Action::"view", resource)
when { resource.owner == principal && context.mfa };
forbid(principal in Group::"banned", action, resource)
unless { principal has age && principal.age >= 18 };
P
cat > "$T/bad.cedar" <<'P'
@id("bad")
permit(principal, action, resource) when {
  principal.nope &&
  principal.age > 3
};
P
printf 'permit(principal, action, resource) when { 1 + };\n' > "$T/syntax.cedar"
printf 'entity A = { x: Nope };\n' > "$T/broken.cedarschema"

for schema in s.cedarschema s.json; do
    out=$("$KEEL" policy check "$T/good.cedar" --schema "$T/$schema" 2>&1); rc=$?
    [ $rc -eq 0 ] && echo "$out" | grep -q "ok: 2 policies parse and validate" && ok \
        || bad "good.cedar with $schema: rc=$rc $out"
    out=$("$KEEL" policy check "$T/bad.cedar" --schema "$T/$schema" 2>&1); rc=$?
    [ $rc -eq 3 ] && echo "$out" | grep -q "bad.cedar:3:.*policy bad: attribute 'nope'" \
        && echo "$out" | grep -q "bad.cedar:4:.*optional" && echo "$out" | grep -q "2 problems" \
        && ok || bad "bad.cedar with $schema: rc=$rc $out"
done

out=$("$KEEL" policy check "$T/good.cedar" "$T/bad.cedar" --schema "$T/s.cedarschema" --json 2>/dev/null); rc=$?
[ $rc -eq 3 ] && echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["ok"] is False and d["policies"] == 3 and d["validated"] is True
assert len(d["errors"]) == 2, d
e = d["errors"][0]
assert e["policy"] == "bad" and e["line"] == 3 and e["file"].endswith("bad.cedar"), e
' && ok || bad "--json: rc=$rc $out"

printf 'permit(principal, action, resource) when { resource is User };\n' > "$T/impossible.cedar"
out=$("$KEEL" policy check "$T/impossible.cedar" --schema "$T/s.cedarschema" 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q "impossible.cedar:1:1: policy policy0: warning: policy is impossible" \
    && ok || bad "impossible policy: rc=$rc $out"

out=$("$KEEL" policy check "$T/syntax.cedar" 2>&1); rc=$?
[ $rc -eq 3 ] && echo "$out" | grep -q "syntax.cedar:1:" && ok || bad "syntax: rc=$rc $out"

out=$("$KEEL" policy check "$T/good.cedar" --schema "$T/broken.cedarschema" 2>&1); rc=$?
[ $rc -eq 3 ] && echo "$out" | grep -q "broken.cedarschema:1:17: .*unknown type 'Nope'" && ok \
    || bad "broken schema: rc=$rc $out"

out=$("$KEEL" policy check "$T/good.cedar" 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q "ok: 2 policies parse$" && ok || bad "no schema: rc=$rc $out"

"$KEEL" policy check "$T/missing.cedar" >/dev/null 2>&1; rc=$?
[ $rc -eq 4 ] && ok || bad "missing file: rc=$rc"
"$KEEL" policy check >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok || bad "no files: rc=$rc"
"$KEEL" policy check "$T/good.cedar" --bogus >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok || bad "unknown flag: rc=$rc"

# Cedar's integration tests: validity must match shouldValidate.
if [ -d "$SHARED/cedar-integration/tests" ]; then
    for f in "$SHARED"/cedar-integration/tests/*/*.json; do
        read -r pol sch want < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["policies"], d["schema"], "1" if d["shouldValidate"] else "0")' "$f")
        (cd "$SHARED/cedar-integration" && "$KEEL" policy check "$pol" --schema "$sch" >/dev/null 2>&1)
        rc=$?
        if { [ "$want" = 1 ] && [ $rc -eq 0 ]; } || { [ "$want" = 0 ] && [ $rc -eq 3 ]; }; then ok
        else bad "$f: shouldValidate=$want but rc=$rc"; fi
    done
fi

echo "$pass passed, $fails failed"
[ $fails -eq 0 ]
