/**
 * First-run setup codes: wrong codes lock the address they come from, never the owner at
 * another address; many wrong codes from many addresses make every attempt wait (a delay that
 * grows to at most SETUP_MAX_DELAY_MS), and a right code from a fresh address still gets
 * through after it. The HTTP layer in process with an injected clock: waits are recorded, not
 * slept.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import inject from 'light-my-request';
import { HttpServer } from '../../web-admin/server.ts';
import { Store } from '../../runtime/store/store.ts';
import { DeviceKey } from '../../runtime/secrets/device-key.ts';
import { AuditChain } from '../../runtime/audit/chain.ts';
import type { RuntimeApi } from '../../runtime/api/runtime-api.ts';
import type { Clock } from '../../runtime/core/clock.ts';
import { LOCK_MS, SETUP_GLOBAL_FREE, SETUP_MAX_DELAY_MS, SETUP_WINDOW_MS } from '../../web-admin/auth/ratelimit.ts';
import { code } from './harness.ts';

/** a clock whose timeouts move time forward at once and are recorded */
function fakeClock(): Clock & { waits: number[]; advance(ms: number): void } {
  let now = 1_767_225_600_000;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    setTimeout: (fn, ms) => {
      waits.push(ms);
      now += ms;
      setImmediate(fn);
      return 0;
    },
    clearTimeout: () => {},
    setInterval: () => 0,
    clearInterval: () => {},
    advance(ms) {
      now += ms;
    },
  };
}

async function server(): Promise<{ http: HttpServer; clock: ReturnType<typeof fakeClock>; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'talon-setup-'));
  const clock = fakeClock();
  const store = await Store.open(dir);
  const audit = new AuditChain(store, DeviceKey.loadOrCreate(dir), { verifyAtStart: false });
  await audit.start();
  const http = new HttpServer({
    api: {} as RuntimeApi,
    listen: { host: '127.0.0.1', port: 0 },
    cliToken: 'c'.repeat(43),
    store,
    audit,
    dataDir: dir,
    clock,
  });
  await http.listen();
  return {
    http,
    clock,
    async stop() {
      await http.close();
      await audit.stop();
      await store.close();
    },
  };
}

const attempt = (http: HttpServer, setupCode: string, ip: string) =>
  inject((rq, rs) => void http.handle(rq, rs), {
    method: 'POST',
    url: '/api/v1/setup',
    remoteAddress: ip,
    payload: { code: setupCode, username: 'owner', password: 'the owner password' },
  });
const WRONG = 'AAAA-AAAA-AAAA-AAAA';

test('five wrong codes lock that address only; the owner at another address sets up at once', async () => {
  const s = await server();
  try {
    for (let i = 0; i < 5; i++) {
      const r = await attempt(s.http, WRONG, '10.1.0.1');
      assert.equal(r.statusCode, 401);
      assert.equal(code(r), 'BAD_CREDENTIALS');
    }
    const locked = await attempt(s.http, s.http.setupCode!, '10.1.0.1');
    assert.equal(locked.statusCode, 429);
    assert.equal(code(locked), 'LOCKED_OUT');
    const retry = Number(locked.headers['retry-after']);
    assert.ok(retry > LOCK_MS / 1000 - 60 && retry <= LOCK_MS / 1000, `Retry-After ${retry}`);
    assert.match((locked.json() as { error: { message: string } }).error.message, /setup codes from this address/);
    // after the lockout the address may try again
    s.clock.advance(LOCK_MS + 1);
    assert.equal((await attempt(s.http, WRONG, '10.1.0.1')).statusCode, 401);

    const owner = await attempt(s.http, s.http.setupCode!, '192.168.1.20');
    assert.equal(owner.statusCode, 201, owner.body);
    assert.deepEqual(s.clock.waits, [], 'six wrong codes in all: no global delay yet');
  } finally {
    await s.stop();
  }
});

test('many wrong codes from many addresses slow every attempt down, up to a ceiling, but a right code from a fresh address gets through', async () => {
  const s = await server();
  try {
    let ip = 0;
    const wrongFromNew = async (): Promise<void> => {
      const r = await attempt(s.http, WRONG, `10.2.${Math.floor(ip / 250)}.${(ip++ % 250) + 1}`);
      assert.equal(r.statusCode, 401, r.body);
    };
    for (let i = 0; i < SETUP_GLOBAL_FREE; i++) await wrongFromNew();
    assert.deepEqual(s.clock.waits, []);
    await wrongFromNew();
    assert.deepEqual(
      s.clock.waits,
      [],
      `the ${SETUP_GLOBAL_FREE + 1}th attempt is checked against ${SETUP_GLOBAL_FREE} failures`,
    );
    await wrongFromNew();
    assert.deepEqual(s.clock.waits, [1000], 'past the free allowance every attempt waits first');
    // the delay doubles with each further batch of failures, never past the ceiling
    for (let i = 0; i < 8 * SETUP_GLOBAL_FREE; i++) await wrongFromNew();
    const waits: number[] = s.clock.waits;
    for (let i = 1; i < waits.length; i++)
      assert.ok(waits[i]! >= waits[i - 1]!, 'never shrinks while failures keep coming');
    assert.ok(waits.includes(2000) && waits.includes(4000) && waits.includes(8000), waits.join(','));
    assert.equal(Math.max(...waits), SETUP_MAX_DELAY_MS);

    // the owner, from a fresh address, with the right code: waits, then gets in
    const before = s.clock.waits.length;
    const owner = await attempt(s.http, s.http.setupCode!, '192.168.1.20');
    assert.equal(owner.statusCode, 201, owner.body);
    assert.deepEqual(s.clock.waits.slice(before), [SETUP_MAX_DELAY_MS]);
  } finally {
    await s.stop();
  }
});

test('the global delay fades once the failures are older than the window', async () => {
  const s = await server();
  try {
    for (let i = 0; i < 3 * SETUP_GLOBAL_FREE; i++)
      assert.equal((await attempt(s.http, WRONG, `10.3.0.${i + 1}`)).statusCode, 401);
    assert.ok(s.clock.waits.length > 0);
    s.clock.advance(SETUP_WINDOW_MS + 1);
    const before = s.clock.waits.length;
    assert.equal((await attempt(s.http, s.http.setupCode!, '10.3.1.1')).statusCode, 201);
    assert.equal(s.clock.waits.length, before, 'no wait once the failures are old');
  } finally {
    await s.stop();
  }
});
