// policy_check_diff_gen.mjs — random differential cases for strict validation.
//
// Generates policy sets over a rich fixed schema (namespaces, action groups,
// enumerated types, tags, optional attributes, nested records, sets and all
// extension types), mixing well-typed expressions with deliberate mistakes
// (optional attributes read without `has`, mismatched operands, tags without
// `hasTag`, bad extension literals, empty sets, wrong scopes), and asks the
// reference implementation (@cedar-policy/cedar-wasm 4.13.0) whether each
// set validates.  Writes the cases in the corpus JSONL format ("schema",
// "policies", "shouldValidate") for tests/unit/test_policy_validate.c, which
// reads them when KEEL_VALIDATE_JSONL names the file.
//
// Cedar 4.11+ downgraded "unable to find an applicable action" to a warning;
// the shared corpus (Cedar 4.10) treats it as an error, and so does Keel, so
// it counts as an error here.
//
// usage: node policy_check_diff_gen.mjs OUT.jsonl CASES [SEED]
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../peers/package.json'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');

const [out, nArg, seedArg] = process.argv.slice(2);
if (!out || !nArg) {
  console.error('usage: node policy_check_diff_gen.mjs OUT.jsonl CASES [SEED]');
  process.exit(2);
}
let seed = Number(seedArg ?? 1) >>> 0 || 1;
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
namespace NS { entity Thing = { v: Long }; action act appliesTo { principal: [Thing], resource: [Thing] }; }
type Rec = { a: Long, b?: String };
entity User in [Group] = { name: String, age?: Long, tags: Set<String>, rec: Rec, friend?: User, grp: Group, when?: datetime } tags String;
entity Group in [Org] = { level: Long, name: String };
entity Org;
entity Photo in [Album] = { owner: User, private: Bool, size: Long, meta?: { w: Long, h?: Long } } tags Long;
entity Album = { owner: User, photos: Set<Photo> };
entity Color enum ["red", "blue"];
action view, edit appliesTo { principal: [User], resource: [Photo, Album], context: { ip: ipaddr, level?: Long, when: datetime, d: duration, amt: decimal, color: Color } };
action share in [view] appliesTo { principal: [User, Group], resource: [Photo], context: { to: User, level?: Long } };
action "group";
action admin in ["group"] appliesTo { principal: [User], resource: [Org, Group] };
`;

// Typed term generators; each may (rarely) produce something ill-typed.
const T = {
  long: (d) => pick([
    () => String(int(100) - 50), () => 'principal.age', () => 'resource.size', () => 'context.level',
    () => 'principal.rec.a', () => 'principal.grp.level', () => 'resource.meta.w', () => 'resource.meta.h',
    () => `(${T.long(d + 1)} + ${T.long(d + 1)})`, () => `(${T.long(d + 1)} * 2)`, () => `-${T.long(d + 1)}`,
    () => 'context.d.toHours()', () => 'resource.getTag("k")', () => 'NS::Thing::"t".v',
    () => `(if ${T.bool(d + 1)} then ${T.long(d + 1)} else ${T.long(d + 1)})`,
  ])(),
  str: (d) => pick([
    () => '"abc"', () => '""', () => 'principal.name', () => 'principal.rec.b', () => 'principal.grp.name',
    () => 'principal.getTag("k")', () => 'resource.owner.name', () => 'context.to.name',
    () => `(if ${T.bool(d + 1)} then ${T.str(d + 1)} else ${T.str(d + 1)})`,
  ])(),
  ent: (d) => pick([
    () => 'principal', () => 'resource', () => 'resource.owner', () => 'principal.friend', () => 'principal.grp',
    () => 'context.to', () => 'User::"a"', () => 'Group::"g"', () => 'Org::"o"', () => 'Photo::"p"',
    () => 'Album::"al"', () => 'Color::"red"', () => 'Color::"green"', () => 'NS::Thing::"t"', () => 'action',
    () => 'Action::"view"', () => 'Action::"nope"',
    () => `(if ${T.bool(d + 1)} then ${T.ent(d + 1)} else ${T.ent(d + 1)})`,
  ])(),
  set: (d) => pick([
    () => 'principal.tags', () => 'resource.photos', () => '["a", "b"]', () => '[1, 2]', () => '[]',
    () => `[${T.ent(d + 1)}, ${T.ent(d + 1)}]`, () => `[${T.long(d + 1)}]`, () => '[principal.rec, {a: 1}]',
  ])(),
  ext: (d) => pick([
    () => 'context.ip', () => 'ip("10.0.0.0/8")', () => 'ip("1.2.3")', () => 'context.when', () => 'principal.when',
    () => 'datetime("2024-01-01")', () => 'datetime("2024-13-01")', () => 'context.d', () => 'duration("1h30m")',
    () => 'context.amt', () => 'decimal("1.25")', () => 'decimal("1.23456")', () => 'ip(principal.name)',
  ])(),
  rec: (d) => pick([
    () => 'principal.rec', () => 'context', () => '{a: 1}', () => '{a: 1, b: "x"}', () => 'resource.meta',
  ])(),
  any: (d) => pick([T.long, T.str, T.ent, T.set, T.ext, T.rec, T.bool])(d + 1),
  bool: (d) => {
    if (d > 3) return pick(['true', 'false', 'principal has age', 'context has level', 'resource.private']);
    return pick([
      () => 'true', () => 'false', () => 'resource.private',
      () => `${T.long(d + 1)} ${pick(['<', '<=', '>', '>=', '==', '!='])} ${T.long(d + 1)}`,
      () => `${T.str(d + 1)} ${pick(['==', '!='])} ${T.str(d + 1)}`,
      () => `${T.ent(d + 1)} ${pick(['==', '!=', 'in'])} ${T.ent(d + 1)}`,
      () => `${T.ent(d + 1)} in ${T.set(d + 1)}`,
      () => `${T.any(d)} == ${T.any(d)}`,
      () => `${pick(['principal', 'resource', 'principal.rec', 'resource.meta', 'context', 'principal.friend', 'resource.owner'])} has ${pick(['age', 'name', 'b', 'h', 'w', 'level', 'friend', 'meta', 'nope'])}`,
      () => `${T.ent(d + 1)} is ${pick(['User', 'Group', 'Photo', 'Org', 'Nope'])}`,
      () => `${T.ent(d + 1)}.hasTag(${T.str(d + 1)})`,
      () => `${T.set(d + 1)}.contains(${T.any(d)})`,
      () => `${T.set(d + 1)}.${pick(['containsAll', 'containsAny'])}(${T.set(d + 1)})`,
      () => `${T.set(d + 1)}.isEmpty()`,
      () => `${T.str(d + 1)} like "a*"`,
      () => `${T.ext(d + 1)}.${pick(['isIpv4()', 'isLoopback()', 'lessThan(decimal("2.0"))', 'isInRange(ip("10.0.0.0/8"))'])}`,
      () => `${T.ext(d + 1)} ${pick(['<', '>='])} ${T.ext(d + 1)}`,
      () => `!${T.bool(d + 1)}`,
      () => `(${T.bool(d + 1)} && ${T.bool(d + 1)})`,
      () => `(${T.bool(d + 1)} || ${T.bool(d + 1)})`,
      () => `(principal has age && principal.age > ${int(50)})`,
      () => `(resource has meta && resource.meta has h && resource.meta.h > 1)`,
      () => `(principal.hasTag("k") && principal.getTag("k") == "v")`,
      () => `(if ${T.bool(d + 1)} then ${T.bool(d + 1)} else ${T.bool(d + 1)})`,
      () => `${T.rec(d + 1)} == ${T.rec(d + 1)}`,
    ])();
  },
};

function scope(v) {
  const ents = v === 'principal' ? ['User::"a"', 'Group::"g"', 'Org::"o"', 'Photo::"p"'] : ['Photo::"p"', 'Album::"al"', 'Org::"o"', 'Group::"g"'];
  const types = v === 'principal' ? ['User', 'Group'] : ['Photo', 'Album', 'Org'];
  return pick([
    () => v, () => v, () => `${v} == ${pick(ents)}`, () => `${v} in ${pick(ents)}`,
    () => `${v} is ${pick(types)}`, () => `${v} is ${pick(types)} in ${pick(ents)}`,
  ])();
}
function actionScope() {
  return pick(['action', 'action', 'action == Action::"view"', 'action == Action::"share"',
    'action in [Action::"view", Action::"edit"]', 'action in Action::"view"', 'action in Action::"group"',
    'action == Action::"admin"', 'action == NS::Action::"act"']);
}
function policy() {
  const conds = [];
  for (let i = int(3); i > 0; i--) conds.push(`${pick(["when", "unless"])} { ${T.bool(int(3))} }`);
  return `${pick(['permit', 'forbid'])}(${scope('principal')}, ${actionScope()}, ${scope('resource')}) ${conds.join(' ')};`;
}

const lines = [];
let valid = 0, invalid = 0;
for (let i = 0; i < Number(nArg); i++) {
  const policies = policy();
  const r = cedar.validate({ schema, policies: { staticPolicies: policies } });
  if (r.type !== 'success') continue; // does not parse: not a validation case
  const app = r.validationWarnings.some((w) => w.error.message.includes('unable to find an applicable action'));
  const ok = r.validationErrors.length === 0 && !app;
  if (ok) valid++; else invalid++;
  lines.push(JSON.stringify({ name: `vdiff-${i}`, schema, policies, shouldValidate: ok,
    entities: [], requests: [] }));
}
writeFileSync(out, lines.join('\n') + '\n');
console.log(`generated ${lines.length} validation cases: ${valid} valid, ${invalid} invalid per cedar-wasm`);
