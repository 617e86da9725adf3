/**
 * The discord channel against a local Discord (test/fixtures/platforms/discord.ts): the contract, then what is
 * Discord's own: enforced nonces (a retry does not post twice), per-route buckets (the channel waits instead of taking
 * a 429), the REST catch-up from a stored cursor after downtime, gateway RESUME, bots as fromBot, 403/404.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { discord, discordNonce } from '../../../../hands/communication/channels/discord.ts';
import type { Channel, InMessage } from '../../../../hands/communication/channels/types.ts';
import { ChannelConfigError, ChannelError } from '../../../../hands/communication/channels/types.ts';
import { parseChannelUrl } from '../../../../hands/communication/channels/url.ts';
import { type DiscordFake, startDiscordFake } from '../../../fixtures/platforms/discord.ts';
import { channelContract, makeChannel } from './contract.ts';

channelContract(discord, () => startDiscordFake({ gatewayInUrl: false }));

let n = 0;
const msg = (text: string, over: Record<string, unknown> = {}) => ({
  id: `d-${++n}-${Date.now()}`,
  text,
  priority: 'normal' as const,
  tags: [],
  ...over,
});

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ChannelError, `not a ChannelError: ${String(err)}`);
    return err.kind;
  }
  return 'resolved';
}

/** receives (from `cursor` on) until a message's text is `last`; everything received, and the cursor after it */
async function receiveUntil(ch: Channel, cursor: string | undefined, last: string, ms = 15_000) {
  const got: InMessage[] = [];
  const deadline = Date.now() + ms;
  while (!got.some((m) => m.text === last)) {
    const left = deadline - Date.now();
    assert.ok(left > 0, `"${last}" did not arrive; got ${JSON.stringify(got.map((m) => m.text))}`);
    const b = await ch.receive!(cursor, AbortSignal.timeout(left));
    got.push(...b.messages);
    cursor = b.cursor;
    await b.commit?.();
  }
  return { got, cursor };
}

/** a first receive that only brings the gateway up (a message written before that, without a cursor, is not seen) */
async function connect(ch: Channel): Promise<string | undefined> {
  const b = await ch.receive!(undefined, AbortSignal.timeout(1500)).catch(() => undefined);
  return b?.cursor;
}

describe('discord: sending', () => {
  let fake: DiscordFake;
  let ch: Channel;
  before(async () => {
    fake = await startDiscordFake({ bucketLimit: 2, bucketWindowMs: 1200 });
    ch = await makeChannel(discord, fake);
  });
  after(async () => {
    await ch.close?.();
    await fake.close();
  });

  it('a retry of the same outbox message is deduplicated by its nonce; another message is not', async () => {
    const m = msg('exactly once');
    const before = (await fake.sent()).length;
    const first = await ch.send(m, AbortSignal.timeout(10_000));
    const again = await ch.send({ ...m, retry: true }, AbortSignal.timeout(10_000));
    assert.deepEqual(again.platformIds, first.platformIds);
    await ch.send(msg('exactly once'), AbortSignal.timeout(10_000));
    const texts = (await fake.sent()).slice(before).map((s) => s.text);
    assert.deepEqual(
      texts,
      ['exactly once', 'exactly once'],
      'the retry posted again (or the other message was dropped)',
    );
    assert.ok(discordNonce(m.id, fake.channelId, 12).length <= 25);
  });

  it('an exhausted bucket makes the channel wait for its reset instead of taking a 429', async () => {
    const before = (await fake.sent()).length;
    // two per 1.2 s on this route: sequential sends, then three at once
    for (let i = 0; i < 3; i++) await ch.send(msg(`bucket ${i}`), AbortSignal.timeout(20_000));
    await Promise.all([3, 4, 5].map((i) => ch.send(msg(`bucket ${i}`), AbortSignal.timeout(20_000))));
    const sent = (await fake.sent()).slice(before).map((s) => s.text);
    assert.equal(sent.length, 6);
    for (let i = 0; i < 6; i++) assert.ok(sent.includes(`bucket ${i}`), `bucket ${i} was not stored`);
    assert.equal(fake.served429(), 0, 'the channel overran its bucket');
  });

  it('403 (missing access) and 404 (unknown channel) are permanent, 401 is auth', async () => {
    assert.equal(
      await kindOf(ch.send(msg('x', { to: '100000000000000403' }), AbortSignal.timeout(10_000))),
      'permanent',
    );
    assert.equal(
      await kindOf(ch.send(msg('x', { to: '100000000000000404' }), AbortSignal.timeout(10_000))),
      'permanent',
    );
    const bad = await makeChannel(discord, { url: fake.url, secrets: { discord_token: 'MTA.wrong.token' } });
    assert.equal(await kindOf(bad.send(msg('x'), AbortSignal.timeout(10_000))), 'auth');
    assert.equal(await kindOf(bad.probe!(AbortSignal.timeout(10_000))), 'auth');
    await ch.probe!(AbortSignal.timeout(10_000));
  });
});

