#!/usr/bin/env bash
# schema_cli.sh — drives `keel schema check`: exit codes, files and stdin
# modes, --json basic output, --remote resolution, and error messages.
# Needs KEEL_BIN (set by ctest).
set -u
KEEL=${KEEL_BIN:?set KEEL_BIN to the keel binary}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
REMOTES="$HERE/../shared/data/json-schema-test-suite/remotes"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
pass=0

expect() { # expect NAME WANTED_RC ACTUAL_RC
    if [ "$2" = "$3" ]; then pass=$((pass + 1)); else
        echo "FAIL $1: exit $3, expected $2" >&2; fails=$((fails + 1)); fi
}
contains() { # contains NAME FILE TEXT
    if grep -qF -- "$3" "$2"; then pass=$((pass + 1)); else
        echo "FAIL $1: output lacks: $3" >&2; sed 's/^/  | /' "$2" >&2; fails=$((fails + 1)); fi
}

cat >"$T/tool.json" <<'J'
{"type":"object","required":["title","priority"],
 "properties":{"title":{"type":"string","minLength":1},
               "priority":{"enum":["low","medium","high"]}},
 "additionalProperties":false}
J
echo '{"title":"x","priority":"low"}' >"$T/good.json"
echo '{"title":"x","priority":"urgent"}' >"$T/bad.json"
echo '{"title":' >"$T/broken.json"

"$KEEL" schema check "$T/tool.json" "$T/good.json" >"$T/out" 2>&1
expect "valid file" 0 $?
contains "valid file" "$T/out" "good.json: valid"

"$KEEL" schema check "$T/tool.json" "$T/good.json" "$T/bad.json" >"$T/out" 2>&1
expect "invalid file" 1 $?
contains "invalid message" "$T/out" '`priority` must be one of low, medium, high; got `urgent`'
contains "invalid location" "$T/out" "/properties/priority/enum"

"$KEEL" schema check "$T/tool.json" "$T/broken.json" >"$T/out" 2>&1
expect "unparseable instance" 3 $?
contains "parse error position" "$T/out" "broken.json:2:"

"$KEEL" schema check "$T/tool.json" "$T/missing.json" >"$T/out" 2>&1
expect "missing instance" 4 $?

"$KEEL" schema check >"$T/out" 2>&1
expect "no schema" 2 $?
"$KEEL" schema check "$T/tool.json" --bogus >"$T/out" 2>&1
expect "unknown option" 2 $?
"$KEEL" schema frobnicate >"$T/out" 2>&1
expect "unknown subcommand" 2 $?
"$KEEL" schema --help >"$T/out" 2>&1
expect "help" 0 $?
contains "help text" "$T/out" "usage: keel schema check"

echo '{"type":"strng"}' >"$T/typo.json"
"$KEEL" schema check "$T/typo.json" "$T/good.json" >"$T/out" 2>&1
expect "invalid schema" 3 $?
contains "invalid schema says where" "$T/out" "at '/type'"

# stdin: one document per line; blank lines skipped.
printf '{"title":"a","priority":"low"}\n\n{"title":"b","priority":"high"}\n' |
    "$KEEL" schema check "$T/tool.json" >"$T/out" 2>&1
expect "stdin all valid" 0 $?
contains "stdin line numbers" "$T/out" "stdin:3: valid"

printf '{"title":"a","priority":"low"}\n{"priority":"high","x":1}\n' |
    "$KEEL" schema check "$T/tool.json" --json >"$T/out" 2>&1
expect "stdin json" 1 $?
[ "$(wc -l <"$T/out")" = 2 ] && pass=$((pass + 1)) || { echo "FAIL json: expected 2 lines" >&2; fails=$((fails + 1)); }
contains "json valid line" "$T/out" '{"instance":"stdin:1","valid":true}'
contains "json basic output" "$T/out" '"keywordLocation":"/additionalProperties"'
contains "json instance location" "$T/out" '"instanceLocation":"/x"'
contains "json required" "$T/out" 'missing the required property `title`'
if command -v python3 >/dev/null; then
    python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$T/out"
    expect "json lines parse" 0 $?
fi

# --remote maps a URI prefix to a folder; without it the ref is an error.
echo '{"$ref":"http://localhost:1234/integer.json"}' >"$T/remote.json"
echo 1 | "$KEEL" schema check "$T/remote.json" --remote "http://localhost:1234/=$REMOTES" >"$T/out" 2>&1
expect "remote valid" 0 $?
echo '"x"' | "$KEEL" schema check "$T/remote.json" --remote="http://localhost:1234/=$REMOTES" >"$T/out" 2>&1
expect "remote invalid" 1 $?
echo 1 | "$KEEL" schema check "$T/remote.json" >"$T/out" 2>&1
expect "remote unmapped" 3 $?
contains "remote unmapped hint" "$T/out" "--remote"
"$KEEL" schema check "$T/remote.json" --remote nonsense >"$T/out" 2>&1
expect "remote usage" 2 $?

# Relative refs resolve beside the schema file.
mkdir -p "$T/sub"
echo '{"type":"string","maxLength":3}' >"$T/sub/short.json"
echo '{"properties":{"code":{"$ref":"sub/short.json"}}}' >"$T/main.json"
echo '{"code":"abcd"}' | "$KEEL" schema check "$T/main.json" --remote "file://$T/=$T" >"$T/out" 2>&1
expect "relative ref" 1 $?
contains "relative ref message" "$T/out" "at most 3 characters"

# --format-assert turns format into an assertion.
echo '{"format":"date"}' >"$T/date.json"
echo '"2026-02-30"' | "$KEEL" schema check "$T/date.json" >/dev/null 2>&1
expect "format annotation" 0 $?
echo '"2026-02-30"' | "$KEEL" schema check "$T/date.json" --format-assert >/dev/null 2>&1
expect "format assertion" 1 $?

echo "schema_cli: $pass passed, $fails failed"
[ "$fails" = 0 ]
