// policy_check_schema_tojson.js — helper for tests/unit/test_policy_schema.c:
// reads Cedar schemas in the human format (one JSON string per stdin line,
// or the "schema" field of each line of a JSONL file given as argv[2]) and
// prints, one line each, {"name": ..., "json": <Cedar's JSON form>} using the
// reference implementation (@cedar-policy/cedar-wasm) — so Keel's JSON
// schema parser can be checked against Cedar's own conversion.
const fs = require('fs');
const path = require('path');
const cedar = require(path.join(__dirname, '..', 'peers', 'node_modules', '@cedar-policy',
                                'cedar-wasm', 'nodejs'));
const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n');
for (const line of lines) {
  if (!line.trim()) continue;
  const d = JSON.parse(line);
  const r = cedar.schemaToJson(d.schema);
  if (r.type !== 'success') {
    process.stdout.write(JSON.stringify({name: d.name, error: JSON.stringify(r.errors)}) + '\n');
    continue;
  }
  process.stdout.write(JSON.stringify({name: d.name, json: r.json}) + '\n');
}
