// diff_ajv.cjs — differential test of Keel's validator against ajv 8 on
// generated instances for the realistic MCP tool schemas
// (bench/schema/mcp_tools.json).  Instances start from each tool's valid
// examples and either cross over with another valid example (mostly valid)
// or get 0-3 random mutations (drop/add members, retype values, boundary
// numbers, format edge cases, duplicate array items).  ajv gives
// its verdict in-process; Keel's comes from `keel schema check --json
// --format-assert` fed the same instances on stdin.  Any verdict that
// differs is printed; the exit status is 1 if there is one.
//
// usage: node diff_ajv.cjs KEEL_BIN [COUNT_PER_TOOL] [SEED]
//
// ajv runs with ajv-formats and multipleOfPrecision: 9, because without it
// ajv decides multipleOf in binary floating point (19.99 is then not a
// multiple of 0.01); Keel compares decimals exactly.
"use strict";
const path = require("path");
const fs = require("fs");
const os = require("os");
const { spawnSync } = require("child_process");
const { createRequire } = require("module");
const peers = path.resolve(__dirname, "../../tests/peers");
const req = createRequire(path.join(peers, "package.json"));
const Ajv2020 = req("ajv/dist/2020");
const addFormats = req("ajv-formats");

const [keel, countArg, seedArg] = process.argv.slice(2);
if (!keel) {
  console.error("usage: node diff_ajv.cjs KEEL_BIN [COUNT_PER_TOOL] [SEED]");
  process.exit(2);
}
const count = Number(countArg || "400");
let seed = Number(seedArg || "12345") >>> 0;
function rand() { // mulberry32: deterministic for a given seed
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

// Values both validators judge the same way (clear-cut formats, decimals
// with at most three fraction digits).
const strings = ["", "a", "x", "ok", "Login fails", "bug", "Bug", "p1", "auth", "a-b", "a_b", "@maria",
  "maria", "-x", "TCK-12345", "TCK-1", "tck-0001", "TCK-123456789", "pay_1234567890abcdef",
  "pay_short", "pay_ABCDEFGHIJKLMNOP", "EUR", "USD", "JPY", "XXX", "duplicate", "fraudulent",
  "low", "medium", "high", "urgent", "open", "closed", "all", "created", "updated", "asc", "desc",
  "eq", "in", "gt", "like", "daily", "weekly", "yearly", "label", "age_days", "Label",
  "comments", "history", "attachments", "r.pdf", "a/b", "application/pdf", "Text/Plain",
  "JVBERi0=", "select 1", "order_id", "Bad-Key", "zürich", "日本語", "a".repeat(41),
  "x".repeat(201), "ops@example.com", "a.b@sub.example.org", "nope", "a@", "@b.com",
  "a b@c.com", "a..b@c.com", "example.org", "-bad-.com", "sub.example.com", "a_b.com",
  "2026-11-25", "2026-02-29", "2024-02-29", "2026-13-01", "tomorrow",
  "2026-11-25T10:00:00Z", "2026-11-25T10:00:00+01:00", "2026-11-25T25:00:00Z", "2026-11-25 10:00",
  "0b7e8a0e-2f3c-4b1a-9d7e-6f5a4c3b2a19", "0b7e8a0e2f3c4b1a9d7e6f5a4c3b2a19", "Room 4"];
const numbers = [0, 1, -1, 2, 3, 0.5, 0.25, 0.3, 0.01, 1.001, 1.5, 2.5, 10.5, 19.99, 42, 50, 99,
  100, 101, 365, 366, 500, 1000, 1000.25, 60000, 60001, 90, 91, -90, -91, 180, 181, 1500,
  1000000, 1000000.01, 1e6, 12.34, 7.125];

function randomValue(depth) {
  const r = rand();
  if (r < 0.35) return pick(strings);
  if (r < 0.65) return pick(numbers);
  if (r < 0.72) return rand() < 0.5;
  if (r < 0.77) return null;
  if (r < 0.9 || depth > 2) return [pick(strings), pick(numbers)].slice(0, Math.floor(rand() * 3));
  const o = {};
  for (let i = Math.floor(rand() * 3); i > 0; i--) o[pick(["email", "field", "op", "value", "x", "freq", "lat", "lon"])] = randomValue(depth + 1);
  return o;
}

function paths(v, at, out) {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, at.concat([i]), out));
  else if (v && typeof v === "object") for (const k of Object.keys(v)) paths(v[k], at.concat([k]), out);
  return out;
}
function getAt(v, p) { for (const k of p) v = v[k]; return v; }

