/**
 * The Communication Hand's wiring (hands/communication/index.ts) in process, its channel the device's own bus
 * (`mqtt://local/…`) on a fake context: alerts from the Monitoring Hand and approval requests become messages, an
 * `approve` reply is relayed to the kernel, a resolved alert stops its escalation, repeats become one summary, a
 * channel whose URL is wrong is named and the others run, and a restart sends what was queued.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommunicationHand } from '../../../hands/communication/index.ts';
import { fakeCtx, type FakeCtx } from '../scheduling/fake-ctx.ts';

const OUT = 'ops/out';

function sent(f: FakeCtx): Array<{ id: string; title: string | null; text: string; priority: string }> {
  return f.published.filter((p) => p.topic === OUT).map((p) => p.payload as never);
}

async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${what}: not within 2 s`);
}

function hand(
  settings: Record<string, unknown> = {},
  f = fakeCtx({ name: 'comms' }),
): { f: FakeCtx; h: CommunicationHand } {
  (f.ctx as { settings: unknown }).settings = {
    channels: { ops: { url: `mqtt://local/${OUT}`, allow: ['ada'] }, bad: 'carrier-pigeon://coop/1' },
    rules: [
      {
        name: 'pages',
        match: { priority: 'high+' },
        to: ['ops'],
        escalate: { steps: [{ to: ['ops'], afterMin: 60 }] },
      },
    ],
    default: ['ops'],
    escalation: { scheduler: null },
    dedupWindowMs: 50,
    ...settings,
  };
  return { f, h: new CommunicationHand(f.ctx) };
}

test('a channel whose URL is wrong is named, the others run', async () => {
  const { f, h } = hand();
  await h.start();
  try {
    const bad = h.channelsView().find((c) => c.name === 'bad')!;
    assert.equal(bad.health, 'error');
    assert.match(bad.error!, /"carrier-pigeon:\/\/" is not a channel kind Talon knows/);
    assert.ok(f.audits.some((a) => a.action === 'channel.error' && a.subject === 'bad'));
    await h.notify({ text: 'hello' }, 'test');
    await until('sent', () => sent(f).find((m) => m.text === 'hello'));
  } finally {
    await h.stop();
    f.close();
  }
});

test('an alert pages with its fix; resolving it stops the escalation and says so', async () => {
  const { f, h } = hand();
  await h.start();
  try {
    const alert = {
      id: 'a1',
      sensor: 'tank.level',
      rule: 'below',
      severity: 'critical',
      state: 'firing',
      value: 3,
      message: 'tank.level 3 is below 10',
      suggestedFix: 'Check the inlet valve.',
      since: 1,
      ts: 2,
    };
    f.deliver('alerts/critical', alert);
    const page = await until('the page', () => sent(f).find((m) => m.text.includes('below 10')));
    assert.match(page.title ?? '', /^CRITICAL: tank\.level below/);
    assert.match(page.text, /Check the inlet valve\./);
    assert.match(page.text, /Reply `ack [0-9A-Z]{4,6}` to acknowledge\./);
    assert.equal(page.priority, 'critical');
    assert.equal(h.escalations.open, 1);
    f.deliver('alerts/critical', { ...alert, state: 'resolved', ts: 3 });
    await until('resolved', () => sent(f).find((m) => (m.title ?? '').startsWith('Resolved')));
    await until('the escalation ended', () => h.escalations.open === 0);
  } finally {
    await h.stop();
    f.close();
  }
});

test('an approval request goes out; `approve <id>` from an allowed sender is relayed, from others refused', async () => {
  const { f, h } = hand();
  const decided: unknown[][] = [];
  f.ctx.call = (async (method: string, ...args: unknown[]) => {
    if (method !== 'approvals.decide') throw new Error(`no ${method}`);
    decided.push(args);
    return { id: args[0], state: 'approved' };
  }) as never;
  await h.start();
  try {
    f.deliver('approvals/ap1', { id: 'ap1', state: 'pending', tool: 'shell.exec', actor: 'hand:gardener' });
    const ask = await until('the request', () => sent(f).find((m) => m.text.includes('approve ap1')));
    assert.match(ask.text, /hand:gardener asks to run \*\*shell\.exec\*\*/);
    f.deliver(`${OUT}/in`, { from: 'mallory', text: 'approve ap1' });
    await until('the refusal audited', () => f.audits.find((a) => a.action === 'message.refused'));
    assert.equal(decided.length, 0, 'an unknown sender decides nothing');
    f.deliver(`${OUT}/in`, { from: 'ada', text: 'approve ap1 looks fine' });
    await until('relayed', () => decided.length === 1);
    assert.deepEqual(decided[0], ['ap1', 'approve', 'ops:ada', 'looks fine']);
    await until('the answer', () => sent(f).find((m) => m.text === 'Approved ap1.'));
  } finally {
    await h.stop();
    f.close();
  }
});

test('the same message five times is one message, then one summary with the count', async () => {
  const { f, h } = hand();
  await h.start();
  try {
    const r = [];
    for (let i = 0; i < 5; i++) r.push(await h.notify({ text: 'disk 91% full', priority: 'normal' }, 'test'));
    assert.deepEqual(
      r.map((x) => x.decisions[0]!.kind),
      ['send', 'drop', 'drop', 'drop', 'drop'],
    );
    await new Promise((res) => setTimeout(res, 80));
    await h.tick();
    const summary = await until('the summary', () => sent(f).find((m) => /repeated 4 more times/.test(m.title ?? '')));
    assert.match(summary.text, /disk 91% full/);
    assert.equal(sent(f).filter((m) => m.text === 'disk 91% full').length, 1);
    assert.equal(h.stats().deduped, 4);
  } finally {
    await h.stop();
    f.close();
  }
});

