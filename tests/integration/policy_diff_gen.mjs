// policy_diff_gen.mjs — differential testing of Keel's Cedar engine against
// the reference implementation (@cedar-policy/cedar-wasm 4.13.0).
//
// Generates random test cases — an entity hierarchy with typed
// attributes and tags, a policy set exercising every operator and extension
// function, and requests (including entities that do not exist) — asks
// cedar-wasm for the decision, reasons and errors of every request, and
// writes the cases in Cedar's corpus JSONL format, which `keel policy test`
// then checks.  About 30% of the cases carry a schema: their entity data is
// written schema-style (bare entity references, actions from the schema).
// Inputs cedar-wasm rejects (policies that do not parse,
// entity data with a cycle or a bad extension literal) become negative
// cases ("expectError") that Keel must reject too.  Integers stay within +-2^53 (JavaScript's exact range).
//
// usage: node policy_diff_gen.mjs OUT.jsonl REQUESTS [SEED]
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../peers/package.json'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');

const [out, nreqArg, seedArg] = process.argv.slice(2);
if (!out || !nreqArg) {
  console.error('usage: node policy_diff_gen.mjs OUT.jsonl REQUESTS [SEED]');
  process.exit(2);
}
const wanted = Number(nreqArg);
let seed = Number(seedArg ?? 1) >>> 0 || 1;

// xorshift32: reproducible from the seed
function rnd() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const int = (n) => Math.floor(rnd() * n);
const pick = (a) => a[int(a.length)];
const chance = (p) => rnd() < p;

const TYPES = ['User', 'Group', 'Doc', 'Folder', 'NS::Team'];
const IDS = ['a', 'b', 'c', '', 'x y', 'é'];
const ACTIONS = ['read', 'write', 'admin', 'all'];
const ATTRS = ['n', 's', 'b', 'set', 'rec', 'owner', 'd', 'ip', 'dt', 'dur', 'tags'];
const STRINGS = ['', 'a', 'abc', 'a*c', 'hello world', 'x\\y', 'ab"c'];
const BIG = 2 ** 53;

function randLong() {
  switch (int(6)) {
    case 0: return 0;
    case 1: return int(10) - 5;
    case 2: return BIG - int(3);
    case 3: return -BIG + int(3);
    case 4: return 2 ** 31 + int(5);
    default: return int(2000) - 1000;
  }
}
const uid = (t, id) => ({ type: t, id });
const randUid = () => uid(pick(TYPES), pick(IDS));
const cedarStr = (s) => JSON.stringify(s).replace(/\\u00([0-9a-f]{2})/g, '\\u{$1}');
const euidText = (u) => `${u.type}::${cedarStr(u.id)}`;

const DECIMALS = ['0.0', '1.5', '-2.25', '922337203685477.5807', '-0.0001', '12.3456'];
const IPS = ['10.0.0.1', '10.0.0.0/8', '127.0.0.1', '::1', 'ff02::1', '224.1.2.3', '192.168.1.0/24', '::ffff:1.2.3.4'];
const DATES = ['2024-01-01', '2024-02-29T12:00:00Z', '1969-12-31T23:59:59.999Z', '2024-06-01T10:00:00+0230', '1970-01-01T00:00:00-0100'];
const DURS = ['1d', '-2h30m', '1h1m1s1ms', '0ms', '-1ms', '36500d'];
const BAD_EXT = { decimal: ['1.23456', 'x', '1.'], ip: ['1.2.3', '01.2.3.4', '1.2.3.4/33'], datetime: ['2024-13-01', '2024-01-01T'], duration: ['1h1d', '', 'd'] };

function extnJson(fn) {
  const arg = fn === 'decimal' ? pick(DECIMALS) : fn === 'ip' ? pick(IPS) : fn === 'datetime' ? pick(DATES) : pick(DURS);
  return { __extn: { fn, arg } };
}

function randValueJson(depth) {
  switch (int(depth > 1 ? 5 : 9)) {
    case 0: return randLong();
    case 1: return pick(STRINGS);
    case 2: return chance(0.5);
    case 3: return { __entity: randUid() };
    case 4: return extnJson(pick(['decimal', 'ip', 'datetime', 'duration']));
    case 5: case 6: { const a = []; for (let i = int(3); i > 0; i--) a.push(randValueJson(depth + 1)); return a; }
    default: { const r = {}; for (let i = int(3); i > 0; i--) r[pick(ATTRS)] = randValueJson(depth + 1); return r; }
  }
}

