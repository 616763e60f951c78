#!/usr/bin/env node
// Mutation check: the suite must catch the bugs users would hit. Copies the
// package (lib/ and test/, with node_modules and the built addon linked) to a
// temporary folder, runs the tests the mutations name there once unchanged
// (they must pass), then applies each mutation of mutations.js in turn, with
// dist/ recompiled from the mutated lib/ (worker tests load dist/), and
// expects every test file it names to fail an assertion. Prints each mutation
// with the tests that caught it; exits 1 when one survives, a pattern no
// longer matches exactly once, or the unchanged copy fails.
//
//   node test/mutation/run.js [--only <substring of a mutation name>]
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const ts = require('typescript');
const mutations = require('./mutations');

const ROOT = path.resolve(__dirname, '..', '..');
const only = process.argv.indexOf('--only') >= 0 ? process.argv[process.argv.indexOf('--only') + 1] : null;
const started = Date.now();

function fail(message) {
  console.error(`mutation check: ${message}`);
  process.exit(1);
}

function countOf(text, pattern) {
  let n = 0;
  for (let i = text.indexOf(pattern); i >= 0; i = text.indexOf(pattern, i + 1)) n++;
  return n;
}

// Every pattern first, against the real lib/: a stale one fails loudly before anything runs.
const chosen = mutations.filter((m) => !only || m.name.includes(only));
if (chosen.length === 0) fail(`no mutation matches --only ${only}`);
const stale = [];
for (const m of chosen) {
  const text = fs.readFileSync(path.join(ROOT, m.file), 'utf8');
  const n = countOf(text, m.find);
  if (n !== 1) stale.push(`"${m.name}": ${m.file} holds its pattern ${n} times, expected once:\n    ${JSON.stringify(m.find)}`);
  for (const t of m.tests) if (!fs.existsSync(path.join(ROOT, t))) stale.push(`"${m.name}": test file ${t} does not exist`);
}
if (stale.length > 0) fail(`${stale.length} mutation(s) no longer apply (update test/mutation/mutations.js with the code):\n  ${stale.join('\n  ')}`);

// The copy: lib/, examples/, test/ and the configs copied; node_modules, the addon and the launcher linked.
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-mutation-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'jest.config.js']) fs.copyFileSync(path.join(ROOT, f), path.join(work, f));
fs.cpSync(path.join(ROOT, 'lib'), path.join(work, 'lib'), { recursive: true });
// The examples load the package by name (package.json exports): in the copy, the mutated dist/.
fs.cpSync(path.join(ROOT, 'examples'), path.join(work, 'examples'), { recursive: true });
fs.cpSync(path.join(ROOT, 'test'), path.join(work, 'test'), { recursive: true, filter: (src) => !src.includes(`${path.sep}fixtures`) });
fs.symlinkSync(path.join(ROOT, 'test', 'golden', 'fixtures'), path.join(work, 'test', 'golden', 'fixtures'));
for (const d of ['node_modules', 'build', 'prebuilds', 'bin']) {
  if (fs.existsSync(path.join(ROOT, d))) fs.symlinkSync(fs.realpathSync(path.join(ROOT, d)), path.join(work, d));
}

/** dist/ for one lib/ file, compiled alone (no type check: the mutations keep types, and tsc would take seconds each). */
function compile(rel) {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(work, 'tsconfig.build.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  const out = ts.transpileModule(fs.readFileSync(path.join(work, rel), 'utf8'), { compilerOptions: { ...config.options, sourceMap: false, declaration: false }, fileName: rel });
  const dest = path.join(work, 'dist', path.relative('lib', rel).replace(/\.ts$/, '.js'));
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, out.outputText);
}
function libFiles(dir = 'lib') {
  return fs.readdirSync(path.join(work, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? libFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);
}
for (const f of libFiles()) compile(f);
// Declarations are the package's own (a mutation keeps the types): copied from dist/, for the tests that read them.
(function copyDeclarations(from, to) {
  if (!fs.existsSync(from)) return;
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    if (e.isDirectory()) copyDeclarations(path.join(from, e.name), path.join(to, e.name));
    else if (e.name.endsWith('.d.ts')) {
      fs.mkdirSync(to, { recursive: true });
      fs.copyFileSync(path.join(from, e.name), path.join(to, e.name));
    }
  }
})(path.join(ROOT, 'dist'), path.join(work, 'dist'));

