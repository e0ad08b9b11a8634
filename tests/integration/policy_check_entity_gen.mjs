// policy_check_entity_gen.mjs — random differential cases for entity data
// conformance to a schema: entities of declared and undeclared types, with
// attributes missing, extra or of the wrong type (including nested records,
// sets, entity references and extension values), parents of allowed and
// forbidden types, tags with right and wrong values, enumerated ids, and
// action entities.  Each entity set is judged by the reference
// implementation (@cedar-policy/cedar-wasm 4.13.0, checkParseEntities with
// the schema).  Writes corpus-format lines with "entitiesValid" true/false
// for tests/unit/test_policy_validate.c (KEEL_REQUESTS_JSONL).
//
// usage: node policy_check_entity_gen.mjs OUT.jsonl CASES [SEED]
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../peers/package.json'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');

const [out, nArg, seedArg] = process.argv.slice(2);
if (!out || !nArg) {
  console.error('usage: node policy_check_entity_gen.mjs OUT.jsonl CASES [SEED]');
  process.exit(2);
}
let seed = Number(seedArg ?? 3) >>> 0 || 3;
function rnd() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];
const chance = (p) => rnd() < p;

const schema = `
entity User in [Group] = { name: String, age?: Long, tags: Set<String>, rec: { a: Long, b?: String }, boss?: User, ip?: ipaddr } tags String;
entity Group in [Org] = { level: Long };
entity Org;
entity Color enum ["red", "blue"];
entity Photo = { owner: User, color: Color, when: datetime } tags Long;
action view appliesTo { principal: [User], resource: [Photo] };
action edit in [view] appliesTo { principal: [User], resource: [Photo] };
`;

const good = {
  User: () => ({ name: 'n', tags: ['a'], rec: { a: 1 } }),
  Group: () => ({ level: 1 }),
  Org: () => ({}),
  Color: () => ({}),
  Photo: () => ({ owner: { __entity: { type: 'User', id: 'u' } }, color: { __entity: { type: 'Color', id: 'red' } }, when: { __extn: { fn: 'datetime', arg: '2024-01-01' } } }),
};
const wrongValues = [1, 'x', true, [], ['a'], [1], {}, { a: 1 }, { a: 1, b: 'x' }, { a: 1, c: 2 },
  { __entity: { type: 'User', id: 'u' } }, { type: 'User', id: 'u' }, { __entity: { type: 'Group', id: 'g' } },
  { __entity: { type: 'Color', id: 'green' } }, { __extn: { fn: 'ip', arg: '1.2.3.4' } }, '1.2.3.4',
  { __extn: { fn: 'datetime', arg: '2024-01-01' } }, '2024-01-01'];
const attrNames = ['name', 'age', 'tags', 'rec', 'boss', 'ip', 'level', 'owner', 'color', 'when', 'extra'];
const parentTypes = { User: ['Group'], Group: ['Org'], Org: [], Color: [], Photo: [] };
const allTypes = ['User', 'Group', 'Org', 'Color', 'Photo', 'Nope', 'Action'];

function entity() {
  const type = chance(0.9) ? pick(['User', 'Group', 'Org', 'Color', 'Photo']) : pick(['Nope', 'Action']);
  const id = type === 'Color' ? (chance(0.9) ? pick(['red', 'blue']) : 'green') : type === 'Action' ? pick(['view', 'edit', 'nope']) : pick(['u', 'g', 'o', 'p']);
  const attrs = good[type] ? good[type]() : {};
  if (chance(0.35)) {
    const k = pick(attrNames);
    if (chance(0.2)) delete attrs[k];
    else attrs[k] = pick(wrongValues);
  }
  const parents = [];
  for (let i = int(3); i > 0; i--) {
    const pt = chance(0.8) && parentTypes[type]?.length ? pick(parentTypes[type]) : pick(allTypes);
    parents.push({ type: pt, id: pt === 'Action' ? pick(['view', 'edit']) : 'x' });
  }
  const e = { uid: { type, id }, attrs, parents };
  if (chance(0.4)) {
    e.tags = {};
    for (let i = int(3); i > 0; i--) e.tags[pick(['k', 'l'])] = chance(0.7) ? (type === 'Photo' ? 1 : 'v') : pick(wrongValues);
  }
  return e;
}

const lines = [];
let valid = 0, invalid = 0;
for (let i = 0; i < Number(nArg); i++) {
  const entities = Array.from({ length: 1 + int(3) }, entity);
  // Duplicate uids are a different kind of error (not conformance): skip them.
  const keys = new Set(entities.map((e) => JSON.stringify(e.uid)));
  if (keys.size !== entities.length) continue;
  const r = cedar.checkParseEntities({ entities, schema });
  const ok = r.type === 'success';
  if (ok) valid++; else invalid++;
  lines.push(JSON.stringify({ name: `edv-${i}`, schema, policies: '', shouldValidate: true, entities,
    requests: [], entitiesValid: ok }));
}
writeFileSync(out, lines.join('\n') + '\n');
console.log(`entity sets: ${valid} valid, ${invalid} invalid per cedar-wasm`);
