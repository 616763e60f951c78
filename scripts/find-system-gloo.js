#!/usr/bin/env node
// binding.gyp asks this whether to link the system's Gloo (Debian's
// libgloo-dev: headers in <prefix>/include/gloo, libgloo.so in <prefix>/lib):
// prints 1 or 0 for gyp and says on stderr what it found, so a node-gyp
// build never drops Gloo silently. SYNCBN_GLOO=off answers 0; SYNCBN_GLOO=system
// fails when none is found. (The CMake build compiles third_party/gloo instead.)
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const want = process.env.SYNCBN_GLOO || 'auto';
const prefixes = ['/usr', '/usr/local'];
const libDirs = (prefix) => [path.join(prefix, 'lib'), path.join(prefix, 'lib64'), ...multiarch(prefix)];

function multiarch(prefix) {
  const lib = path.join(prefix, 'lib');
  try {
    return fs.readdirSync(lib).filter((d) => /-linux-gnu/.test(d)).map((d) => path.join(lib, d));
  } catch {
    return [];
  }
}

function find() {
  for (const prefix of prefixes) {
    const header = path.join(prefix, 'include', 'gloo', 'config.h');
    if (!fs.existsSync(header)) continue;
    const lib = libDirs(prefix).map((d) => path.join(d, 'libgloo.so')).find((f) => fs.existsSync(f));
    if (lib) return { header, lib };
  }
  return null;
}

if (want === 'off') {
  console.error('[syncbn] node-gyp build without Gloo (SYNCBN_GLOO=off)');
  console.log(0);
} else {
  const found = find();
  if (found) {
    console.error(`[syncbn] node-gyp build with the system's Gloo (${found.header}, ${found.lib}); libgloo.so.0 is needed at run time`);
    console.log(1);
  } else if (want === 'system') {
    console.error('[syncbn] SYNCBN_GLOO=system, but no Gloo was found (gloo/config.h and libgloo.so under /usr or /usr/local); install libgloo-dev');
    process.exit(1);
  } else {
    console.error("[syncbn] node-gyp build without Gloo: libgloo-dev not found (install it, or build with cmake, which compiles syncbn's bundled Gloo)");
    console.log(0);
  }
}
