/**
 * `node --import tsx test/bench/provisioning.ts` (or `npm run bench -- provisioning`):
 * - one real Talon (`node dist/talon.cjs run`) with a fleet bootstrap config: from exec to
 *   provisioned (signed ack 'applied' seen by the operator) and reconnected to the fleet broker
 *   with its own credential (GET /api/v1/provisioning says so), on loopback;
 * - 200 simulated devices (test/provisioning/sim-device.ts, in this process) announcing at once
 *   to one mosquitto, provisioned by one FleetOperator (the library behind `talon fleet
 *   provision`), each reconnecting with its own credential: total time and the slowest device.
 * The broker is a real mosquitto started from the files `talon fleet init` writes (ACL on).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import mqtt from 'mqtt';
import { freePort, httpGet, kill, median, sleep, TALON, runIfMain } from './lib.ts';
import { startMosquitto } from '../helpers/mosquitto.ts';
import { initFleet, loadFleet, type DeviceBootstrap } from '../../provisioning/fleet/keys.ts';
import { FleetOperator } from '../../provisioning/fleet/operator.ts';
import { SimDevice } from '../provisioning/sim-device.ts';

const f = (n: number, d = 1): string => n.toFixed(d);

async function fleetWithBroker(): Promise<{ dir: string; boot: DeviceBootstrap; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-bench-fleet-'));
  const port = await freePort();
  initFleet(join(dir, 'fleet'), {
    fleetId: 'bench',
    brokerUrl: `mqtt://127.0.0.1:${port}`,
    ...(process.getuid?.() === 0 ? { brokerRunAs: 'root' } : {}),
  });
  const broker = await startMosquitto({ configFile: join(dir, 'fleet', 'broker', 'mosquitto.conf'), port });
  const boot = JSON.parse(readFileSync(join(dir, 'fleet', 'device-bootstrap.json'), 'utf8')) as DeviceBootstrap;
  return { dir, boot, stop: () => broker.stop() };
}

/** the operator's view: resolves when `deviceId` has announced */
function announced(op: FleetOperator, deviceId: string): Promise<void> {
  return new Promise((resolve) =>
    op.onAnnounce((rec) => {
      if (rec.deviceId === deviceId) resolve();
    }),
  );
}

async function realDevice(say: (line: string) => void, runs: number): Promise<void> {
  const { dir, boot, stop } = await fleetWithBroker();
  const op = await FleetOperator.connect(loadFleet(join(dir, 'fleet')));
  await op.sync();
  const times: Array<{ announce: number; applied: number; reconnected: number }> = [];
  try {
    for (let i = 0; i < runs; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), 'talon-bench-prov-'));
      const httpPort = await freePort();
      const mqttPort = await freePort();
      const cfg = {
        dataDir,
        drivers: [],
        hands: [],
        log: { level: 'warn' },
        http: { host: '127.0.0.1', port: httpPort },
        bus: { embedded: { enabled: true, listen: { host: '127.0.0.1', port: mqttPort } } },
        provisioning: { ...boot, healthWindowMs: 1000 },
      };
      writeFileSync(join(dataDir, 'talon.json'), JSON.stringify(cfg));
      const t0 = performance.now();
      const proc = spawn(process.execPath, [TALON, 'run', '--config', join(dataDir, 'talon.json')], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      try {
        // the device id is known once the daemon wrote its key; the operator hears the announce
        let deviceId = '';
        for (;;) {
          try {
            deviceId = (JSON.parse(readFileSync(join(dataDir, 'runtime.json'), 'utf8')) as { deviceId: string })
              .deviceId;
            break;
          } catch {
            await sleep(5);
          }
        }
        await announced(op, deviceId);
        const tAnnounce = performance.now() - t0;
        const config = {
          http: { host: '127.0.0.1', port: httpPort },
          bus: cfg.bus,
          drivers: [],
          hands: [],
          log: { level: 'warn' },
        };
        const r = await op.provision(deviceId, { config, timeoutMs: 60_000 });
        if (r.ack?.outcome !== 'applied') throw new Error(`device ${deviceId}: ${JSON.stringify(r.ack ?? 'no ack')}`);
        const tApplied = performance.now() - t0;
        const token = readFileSync(join(dataDir, 'cli-token'), 'utf8').trim();
        for (;;) {
          const s = await httpGet(httpPort, '/api/v1/provisioning', { authorization: `Bearer ${token}` }).catch(() => ({
            status: 0,
            body: '',
          }));
          if (s.status === 200) {
            const st = JSON.parse(s.body) as { state: string; broker?: { kind: string; connected: boolean } | null };
            if (st.state === 'provisioned' && st.broker?.kind === 'fleet' && st.broker.connected) break;
          }
          if (performance.now() - t0 > 120_000) throw new Error('not reconnected to the fleet broker in 120 s');
          await sleep(5);
        }
        times.push({ announce: tAnnounce, applied: tApplied, reconnected: performance.now() - t0 });
      } finally {
        await kill(proc);
      }
    }
  } finally {
    await op.close();
    await stop();
  }
  const m = (k: 'announce' | 'applied' | 'reconnected'): string => f(median(times.map((t) => t[k])), 0);
  say(`| one real device: exec → announce seen by the operator (median of ${runs}) | ${m('announce')} ms | | | |`);
  say(`| one real device: exec → signed ack 'applied' (health window 1 s included) | ${m('applied')} ms | | | |`);
  say(
    `| one real device: exec → provisioned and reconnected to the fleet broker with its own credential | ${m('reconnected')} ms | | | |`,
  );
}

