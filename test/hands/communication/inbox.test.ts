/**
 * The inbox over the in-memory store, fake timers and fake receiving channels (scripted batches, then a long poll that
 * ends only when aborted): journal before cursor and commit, no duplicates after a crash, unhandled entries handed
 * over again at start, sender classes, receive errors and their waits, webhooks, paging.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Channel,
  ChannelError,
  type InboundBatch,
  type InMessage,
} from '../../../hands/communication/channels/types.ts';
import { Inbox, type InboxOptions, classifySender, cursorKey, inKey } from '../../../hands/communication/inbox.ts';
import type { InboxEntry } from '../../../hands/communication/types.ts';
import { memStore, type MemStore } from '../../helpers/mem-store.ts';

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);

async function settle(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise((r) => setImmediate(r));
}

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

type Script = Array<InboundBatch | Error>;

/** a receiving channel: hands out the scripted batches (or errors) in turn, then waits until aborted */
function receiver(name: string, script: Script): Channel & { cursors: Array<string | undefined> } {
  const cursors: Array<string | undefined> = [];
  return {
    name,
    kind: 'fake',
    maxChars: 4000,
    dialect: 'plain',
    targets: [],
    cursors,
    async send() {
      return { platformIds: [] };
    },
    async receive(cursor, signal) {
      cursors.push(cursor);
      const next = script.shift();
      if (next instanceof Error) throw next;
      if (next) return next;
      return new Promise<InboundBatch>((_, reject) =>
        signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
      );
    },
  };
}

const msg = (platformId: string, from: string, over: Partial<InMessage> = {}): InMessage => ({
  platformId,
  from,
  fromBot: false,
  text: `hello ${platformId}`,
  at: T0 - 1000,
  ...over,
});

function inbox(
  store: MemStore,
  time: FakeTime,
  channels: Channel[],
  extra: Partial<InboxOptions> = {},
): { ib: Inbox; handed: InboxEntry[] } {
  const handed: InboxEntry[] = [];
  const ib = new Inbox({
    store,
    channels,
    clock: time.clock,
    timers: time.timers,
    allow: { tg: ['1001'], mail: ['boss@example.com', '*@ops.example.com'] },
    onMessage: (e) => {
      handed.push(e);
      return { command: 'status', ok: true, answer: 'all fine', at: time.now };
    },
    ...extra,
  });
  return { ib, handed };
}

test('classifySender: bots, exact addresses (any case) and *@domain globs', () => {
  const allow = ['boss@example.com', '*@ops.example.com', '1001'];
  assert.equal(classifySender({ from: '1001', fromBot: false }, allow), 'allowed');
  assert.equal(classifySender({ from: '1001', fromBot: true }, allow), 'bot');
  assert.equal(classifySender({ from: 'Boss@Example.com', fromBot: false }, allow), 'allowed');
  assert.equal(classifySender({ from: 'anna@ops.example.com', fromBot: false }, allow), 'allowed');
  assert.equal(classifySender({ from: 'anna@evilops.example.com', fromBot: false }, allow), 'unknown');
  assert.equal(classifySender({ from: 'anna@ops.example.com.evil', fromBot: false }, allow), 'unknown');
  assert.equal(classifySender({ from: '1002', fromBot: false }, allow), 'unknown');
  assert.equal(classifySender({ from: '1001', fromBot: false }, []), 'unknown');
});

test('a batch is journalled with its cursor before commit, then each new entry is handled and marked', async () => {
  const store = memStore();
  const time = new FakeTime();
  const seenAtCommit: Array<{ cursor: unknown; entries: number }> = [];
  const commit = async (): Promise<void> => {
    seenAtCommit.push({
      cursor: store.map.get(cursorKey('tg')),
      entries: [...store.map.keys()].filter((k) => k.startsWith('in/tg/')).length,
    });
  };
  const ch = receiver('tg', [
    {
      messages: [msg('u1', '1001'), msg('u2', '666'), msg('u3', '1001', { fromBot: true })],
      cursor: 'c3',
      commit,
    },
  ]);
  const { ib, handed } = inbox(store, time, [ch]);
  await ib.start();
  await settle();
  assert.deepEqual(seenAtCommit, [{ cursor: 'c3', entries: 3 }]);
  assert.deepEqual(
    handed.map((e) => [e.platformId, e.sender]),
    [
      ['u1', 'allowed'],
      ['u2', 'unknown'],
      ['u3', 'bot'],
    ],
  );
  assert.deepEqual(ch.cursors, [undefined, 'c3']);
  const stored = store.map.get(inKey('tg', 'u1')) as InboxEntry;
  assert.equal(stored.handled?.answer, 'all fine');
  assert.equal(stored.channel, 'tg');
  assert.equal(stored.receivedAt, T0);
  assert.match(stored.id, /^tg\/[0-9a-f]{24}$/);
  assert.equal([...store.map.keys()].filter((k) => k.startsWith('inwait/')).length, 0);
  assert.deepEqual(ib.stats().tg, {
    received: 3,
    duplicates: 0,
    allowed: 1,
    unknown: 1,
    bot: 1,
    handled: 3,
    errors: 0,
  });
  assert.equal(ib.health('tg')?.lastReceivedAt, T0);
  await ib.stop();
});

