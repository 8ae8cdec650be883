/**
 * Preloaded into `konductor-wait` by bench/handoff.ts (`node --import=<this file>?out=<json file> agent wait`)
 * to split the agent's part of a handoff without touching its code: when the first `granted` event
 * arrives on the wait stream (a listener on the https response), when grant.json is in place (after the
 * rename of the atomic write), and when process.exit is called. Wall-clock ms with µs precision
 * (performance.timeOrigin + now). The marks are written (one small synchronous write) as process.exit is
 * called, so the exit part includes that write (~0.1 ms). Plain JS: no type stripping in the agent.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
const fs = require('node:fs');
const https = require('node:https');
const params = new URL(import.meta.url).searchParams;
const out = params.get('out');
const now = () => performance.timeOrigin + performance.now();
const marks = { variant: params.get('variant') ?? 'A' };

const request = https.request;
https.request = function tracedRequest(...args) {
  const req = request.apply(this, args);
  req.on('response', (res) =>
    res.on('data', (chunk) => {
      const text = String(chunk);
      if (marks.received === undefined && text.includes('"type":"granted"')) marks.received = now();
      if (marks.doneReceived === undefined && text.includes('"type":"done"')) marks.doneReceived = now();
    }),
  );
  return req;
};
const writeFileSync = fs.writeFileSync;
fs.writeFileSync = function tracedWriteFileSync(path, ...rest) {
  if (marks.writeStart === undefined && String(path).includes('grant.json')) marks.writeStart = now();
  return writeFileSync(path, ...rest);
};
const renameSync = fs.renameSync;
fs.renameSync = function tracedRenameSync(from, to) {
  const r = renameSync(from, to);
  if (String(to).endsWith('grant.json')) marks.written = now();
  return r;
};
const exit = process.exit;
process.exit = function tracedExit(code) {
  marks.exitCalled = now();
  if (out) writeFileSync(out, JSON.stringify(marks));
  return exit.call(process, code);
};
syncBuiltinESMExports();
