/**
 * The contract every channel keeps, run by each channel's own test file against its platform's fake (or real server):
 *
 *   channelContract('telegram', async () => ({ ...fake }))
 *
 * The fake says how to make the platform fail once in each way; the suite checks what the channel does about it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { HandContext, HandLog } from '../../../../hands/sdk/types.ts';
import type {
  Channel,
  ChannelEnv,
  ChannelErrorKind,
  ChannelKind,
  InMessage,
} from '../../../../hands/communication/channels/types.ts';
import { ChannelError } from '../../../../hands/communication/channels/types.ts';
import { parseChannelUrl } from '../../../../hands/communication/channels/url.ts';

export interface PlatformFake {
  /** the channel URL that reaches this fake (secrets as {secret:name} references, resolved from `secrets`) */
  url: string;
  secrets: Record<string, string>;
  /** the next send fails once: credentials refused, rate limited (with a wait of retryAfterMs), a server error, garbage */
  failNext(kind: 'auth' | 'rate' | 'server' | 'garbage', retryAfterMs?: number): void;
  /** the texts the platform accepted so far, per part, in order (as the platform stores them, markup included) */
  sent(): Promise<Array<{ to: string; text: string }>>;
  /** inbound kinds: a person writes `text` to the bot (from an address the channel sees as `from`) */
  inject?(text: string, from?: string): Promise<void>;
  /**
   * a receive without a cursor answers at once with a cursor at the end (IMAP: the mailbox's last UID), so what is
   * injected before the first cursor is never read: the contract waits for that cursor instead of 3 s at most
   */
  startsAtEnd?: boolean;
  close(): Promise<void>;
}

/** a ChannelEnv for tests: the real fetch (no kernel grant in between), a log kept in memory */
export function testEnv(over: Partial<ChannelEnv> = {}): ChannelEnv & { logs: string[] } {
  const logs: string[] = [];
  const log = ((level: string, msg: string) => logs.push(`${level} ${msg}`)) as unknown as HandLog;
  for (const l of ['debug', 'info', 'warn', 'error'] as const)
    (log as unknown as Record<string, unknown>)[l] = (m: string) => logs.push(`${l} ${m}`);
  return {
    fetch: ((input: string | URL | { url: string }, init?: RequestInit) =>
      fetch(
        typeof input === 'object' && 'url' in input && !(input instanceof URL) ? input.url : input,
        init,
      )) as HandContext['fetch'],
    bus: {
      publish() {
        throw new Error('no bus in this test');
      },
      async subscribe() {
        throw new Error('no bus in this test');
      },
    },
    log,
    now: () => Date.now(),
    self: 'comms',
    logs,
    ...over,
  };
}

export async function makeChannel(
  kind: ChannelKind,
  fake: Pick<PlatformFake, 'url' | 'secrets'>,
  env = testEnv(),
): Promise<Channel> {
  const u = await parseChannelUrl(fake.url, async (n) => fake.secrets[n]);
  return kind.create(u, env, `${kind.kind}-test`);
}

async function failsWith(p: Promise<unknown>, kind: ChannelErrorKind): Promise<ChannelError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ChannelError, `expected a ChannelError, got ${String(err)}`);
    assert.equal(err.kind, kind, `expected kind ${kind}, got ${err.kind}: ${err.message}`);
    return err;
  }
  assert.fail(`expected the send to fail with ${kind}`);
}

let seq = 0;
const msg = (text: string) => ({ id: `m${++seq}-${Date.now()}`, text, priority: 'normal' as const, tags: [] });