test('a crash after the journal but before the cursor moved: the same batch again adds nothing', async () => {
  const store = memStore();
  const time = new FakeTime();
  const batch = (): InboundBatch => ({ messages: [msg('u1', '1001'), msg('u2', '1001')], cursor: 'c2' });
  const first = inbox(store, time, [receiver('tg', [batch()])]);
  await first.ib.start();
  await settle();
  await first.ib.stop();
  assert.equal(first.handed.length, 2);
  // as if the cursor had not been stored: the platform hands out the batch again, plus one new message
  store.map.delete(cursorKey('tg'));
  const again = batch();
  again.messages.push(msg('u3', '1001'));
  again.cursor = 'c3';
  const ch = receiver('tg', [again]);
  const second = inbox(memStore(store.map), time, [ch]);
  await second.ib.start();
  await settle();
  assert.deepEqual(
    second.handed.map((e) => e.platformId),
    ['u3'],
  );
  assert.equal(second.ib.stats().tg?.duplicates, 2);
  assert.equal(store.map.get(cursorKey('tg')), 'c3');
  assert.equal([...store.map.keys()].filter((k) => k.startsWith('in/tg/')).length, 3);
  await second.ib.stop();
});

test('a crash after the cursor but before handling: the entry is handled at the next start, once', async () => {
  const store = memStore();
  const time = new FakeTime();
  const ch = receiver('tg', [{ messages: [msg('u1', '1001', { text: 'status' })], cursor: 'c1' }]);
  const stuck: InboxEntry[] = [];
  // the handler never returns: the process dies while handling
  const first = inbox(store, time, [ch], {
    onMessage: (e) => {
      stuck.push(e);
      return new Promise(() => undefined);
    },
  });
  await first.ib.start();
  await settle();
  assert.equal(stuck.length, 1);
  assert.equal(store.map.get(cursorKey('tg')), 'c1');
  assert.equal((store.map.get(inKey('tg', 'u1')) as InboxEntry).handled, undefined);
  const second = inbox(memStore(store.map), time, [receiver('tg', [])]);
  const r = await second.ib.start();
  assert.equal(r.resumed, 1);
  assert.deepEqual(
    second.handed.map((e) => e.text),
    ['status'],
  );
  assert.equal((store.map.get(inKey('tg', 'u1')) as InboxEntry).handled?.command, 'status');
  await second.ib.stop();
  const third = inbox(memStore(store.map), time, [receiver('tg', [])]);
  assert.equal((await third.ib.start()).resumed, 0);
  await third.ib.stop();
});

test('a handler that throws marks the entry handled with the error (not handed over forever)', async () => {
  const store = memStore();
  const time = new FakeTime();
  const { ib } = inbox(store, time, [receiver('tg', [{ messages: [msg('u1', '1001')], cursor: 'c1' }])], {
    onMessage: () => {
      throw new Error('boom');
    },
  });
  await ib.start();
  await settle();
  const e = store.map.get(inKey('tg', 'u1')) as InboxEntry;
  assert.deepEqual(e.handled, { command: 'error', ok: false, answer: 'boom', at: T0 });
  await ib.stop();
});

