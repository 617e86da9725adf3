'use strict';
/*
 * The references the budgets are measured against (test/bench/run.ts, test/bench/binary.ts),
 * run by the very Node Talon runs on: `node ref-main.cjs <mode> ...`, or as the main script of
 * a single executable made of the same Node as Talon's binary (`ref-sea <mode> ...`).
 *   http <port>                 a minimal node:http server (the cold-start reference)
 *   idle                        bare Node doing nothing (the idle-RSS reference)
 *   floor <port> <dir> <root>   what any Talon needs before its own code: an open LevelDB
 *                               (classic-level from <root>/node_modules, in <dir>, one durable
 *                               write), node:http listening, then one idle worker_thread (a Hand)
 * CommonJS and built-in modules only: a single executable's main script can require nothing
 * else (classic-level is loaded through module.createRequire).
 */
const [mode, ...args] = process.argv.slice(2);

if (mode === 'http') {
  require('node:http')
    .createServer((q, r) => r.end('ok'))
    .listen(Number(args[0]), '127.0.0.1');
} else if (mode === 'idle') {
  setInterval(() => {}, 1e9);
} else if (mode === 'floor') {
  const [port, dir, root] = args;
  const path = require('node:path');
  const { ClassicLevel } = require('node:module').createRequire(path.join(root, 'package.json'))('classic-level');
  const db = new ClassicLevel(dir);
  db.open()
    .then(() => db.put('boot', String(Date.now()), { sync: true }))
    .then(() => {
      require('node:http')
        .createServer((q, r) => r.end('ok'))
        .listen(Number(port), '127.0.0.1', () => {
          const { Worker } = require('node:worker_threads');
          new Worker('setInterval(() => {}, 1e9)', { eval: true });
        });
    })
    .catch((err) => {
      process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
      process.exit(1);
    });
} else {
  process.stderr.write(
    `ref-main: unknown mode ${JSON.stringify(mode)} (http <port> | idle | floor <port> <dir> <root>)\n`,
  );
  process.exit(2);
}