/** the suite; `start` brings up a fresh fake for the whole describe block */
export function channelContract(kind: ChannelKind, start: () => Promise<PlatformFake>): void {
  describe(`channel contract: ${kind.kind}`, () => {
    let fake: PlatformFake;
    let ch: Channel;
    const ac = new AbortController();
    before(async () => {
      fake = await start();
      ch = await makeChannel(kind, fake);
    });
    after(async () => {
      ac.abort();
      await ch?.close?.();
      await fake?.close();
    });

    it('sends a message the platform stores, with its text', async () => {
      const before = (await fake.sent()).length;
      const r = await ch.send(msg('hello from the contract'), ac.signal);
      assert.equal(r.platformIds.length, 1);
      const sent = (await fake.sent()).slice(before);
      assert.equal(sent.length, 1);
      assert.match(sent[0]!.text, /hello from the contract/);
    });

    it('splits a message over maxChars into parts the platform takes, losing no word', async () => {
      const before = (await fake.sent()).length;
      const words = Array.from(
        { length: Math.ceil((ch.maxChars * 2.5) / 8) },
        (_, i) => `w${String(i).padStart(6, '0')}`,
      );
      const r = await ch.send(msg(words.join(' ')), ac.signal);
      const sent = (await fake.sent()).slice(before);
      assert.ok(sent.length >= 3, `expected 3 or more parts, got ${sent.length}`);
      assert.equal(r.platformIds.length, sent.length);
      for (const p of sent) assert.ok(p.text.length <= ch.maxChars, `a part of ${p.text.length} > ${ch.maxChars}`);
      const got = sent.map((p) => p.text).join(' ');
      for (const w of [words[0]!, words[Math.floor(words.length / 2)]!, words.at(-1)!])
        assert.ok(got.includes(w), `${w} lost`);
    });

    it('a refused credential is an auth error', async () => {
      fake.failNext('auth');
      await failsWith(ch.send(msg('auth'), ac.signal), 'auth');
    });

    it("a 429 is a rate error carrying the platform's wait", async () => {
      fake.failNext('rate', 3000);
      const e = await failsWith(ch.send(msg('rate'), ac.signal), 'rate');
      assert.ok(
        e.retryAfterMs !== undefined && e.retryAfterMs >= 2000 && e.retryAfterMs <= 4000,
        `retryAfterMs ${e.retryAfterMs}`,
      );
    });

    it('a server error is transient', async () => {
      fake.failNext('server');
      await failsWith(ch.send(msg('server'), ac.signal), 'transient');
    });

    it('a garbage answer is transient, not a crash', async () => {
      fake.failNext('garbage');
      await failsWith(ch.send(msg('garbage'), ac.signal), 'transient');
    });

    it('sends again after each failure', async () => {
      const r = await ch.send(msg('after the failures'), ac.signal);
      assert.equal(r.platformIds.length, 1);
    });

    if (kind.direction === 'both')
      it('receives what a person writes, with a cursor that moves past it', async () => {
        assert.ok(fake.inject, 'an in-and-out kind needs inject() on its fake');
        assert.ok(ch.receive, 'an in-and-out kind has receive()');
        let cursor: string | undefined;
        // drain whatever is there (the channel's own sends may echo back as fromBot); a long poll is cut at 3 s, but a
        // kind that starts at the end gets its first cursor however long connecting takes (a loaded machine)
        const drained = AbortSignal.timeout(fake.startsAtEnd ? 20_000 : 3000);
        const first = await ch.receive(cursor, AbortSignal.any([ac.signal, drained])).catch(() => undefined);
        if (first) {
          cursor = first.cursor;
          await first.commit?.();
        }
        if (fake.startsAtEnd) assert.ok(cursor !== undefined, 'a kind that starts at the end answered no first cursor');
        await fake.inject('status please');
        const got: InMessage[] = [];
        const deadline = Date.now() + 20_000;
        while (!got.some((m) => m.text.includes('status please')) && Date.now() < deadline) {
          const b = await ch.receive(cursor, AbortSignal.any([ac.signal, AbortSignal.timeout(20_000)]));
          got.push(...b.messages);
          cursor = b.cursor;
          await b.commit?.();
        }
        const m = got.find((x) => x.text.includes('status please'));
        assert.ok(m, `the message did not arrive; got ${JSON.stringify(got)}`);
        assert.equal(m.fromBot, false);
        assert.ok(m.platformId !== '');
        // the same cursor again brings nothing already seen (a long poll may wait: bounded)
        const again = await ch
          .receive(cursor, AbortSignal.any([ac.signal, AbortSignal.timeout(2500)]))
          .catch(() => ({ messages: [] as InMessage[] }));
        assert.ok(
          !again.messages.some((x) => x.platformId === m.platformId),
          'the cursor did not move past the message',
        );
      });
  });
}
