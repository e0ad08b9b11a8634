// policy_check_request_gen.mjs — random differential cases for request
// validation against a schema: requests with right and wrong principal,
// action and resource types, enumerated ids, and context attributes that
// are missing, extra or of the wrong type (extension values as __extn or
// bare strings, entity references with and without __entity), each judged by
// the reference implementation (@cedar-policy/cedar-wasm 4.13.0, isAuthorized
// with validateRequest).  Writes one corpus-format line whose requests carry
// "validateRequest" true/false for tests/unit/test_policy_validate.c
// (KEEL_REQUESTS_JSONL).
//
// usage: node policy_check_request_gen.mjs OUT.jsonl REQUESTS [SEED]
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../peers/package.json'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');
if (!process.argv[2]) {
  console.error('usage: node policy_check_request_gen.mjs OUT.jsonl REQUESTS [SEED]');
  process.exit(2);
}
let seed = Number(process.argv[4] ?? 7) >>> 0 || 7;
function rnd() { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed / 4294967296; }
const int = (n) => Math.floor(rnd() * n); const pick = (a) => a[int(a.length)]; const chance = (p) => rnd() < p;
const schema = `
entity User in [Group] = { name: String };
entity Group;
entity Photo = { owner: User };
entity Color enum ["red", "blue"];
action view, edit appliesTo { principal: [User], resource: [Photo], context: { ip: ipaddr, level?: Long, when: datetime, d: duration, amt: decimal, color: Color, tags: Set<String>, rec: { a: Long, b?: String }, who?: User } };
action share in [view] appliesTo { principal: [User, Group], resource: [Photo], context: {} };
action "group";
action paint appliesTo { principal: [User], resource: [Color] };
`;
const vals = {
  ip: [{__extn: {fn: 'ip', arg: '1.2.3.4'}}, '1.2.3.4', 5, {__extn: {fn: 'decimal', arg: '1.0'}}],
  level: [1, 'x', true],
  when: [{__extn: {fn: 'datetime', arg: '2024-01-01'}}, '2024-01-01', 3],
  d: [{__extn: {fn: 'duration', arg: '1h'}}, '1h'],
  amt: [{__extn: {fn: 'decimal', arg: '1.5'}}, '1.5', 1],
  color: [{__entity: {type: 'Color', id: 'red'}}, {__entity: {type: 'Color', id: 'green'}}, {type: 'Color', id: 'blue'}, {__entity: {type: 'User', id: 'a'}}],
  tags: [['a'], [], [1], 'a'],
  rec: [{a: 1}, {a: 1, b: 'x'}, {b: 'x'}, {a: 1, c: 2}, {a: '1'}],
  who: [{__entity: {type: 'User', id: 'a'}}, {type: 'User', id: 'b'}, {__entity: {type: 'Group', id: 'g'}}],
  extra: [1],
};
const lines = [];
let valid = 0, invalid = 0;
for (let i = 0; i < Number(process.argv[3] || 2000); i++) {
  const ctx = {};
  for (const k of Object.keys(vals)) {
    const base = ['ip', 'when', 'd', 'amt', 'color', 'tags', 'rec'].includes(k);
    if (base ? chance(0.99) : chance(0.3)) ctx[k] = chance(0.97) ? vals[k][0] : pick(vals[k]);
  }
  const req = {
    principal: { type: chance(0.9) ? 'User' : pick(['Group', 'Photo', 'Nope']), id: 'a' },
    action: { type: 'Action', id: chance(0.8) ? pick(['view', 'edit']) : pick(['share', 'group', 'paint', 'nope']) },
    resource: chance(0.05) ? { type: 'Color', id: pick(['red', 'green']) } : { type: pick(['Photo', 'Photo', 'User']), id: 'p' },
    context: chance(0.1) ? {} : ctx,
  };
  const r = cedar.isAuthorized({ ...req, policies: { staticPolicies: '' }, entities: [], schema, validateRequest: true });
  const ok = r.type === 'success';
  if (ok) valid++; else invalid++;
  req.validateRequest = ok;
  lines.push(req);
}
writeFileSync(process.argv[2], JSON.stringify({ name: 'rq', schema, policies: '', shouldValidate: true, entities: [], requests: lines }) + '\n');
console.log(`requests: ${valid} valid, ${invalid} invalid`);