function genEntities() {
  const ents = [];
  const all = [];
  for (const t of TYPES) for (const id of IDS.slice(0, 3)) if (chance(0.7)) all.push(uid(t, id));
  for (const u of all) {
    const attrs = {};
    for (const a of ATTRS) if (chance(0.5)) {
      attrs[a] = a === 'n' ? randLong() : a === 's' ? pick(STRINGS) : a === 'b' ? chance(0.5)
        : a === 'owner' ? { __entity: randUid() } : a === 'd' ? extnJson('decimal') : a === 'ip' ? extnJson('ip')
        : a === 'dt' ? extnJson('datetime') : a === 'dur' ? extnJson('duration') : randValueJson(1);
    }
    const parents = [];
    for (let i = int(3); i > 0; i--) { const p = pick(all); if (p !== u) parents.push(p); }
    const e = { uid: u, attrs, parents };
    if (chance(0.4)) { e.tags = {}; for (let i = int(3); i > 0; i--) e.tags[pick(['t', 'u', ''])] = randValueJson(2); }
    ents.push(e);
  }
  // actions in a small hierarchy: all > admin > write > read
  ents.push({ uid: uid('Action', 'read'), attrs: {}, parents: [uid('Action', 'write')] });
  ents.push({ uid: uid('Action', 'write'), attrs: {}, parents: [uid('Action', 'admin')] });
  ents.push({ uid: uid('Action', 'admin'), attrs: {}, parents: [uid('Action', 'all')] });
  ents.push({ uid: uid('Action', 'all'), attrs: {}, parents: [] });
  return ents;
}

// Schema mode: entity data conforms to SCHEMA and is written the way a
// schema lets it be (bare {"type","id"} entity references; actions and their
// hierarchy come from the schema, not the entity data).
const STYPES = ['User', 'Group', 'Doc', 'Folder'];
const SCHEMA = `entity User, Group, Doc, Folder in [User, Group, Doc, Folder] = {
  n?: Long, s?: String, b?: Bool, owner?: User, d?: decimal, ip?: ipaddr,
  dt?: datetime, dur?: duration, set?: Set<Long>, rec?: { n?: Long, s?: String },
};
type Ctx = { n?: Long, s?: String, b?: Bool, owner?: User, ip?: ipaddr };
action all appliesTo { principal: [User, Group, Doc, Folder], resource: [User, Group, Doc, Folder], context: Ctx };
action admin in [all] appliesTo { principal: [User, Group, Doc, Folder], resource: [User, Group, Doc, Folder], context: Ctx };
action write in [admin] appliesTo { principal: [User, Group, Doc, Folder], resource: [User, Group, Doc, Folder], context: Ctx };
action read in [write] appliesTo { principal: [User, Group, Doc, Folder], resource: [User, Group, Doc, Folder], context: Ctx };
`;

function genSchemaContext() {
  const c = {};
  if (chance(0.5)) c.n = randLong();
  if (chance(0.5)) c.s = pick(STRINGS);
  if (chance(0.5)) c.b = chance(0.5);
  if (chance(0.4)) c.owner = chance(0.5) ? uid('User', pick(IDS)) : { __entity: uid('User', pick(IDS)) };
  if (chance(0.3)) c.ip = extnJson('ip');
  return c;
}

function genSchemaEntities() {
  const ents = [];
  const all = [];
  for (const t of STYPES) for (const id of IDS.slice(0, 3)) if (chance(0.7)) all.push(uid(t, id));
  const ext = (fn) => (chance(0.15) ? extnJson(fn).__extn.arg : extnJson(fn)); // sometimes a bare string
  for (const u of all) {
    const attrs = {};
    for (const a of ATTRS) if (chance(0.5)) {
      switch (a) {
        case 'n': attrs.n = randLong(); break;
        case 's': attrs.s = pick(STRINGS); break;
        case 'b': attrs.b = chance(0.5); break;
        case 'owner': attrs.owner = chance(0.5) ? uid('User', pick(IDS)) : { __entity: uid('User', pick(IDS)) }; break;
        case 'd': attrs.d = ext('decimal'); break;
        case 'ip': attrs.ip = ext('ip'); break;
        case 'dt': attrs.dt = ext('datetime'); break;
        case 'dur': attrs.dur = ext('duration'); break;
        case 'set': attrs.set = [randLong(), randLong()]; break;
        case 'rec': attrs.rec = chance(0.5) ? { n: randLong() } : { s: pick(STRINGS), n: randLong() }; break;
        default: break;
      }
    }
    const parents = [];
    for (let i = int(3); i > 0; i--) { const p = pick(all); if (p !== u) parents.push(p); }
    ents.push({ uid: u, attrs, parents });
  }
  return ents;
}