describe('discord: receiving', () => {
  let fake: DiscordFake;
  before(async () => {
    fake = await startDiscordFake({ heartbeatMs: 300 });
  });
  after(async () => {
    await fake.close();
  });

  it('after downtime, the stored cursor catches up over REST ?after=: every message once, oldest first', async () => {
    const a = await makeChannel(discord, fake);
    const c0 = await connect(a);
    await fake.inject('before the downtime');
    const first = await receiveUntil(a, c0, 'before the downtime');
    await a.close!();
    // no channel object exists while these are written (more than one page of 100)
    const missed = Array.from({ length: 130 }, (_, i) => `missed ${i}`);
    for (const t of missed) await fake.inject(t);
    const b = await makeChannel(discord, fake);
    try {
      const caught = await receiveUntil(b, first.cursor, 'missed 129');
      const texts = caught.got.filter((m) => !m.fromBot).map((m) => m.text);
      assert.deepEqual(texts, missed, 'not every missed message, once, in order');
      assert.ok(
        fake.requests.some((r) => r.method === 'GET' && r.path === `/channels/${fake.channelId}/messages`),
        'no REST catch-up',
      );
      await fake.inject('after the catch-up');
      const next = await receiveUntil(b, caught.cursor, 'after the catch-up');
      assert.deepEqual(
        next.got.map((m) => m.text),
        ['after the catch-up'],
      );
      assert.deepEqual(Object.keys(JSON.parse(next.cursor!)), [fake.channelId]);
    } finally {
      await b.close!();
    }
  });

  it('a gateway message at or before the given cursor is dropped (journalled before a restart)', async () => {
    const a = await makeChannel(discord, fake);
    const b = await makeChannel(discord, fake);
    try {
      const ca = await connect(a);
      await connect(b);
      await fake.inject('journalled by the other');
      // `a` hands it out; `b`, as a channel started after that, gets a's cursor with the message still queued
      const { cursor } = await receiveUntil(a, ca, 'journalled by the other');
      const again = await b.receive!(cursor, AbortSignal.timeout(1500)).catch(() => ({ messages: [] as InMessage[] }));
      assert.deepEqual(
        again.messages.map((m) => m.text),
        [],
      );
      await fake.inject('new for b');
      const next = await receiveUntil(b, cursor, 'new for b');
      assert.deepEqual(
        next.got.map((m) => m.text),
        ['new for b'],
      );
    } finally {
      await a.close!();
      await b.close!();
    }
  });

  it('a dropped gateway connection RESUMEs and gets what was written meanwhile, once', async () => {
    const ch = await makeChannel(discord, fake);
    try {
      const c0 = await connect(ch);
      await fake.inject('first');
      const r1 = await receiveUntil(ch, c0, 'first');
      const resumes = fake.gatewayStats().resume;
      fake.dropGateway();
      await fake.inject('while dropped');
      const r2 = await receiveUntil(ch, r1.cursor, 'while dropped');
      assert.deepEqual(
        r2.got.map((m) => m.text),
        ['while dropped'],
      );
      assert.ok(fake.gatewayStats().resume > resumes, 'the channel did not RESUME');
      assert.ok(fake.gatewayStats().heartbeats > 0, 'no heartbeat was sent');
    } finally {
      await ch.close!();
    }
  });

  it("other bots' and its own messages are fromBot, a person's is not; platformId is the message id", async () => {
    const ch = await makeChannel(discord, fake);
    try {
      const c0 = await connect(ch);
      await fake.injectBot('a bot speaks');
      await ch.send(msg('the bot itself'), AbortSignal.timeout(10_000));
      await fake.inject('a person speaks', '300000000000000042');
      const { got } = await receiveUntil(ch, c0, 'a person speaks');
      const by = (t: string) => got.find((m) => m.text === t);
      assert.equal(by('a bot speaks')?.fromBot, true);
      assert.equal(by('the bot itself')?.fromBot, true);
      assert.equal(by('a person speaks')?.fromBot, false);
      assert.equal(by('a person speaks')?.from, '300000000000000042');
      assert.match(by('a person speaks')!.platformId, /^\d+$/);
    } finally {
      await ch.close!();
    }
  });

  it('a refused token on the gateway (4004) is an auth error', async () => {
    const bad = await makeChannel(discord, { url: fake.url, secrets: { discord_token: 'MTA.wrong.token' } });
    try {
      assert.equal(await kindOf(bad.receive!(undefined, AbortSignal.timeout(10_000))), 'auth');
    } finally {
      await bad.close!();
    }
  });
});

describe('discord: URLs', () => {
  const env = { fetch, log: console, now: Date.now, self: 't' } as never;
  it('needs channel ids that are snowflakes, and raw sockets', async () => {
    await assert.rejects(
      (async () =>
        discord.create(await parseChannelUrl('discord://{secret:t}/general', async () => 'tok'), env, 'd'))(),
      ChannelConfigError,
    );
    const ch = discord.create(await parseChannelUrl('discord://{secret:t}/123/456', async () => 'Tok.En'), env, 'd');
    assert.deepEqual(ch.targets, ['123', '456']);
    assert.equal(discord.raw, true);
  });
});