/** Runs jest on `files` in the copy; returns each file's failing test names, or why it did not run. */
function jest(files) {
  const out = path.join(work, 'results.json');
  fs.rmSync(out, { force: true });
  const r = spawnSync(process.execPath, [require.resolve('jest/bin/jest', { paths: [ROOT] }), '--ci', '--json', `--outputFile=${out}`, '--runTestsByPath', ...files], {
    cwd: work, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' }, maxBuffer: 64 << 20,
  });
  if (!fs.existsSync(out)) return { error: `jest wrote no results (exit ${r.status}):\n${r.stderr.slice(-3000)}` };
  const results = JSON.parse(fs.readFileSync(out, 'utf8'));
  const byFile = new Map();
  for (const t of results.testResults) {
    byFile.set(path.relative(work, t.name), {
      failing: t.assertionResults.filter((a) => a.status === 'failed').map((a) => a.fullName),
      passed: t.assertionResults.filter((a) => a.status === 'passed').length,
      execError: t.status === 'failed' && t.assertionResults.every((a) => a.status !== 'failed') ? (t.message || 'suite failed to run').slice(0, 2000) : null,
    });
  }
  return { byFile };
}

// The unchanged copy must pass every file the mutations name.
const allTests = [...new Set(chosen.flatMap((m) => m.tests))];
const base = jest(allTests);
if (base.error) fail(`the unchanged copy did not run: ${base.error}`);
for (const t of allTests) {
  const r = base.byFile.get(t);
  if (!r) fail(`the unchanged copy ran no ${t}`);
  if (r.failing.length > 0 || r.execError || r.passed === 0) {
    fail(`the unchanged copy fails ${t} (so a failure under a mutation would prove nothing): ${r.execError || r.failing.slice(0, 3).join('; ') || 'no test passed'}`);
  }
}
console.log(`unchanged copy: ${allTests.join(', ')} pass (${((Date.now() - started) / 1000).toFixed(0)} s)`);

const survivors = [];
for (const m of chosen) {
  const file = path.join(work, m.file);
  const original = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(file, original.replace(m.find, () => m.replace));
  compile(m.file);
  const t0 = Date.now();
  const r = jest(m.tests);
  fs.writeFileSync(file, original);
  compile(m.file);
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  if (r.error) {
    survivors.push(`${m.name}: ${r.error}`);
    console.log(`NOT CAUGHT  ${m.name} (${secs} s): ${r.error}`);
    continue;
  }
  const missed = [];
  const caught = [];
  for (const t of m.tests) {
    const res = r.byFile.get(t);
    if (!res) missed.push(`${t} (did not run)`);
    else if (res.execError) missed.push(`${t} (did not run its tests: ${res.execError.split('\n')[0]})`);
    else if (res.failing.length === 0) missed.push(`${t} (all ${res.passed} tests pass)`);
    else caught.push(`${t}: ${res.failing.length} failing, e.g. "${res.failing[0]}"`);
  }
  if (missed.length > 0) {
    survivors.push(`${m.name}: not caught by ${missed.join(', ')}`);
    console.log(`NOT CAUGHT  ${m.name} (${secs} s)\n    ${missed.join('\n    ')}`);
  } else {
    console.log(`caught      ${m.name} (${secs} s)\n    ${caught.join('\n    ')}`);
  }
}

const total = ((Date.now() - started) / 1000).toFixed(0);
if (survivors.length > 0) fail(`${survivors.length} of ${chosen.length} mutations survived (${total} s):\n  ${survivors.join('\n  ')}`);
console.log(`mutation check: all ${chosen.length} mutations caught (${total} s)`);
