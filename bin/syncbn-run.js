#!/usr/bin/env node
// Launcher: see lib/distributed/launcher.ts (`syncbn-run --help`).
'use strict';

require('../dist/distributed/launcher').main(process.argv.slice(2));
