// policy_check_cedar_validate.js — helper for tests/unit/test_policy_validate.c:
// validates policies with the reference implementation (@cedar-policy/cedar-wasm,
// strict mode).  Each stdin line is {"schema": text, "policy": text}; each
// output line is {"valid": bool, "noApplicableAction": bool, "messages": [...]}.
// noApplicableAction reports Cedar >= 4.11's *warning* "unable to find an
// applicable action", which Cedar 4.10 (the version the shared corpus was
// built with) reported as an error; the caller decides how to count it.
const path = require('path');
const readline = require('readline');
const cedar = require(path.join(__dirname, '..', 'peers', 'node_modules', '@cedar-policy',
                                'cedar-wasm', 'nodejs'));
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const d = JSON.parse(line);
  const slots = d.policy.includes('?principal') || d.policy.includes('?resource');
  const policies = slots ? { templates: { t0: d.policy } } : { staticPolicies: d.policy };
  const r = cedar.validate({ schema: d.schema, policies });
  if (r.type !== 'success') {
    console.log(JSON.stringify({ error: JSON.stringify(r.errors) }));
    return;
  }
  const app = r.validationWarnings.some(
    (w) => w.error.message.includes('unable to find an applicable action'));
  console.log(JSON.stringify({
    valid: r.validationErrors.length === 0,
    noApplicableAction: app,
    messages: r.validationErrors.map((e) => e.error.message),
  }));
});