test('receive errors: auth waits authRetryMs, others back off 1 s doubling to 60 s; health says so', async () => {
  const store = memStore();
  const time = new FakeTime();
  const script: Script = [
    new ChannelError('auth', 'token revoked', { status: 401 }),
    new ChannelError('transient', 'HTTP 502'),
    new Error('ECONNRESET'),
    new ChannelError('transient', 'HTTP 503'),
    { messages: [msg('u1', '1001')], cursor: 'c1' },
  ];
  const ch = receiver('tg', script);
  const { ib, handed } = inbox(store, time, [ch], { authRetryMs: 120_000 });
  await ib.start();
  await settle();
  assert.equal(ch.cursors.length, 1);
  let h = ib.health('tg');
  assert.equal(h?.state, 'auth');
  assert.equal(h?.lastError, 'token revoked');
  assert.equal(h?.waitUntil, T0 + 120_000);
  await time.advance(119_999);
  assert.equal(ch.cursors.length, 1, 'waits the whole authRetryMs');
  await time.advance(1);
  assert.equal(ch.cursors.length, 2);
  h = ib.health('tg');
  assert.equal(h?.state, 'degraded');
  assert.equal(h?.consecutiveFailures, 2);
  assert.equal(h?.waitUntil, time.now + 2000);
  await time.advance(2000);
  assert.equal(ch.cursors.length, 3);
  assert.equal(ib.health('tg')?.waitUntil, time.now + 4000);
  await time.advance(4000);
  assert.equal(ch.cursors.length, 4);
  assert.equal(ib.health('tg')?.waitUntil, time.now + 8000);
  await time.advance(8000);
  assert.equal(handed.length, 1);
  h = ib.health('tg');
  assert.equal(h?.state, 'ok');
  assert.equal(h?.consecutiveFailures, 0);
  assert.equal(ib.stats().tg?.errors, 4);
  await ib.stop();
});

test('the backoff stops at 60 s', async () => {
  const time = new FakeTime();
  const ch = receiver(
    'tg',
    Array.from({ length: 9 }, () => new ChannelError('transient', 'down')),
  );
  const { ib } = inbox(memStore(), time, [ch]);
  await ib.start();
  await settle();
  const waits: number[] = [];
  for (let i = 0; i < 8; i++) {
    const w = (ib.health('tg')?.waitUntil as number) - time.now;
    waits.push(w);
    await time.advance(w);
  }
  assert.deepEqual(waits, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
  await ib.stop();
});

test('push() journals webhook messages on the same path; a repeated delivery is dropped', async () => {
  const store = memStore();
  const time = new FakeTime();
  const { ib, handed } = inbox(store, time, []);
  await ib.start();
  const a = await ib.push('mail', [msg('<m1@x>', 'anna@ops.example.com'), msg('<m2@x>', 'eve@evil.example')]);
  assert.deepEqual(
    a.map((e) => e.sender),
    ['allowed', 'unknown'],
  );
  const b = await ib.push('mail', [msg('<m1@x>', 'anna@ops.example.com')]);
  assert.deepEqual(b, []);
  assert.equal(handed.length, 2);
  assert.equal(store.map.get(cursorKey('mail')), undefined, 'a push moves no cursor');
  await ib.stop();
});

test('list() pages the entries newest first', async () => {
  const store = memStore();
  const time = new FakeTime();
  const { ib } = inbox(store, time, []);
  await ib.start();
  for (const id of ['a', 'b', 'c']) {
    await ib.push('tg', [msg(id, '1001')]);
    time.now += 1000;
  }
  const p1 = await ib.list({ limit: 2 });
  assert.deepEqual(
    p1.items.map((e) => e.platformId),
    ['c', 'b'],
  );
  assert.ok(p1.next);
  const p2 = await ib.list({ limit: 2, before: p1.next });
  assert.deepEqual(
    p2.items.map((e) => e.platformId),
    ['a'],
  );
  assert.equal(p2.next, undefined);
  await ib.stop();
});

test('a channel that answers at once with nothing is not spun on: it waits idleMs', async () => {
  const time = new FakeTime();
  const ch = receiver('tg', [
    { messages: [], cursor: undefined },
    { messages: [], cursor: 'c0' },
    { messages: [msg('u1', '1001')], cursor: 'c1' },
  ]);
  const { ib, handed } = inbox(memStore(), time, [ch], { idleMs: 1000 });
  await ib.start();
  await settle();
  assert.equal(ch.cursors.length, 1);
  await time.advance(1000);
  // the cursor moved: no wait after that batch
  assert.deepEqual(ch.cursors, [undefined, undefined, 'c0', 'c1']);
  assert.equal(handed.length, 1);
  await ib.stop();
});
