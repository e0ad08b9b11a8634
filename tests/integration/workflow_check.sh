#!/bin/bash
# workflow_check.sh — `keel workflow check` on the real binary: valid files
# print "ok <name> <hash>" and exit 0; every bad file in
# tests/data/workflows/bad exits 3 with its expected "file:line:col: ...
# message" (from the file's "# expect:" line) and writes nothing; --json,
# --config, missing files and usage errors; and Keel's embedded workflow
# schema (`keel workflow schema`) accepts the good files under ajv, an
# independent JSON Schema 2020-12 validator.
set -u
KEEL=${KEEL_BIN:?set KEEL_BIN to the keel binary}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DATA=$SRC/tests/data/workflows
NODE=$SRC/tests/peers/node
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL: $*" >&2
}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1

# Valid files: one "ok <name> <sha256>" line each, exit 0.
good=("$DATA"/good/* "$SRC"/examples/workflows/*)
out=$("$KEEL" workflow check "${good[@]}" 2>"$WORK/err")
rc=$?
[ $rc -eq 0 ] && ok || bad "good files: exit $rc: $(cat "$WORK/err")"
n=$(printf '%s\n' "$out" | grep -cE '^ok [A-Za-z0-9._-]+ [0-9a-f]{64}$')
[ "$n" -eq "${#good[@]}" ] && ok || bad "good files: $n ok lines for ${#good[@]} files: $out"
[ ! -s "$WORK/err" ] && ok || bad "good files wrote to stderr: $(cat "$WORK/err")"

# The hash is the version: the same document always gives the same hash.
h1=$("$KEEL" workflow check "$DATA/good/minimal.yaml" | cut -d' ' -f3)
printf 'name: minimal\nsteps: [{id: only, succeed: true}]  # same document, other layout\n' >same.yaml
h2=$("$KEEL" workflow check same.yaml | cut -d' ' -f3)
[ -n "$h1" ] && [ "$h1" = "$h2" ] && ok || bad "hash differs for the same document: $h1 $h2"
rm -f same.yaml

# A folder stands for its workflow files; two files with one name are an error.
out=$("$KEEL" workflow check "$DATA/good" 2>"$WORK/err")
rc=$?
n=$(printf '%s\n' "$out" | grep -c '^ok ')
[ $rc -eq 0 ] && [ "$n" -eq "$(ls "$DATA/good" | wc -l)" ] && ok || bad "folder: exit $rc, $n ok lines"
mkdir dup
printf 'name: same\nsteps: [{id: a, succeed: true}]\n' >dup/a.yaml
printf '{"name": "same", "steps": [{"id": "b", "succeed": true}]}' >dup/b.json
printf 'not a workflow' >dup/notes.txt
out=$("$KEEL" workflow check dup 2>"$WORK/err")
rc=$?
[ $rc -eq 3 ] && [[ "$out" == "ok same "* ]] &&
    grep -qF "dup/b.json:1:10: at /name: workflow name 'same' is also used by dup/a.yaml" "$WORK/err" && ok ||
    bad "duplicate names: exit $rc, out '$out', err $(cat "$WORK/err")"
rm -rf dup
mkdir empty
"$KEEL" workflow check empty 2>/dev/null
[ $? -eq 4 ] && ok || bad "empty folder should exit 4"
rmdir empty

# Bad files: exit 3, the expected position and message, nothing on stdout.
for f in "$DATA"/bad/*; do
    expect=$(head -1 "$f" | sed -n 's/^# expect: //p')
    pos=${expect%%: *}
    msg=${expect#*: }
    out=$("$KEEL" workflow check "$f" 2>"$WORK/err")
    rc=$?
    [ $rc -eq 3 ] && ok || bad "$f: exit $rc, expected 3"
    [ -z "$out" ] && ok || bad "$f: printed to stdout: $out"
    grep -qF -- "keel workflow: $f:$pos: " "$WORK/err" && grep -qF -- "$msg" "$WORK/err" && ok ||
        bad "$f: expected '$pos: $msg', got: $(cat "$WORK/err")"
done
# Nothing was written anywhere we ran.
[ -z "$(ls -A "$WORK" | grep -v '^err$')" ] && ok || bad "check wrote files: $(ls -A "$WORK")"

# One bad file among good ones: still exit 3, the good ones still reported ok.
out=$("$KEEL" workflow check "$DATA/good/minimal.yaml" "$DATA/bad/unknown-kind.yaml" 2>/dev/null)
rc=$?
[ $rc -eq 3 ] && [[ "$out" == "ok minimal "* ]] && ok || bad "mixed: exit $rc, out $out"

# --json: one entry per file, errors with positions.
"$KEEL" workflow check --json "$DATA/good/minimal.yaml" "$DATA/bad/goto-missing.yaml" >out.json
rc=$?
[ $rc -eq 3 ] && ok || bad "--json: exit $rc"
python3 - out.json "$DATA" <<'EOF' && ok || bad "--json output"
import json, sys
doc = json.load(open(sys.argv[1]))
f = doc["files"]
assert len(f) == 2, f
assert f[0]["ok"] is True and f[0]["name"] == "minimal" and len(f[0]["hash"]) == 64, f[0]
e = f[1]["errors"][0]
assert f[1]["ok"] is False
assert (e["line"], e["column"], e["path"], e["code"]) == (7, 15, "/steps/0/switch/0/goto", "EINVAL"), e
assert "goto target 'nowhere'" in e["message"], e
EOF
rm -f out.json

# Missing file: exit 4.  Usage errors: exit 2.
"$KEEL" workflow check "$WORK/nope.yaml" 2>/dev/null
[ $? -eq 4 ] && ok || bad "missing file should exit 4"
"$KEEL" workflow check 2>/dev/null
[ $? -eq 2 ] && ok || bad "no file should exit 2"
"$KEEL" workflow frobnicate 2>/dev/null
[ $? -eq 2 ] && ok || bad "unknown subcommand should exit 2"
"$KEEL" workflow check --bogus x.yaml 2>/dev/null
[ $? -eq 2 ] && ok || bad "unknown option should exit 2"

# --config: the example workflow against the example keel.yaml, then
# against a keel.yaml that lacks its tool servers, identity and approvers.
"$KEEL" workflow check --config "$SRC/examples/keel.yaml" "$SRC/examples/workflows/support-triage.yaml" >/dev/null 2>"$WORK/err"
rc=$?
[ $rc -eq 0 ] && ok || bad "--config examples: exit $rc: $(cat "$WORK/err")"
printf 'tools:\n  helpdesk: {command: tool_helpdesk}\nagents:\n  other/agent: {}\n' >keel.yaml
"$KEEL" workflow check --config keel.yaml "$SRC/examples/workflows/support-triage.yaml" >/dev/null 2>"$WORK/err"
rc=$?
[ $rc -eq 3 ] && ok || bad "--config lacking: exit $rc"
for m in "identity 'support/triage' is not declared" "tool server 'crm' is not declared" \
    "belongs to group 'support-leads'"; do
    grep -qF "$m" "$WORK/err" && ok || bad "--config lacking: no '$m' in $(cat "$WORK/err")"
done
# An agent step naming a model keel.yaml does not declare.
printf 'name: x\ninput: {type: object}\nsteps:\n  - id: a\n    agent: support/triage\n    model: nope\n    prompt: hi\n' >agent.yaml
"$KEEL" workflow check --config "$SRC/examples/keel.yaml" agent.yaml >/dev/null 2>"$WORK/err"
rc=$?
[ $rc -eq 3 ] && grep -qF "agent.yaml:6:12: at /steps/0/model: model 'nope' is neither a model nor a route" "$WORK/err" && ok ||
    bad "unknown model: exit $rc: $(cat "$WORK/err")"
rm -f agent.yaml
printf 'tools:\n  helpdesk: {args: [x]}\n' >keel.yaml
"$KEEL" workflow check --config keel.yaml "$SRC/examples/workflows/support-triage.yaml" >/dev/null 2>"$WORK/err"
rc=$?
[ $rc -eq 3 ] && grep -qF "keel.yaml:2:13: at /tools/helpdesk: tool server 'helpdesk' needs exactly one of command" "$WORK/err" && ok ||
    bad "bad keel.yaml: exit $rc: $(cat "$WORK/err")"
rm -f keel.yaml err

# The embedded schema is valid JSON Schema 2020-12 and accepts every good
# workflow (YAML converted to JSON by Python) under ajv.
"$KEEL" workflow schema >schema.json
rc=$?
[ $rc -eq 0 ] && ok || bad "workflow schema: exit $rc"
if [ -x "$NODE" ] && python3 -c 'import yaml' 2>/dev/null; then
    mkdir docs
    for f in "${good[@]}"; do
        python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], "w"))' \
            "$f" "docs/$(basename "$f").json"
    done
    cat >check.js <<'EOF'
const Ajv = require("ajv/dist/2020");
const fs = require("fs");
const ajv = new Ajv({allErrors: true, strict: false});
const validate = ajv.compile(JSON.parse(fs.readFileSync("schema.json", "utf8")));
let bad = 0;
for (const f of fs.readdirSync("docs")) {
  const doc = JSON.parse(fs.readFileSync("docs/" + f, "utf8"));
  if (!validate(doc)) { bad++; console.error(f, JSON.stringify(validate.errors)); }
}
// A document with an unknown step kind must be rejected.
if (validate({name: "x", steps: [{id: "a", tol: "b/c"}]})) { bad++; console.error("accepted bad kind"); }
process.exit(bad ? 1 : 0);
EOF
    NODE_PATH=$SRC/tests/peers/node_modules "$NODE" check.js && ok || bad "ajv rejected a good workflow"
else
    echo "skip: node or python3-yaml missing; schema not cross-checked" >&2
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