function mutate(doc) {
  const all = paths(doc, [], []);
  const p = pick(all);
  const target = getAt(doc, p);
  const parent = p.length ? getAt(doc, p.slice(0, -1)) : null;
  const key = p[p.length - 1];
  const m = rand();
  if (m < 0.3 && parent !== null) { // retype or replace a value
    parent[key] = typeof target === "number" && rand() < 0.6 ? pick(numbers) :
      typeof target === "string" && rand() < 0.7 ? pick(strings) : randomValue(0);
  } else if (m < 0.45 && parent !== null && !Array.isArray(parent)) { // drop a member
    delete parent[key];
  } else if (m < 0.6 && target && typeof target === "object" && !Array.isArray(target)) {
    target[pick(["extra", "title", "limit", "cc", "metadata", "location", "count", "until"])] = randomValue(0);
  } else if (m < 0.75 && Array.isArray(target)) {
    const r = rand();
    if (r < 0.4 && target.length) target.push(JSON.parse(JSON.stringify(target[0])));
    else if (r < 0.7) target.length = 0;
    else target.push(randomValue(1));
  } else if (parent !== null) {
    parent[key] = randomValue(0);
  }
  return doc;
}

const tools = JSON.parse(fs.readFileSync(path.join(__dirname, "mcp_tools.json"), "utf8"));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "keel-diff-"));
let total = 0, disagreements = 0, validCount = 0;
for (const [ti, tool] of tools.entries()) {
  const ajv = new Ajv2020({ strict: false, logger: false, multipleOfPrecision: 9 });
  addFormats(ajv);
  const v = ajv.compile(tool.schema);
  const instances = [];
  const seen = new Set();
  for (let i = 0; instances.length < count && i < count * 20; i++) {
    const doc = JSON.parse(JSON.stringify(pick(tool.valid)));
    let out = doc;
    if (rand() < 0.35) {
      // Crossover of two valid examples: mostly valid, and new combinations.
      const other = pick(tool.valid);
      for (const k of Object.keys(other)) if (rand() < 0.5) out[k] = JSON.parse(JSON.stringify(other[k]));
      if (rand() < 0.5) for (const k of Object.keys(out)) if (!(k in other) && rand() < 0.3) delete out[k];
    } else {
      for (let k = Math.floor(rand() * 4); k > 0; k--) out = mutate(out);
    }
    const text = JSON.stringify(out);
    if (seen.has(text) && seen.size > 16) continue;
    seen.add(text);
    instances.push(text);
  }
  const schemaFile = path.join(tmp, `tool${ti}.json`);
  fs.writeFileSync(schemaFile, JSON.stringify(tool.schema));
  const res = spawnSync(keel, ["schema", "check", schemaFile, "--json", "--format-assert"],
    { input: instances.join("\n") + "\n", maxBuffer: 1 << 30 });
  const lines = res.stdout.toString().split("\n").filter((l) => l.length);
  if (lines.length !== instances.length) {
    console.error(`${tool.name}: keel printed ${lines.length} results for ${instances.length} instances`);
    console.error(res.stderr.toString().slice(0, 2000));
    process.exit(1);
  }
  instances.forEach((text, i) => {
    const ajvValid = v(JSON.parse(text));
    const keelValid = JSON.parse(lines[i]).valid;
    total++;
    if (ajvValid) validCount++;
    if (ajvValid !== keelValid) {
      disagreements++;
      if (disagreements <= 20) {
        console.log(`DISAGREE ${tool.name}: ajv=${ajvValid} keel=${keelValid} ${text}`);
        if (!ajvValid) console.log(`  ajv: ${JSON.stringify(v.errors)}`);
        else console.log(`  keel: ${lines[i]}`);
      }
    }
  });
}
fs.rmSync(tmp, { recursive: true, force: true });
console.log(`diff_ajv: ${total} instances over ${tools.length} tool schemas (${validCount} valid per ajv), ${disagreements} disagreements`);
process.exit(disagreements ? 1 : 0);
