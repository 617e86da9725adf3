/**
 * The telegram channel (hands/communication/channels/telegram.ts) against a local Bot API fake
 * (test/fixtures/platforms/telegram.ts): the channel contract, then Telegram's own ways: retry_after in a 429 body,
 * a token that is not one refused at create, HTML that Telegram parses, several chats, and getUpdates offsets across
 * a restart (none repeated, none lost), a long poll that an abort ends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { markdownHtml, splitMarkdown, telegram } from '../../../../hands/communication/channels/telegram.ts';
import { ChannelConfigError, ChannelError } from '../../../../hands/communication/channels/types.ts';
import { parseChannelUrl } from '../../../../hands/communication/channels/url.ts';
import { parseTelegramHtml, startTelegramFake, type TelegramFake } from '../../../fixtures/platforms/telegram.ts';
import { channelContract, makeChannel, testEnv } from './contract.ts';

channelContract(telegram, () => startTelegramFake());

let seq = 0;
const out = (text: string, over: Record<string, unknown> = {}) => ({
  id: `t${++seq}`,
  text,
  priority: 'normal' as const,
  tags: [],
  ...over,
});

async function create(url: string, secrets: Record<string, string>) {
  const u = await parseChannelUrl(url, async (n) => secrets[n]);
  return telegram.create(u, testEnv(), 'tg');
}

describe('telegram: configuration', () => {
  const token = '123456789:AAF1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW';
  it('takes a bot token and chat ids', async () => {
    const ch = await create('tgram://{secret:t}/424242/-1001234567890/@talonalerts', { t: token });
    assert.deepEqual(ch.targets, ['424242', '-1001234567890', '@talonalerts']);
    assert.equal(ch.maxChars, 4096);
  });
  it('a token that is not a bot token is a ChannelConfigError naming the form', async () => {
    for (const bad of ['not-a-token', '123456', 'abc:AAF1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW', '12345:short']) {
      await assert.rejects(create('tgram://{secret:t}/424242', { t: bad }), (e: unknown) => {
        assert.ok(e instanceof ChannelConfigError, String(e));
        assert.match(e.message, /bot token/);
        assert.match(e.message, /tgram:\/\/\{secret:bot_token\}/);
        return true;
      });
    }
  });
  it('a token written inline is refused (the host would be lower-cased, and it would sit in the config)', async () => {
    await assert.rejects(create(`tgram://${token}/424242`, {}), /sealed secret/);
  });
  it('a chat that is neither an id nor @name is refused', async () => {
    await assert.rejects(create('tgram://{secret:t}/ops-room', { t: token }), /"ops-room" is not a Telegram chat/);
  });
});

describe('telegram: Markdown to Telegram HTML', () => {
  it('renders the subset Telegram reads, escaping the rest', () => {
    const html = markdownHtml(
      '# Disk full\n**sda1** at *97%* on `edge-01` <root>\n- one & two\n```sh\ndf -h <x>\n```\n> quoted\n[docs](https://example.com/a?b=1&c=2)',
      'telegram',
    );
    assert.equal(
      html,
      '<b>Disk full</b>\n<b>sda1</b> at <i>97%</i> on <code>edge-01</code> &lt;root&gt;\n• one &amp; two\n' +
        '<pre><code class="language-sh">df -h &lt;x&gt;</code></pre>\n<blockquote>quoted</blockquote>\n' +
        '<a href="https://example.com/a?b=1&amp;c=2">docs</a>',
    );
    assert.ok(!('error' in parseTelegramHtml(html)));
  });
  it('markup that would not nest falls back to escaped text Telegram still parses', () => {
    const html = markdownHtml('**a *b** c* <tag>', 'telegram');
    assert.ok(!('error' in parseTelegramHtml(html)), html);
    assert.match(html, /&lt;tag&gt;/);
  });
  it('a code block cut by the split is closed and reopened', () => {
    const md = `intro\n\`\`\`js\n${Array.from({ length: 400 }, (_, i) => `const x${i} = ${i};`).join('\n')}\n\`\`\`\nend`;
    const parts = splitMarkdown(md, 3800);
    assert.ok(parts.length >= 2);
    for (const p of parts) {
      assert.ok(p.length <= 3800);
      const html = markdownHtml(p, 'telegram');
      assert.ok(!('error' in parseTelegramHtml(html)));
    }
    assert.match(parts[1]!, /^```js\n/);
  });
});

describe('telegram: against the Bot API fake', () => {
  let fake: TelegramFake;
  before(async () => {
    fake = await startTelegramFake({ pollSeconds: 25 });
  });
  after(async () => fake.close());
  const signal = new AbortController().signal;

  it('sends HTML with parse_mode, which Telegram parses', async () => {
    const ch = await makeChannel(telegram, fake);
    const n = fake.messages.length;
    await ch.send(out('**Backup** done: `3 files` & <ok>'), signal);
    const m = fake.messages[n]!;
    assert.equal(m.parse_mode, 'HTML');
    assert.equal(m.text, '<b>Backup</b> done: <code>3 files</code> &amp; &lt;ok&gt;');
  });

  it("a 429's parameters.retry_after becomes retryAfterMs", async () => {
    const ch = await makeChannel(telegram, fake);
    fake.failNext('rate', 7000);
    await assert.rejects(ch.send(out('slow down'), signal), (e: unknown) => {
      assert.ok(e instanceof ChannelError);
      assert.equal(e.kind, 'rate');
      assert.equal(e.retryAfterMs, 7000);
      return true;
    });
  });

  it('a chat Telegram does not know is permanent', async () => {
    const ch = await makeChannel(telegram, fake);
    await assert.rejects(ch.send(out('hello', { to: '999' }), signal), (e: unknown) => {
      assert.ok(e instanceof ChannelError);
      assert.equal(e.kind, 'permanent');
      assert.match(e.message, /chat not found/);
      return true;
    });
  });

  it('a wrong token: the probe and the send are auth errors', async () => {
    const wrong = { url: fake.url, secrets: { tg_token: `${fake.token.split(':')[0]}:AAEwrongwrongwrongwrongwrong` } };
    const ch = await makeChannel(telegram, wrong);
    await assert.rejects(ch.probe!(signal), (e: unknown) => e instanceof ChannelError && e.kind === 'auth');
    await assert.rejects(ch.send(out('x'), signal), (e: unknown) => e instanceof ChannelError && e.kind === 'auth');
    await (await makeChannel(telegram, fake)).probe!(signal);
  });

  it('sends to each of the default chats', async () => {
    const ch = await makeChannel(telegram, {
      ...fake,
      url: fake.url.replace(`/${fake.chatId}?`, `/${fake.chatId}/@talonalerts?`),
    });
    const n = fake.messages.length;
    const r = await ch.send(out('to both'), signal);
    assert.deepEqual(
      fake.messages.slice(n).map((m) => m.chat_id),
      [fake.chatId, '@talonalerts'],
    );
    assert.equal(r.platformIds.length, 2);
  });

  it('a retry after a failure on the second chat does not send to the first again', async () => {
    const n = fake.messages.length;
    const msg = out('once each');
    // the first chat's part goes through, then the platform fails: fail the second request only
    const orig = fake.failNext.bind(fake);
    let calls = 0;
    const env = testEnv({
      fetch: (async (input: string, init?: RequestInit) => {
        if (String(input).endsWith('/sendMessage') && ++calls === 2) orig('server');
        return fetch(input, init);
      }) as never,
    });
    const ch2 = await makeChannel(
      telegram,
      { ...fake, url: fake.url.replace(`/${fake.chatId}?`, `/${fake.chatId}/@talonalerts?`) },
      env,
    );
    await assert.rejects(ch2.send(msg, signal), (e: unknown) => e instanceof ChannelError && e.kind === 'transient');
    const r = await ch2.send({ ...msg, retry: true }, signal);
    assert.deepEqual(
      fake.messages.slice(n).map((m) => m.chat_id),
      [fake.chatId, '@talonalerts'],
    );
    assert.equal(r.platformIds.length, 2);
  });

  it('receive: a restarted channel with the stored cursor gets only newer updates, none repeated', async () => {
    const a = await makeChannel(telegram, fake);
    // whatever is pending from earlier tests
    const drained = await a.receive!(undefined, AbortSignal.timeout(3000)).catch(() => undefined);
    let cursor = drained?.cursor;
    await fake.inject('first');
    await fake.inject('second');
    const b1 = await a.receive!(cursor, AbortSignal.timeout(20_000));
    assert.deepEqual(
      b1.messages.map((m) => m.text),
      ['first', 'second'],
    );
    assert.equal(b1.messages[0]!.from, fake.chatId);
    assert.equal(b1.messages[0]!.replyTo, fake.chatId);
    assert.equal(b1.messages[0]!.fromName, 'Ada');
    assert.equal(b1.messages[0]!.fromBot, false);
    assert.equal(b1.cursor, b1.messages[1]!.platformId);
    cursor = b1.cursor;
    await a.close?.();
    // "down": a person writes meanwhile
    await fake.inject('while down');
    const b = await makeChannel(telegram, fake);
    const b2 = await b.receive!(cursor, AbortSignal.timeout(20_000));
    assert.deepEqual(
      b2.messages.map((m) => m.text),
      ['while down'],
    );
    assert.equal(fake.polls.at(-1)!.offset, Number(cursor) + 1);
    // the offset confirmed the first two on Telegram's side
    assert.ok(!fake.pending().includes(Number(b1.messages[0]!.platformId)));
    // and the stored cursor after it brings nothing again
    const b3 = await b.receive!(b2.cursor, AbortSignal.timeout(2000)).catch(() => ({ messages: [] }));
    assert.equal(b3.messages.length, 0);
  });

  it('receive: channel posts and bots', async () => {
    const ch = await makeChannel(telegram, fake);
    const first = await ch.receive!(undefined, AbortSignal.timeout(3000)).catch(() => undefined);
    const chat = { id: -1009876543210, type: 'channel', title: 'Alerts' };
    fake.injectUpdate({
      channel_post: { message_id: 90, sender_chat: chat, chat, date: 1_700_000_000, text: 'posted' },
    });
    fake.injectUpdate({
      message: { message_id: 91, from: { id: 5, is_bot: true, first_name: 'OtherBot' }, chat, date: 1, text: 'beep' },
    });
    fake.injectUpdate({ edited_message: { message_id: 92, chat, date: 1, text: 'edited' } });
    const b = await ch.receive!(first?.cursor, AbortSignal.timeout(20_000));
    assert.deepEqual(
      b.messages.map((m) => [m.text, m.from, m.fromBot, m.fromName]),
      [
        ['posted', '-1009876543210', false, 'Alerts'],
        ['beep', '-1009876543210', true, 'OtherBot'],
      ],
    );
    assert.equal(b.messages[0]!.at, 1_700_000_000_000);
  });

  it('an abort ends a waiting long poll', async () => {
    const ch = await makeChannel(telegram, fake);
    const first = await ch.receive!(undefined, AbortSignal.timeout(3000)).catch(() => undefined);
    const ac = new AbortController();
    const p = ch.receive!(first?.cursor, ac.signal);
    setTimeout(() => ac.abort(), 200);
    // the fake would answer after 25 s; the bound below only separates "aborted" from "waited the poll out"
    const r = await Promise.race([
      p.then(
        () => 'resolved',
        (e: Error) => e.name,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 15_000).unref()),
    ]);
    assert.equal(r, 'AbortError');
  });
});
