// ajv_peer.cjs — the peer side of bench_schema: compiles each schema of a
// workload with ajv 8 (draft 2020-12, ajv-formats), then measures
// validations per second on already-parsed instances and end to end
// (JSON.parse + validate).  Prints one JSON line.
//
// usage: node ajv_peer.cjs WORKLOAD.json SECONDS
// WORKLOAD: {"sets":[{"name":..,"items":[{"schema":{..},"instances":["json text",..]}]}]}
"use strict";
const path = require("path");
const fs = require("fs");
const { createRequire } = require("module");
const peers = path.resolve(__dirname, "../../tests/peers");
const req = createRequire(path.join(peers, "package.json"));
const Ajv2020 = req("ajv/dist/2020");
const addFormats = req("ajv-formats");

const [file, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || "0.5");
const work = JSON.parse(fs.readFileSync(file, "utf8"));

// CPU time of the process (user + system, in seconds): the machine may be
// shared, and CPU time is what a validation costs regardless of waiting.
function cpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function measure(fn) {
  // Warm up (V8 optimizes hot validators after a while), then run whole
  // passes until the time is used.
  const w0 = cpu();
  while (cpu() - w0 < 0.3) fn();
  let ops = 0;
  const t0 = cpu();
  let t;
  do {
    for (let k = 0; k < 8; k++) ops += fn(); // reading the CPU clock is a system call
    t = cpu() - t0;
  } while (t < seconds);
  return ops / t;
}

const out = { sets: [] };
for (const set of work.sets) {
  const ajv = new Ajv2020({ strict: false, allErrors: false, logger: false });
  addFormats(ajv);
  const ajvAll = new Ajv2020({ strict: false, allErrors: true, logger: false });
  addFormats(ajvAll);
  const compiled = [];
  const validators = [];
  for (const item of set.items) {
    try {
      const v = ajv.compile(item.schema);
      const docs = item.instances.map((t) => JSON.parse(t));
      for (const d of docs) v(d); // a validator that throws (e.g. a $ref loop) is left out
      let all = null;
      try { all = ajvAll.compile(item.schema); for (const d of docs) all(d); } catch (e) { all = null; }
      compiled.push(true);
      validators.push({ v, all, texts: item.instances, docs });
    } catch (e) {
      compiled.push(false);
    }
  }
  let valid = 0;
  for (const x of validators) for (const d of x.docs) if (x.v(d)) valid++;
  const parsed = measure(() => {
    let n = 0;
    for (const x of validators) for (const d of x.docs) { x.v(d); n++; }
    return n;
  });
  const e2e = measure(() => {
    let n = 0;
    for (const x of validators) for (const t of x.texts) { x.v(JSON.parse(t)); n++; }
    return n;
  });
  const allErrors = measure(() => {
    let n = 0;
    for (const x of validators) for (const d of x.docs) { (x.all || x.v)(d); n++; }
    return n;
  });
  out.sets.push({ name: set.name, compiled, valid, parsed_per_s: parsed, e2e_per_s: e2e,
                  all_errors_parsed_per_s: allErrors });
}
process.stdout.write(JSON.stringify(out) + "\n");
