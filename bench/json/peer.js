// peer.js — the Node side of bench_json: JSON.parse and JSON.stringify
// throughput on the same files, measured like the C side (MB/s = 10^6 bytes
// per second of wall time; parse counts the file's bytes, write counts the
// UTF-8 bytes of the compact output; best of --repeat rounds of at least
// --seconds each; --cpu-time: CPU seconds instead of wall seconds).  The
// file is decoded to a JS string before timing.
// Prints one JSON line: {"results":[{"file":..,"bytes":..,"parse_mbps":..,"write_mbps":..}]}
//
// usage: node peer.js [--seconds S] [--repeat N] [--cpu-time] FILE...
"use strict";
const fs = require("fs");

let seconds = 0.3, repeat = 5, cpuTime = false;
const files = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--seconds") seconds = Number(args[++i]);
  else if (args[i] === "--repeat") repeat = Number(args[++i]);
  else if (args[i] === "--cpu-time") cpuTime = true;
  else files.push(args[i]);
}

// Milliseconds: wall time, or with --cpu-time the CPU time of the process
// (user + system, all threads), as the C side measures.
function now() {
  if (!cpuTime) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function best(fn, bytesPerCall) {
  // warm up so V8 has optimized the loop before it is timed
  const w0 = performance.now();
  while (performance.now() - w0 < 100) fn();
  let top = 0;
  for (let r = 0; r < repeat; r++) {
    const t0 = now();
    let calls = 0, t;
    do {
      for (let k = 0; k < 16; k++) fn();
      calls += 16;
      t = (now() - t0) / 1000;
    } while (t < seconds);
    top = Math.max(top, (calls * bytesPerCall) / t / 1e6);
  }
  return top;
}

let sink = 0;
const results = files.map((file) => {
  const buf = fs.readFileSync(file);
  const text = buf.toString("utf8");
  const obj = JSON.parse(text);
  const outBytes = Buffer.byteLength(JSON.stringify(obj), "utf8");
  const parse = best(() => { sink += JSON.parse(text) ? 1 : 0; }, buf.length);
  const write = best(() => { sink += JSON.stringify(obj).length; }, outBytes);
  return { file, bytes: buf.length, parse_mbps: parse, write_mbps: write };
});
process.stdout.write(JSON.stringify({ results, sink: sink > 0 }) + "\n");