test('what was queued when the Hand stopped goes out after the next start', async () => {
  const first = hand();
  // the bus refuses publishes: the message stays in the outbox, retried
  const publish = first.f.ctx.bus.publish;
  first.f.ctx.bus.publish = () => {
    throw Object.assign(new Error('the broker is down'), { code: 'BUS_DOWN' });
  };
  await first.h.start();
  await first.h.notify({ text: 'kept across a restart' }, 'test');
  await until('queued', () => first.h.outbox.stats().queued === 1 || undefined);
  await first.h.stop();
  first.f.ctx.bus.publish = publish;
  const store = first.f.ctx.store;
  const f2 = fakeCtx({ name: 'comms' });
  (f2.ctx as { store: unknown }).store = store;
  const second = hand({}, f2);
  await second.h.start();
  try {
    await until('sent after the restart', () => sent(f2).find((m) => m.text === 'kept across a restart'));
  } finally {
    await second.h.stop();
    f2.close();
    first.f.close();
  }
});

test('retention: history, inbox and ended escalations past it are deleted; the outbox is not', async () => {
  const { f, h } = hand({ channels: { ops: { url: `mqtt://local/${OUT}`, allow: ['ada'] } } });
  await h.start();
  try {
    await h.notify({ text: 'old news' }, 'test');
    await until('sent', () => sent(f).find((m) => m.text === 'old news'));
    f.deliver(`${OUT}/in`, { from: 'ada', text: 'status' });
    await until('answered', () => sent(f).find((m) => m.text.includes('outbox:')));
    const ack = await h.notify({ text: 'ack me', needsAck: true }, 'test');
    await h.ack({ id: ack.ackId!, by: 'ada' });
    const count = async (box: 'history' | 'inbox') =>
      (box === 'inbox' ? await h.inbox.list({}) : await h.outbox.list({ box: 'history' })).items.length;
    await until('in the history', async () => (await count('history')) >= 3);
    assert.ok((await count('inbox')) >= 1);
    assert.equal(await h.prune(Date.now() - 3600_000), 0, 'nothing is an hour old');
    const n = await h.prune(Date.now() + 1);
    assert.ok(n >= 5, `pruned ${n}`);
    assert.equal(await count('history'), 0);
    assert.equal(await count('inbox'), 0);
    assert.deepEqual(await h.escalations.list({ open: false }), []);
    assert.deepEqual(
      [...(f.ctx.store as unknown as { map: Map<string, unknown> }).map.keys()].filter((k) => k.startsWith('in/')),
      [],
      'the journal entries went with their log lines',
    );
  } finally {
    await h.stop();
    f.close();
  }
});

test("free text goes to the chosen Hand's chat (hands.chat) and its answer back; a muddled freeText is named", async () => {
  const { f, h } = hand({ commands: { freeText: { hand: 'monitoring' } } });
  f.tools['hands.chat'] = (input) => ({
    answer: `monitoring: the tank is at 40 % (you asked "${String(input.text)}")`,
  });
  await h.start();
  try {
    f.deliver(`${OUT}/in`, { from: 'ada', text: 'how is the tank?' });
    await until('the answer', () => sent(f).find((m) => m.text.startsWith('monitoring: the tank is at 40 %')));
    assert.deepEqual(f.toolCalls.at(-1), {
      name: 'hands.chat',
      input: { name: 'monitoring', text: 'how is the tank?' },
    });
  } finally {
    await h.stop();
    f.close();
  }
  const bad = hand({ commands: { freeText: { hand: 'monitoring', tools: ['web.read'] } } });
  await bad.h.start();
  try {
    assert.ok(bad.f.logs.some(([lvl, m]) => lvl === 'warn' && /commands\.freeText: name either a Hand/.test(m)));
  } finally {
    await bad.h.stop();
    bad.f.close();
  }
});

test('a notify task from another Hand is checked as the API checks it: a bad one is refused by field, a good one sent', async () => {
  const { f, h } = hand();
  await h.start();
  try {
    const reply = (id: string) =>
      until(
        `the reply to ${id}`,
        () =>
          f.published.find((p) => p.topic === 'hands/asker/replies' && (p.payload as { id: string }).id === id)
            ?.payload as { ok: boolean; error?: { code: string; message: string } } | undefined,
      );
    f.deliver('hands/comms/tasks', {
      id: 't1',
      replyTo: 'hands/asker/replies',
      task: { op: 'notify', text: 'x', priority: 'urgent' },
    });
    const bad = await reply('t1');
    assert.equal(bad.ok, false);
    assert.equal(bad.error?.code, 'BAD_REQUEST');
    assert.match(bad.error!.message, /priority: "urgent" is not one of low, normal, high, critical/);
    f.deliver('hands/comms/tasks', {
      id: 't2',
      replyTo: 'hands/asker/replies',
      task: { op: 'notify', text: 'from a task', from: 'research' },
    });
    assert.equal((await reply('t2')).ok, true);
    await until('sent', () => sent(f).find((m) => m.text === 'from a task'));
  } finally {
    await h.stop();
    f.close();
  }
});

test("the router's state is written when it changes, not on every idle tick", async () => {
  const { f, h } = hand();
  const writes: string[] = [];
  const put = f.ctx.store.put.bind(f.ctx.store);
  f.ctx.store.put = async (k, v, o) => {
    if (k === 'router/snapshot') writes.push(k);
    return put(k, v, o);
  };
  await h.start();
  try {
    await h.tick();
    const idle = writes.length;
    await h.tick();
    await h.tick();
    assert.equal(writes.length, idle, 'idle ticks write nothing');
    await h.notify({ text: 'a new dedup group' }, 'test');
    await h.tick();
    assert.equal(writes.length, idle + 1, 'a change is written once');
  } finally {
    await h.stop();
    f.close();
  }
});
