/**
 * The slack channel against a local Slack (test/fixtures/platforms/slack.ts): the contract, then what is Slack's own:
 * `{ok: false}` refusals, Socket Mode acks only on commit (redelivery keeps the platformId), bots as fromBot,
 * Slack's connection refresh, and the mrkdwn renderer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { slack, slackMrkdwn } from '../../../../hands/communication/channels/slack.ts';
import type { Channel, InboundBatch, InMessage } from '../../../../hands/communication/channels/types.ts';
import { ChannelConfigError, ChannelError } from '../../../../hands/communication/channels/types.ts';
import { parseChannelUrl } from '../../../../hands/communication/channels/url.ts';
import { type SlackFake, startSlackFake } from '../../../fixtures/platforms/slack.ts';
import { channelContract, makeChannel } from './contract.ts';

channelContract(slack, () => startSlackFake());

const msg = (text: string, over: Record<string, unknown> = {}) => ({
  id: `s-${Math.random().toString(36).slice(2)}`,
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

/** receives until `pred` holds for a message (bounded), committing nothing */
async function receiveUntil(ch: Channel, pred: (m: InMessage) => boolean, ms = 15_000): Promise<InboundBatch> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    assert.ok(left > 0, 'the message did not arrive in time');
    const b = await ch.receive!(undefined, AbortSignal.timeout(left));
    if (b.messages.some(pred)) return b;
  }
}

describe('slack: sending', () => {
  let fake: SlackFake;
  let ch: Channel;
  before(async () => {
    fake = await startSlackFake({ echo: false });
    ch = await makeChannel(slack, fake);
  });
  after(async () => {
    await ch.close?.();
    await fake.close();
  });

  it('a 200 with ok:false invalid_auth is an auth error; token_revoked too', async () => {
    fake.failWith('invalid_auth');
    assert.equal(await kindOf(ch.send(msg('x'), AbortSignal.timeout(5000))), 'auth');
    fake.failWith('token_revoked');
    assert.equal(await kindOf(ch.send(msg('x'), AbortSignal.timeout(5000))), 'auth');
  });

  it('channel_not_found and not_in_channel are permanent, ok:false ratelimited is a rate error', async () => {
    assert.equal(await kindOf(ch.send(msg('x', { to: '#nowhere' }), AbortSignal.timeout(5000))), 'permanent');
    fake.failWith('not_in_channel');
    assert.equal(await kindOf(ch.send(msg('x'), AbortSignal.timeout(5000))), 'permanent');
    fake.failWith('ratelimited');
    assert.equal(await kindOf(ch.send(msg('x'), AbortSignal.timeout(5000))), 'rate');
  });

  it('sends mrkdwn to the channel named by `to`, the title in bold', async () => {
    const before = (await fake.sent()).length;
    await ch.send(
      msg('see **this** & [docs](https://example.com/a?b=1)', { to: 'C0123', title: 'Disk' }),
      AbortSignal.timeout(5000),
    );
    const [s] = (await fake.sent()).slice(before);
    assert.equal(s!.to, 'C0123');
    assert.equal(s!.text, '*Disk*\n\nsee *this* &amp; <https://example.com/a?b=1|docs>');
  });

  it('probe() is auth.test', async () => {
    await ch.probe!(AbortSignal.timeout(5000));
    const bad = await makeChannel(slack, { url: fake.url, secrets: { ...fake.secrets, bot_token: 'xoxb-wrong' } });
    assert.equal(await kindOf(bad.probe!(AbortSignal.timeout(5000))), 'auth');
  });
});

