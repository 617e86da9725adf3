/**
 * A kernel in its own process for fd-guard.test.ts: its stdout and stderr are the daemon's log
 * (the test reads them), it also writes a log file, and it runs the fd-probe Hand against the
 * descriptors of both, of its LevelDB store and of a TCP and a UDP socket it listens on (one
 * probe without network access, one with network: { raw: true }). Then it closes everything,
 * reopens the store, verifies the audit chain, checks its sockets still answer, and prints one
 * line: `RESULT <json>`.
 */
import { openSync, writeSync, readFileSync, readdirSync, readlinkSync, rmSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { Store } from '../../../runtime/store/store.ts';
import { AuditChain } from '../../../runtime/audit/chain.ts';
import { ROOT, startHarness, waitFor } from '../../helpers/supervisor-harness.ts';

const marker = process.argv[2] ?? 'FORGED';

/** the process's descriptors that name a file under `dir` (LevelDB's log, manifest, LOG, LOCK) */
function fdsUnder(dir: string): Array<{ fd: number; path: string }> {
  const out: Array<{ fd: number; path: string }> = [];
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      const path = readlinkSync(`/proc/self/fd/${name}`);
      if (path.startsWith(dir)) out.push({ fd: Number(name), path });
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

const h = await startHarness(
  [
    { name: 'prober', fixture: 'fd-probe' },
    { name: 'prober-raw', fixture: 'fd-probe' },
  ],
  { start: false, limits: { deniesAuditedPerSec: 1000 } },
);
const logPath = join(h.dir, 'daemon.log');
const logFd = openSync(logPath, 'a');
const kernelLine = 'kernel: a line of the daemon log\n';
writeSync(logFd, kernelLine);
process.stdout.write('kernel: stdout before the Hand\n');

// acknowledged before the attack: audit entries and a store value
for (let i = 0; i < 50; i++)
  await h.audit.record({ actor: 'test', action: 'before', subject: `s${i}`, decision: 'ok' });
await h.store.sublevel('meta').put('probe', 'intact');

// sockets like the web admin's listener and a LAN bus's UDP: a Hand with raw network access
// could otherwise take them over by number
const server = createServer((c) => c.end('kernel\n'));
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const udp = createSocket('udp4');
await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
const handleFd = (o: object): number => {
  const direct = (o as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof direct === 'number') return direct;
  const k = Object.getOwnPropertySymbols(o).find((s) => s.description === 'state symbol');
  return k ? (o as Record<symbol, { handle: { fd: number } }>)[k]!.handle.fd : -1;
};
const sockets = [handleFd(server), handleFd(udp)];

const storeFds = fdsUnder(h.dir).filter((f) => f.fd !== logFd);
const targets = [...storeFds.map((f) => f.fd), logFd, 1, 2];
await h.sup.reconcile([
  { name: 'prober', module: 'fd-probe', enabled: true, settings: { marker, targets, sockets } },
  {
    name: 'prober-raw',
    module: 'fd-probe',
    enabled: true,
    settings: { marker, targets, sockets },
    capabilities: { network: { raw: true } },
  },
]);
const results = await h.collect(`${ROOT}/fdprobe/result`);
await h.sup.start();
const settled = (name: string): boolean => !['running', 'starting'].includes(h.sup.status(name).state);
await waitFor('the probe results', () => results.length >= 2 || settled('prober') || settled('prober-raw'), 60_000);
const byName: Record<string, unknown> = {};
for (const m of results) {
  const r = JSON.parse(m.payload.toString()) as { name: string };
  byName[r.name] = r;
}
const status = { prober: h.sup.status('prober'), 'prober-raw': h.sup.status('prober-raw') };
// the kernel's sockets still work
const answer = await new Promise<string>((resolve) => {
  import('node:net').then(({ connect }) => {
    const c = connect((server.address() as { port: number }).port, '127.0.0.1');
    let got = '';
    c.on('data', (d) => {
      got += String(d);
    });
    c.on('close', () => resolve(got));
    c.on('error', (e) => resolve(`error ${e.message}`));
  });
});
server.close();
udp.close();

// acknowledged after the attack
for (let i = 0; i < 50; i++) await h.audit.record({ actor: 'test', action: 'after', subject: `s${i}`, decision: 'ok' });
const entries = await h.auditEntries();
const denials = entries.filter(
  (e) =>
    e.action === 'capability.check' &&
    e.decision === 'deny' &&
    (e.detail as { action?: string } | undefined)?.action === 'fd.use',
);

await h.sup.stop(1000);
await h.audit.stop();
await h.bus.stop();
await h.store.close();
closeSync(logFd);

// reopen: every acknowledged entry is there and the chain verifies
const store = await Store.open(h.dir);
const audit = new AuditChain(store, h.key);
await audit.start();
const verify = await audit.verify({ from: 'start' });
let before = 0;
let after = 0;
for await (const e of audit.entries()) {
  if (e.action === 'before') before++;
  if (e.action === 'after') after++;
}
const value = await store.sublevel('meta').get('probe');
await audit.stop();
await store.close();
const log = readFileSync(logPath, 'utf8');
rmSync(h.dir, { recursive: true, force: true });

process.stdout.write(
  `RESULT ${JSON.stringify({
    results: byName,
    status,
    storeFds,
    sockets,
    answer,
    denials: denials.length,
    denialSubjects: denials.slice(0, 5).map((e) => e.subject),
    verify: { ok: verify.ok, checked: verify.checked, reason: verify.reason },
    before,
    after,
    value,
    logIntact: log === kernelLine,
    log: log.slice(0, 500),
  })}\n`,
);
process.exit(0);