async function simulated(say: (line: string) => void, n: number): Promise<void> {
  const { dir, boot, stop } = await fleetWithBroker();
  const op = await FleetOperator.connect(loadFleet(join(dir, 'fleet')));
  await op.sync();
  const devices = Array.from({ length: n }, () => new SimDevice(boot));
  const seen = new Set<string>();
  const allAnnounced = new Promise<void>((resolve) =>
    op.onAnnounce((rec) => {
      seen.add(rec.deviceId);
      if (seen.size === n) resolve();
    }),
  );
  const t0 = performance.now();
  try {
    await Promise.all(devices.map((d) => d.start()));
    await allAnnounced;
    const tAnnounced = performance.now() - t0;
    const done: number[] = [];
    await Promise.all(
      devices.map(async (d) => {
        const r = await op.provision(d.id, { config: { hands: [] }, timeoutMs: 120_000 });
        if (r.ack?.outcome !== 'applied') throw new Error(`device ${d.id}: ${JSON.stringify(r.ack ?? 'no ack')}`);
        // then it connects with its own credential, as the real agent does
        const c = await mqtt.connectAsync(boot.bootstrap.url, {
          username: d.id,
          password: d.brokerPassword!,
          clientId: `${d.id}`,
          reconnectPeriod: 0,
        });
        await c.subscribeAsync(`talon/${d.id}/#`);
        done.push(performance.now() - t0);
        await c.endAsync();
      }),
    );
    const total = performance.now() - t0;
    say(`| ${n} simulated devices at once: all announced | ${f(tAnnounced, 0)} ms | | | |`);
    say(
      `| ${n} simulated devices: all provisioned (signed, sealed, verified, acked) and reconnected with their own credential | ${f(total / 1000, 2)} s | slowest device ${f(Math.max(...done) / 1000, 2)} s, median ${f(median(done) / 1000, 2)} s | | |`,
    );
  } finally {
    await Promise.all(devices.map((d) => d.stop().catch(() => undefined)));
    await op.close();
    await stop();
  }
}

export async function provisioningRows(say: (line: string) => void): Promise<void> {
  await realDevice(say, Number(process.env.BENCH_PROV_RUNS ?? 3));
  await simulated(say, Number(process.env.BENCH_PROV_DEVICES ?? 200));
}

await runIfMain(import.meta.url, provisioningRows);
