#!/bin/sh
# bad_server.sh MODE -- a deliberately broken MCP stdio server for
# tests/unit/test_mcp.c.  It answers initialize and tools/list well enough
# (unless MODE breaks them) and then misbehaves as MODE says:
#   exit-now      exit 3 before reading anything (stderr says why)
#   garbage-init  answer initialize with a line that is not JSON
#   old-version   answer initialize with an unsupported protocol version
#   older         answer initialize with 2025-06-18 (supported, older)
#   no-tools      initialize result without capabilities.tools
#   garbage-call  answer tools/call with truncated JSON
#   huge          answer tools/call with a 17 MB line (over the 16 MiB cap)
#   wrong-shape   answer tools/call with content that is not an array
#   batch         answer tools/call with a JSON-RPC batch (an array)
#   exit-call     exit 4 when tools/call arrives
#   stray         send an unsolicited response and a server request first
#   slow          never answer tools/call; log notifications/cancelled to stderr
#   list-changed  before answering tools/call, announce a new tool list
#   close-stdout  close stdout on tools/call but keep running
mode=$1
changed=0
id_of() { printf '%s' "$1" | sed -n 's/^{"jsonrpc":"2.0","id":\([0-9]*\),.*/\1/p'; }
init_reply() {
  printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"%s","capabilities":{"tools":{}},"serverInfo":{"name":"bad","version":"0"}}}\n' "$1" "$2"
}
if [ "$mode" = exit-now ]; then
  echo "bad_server: dying on purpose" >&2
  exit 3
fi
while IFS= read -r line; do
  id=$(id_of "$line")
  case "$line" in
  *'"method":"initialize"'*)
    case $mode in
    garbage-init) echo 'this is not json' ;;
    old-version) init_reply "$id" 1999-01-01 ;;
    older) init_reply "$id" 2025-06-18 ;;
    no-tools) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"bad","version":"0"}}}\n' "$id" ;;
    *) init_reply "$id" 2025-11-25 ;;
    esac ;;
  *'"method":"ping"'*)
    printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id" ;;
  *'"method":"tools/list"'*)
    if [ $changed = 1 ]; then
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"t","inputSchema":{"type":"object"}},{"name":"t2","inputSchema":{"type":"object"},"annotations":{"idempotentHint":true}}]}}\n' "$id"
    else
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"t","inputSchema":{"type":"object"}}]}}\n' "$id"
    fi ;;
  *'"method":"notifications/cancelled"'*)
    echo "bad_server: cancelled: $line" >&2 ;;
  *'"method":"tools/call"'*)
    case $mode in
    garbage-call) printf '{"jsonrpc":"2.0","id":%s,"result":\n' "$id" ;;
    huge) head -c 17000000 /dev/zero | tr '\000' 'x'; echo ;;
    wrong-shape) printf '{"jsonrpc":"2.0","id":%s,"result":{"content":"nope"}}\n' "$id" ;;
    batch) echo '[]' ;;
    exit-call) exit 4 ;;
    slow) ;;
    list-changed)
      changed=1
      printf '{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n'
      printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}\n' "$id" ;;
    close-stdout) exec 1>&-; sleep 30 ;;
    stray)
      printf '{"jsonrpc":"2.0","id":999999,"result":{}}\n'
      printf '{"jsonrpc":"2.0","id":"s1","method":"ping"}\n'
      printf '{"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage","params":{}}\n'
      printf '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hello"}}\n'
      printf '\n'
      printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"ok"}]}}\n' "$id" ;;
    *) printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[]}}\n' "$id" ;;
    esac ;;
  *'"id":"s1"'*) echo "bad_server: got ping reply: $line" >&2 ;;
  *'"id":"s2"'*) echo "bad_server: got sampling reply: $line" >&2 ;;
  esac
done
