// peer.mjs — the cedar-wasm side of bench_policy: pre-parses the policy set
// once (preparsePolicySet), then times statefulIsAuthorized for each
// request with the entities that request touches.  Prints one JSON line:
// {"median_us":..,"p99_us":..,"allows":..}.
//
// usage: node peer.mjs DIR ROUNDS   (DIR holds policies.cedar, requests.json)
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../../tests/peers/package.json'));
const cedar = require('@cedar-policy/cedar-wasm/nodejs');

const [dir, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 5);
const policies = readFileSync(join(dir, 'policies.cedar'), 'utf8');
const reqs = JSON.parse(readFileSync(join(dir, 'requests.json'), 'utf8'));

const pre = cedar.preparsePolicySet('bench', { staticPolicies: policies });
if (pre.type !== 'success') {
  console.log(JSON.stringify({ error: pre.errors.map((e) => e.message) }));
  process.exit(1);
}
const calls = reqs.map(({ request, entities }) => ({ ...request, preparsedPolicySetId: 'bench', entities }));
let allows = 0;
for (const c of calls) {
  const a = cedar.statefulIsAuthorized(c); // warm-up, and the decisions
  if (a.type !== 'success') {
    console.log(JSON.stringify({ error: a.errors.map((e) => e.message) }));
    process.exit(1);
  }
  if (a.response.decision === 'allow') allows++;
}
const times = [];
for (let r = 0; r < rounds; r++) {
  for (const c of calls) {
    const t0 = process.hrtime.bigint();
    cedar.statefulIsAuthorized(c);
    times.push(Number(process.hrtime.bigint() - t0));
  }
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)] / 1000;
const p99 = times[Math.floor(times.length * 0.99)] / 1000;
console.log(JSON.stringify({ median_us: median, p99_us: p99, allows }));