// ---- expressions ---------------------------------------------------------

function lit() {
  switch (int(9)) {
    case 0: return String(randLong()).replace(/^-/, '-');
    case 1: return cedarStr(pick(STRINGS));
    case 2: return pick(['true', 'false']);
    case 3: return euidText(randUid());
    case 4: return `decimal(${cedarStr(chance(0.9) ? pick(DECIMALS) : pick(BAD_EXT.decimal))})`;
    case 5: return `ip(${cedarStr(chance(0.9) ? pick(IPS) : pick(BAD_EXT.ip))})`;
    case 6: return `datetime(${cedarStr(chance(0.9) ? pick(DATES) : pick(BAD_EXT.datetime))})`;
    case 7: return `duration(${cedarStr(chance(0.9) ? pick(DURS) : pick(BAD_EXT.duration))})`;
    default: return `[${lit()}, ${lit()}]`;
  }
}
const VARS = ['principal', 'resource', 'context', 'action'];
function atom(d) {
  switch (int(7)) {
    case 0: case 1: return lit();
    case 2: return pick(VARS);
    case 3: return `${pick(VARS)}.${pick(ATTRS)}`;
    case 4: return `${pick(['principal', 'resource'])}.owner.${pick(ATTRS)}`;
    case 5: return `context[${cedarStr(pick(ATTRS))}]`;
    default: return `{${pick(ATTRS)}: ${expr(d + 1)}}`;
  }
}
function expr(d) {
  if (d > 3) return atom(d);
  const a = () => expr(d + 1);
  switch (int(32)) {
    case 0: return `${a()} && ${a()}`;
    case 1: return `(${a()} || ${a()})`;
    case 2: return `!${atom(d)}`;
    case 3: return `${a()} == ${a()}`;
    case 4: return `${a()} != ${a()}`;
    case 5: return `${atom(d)} ${pick(['<', '<=', '>', '>='])} ${atom(d)}`;
    case 6: return `${atom(d)} ${pick(['+', '-', '*'])} ${atom(d)}`;
    case 7: return `-${atom(d)}`;
    case 8: return `${pick(VARS)} in ${pick([euidText(randUid()), `[${euidText(randUid())}, ${euidText(randUid())}]`, atom(d)])}`;
    case 9: return `${atom(d)} has ${pick(ATTRS)}`;
    case 10: return `${atom(d)} like ${cedarStr(pick(['*', 'a*', '*c', 'a\\*c', '', 'h*o w*d', '**']))}`;
    case 11: return `${atom(d)} is ${pick(TYPES)}${chance(0.3) ? ` in ${euidText(randUid())}` : ''}`;
    case 12: return `if ${a()} then ${a()} else ${a()}`;
    case 13: return `${atom(d)}.contains(${atom(d)})`;
    case 14: return `${atom(d)}.${pick(['containsAll', 'containsAny'])}(${atom(d)})`;
    case 15: return `${atom(d)}.isEmpty()`;
    case 16: return `${pick(VARS)}.${pick(['hasTag', 'getTag'])}(${cedarStr(pick(['t', 'u', '']))})`;
    case 17: return `${atom(d)}.${pick(['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual'])}(${atom(d)})`;
    case 18: return `${atom(d)}.${pick(['isIpv4', 'isIpv6', 'isLoopback', 'isMulticast'])}()`;
    case 19: return `${atom(d)}.isInRange(${atom(d)})`;
    case 20: return `${atom(d)}.offset(${atom(d)})`;
    case 21: return `${atom(d)}.durationSince(${atom(d)})`;
    case 22: return `${atom(d)}.${pick(['toDate', 'toTime'])}()`;
    case 23: return `${atom(d)}.${pick(['toDays', 'toHours', 'toMinutes', 'toSeconds', 'toMilliseconds'])}()`;
    case 24: return `principal.n ${pick(['<', '>', '=='])} ${randLong()}`;
    case 25: return `context.${pick(ATTRS)} == ${lit()}`;
    case 26: return `resource.owner == principal`;
    case 27: return `principal in resource.owner`;
    case 28: return `[${atom(d)}, ${atom(d)}].contains(${atom(d)})`;
    case 29: return `${atom(d)} has ${pick(ATTRS)}.${pick(ATTRS)}`;
    default: return atom(d);
  }
}

