// Prints the arguments the launcher gave it (test/distributed/launcher_cli.test.ts).
'use strict';

console.log(JSON.stringify(process.argv.slice(2)));
