/**
 * The outbox over the in-memory store, a fake clock with fake timers (moved by the test) and fake channels whose sends
 * fail as scripted by ChannelError kind: durability before send, crash recovery, rate/auth/permanent/transient
 * handling, the breaker, digests, expiry, a large queue drained once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Channel, ChannelError, type OutMessage } from '../../../hands/communication/channels/types.ts';
import { Outbox, type OutboxOptions, newOutboxId, outKey } from '../../../hands/communication/outbox.ts';
import type { HistoryEntry, OutboxEntry } from '../../../hands/communication/types.ts';
import { memStore, type MemStore } from '../../helpers/mem-store.ts';
import { waitFor } from '../../helpers/wait.ts';

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);

/** flushes promise chains and immediates (the store and the fakes resolve without real I/O) */
async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
}

/** a clock and ctx.timers-like timers the test moves */
class FakeTime {
  now = T0;
  #timers = new Map<number, { at: number; fn: () => void | Promise<void> }>();
  #seq = 0;
  clock = { now: (): number => this.now };
  timers = {
    after: (ms: number, fn: () => void | Promise<void>): (() => void) => {
      const id = ++this.#seq;
      this.#timers.set(id, { at: this.now + ms, fn });
      return () => void this.#timers.delete(id);
    },
  };
  /** moves the clock by ms, firing the timers due on the way in order */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    await settle();
    for (;;) {
      let next: [number, { at: number; fn: () => void | Promise<void> }] | undefined;
      for (const t of this.#timers) if (t[1].at <= end && (!next || t[1].at < next[1].at)) next = t;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.now = Math.max(this.now, next[1].at);
      void next[1].fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

/** what a platform got: every call, and the messages it keeps once per id (a platform that dedups by id) */
interface Platform {
  calls: OutMessage[];
  kept: Map<string, OutMessage>;
}

type Step = 'ok' | 'hang' | Error;

function fakeChannel(
  name: string,
  script: Step[] = [],
  o: { platform?: Platform; probe?: Step[]; probes?: { n: number } } = {},
): Channel & { platform: Platform } {
  const platform: Platform = o.platform ?? { calls: [], kept: new Map() };
  const ch: Channel & { platform: Platform } = {
    name,
    kind: 'fake',
    maxChars: 4000,
    dialect: 'markdown',
    targets: ['t1'],
    platform,
    async send(msg, signal) {
      platform.calls.push(msg);
      const step = script.shift() ?? 'ok';
      if (step instanceof Error) throw step;
      if (!platform.kept.has(msg.id)) platform.kept.set(msg.id, msg);
      if (step === 'hang')
        await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      return { platformIds: [`p-${msg.id}`] };
    },
  };
  if (o.probe) {
    const probes = o.probe;
    ch.probe = async () => {
      if (o.probes) o.probes.n++;
      const step = probes.shift() ?? 'ok';
      if (step instanceof Error) throw step;
    };
  }
  return ch;
}

function entry(over: Partial<OutboxEntry> & { id: string }): OutboxEntry {
  return {
    notification: `n-${over.id}`,
    channel: 'tg',
    rule: 'r1',
    route: 'default',
    title: `title ${over.id}`,
    text: `text of ${over.id}\nsecond line`,
    priority: 'normal',
    tags: [],
    state: 'queued',
    attempts: 0,
    nextAt: T0,
    createdAt: T0,
    ...over,
  };
}

function outbox(
  store: MemStore,
  time: FakeTime,
  channels: Channel[],
  extra: Partial<OutboxOptions> = {},
): { ob: Outbox; sent: HistoryEntry[]; failed: HistoryEntry[]; expired: HistoryEntry[] } {
  const sent: HistoryEntry[] = [];
  const failed: HistoryEntry[] = [];
  const expired: HistoryEntry[] = [];
  const ob = new Outbox({
    store,
    channels,
    clock: time.clock,
    timers: time.timers,
    random: () => 0.5,
    onSent: (h) => void sent.push(h),
    onFailed: (h) => void failed.push(h),
    onExpired: (h) => void expired.push(h),
    ...extra,
  });
  return { ob, sent, failed, expired };
}

const hist = (store: MemStore): HistoryEntry[] =>
  [...store.map].filter(([k]) => k.startsWith('hist/')).map(([, v]) => v as HistoryEntry);
const out = (store: MemStore, id: string): OutboxEntry | undefined => store.map.get(outKey(id)) as OutboxEntry;

test('ids are time-ordered, also within one millisecond and when the clock steps back', () => {
  const a = newOutboxId(T0);
  const b = newOutboxId(T0);
  const c = newOutboxId(T0 - 5000);
  const d = newOutboxId(T0 + 1);
  assert.ok(a < b && b < c && c < d, `${a} ${b} ${c} ${d}`);
  assert.match(a, /^[0-9a-z]{16}$/);
});

test('an entry is stored before it is sent; once confirmed it moves into the history with the platform ids', async () => {
  const store = memStore();
  const time = new FakeTime();
  let storedAtSend: OutboxEntry | undefined;
  const ch = fakeChannel('tg');
  const send = ch.send.bind(ch);
  ch.send = async (msg, signal) => {
    storedAtSend = out(store, msg.id);
    return send(msg, signal);
  };
  const { ob, sent } = outbox(store, time, [ch]);
  await ob.start();
  await ob.enqueue([entry({ id: 'a1', to: 'chat7', tags: ['x'] })]);
  await time.advance(0);
  assert.equal(storedAtSend?.state, 'sending', 'marked sending (stored) before the platform is called');
  assert.equal(out(store, 'a1'), undefined);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]?.platformIds, ['p-a1']);
  assert.equal(sent[0]?.outcome, 'sent');
  assert.equal(sent[0]?.attempts, 1);
  assert.equal(sent[0]?.maybeDuplicate, undefined);
  const call = ch.platform.calls[0];
  assert.deepEqual(call, {
    id: 'a1',
    title: 'title a1',
    text: 'text of a1\nsecond line',
    priority: 'normal',
    to: 'chat7',
    tags: ['x'],
    retry: false,
  });
  assert.deepEqual(hist(store), sent);
  assert.equal(ob.health('tg').state, 'ok');
  assert.equal(ob.stats().channels.tg?.sent, 1);
  await ob.stop();
});

test('a crash mid-send: a new outbox over the same store sends again with retry, the platform keeps it once', async () => {
  const store = memStore();
  const platform: Platform = { calls: [], kept: new Map() };
  const t1 = new FakeTime();
  // the platform receives the message but the answer never comes back: the process "dies" here
  const first = outbox(store, t1, [fakeChannel('tg', ['hang'], { platform })]);
  await first.ob.start();
  await first.ob.enqueue([entry({ id: 'c1' }), entry({ id: 'c2' })]);
  await t1.advance(0);
  assert.equal(out(store, 'c1')?.state, 'sending');
  assert.equal(platform.kept.size, 1);
  // a new process over the same store (the old one is simply abandoned, as after a power cut)
  const t2 = new FakeTime();
  const second = outbox(memStore(store.map), t2, [fakeChannel('tg', [], { platform })]);
  const r = await second.ob.start();
  assert.equal(r.recovered, 1);
  await t2.advance(0);
  assert.deepEqual(
    platform.calls.map((m) => [m.id, m.retry]),
    [
      ['c1', false],
      ['c1', true],
      ['c2', false],
    ],
  );
  assert.deepEqual([...platform.kept.keys()], ['c1', 'c2'], 'kept once per id');
  const h = new Map(second.sent.map((e) => [e.id, e]));
  assert.equal(h.get('c1')?.maybeDuplicate, true);
  assert.equal(h.get('c2')?.maybeDuplicate, undefined);
  assert.equal(out(store, 'c1'), undefined);
  await second.ob.stop();
  await first.ob.stop(AbortSignal.abort());
});

test('stop() aborts a hanging send when its signal fires and leaves the entry to be resent', async () => {
  const store = memStore();
  const time = new FakeTime();
  const { ob } = outbox(store, time, [fakeChannel('tg', ['hang'])]);
  await ob.start();
  await ob.enqueue([entry({ id: 's1' })]);
  await time.advance(0);
  const ac = new AbortController();
  const stopped = ob.stop(ac.signal);
  ac.abort();
  await stopped;
  assert.equal(out(store, 's1')?.state, 'sending');
});

test('a rate limit holds the whole channel for retryAfterMs; other channels go on', async () => {
  const store = memStore();
  const time = new FakeTime();
  const tg = fakeChannel('tg', [new ChannelError('rate', 'slow down', { retryAfterMs: 5000, status: 429 })]);
  const mail = fakeChannel('mail');
  const { ob } = outbox(store, time, [tg, mail]);
  await ob.start();
  await ob.enqueue([entry({ id: 'r1' }), entry({ id: 'r2' }), entry({ id: 'm1', channel: 'mail' })]);
  await time.advance(0);
  assert.equal(tg.platform.calls.length, 1);
  assert.equal(mail.platform.calls.length, 1, 'the other channel is not held');
  assert.equal(ob.health('tg').waitUntil, T0 + 5000);
  assert.equal(ob.health('tg').state, 'degraded');
  assert.equal(out(store, 'r1')?.attempts, 1);
  assert.equal(out(store, 'r1')?.state, 'queued');
  await time.advance(4900);
  assert.equal(tg.platform.calls.length, 1, 'r2 waits too: the channel waits, not just the message');
  await time.advance(200);
  assert.deepEqual(
    tg.platform.calls.map((m) => [m.id, m.retry]),
    [
      ['r1', false],
      ['r1', true],
      ['r2', false],
    ],
  );
  assert.equal(ob.stats().channels.tg?.retries, 1);
  assert.equal(ob.health('tg').state, 'ok');
  await ob.stop();
});

test('refused credentials open the breaker as auth, keep the message and probe every authRetryMs', async () => {
  const store = memStore();
  const time = new FakeTime();
  const probes = { n: 0 };
  const tg = fakeChannel('tg', [new ChannelError('auth', 'bad token', { status: 401 })], {
    probe: [new ChannelError('auth', 'still bad', { status: 401 }), 'ok'],
    probes,
  });
  const { ob, sent, failed } = outbox(store, time, [tg], { authRetryMs: 60_000 });
  await ob.start();
  await ob.enqueue([entry({ id: 'a1' }), entry({ id: 'a2' })]);
  await time.advance(0);
  assert.equal(tg.platform.calls.length, 1);
  const h = ob.health('tg');
  assert.equal(h.state, 'auth');
  assert.equal(h.lastError, 'bad token');
  assert.equal(h.queued, 2);
  assert.equal(out(store, 'a1')?.state, 'queued', 'the message is kept');
  await time.advance(60_000);
  assert.equal(probes.n, 1);
  assert.equal(tg.platform.calls.length, 1, 'the probe failed: nothing sent');
  assert.equal(ob.health('tg').state, 'auth');
  await time.advance(60_000);
  assert.equal(probes.n, 2);
  assert.deepEqual(
    sent.map((e) => e.id),
    ['a1', 'a2'],
  );
  assert.equal(failed.length, 0);
  assert.equal(ob.health('tg').state, 'ok');
  await ob.stop();
});

test('a permanent refusal moves the entry into the history as failed; the next one goes on', async () => {
  const store = memStore();
  const time = new FakeTime();
  const tg = fakeChannel('tg', [new ChannelError('permanent', 'chat not found', { status: 400 })]);
  const { ob, sent, failed } = outbox(store, time, [tg]);
  await ob.start();
  await ob.enqueue([entry({ id: 'p1' }), entry({ id: 'p2' })]);
  await time.advance(0);
  assert.equal(failed.length, 1);
  assert.equal(failed[0]?.id, 'p1');
  assert.equal(failed[0]?.outcome, 'failed');
  assert.equal(failed[0]?.error, 'chat not found');
  assert.equal(out(store, 'p1'), undefined);
  assert.deepEqual(
    sent.map((e) => e.id),
    ['p2'],
  );
  assert.equal(ob.stats().channels.tg?.failed, 1);
  await ob.stop();
});

test('transient failures back off 1 s, 2 s, 4 s…; five in a row open the breaker; any error counts as transient', async () => {
  const store = memStore();
  const time = new FakeTime();
  const boom = (): ChannelError => new ChannelError('transient', 'HTTP 502', { status: 502 });
  const tg = fakeChannel('tg', [boom(), new Error('socket hang up'), boom(), boom(), boom()]);
  const { ob, sent } = outbox(store, time, [tg]);
  await ob.start();
  await ob.enqueue([entry({ id: 'b1' })]);
  await time.advance(0);
  const waits: number[] = [];
  for (let i = 1; i <= 4; i++) {
    const e = out(store, 'b1') as OutboxEntry;
    assert.equal(e.attempts, i);
    waits.push(e.nextAt - time.now);
    await time.advance(e.nextAt - time.now);
  }
  assert.deepEqual(waits, [1000, 2000, 4000, 8000], 'random 0.5 = no jitter');
  assert.equal(out(store, 'b1')?.lastError, 'HTTP 502');
  const h = ob.health('tg');
  assert.equal(h.state, 'open');
  assert.equal(h.consecutiveFailures, 5);
  assert.equal(h.waitUntil, time.now + 30_000);
  // the entry's own backoff (16 s) ends before the breaker's 30 s: still nothing is sent
  await time.advance(20_000);
  assert.equal(tg.platform.calls.length, 5);
  await time.advance(10_000);
  assert.equal(tg.platform.calls.length, 6, 'half-open: one send goes through');
  assert.equal(sent.length, 1);
  assert.equal(sent[0]?.attempts, 6);
  assert.equal(ob.health('tg').state, 'ok');
  assert.equal(ob.stats().channels.tg?.retries, 5);
  await ob.stop();
});

test('the jitter stays within ±20 % and the backoff stops growing at 5 min', async () => {
  for (const [rnd, factor] of [
    [0, 0.8],
    [0.999999, 1.2],
  ] as const) {
    const store = memStore();
    const time = new FakeTime();
    const fails = Array.from({ length: 12 }, () => new ChannelError('transient', 'down'));
    const { ob } = outbox(store, time, [fakeChannel('tg', fails)], { random: () => rnd, breakerThreshold: 100 });
    await ob.start();
    await ob.enqueue([entry({ id: 'j1' })]);
    await time.advance(0);
    let last = 0;
    for (let i = 1; i <= 11; i++) {
      const e = out(store, 'j1') as OutboxEntry;
      last = e.nextAt - time.now;
      if (i === 1) assert.equal(last, Math.round(1000 * factor));
      await time.advance(last);
    }
    assert.equal(last, Math.round(300_000 * factor));
    await ob.stop();
  }
});

test('held entries sharing a key are released as one digest, newest last; the rest of the held ones are not', async () => {
  const store = memStore();
  const time = new FakeTime();
  const tg = fakeChannel('tg');
  const { ob, sent } = outbox(store, time, [tg]);
  await ob.start();
  const held = (id: string, at: number, over: Partial<OutboxEntry> = {}): OutboxEntry =>
    entry({
      id,
      state: 'held',
      nextAt: T0 + 60_000,
      holdKey: 'tg|all|default',
      holdReason: 'digest',
      createdAt: at,
      ...over,
    });
  await ob.enqueue([
    held('h2', T0 + 2, { title: 'Disk', text: 'disk 91 %\nmore', priority: 'high', tags: ['disk'] }),
    held('h1', T0 + 1, { title: undefined, text: 'first one', tags: ['x'] }),
    held('h3', T0 + 3, { title: 'Fan', text: 'fan stopped', ackId: 'K3F9' }),
    held('other', T0, { holdKey: 'tg|ops|default' }),
    held('later', T0, { holdKey: 'tg|all|default', nextAt: T0 + 120_000 }),
  ]);
  await time.advance(59_000);
  assert.equal(tg.platform.calls.length, 0, 'held until nextAt');
  assert.equal(ob.stats().held, 5);
  await time.advance(1000);
  assert.equal(tg.platform.calls.length, 2);
  const digest = tg.platform.calls.find((m) => m.title?.startsWith('Digest'));
  assert.ok(digest);
  assert.equal(digest.title, 'Digest — 3 messages');
  assert.equal(digest.text, ['- first one', '- **Disk** — disk 91 %', '- **Fan** — fan stopped (ack K3F9)'].join('\n'));
  assert.equal(digest.priority, 'high');
  assert.deepEqual(digest.tags.sort(), ['disk', 'x']);
  assert.equal(tg.platform.calls.find((m) => m !== digest)?.id, 'other', 'a lone held entry goes as it is');
  const parts = hist(store).filter((h) => h.digest === digest.id);
  assert.deepEqual(parts.map((h) => h.id).sort(), ['h1', 'h2', 'h3']);
  assert.ok(parts.every((h) => h.outcome === 'sent'));
  assert.equal(out(store, 'later')?.state, 'held');
  assert.deepEqual(sent.map((h) => h.id).sort(), [digest.id, 'other'].sort());
  await ob.stop();
});

test('a long digest ends with "and N more"; quiet holds go one by one unless many share the key', async () => {
  const store = memStore();
  const time = new FakeTime();
  const tg = fakeChannel('tg');
  const { ob } = outbox(store, time, [tg], { digestMaxItems: 2, quietDigestMin: 3 });
  const held = (id: string, key: string, reason: 'digest' | 'quiet'): OutboxEntry =>
    entry({ id, state: 'held', nextAt: T0 + 1000, holdKey: key, holdReason: reason });
  await ob.enqueue([
    held('d1', 'k-digest', 'digest'),
    held('d2', 'k-digest', 'digest'),
    held('d3', 'k-digest', 'digest'),
    held('d4', 'k-digest', 'digest'),
    held('d5', 'k-digest', 'digest'),
    held('q1', 'k-quiet', 'quiet'),
    held('q2', 'k-quiet', 'quiet'),
    held('m1', 'k-many', 'quiet'),
    held('m2', 'k-many', 'quiet'),
    held('m3', 'k-many', 'quiet'),
  ]);
  await ob.start();
  const r = await ob.releaseDue(T0 + 1000);
  assert.deepEqual(r, { released: 10, digests: 2 });
  await time.advance(0);
  const titles = tg.platform.calls.map((m) => m.title ?? '');
  assert.equal(titles.filter((t) => t === 'Digest — 5 messages').length, 1);
  assert.equal(titles.filter((t) => t === 'Digest — 3 messages').length, 1);
  assert.deepEqual(
    tg.platform.calls
      .filter((m) => !m.title?.startsWith('Digest'))
      .map((m) => m.id)
      .sort(),
    ['q1', 'q2'],
  );
  const five = tg.platform.calls.find((m) => m.title === 'Digest — 5 messages');
  assert.equal(five?.text.split('\n').at(-1), '- … and 3 more');
  await ob.stop();
});

test('entries older than maxAgeMs go into the history as expired, never sent', async () => {
  const store = memStore();
  const time = new FakeTime();
  const tg = fakeChannel('tg');
  const { ob, expired, sent } = outbox(store, time, [tg], { maxAgeMs: 3600_000 });
  await ob.enqueue([
    entry({ id: 'old', createdAt: T0 - 3600_001 }),
    entry({ id: 'new', createdAt: T0 - 1000 }),
    entry({ id: 'ages', createdAt: T0, nextAt: T0 + 7200_000 }),
  ]);
  await ob.start();
  await time.advance(0);
  assert.deepEqual(
    expired.map((h) => h.id),
    ['old'],
  );
  assert.deepEqual(
    sent.map((h) => h.id),
    ['new'],
  );
  await time.advance(7200_000);
  assert.deepEqual(
    expired.map((h) => [h.id, h.outcome]),
    [
      ['old', 'expired'],
      ['ages', 'expired'],
    ],
  );
  assert.ok(!tg.platform.calls.some((m) => m.id === 'old' || m.id === 'ages'));
  assert.equal(ob.stats().channels.tg?.expired, 2);
  await ob.stop();
});

test('list pages the outbox and the history newest first', async () => {
  const store = memStore();
  const time = new FakeTime();
  const { ob } = outbox(store, time, [fakeChannel('tg')]);
  await ob.enqueue(['a', 'b', 'c'].map((id) => entry({ id, channel: 'nowhere' })));
  const p1 = await ob.list({ box: 'outbox', limit: 2 });
  assert.deepEqual(
    p1.items.map((e) => e.id),
    ['c', 'b'],
  );
  assert.equal(p1.next, 'b');
  const p2 = await ob.list({ box: 'outbox', limit: 2, before: p1.next });
  assert.deepEqual(
    p2.items.map((e) => e.id),
    ['a'],
  );
  assert.equal(p2.next, undefined);
  await ob.start();
  await ob.enqueue([entry({ id: 'x' })]);
  await time.advance(0);
  const h = await ob.list({ box: 'history' });
  assert.deepEqual(
    h.items.map((e) => e.id),
    ['x'],
  );
  assert.equal(ob.stats().channels.nowhere?.queued, 3, 'an unknown channel keeps its entries');
  await ob.stop();
});

test('10 000 entries enqueued at once are all sent, each exactly once, oldest first', async () => {
  const store = memStore();
  const time = new FakeTime();
  const tg = fakeChannel('tg');
  const { ob, sent } = outbox(store, time, [tg]);
  await ob.start();
  const ids: string[] = [];
  const entries: OutboxEntry[] = [];
  for (let i = 0; i < 10_000; i++) {
    const id = ob.newId();
    ids.push(id);
    entries.push(entry({ id }));
  }
  await ob.enqueue(entries);
  await waitFor(() => sent.length === 10_000, '10 000 sends', 120_000);
  await time.advance(0);
  assert.equal(tg.platform.calls.length, 10_000);
  assert.deepEqual(
    tg.platform.calls.map((m) => m.id),
    ids,
  );
  assert.equal([...store.map.keys()].filter((k) => k.startsWith('out/')).length, 0);
  assert.equal(ob.stats().queued, 0);
  await ob.stop();
});