function scope(v) {
  if (v === 'action') {
    switch (int(4)) {
      case 0: return 'action';
      case 1: return `action == Action::${cedarStr(pick(ACTIONS))}`;
      case 2: return `action in Action::${cedarStr(pick(ACTIONS))}`;
      default: return `action in [Action::${cedarStr(pick(ACTIONS))}, Action::${cedarStr(pick(ACTIONS))}]`;
    }
  }
  switch (int(5)) {
    case 0: case 1: return v;
    case 2: return `${v} == ${euidText(randUid())}`;
    case 3: return `${v} in ${euidText(randUid())}`;
    default: return `${v} is ${pick(TYPES)}${chance(0.5) ? ` in ${euidText(randUid())}` : ''}`;
  }
}

function genPolicies(n) {
  const ps = [];
  for (let i = 0; i < n; i++) {
    let p = `${chance(0.3) ? `@id("p${i}") ` : ''}${chance(0.3) ? 'forbid' : 'permit'}(${scope('principal')}, ${scope('action')}, ${scope('resource')})`;
    for (let k = int(3); k > 0; k--) p += ` ${chance(0.7) ? 'when' : 'unless'} { ${expr(0)} }`;
    ps.push(p + ';');
  }
  return ps.join('\n');
}

function genContext() {
  const c = {};
  for (const a of ATTRS) if (chance(0.4)) c[a] = randValueJson(1);
  return c;
}

// ---- main loop -----------------------------------------------------------

const lines = [];
let total = 0, skipped = 0, cases = 0, negatives = 0;
while (total < wanted) {
  const policies = genPolicies(1 + int(6));
  const parsed = cedar.checkParsePolicySet({ staticPolicies: policies });
  if (parsed.type !== 'success') {
    // Keel must reject what Cedar rejects (kept to about a tenth of the checks)
    if (negatives > total / 10) continue;
    lines.push(JSON.stringify({ name: `diff-${cases++}`, policies, entities: [], requests: [], expectError: 'policies' }));
    negatives++; total++;
    continue;
  }
  const schemaMode = chance(0.3);
  const entities = schemaMode ? genSchemaEntities() : genEntities();
  const ents = cedar.checkParseEntities(schemaMode ? { entities, schema: SCHEMA } : { entities });
  if (ents.type !== 'success') {
    if (negatives > total / 10) continue;
    lines.push(JSON.stringify({ name: `diff-${cases++}`, policies, entities, ...(schemaMode ? { schema: SCHEMA } : {}), requests: [], expectError: 'entities' }));
    negatives++; total++;
    continue;
  }
  const requests = [];
  for (let r = 0; r < 10 && total < wanted; r++) {
    const pool = schemaMode ? entities : entities.slice(0, -4);
    const other = () => (schemaMode ? uid(pick(STYPES), pick(IDS)) : randUid());
    const req = {
      principal: chance(0.8) && pool.length ? pick(pool).uid : other(),
      action: uid('Action', pick(ACTIONS)),
      resource: chance(0.8) && pool.length ? pick(pool).uid : other(),
      context: schemaMode ? genSchemaContext() : genContext(),
    };
    const ans = cedar.isAuthorized({ ...req, policies: { staticPolicies: policies }, entities,
      ...(schemaMode ? { schema: SCHEMA, validateRequest: false } : {}) });
    if (ans.type !== 'success') {
      // the request itself is malformed (e.g. a bad extension value in the context)
      skipped++;
      requests.push({ description: `seed ${seedArg ?? 1} case ${cases} request ${r}`, ...req, expectError: 'request' });
      total++;
      continue;
    }
    requests.push({
      description: `seed ${seedArg ?? 1} case ${cases} request ${r}`,
      ...req,
      decision: ans.response.decision,
      reason: ans.response.diagnostics.reason,
      errors: ans.response.diagnostics.errors.map((e) => e.policyId),
    });
    total++;
  }
  if (!requests.length) continue;
  lines.push(JSON.stringify({ name: `diff-${cases}`, policies, entities, ...(schemaMode ? { schema: SCHEMA } : {}), requests }));
  cases++;
}
writeFileSync(out, lines.join('\n') + '\n');
console.log(`generated ${total} checks in ${cases} cases: ${total - negatives} requests, ${negatives} inputs cedar-wasm rejects (Keel must too), ${skipped} malformed requests (Keel must reject them too)`);