describe('slack: Socket Mode', () => {
  let fake: SlackFake;
  let ch: Channel;
  before(async () => {
    fake = await startSlackFake({ redeliverMs: 400 });
    ch = await makeChannel(slack, fake);
  });
  after(async () => {
    await ch.close?.();
    await fake.close();
  });

  it('an envelope not committed is redelivered with the same platformId; once committed it stops', async () => {
    await fake.inject('not yet journalled');
    const first = await receiveUntil(ch, (m) => m.text === 'not yet journalled');
    const m1 = first.messages.find((m) => m.text === 'not yet journalled')!;
    // no commit: Slack sends the envelope again
    const second = await receiveUntil(ch, (m) => m.text === 'not yet journalled');
    const m2 = second.messages.find((m) => m.text === 'not yet journalled')!;
    assert.equal(m2.platformId, m1.platformId);
    const attempts = fake.deliveries
      .filter((d) => d.ts === fake.deliveries.find((x) => x.attempt > 0)?.ts)
      .map((d) => d.attempt);
    assert.ok(
      attempts.some((a) => a > 0),
      'the fake redelivered with retry_attempt',
    );
    await second.commit!();
    await first.commit!();
    const before = fake.deliveries.length;
    const again = await ch.receive!(second.cursor, AbortSignal.timeout(1500)).catch(() => ({
      messages: [] as InMessage[],
    }));
    assert.ok(!again.messages.some((m) => m.platformId === m1.platformId), 'redelivered after the commit');
    assert.equal(fake.deliveries.slice(before).filter((d) => d.attempt > 0).length, 0);
  });

  it("bots' messages and the bot's own are fromBot; a person's is not", async () => {
    await fake.injectEvent({ text: 'from another bot', bot_id: 'B0OTHER', subtype: 'bot_message' });
    await fake.injectEvent({ text: 'from my own user', user: fake.botUserId });
    await fake.inject('from a person', 'UPERSON02');
    const got: InMessage[] = [];
    const deadline = Date.now() + 15_000;
    while (got.filter((m) => m.text.startsWith('from ')).length < 3 && Date.now() < deadline) {
      const b = await ch.receive!(undefined, AbortSignal.timeout(15_000));
      got.push(...b.messages);
      await b.commit!();
    }
    const by = (t: string) => got.find((m) => m.text === t);
    assert.equal(by('from another bot')?.fromBot, true);
    assert.equal(by('from my own user')?.fromBot, true);
    assert.equal(by('from a person')?.fromBot, false);
    assert.equal(by('from a person')?.from, 'UPERSON02');
    assert.equal(by('from a person')?.replyTo, 'C0GENERAL');
  });

  it('a refused app token is an auth error on receive', async () => {
    const bad = await makeChannel(slack, { url: fake.url, secrets: { ...fake.secrets, app_token: 'xapp-1-wrong' } });
    try {
      assert.equal(await kindOf(bad.receive!(undefined, AbortSignal.timeout(5000))), 'auth');
    } finally {
      await bad.close!();
    }
  });

  it('a disconnect (refresh_requested) opens a new connection and keeps receiving', async () => {
    const before = fake.connections();
    fake.refresh();
    await fake.inject('after the refresh');
    const b = await receiveUntil(ch, (m) => m.text === 'after the refresh');
    await b.commit!();
    assert.ok(fake.connections() > before, 'no new connection was opened');
  });
});

describe('slack: URLs and mrkdwn', () => {
  const env = { fetch, log: console, now: Date.now, self: 't' } as never;
  const make = async (url: string) => slack.create(await parseChannelUrl(url, async () => 'xoxb-1'), env, 's');

  it('needs a bot token, checks the app token, needs raw sockets only with Socket Mode', async () => {
    await assert.rejects(make('slack://nope/#general'), ChannelConfigError);
    await assert.rejects(
      (async () =>
        slack.create(await parseChannelUrl('slack://{secret:b}/#g?app=plain', async () => 'xoxb-1'), env, 's'))(),
      /xapp-/,
    );
    const raw = slack.raw as (u: unknown) => boolean;
    assert.equal(raw(await parseChannelUrl('slack://{secret:b}/#g', async () => 'xoxb-1')), false);
    assert.equal(raw(await parseChannelUrl('slack://{secret:b}/#g?app={secret:a}', async () => 'xapp-1')), true);
    const out = await make('slack://{secret:b}/#general/C0123');
    assert.deepEqual(out.targets, ['#general', 'C0123']);
    assert.equal(out.receive, undefined, 'no app token: send only');
  });

  it('renders Markdown as mrkdwn, escaping & < >', () => {
    assert.equal(slackMrkdwn('**bold** and *it* and _it_'), '*bold* and _it_ and _it_');
    assert.equal(slackMrkdwn('[a & b](http://x.org/?q=1&r=2)'), '<http://x.org/?q=1&amp;r=2|a &amp; b>');
    assert.equal(slackMrkdwn('1 < 2 > 0 <!channel>'), '1 &lt; 2 &gt; 0 &lt;!channel&gt;');
    assert.equal(slackMrkdwn('# Title\n- one\n- two'), '*Title*\n• one\n• two');
    assert.equal(slackMrkdwn('`a **b** <c>`'), '`a **b** &lt;c&gt;`');
    assert.equal(slackMrkdwn('```\nx = *y*\n```'), '```x = *y*```');
    assert.equal(slackMrkdwn('~~gone~~ 2*3*4'), '~gone~ 2*3*4');
  });
});
