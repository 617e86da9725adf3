/**
 * The matrix channel (hands/communication/channels/matrix.ts) against a local homeserver fake
 * (test/fixtures/platforms/matrix.ts): the channel contract, then Matrix's own ways: the bot's own messages and
 * m.notice marked fromBot (a bot must not answer itself), a retried txnId stored once, the first sync skipping the
 * backlog, a restarted channel getting what was said while it was down (a limited timeline paged back), aliases,
 * M_LIMIT_EXCEEDED's retry_after_ms, a long poll that an abort ends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { matrix } from '../../../../hands/communication/channels/matrix.ts';
import { markdownHtml } from '../../../../hands/communication/channels/telegram.ts';
import { ChannelConfigError, ChannelError } from '../../../../hands/communication/channels/types.ts';
import { parseChannelUrl } from '../../../../hands/communication/channels/url.ts';
import { startMatrixFake, type MatrixFake } from '../../../fixtures/platforms/matrix.ts';
import { channelContract, makeChannel, testEnv } from './contract.ts';

channelContract(matrix, () => startMatrixFake());

let seq = 0;
const out = (text: string, over: Record<string, unknown> = {}) => ({
  id: `mx${++seq}-${Date.now()}`,
  text,
  priority: 'normal' as const,
  tags: [],
  ...over,
});
const never = new AbortController().signal;

async function create(url: string, secrets: Record<string, string> = { t: 'syt_abc' }) {
  const u = await parseChannelUrl(url, async (n) => secrets[n]);
  return matrix.create(u, testEnv(), 'mx');
}

describe('matrix: configuration', () => {
  it('takes a token, a homeserver and rooms (ids, aliases, %23 aliases)', async () => {
    const ch = await create(
      'matrixs://{secret:t}@matrix.example.org/!abc:example.org/#ops:example.org/%23dev:example.org',
    );
    assert.deepEqual(ch.targets, ['!abc:example.org', '#ops:example.org', '#dev:example.org']);
    assert.equal(ch.maxChars, 16000);
  });
  it('no token is a ChannelConfigError naming the form', async () => {
    await assert.rejects(create('matrixs://matrix.example.org/!abc:example.org'), (e: unknown) => {
      assert.ok(e instanceof ChannelConfigError);
      assert.match(e.message, /access token/);
      assert.match(e.message, /matrixs:\/\/\{secret:access_token\}@HOMESERVER/);
      return true;
    });
  });
  it('a room that is neither an id nor an alias is refused', async () => {
    await assert.rejects(create('matrixs://{secret:t}@hs.example.org/ops'), /"ops" is not a Matrix room/);
  });
});

describe('matrix: Markdown to org.matrix.custom.html', () => {
  it('headings, lists, paragraphs, code', () => {
    assert.equal(
      markdownHtml('# Disk\n**full** on `a`\nnext line\n\n- one\n- two & <three>\n```\nx < y\n```', 'matrix'),
      '<h1>Disk</h1><p><b>full</b> on <code>a</code><br>next line</p><ul><li>one</li><li>two &amp; &lt;three&gt;</li></ul>' +
        '<pre><code>x &lt; y</code></pre>',
    );
  });
});

describe('matrix: against the homeserver fake', () => {
  let fake: MatrixFake;
  before(async () => {
    fake = await startMatrixFake();
  });
  after(async () => fake.close());

  it('sends body and formatted_body with a txnId from the message id and part', async () => {
    const ch = await makeChannel(matrix, fake);
    const msg = out('**Backup** done');
    const r = await ch.send(msg, never);
    const e = fake.events.find((x) => x.event_id === r.platformIds[0])!;
    assert.deepEqual(e.content, {
      msgtype: 'm.text',
      body: '**Backup** done',
      format: 'org.matrix.custom.html',
      formatted_body: '<p><b>Backup</b> done</p>',
    });
    assert.equal(e.txn, `talon.${msg.id}.0`);
  });

  it('a retried send (same OutMessage, retry: true) is stored once', async () => {
    const ch = await makeChannel(matrix, fake);
    const msg = out(`once only ${'x '.repeat(9000)}`);
    const n = fake.events.length;
    const first = await ch.send(msg, never);
    assert.equal(first.platformIds.length, 2);
    // a crash after the platform stored the parts, before the outbox knew: a new channel object retries
    const again = await (await makeChannel(matrix, fake)).send({ ...msg, retry: true }, never);
    assert.deepEqual(again.platformIds, first.platformIds);
    assert.equal(fake.events.length, n + 2);
  });

  it('aliases are resolved through the directory; an unknown one is permanent', async () => {
    for (const a of [fake.alias, '%23ops:localhost']) {
      const ch = await makeChannel(matrix, { ...fake, url: fake.url.replace(fake.roomId, a) });
      const r = await ch.send(out(`via ${a}`), never);
      assert.equal(fake.events.find((x) => x.event_id === r.platformIds[0])!.room_id, fake.roomId);
    }
    const ch = await makeChannel(matrix, fake);
    await assert.rejects(ch.send(out('nowhere', { to: '#nope:localhost' }), never), (e: unknown) => {
      assert.ok(e instanceof ChannelError);
      assert.equal(e.kind, 'permanent');
      assert.match(e.message, /#nope:localhost does not exist/);
      return true;
    });
  });

  it("M_LIMIT_EXCEEDED's retry_after_ms becomes retryAfterMs; a wrong token is auth", async () => {
    const ch = await makeChannel(matrix, fake);
    fake.failNext('rate', 4321);
    await assert.rejects(ch.send(out('slow'), never), (e: unknown) => {
      assert.ok(e instanceof ChannelError);
      assert.equal(e.kind, 'rate');
      assert.equal(e.retryAfterMs, 4321);
      return true;
    });
    const wrong = await makeChannel(matrix, { url: fake.url, secrets: { mx_token: 'syt_wrong' } });
    await assert.rejects(wrong.probe!(never), (e: unknown) => {
      assert.ok(e instanceof ChannelError);
      assert.equal(e.kind, 'auth');
      assert.match(e.message, /M_UNKNOWN_TOKEN/);
      return true;
    });
    await ch.probe!(never);
  });

  it('the first sync skips the backlog and returns only a cursor', async () => {
    await fake.inject('said before the bot was configured');
    const ch = await makeChannel(matrix, fake);
    const first = await ch.receive!(undefined, never);
    assert.deepEqual(first.messages, []);
    assert.equal(first.cursor, `s${fake.events.length}`);
    assert.equal(fake.requests.at(-1)!.query.timeout, '0');
    const next = await ch.receive!(first.cursor, AbortSignal.timeout(2000)).catch(() => ({ messages: [] }));
    assert.deepEqual(next.messages, []);
  });

  it("the bot's own messages and m.notice come back as fromBot", async () => {
    const ch = await makeChannel(matrix, fake);
    const { cursor } = await ch.receive!(undefined, never);
    await ch.send(out('an answer of mine'), never);
    fake.injectEvent('@otherbot:localhost', { msgtype: 'm.notice', body: 'I am a bot' });
    await fake.inject('a person asks');
    fake.injectEvent('@ada:localhost', {
      msgtype: 'm.text',
      body: '> <@talon:localhost> an answer of mine\n\nthanks',
      'm.relates_to': { 'm.in_reply_to': { event_id: '$x' } },
    });
    fake.injectEvent('@ada:localhost', {
      msgtype: 'm.text',
      body: '* a person asks (edited)',
      'm.relates_to': { rel_type: 'm.replace', event_id: '$y' },
    });
    const b = await ch.receive!(cursor, AbortSignal.timeout(20_000));
    assert.deepEqual(
      b.messages.map((m) => [m.text, m.from, m.fromBot, m.fromName ?? '', m.replyTo]),
      [
        ['an answer of mine', fake.userId, true, 'Talon', fake.roomId],
        ['I am a bot', '@otherbot:localhost', true, 'Other Bot', fake.roomId],
        ['a person asks', '@ada:localhost', false, 'Ada', fake.roomId],
        ['thanks', '@ada:localhost', false, 'Ada', fake.roomId],
      ],
    );
    assert.ok(b.messages.every((m) => m.platformId.startsWith('$')));
  });

  it('a restarted channel with the stored since gets what was said while it was down', async () => {
    const a = await makeChannel(matrix, fake);
    const { cursor } = await a.receive!(undefined, never);
    await a.close?.();
    await fake.inject('said while down 1');
    await fake.inject('said while down 2');
    const b = await makeChannel(matrix, fake);
    const got = await b.receive!(cursor, AbortSignal.timeout(20_000));
    assert.deepEqual(
      got.messages.map((m) => m.text),
      ['said while down 1', 'said while down 2'],
    );
    const again = await b.receive!(got.cursor, AbortSignal.timeout(2000)).catch(() => ({ messages: [] }));
    assert.deepEqual(again.messages, []);
  });

  it('an abort ends a waiting sync', async () => {
    const ch = await makeChannel(matrix, fake);
    const { cursor } = await ch.receive!(undefined, never);
    const ac = new AbortController();
    const p = ch.receive!(cursor, ac.signal);
    setTimeout(() => ac.abort(), 200);
    // the fake would answer after 25 s; the bound only separates "aborted" from "waited the poll out"
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

describe('matrix: a limited timeline is paged back', () => {
  let fake: MatrixFake;
  before(async () => {
    fake = await startMatrixFake({ timelineCap: 3 });
  });
  after(async () => fake.close());

  it('eight messages while down, a sync that returns three: all eight, in order, once', async () => {
    const a = await makeChannel(matrix, fake);
    const { cursor } = await a.receive!(undefined, never);
    for (let i = 1; i <= 8; i++) await fake.inject(`down ${i}`);
    const env = testEnv();
    const b = await makeChannel(matrix, fake, env);
    const got = await b.receive!(cursor, AbortSignal.timeout(20_000));
    assert.deepEqual(
      got.messages.map((m) => m.text),
      Array.from({ length: 8 }, (_, i) => `down ${i + 1}`),
    );
    assert.ok(fake.requests.some((r) => r.path.endsWith('/messages') && r.query.to === cursor));
    assert.ok(!env.logs.some((l) => l.startsWith('warn')), env.logs.join('\n'));
  });

  it('more than the pages it reads: the latest are read and a warning says some were skipped', async () => {
    const a = await makeChannel(matrix, fake);
    const { cursor } = await a.receive!(undefined, never);
    for (let i = 1; i <= 1010; i++) fake.injectEvent('@ada:localhost', { msgtype: 'm.text', body: `flood ${i}` });
    const env = testEnv();
    const b = await makeChannel(matrix, fake, env);
    const got = await b.receive!(cursor, AbortSignal.timeout(20_000));
    assert.equal(got.messages.at(-1)!.text, 'flood 1010');
    assert.equal(got.messages.length, 1003);
    assert.ok(
      env.logs.some((l) => /^warn .*older ones were skipped/.test(l)),
      env.logs.join('\n'),
    );
  });
});
