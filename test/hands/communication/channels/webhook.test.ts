/**
 * The generic JSON webhook channel (hands/communication/channels/webhook.ts): out against the local sink (which checks
 * the HMAC signature as a receiver would), in through accept()/verifyWebhook as the Hand's webhook route calls them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Channel, ChannelKind } from '../../../../hands/communication/channels/types.ts';
import {
  isWebhookChannel,
  verifyWebhook,
  webhook,
  webhookSignature,
  type WebhookChannel,
} from '../../../../hands/communication/channels/webhook.ts';
import { startSink, type Sink } from '../../../fixtures/platforms/webhook.ts';
import { channelContract, makeChannel } from './contract.ts';

const SECRET = 'whsec-test-0123456789';

/** what the Hand's POST /api/v1/channels/{name}/webhook does with a request, signed as a sender would */
function signed(body: unknown, secret = SECRET, ts = Date.now()): { headers: Record<string, string>; raw: string } {
  const raw = JSON.stringify(body);
  return {
    headers: { 'X-Talon-Timestamp': String(ts), 'X-Talon-Signature': webhookSignature(secret, String(ts), raw) },
    raw,
  };
}

// the contract's channel is built inside the suite: keep a hold of it so inject() can deliver as the Hand would
let contractChannel: Channel | undefined;
const held: ChannelKind = {
  ...webhook,
  create(u, env, name) {
    contractChannel = webhook.create(u, env, name);
    return contractChannel;
  },
};
channelContract(held, async () => {
  const sink = await startSink('json');
  return {
    ...sink,
    async inject(text: string, from = 'ops-bot') {
      assert.ok(contractChannel && isWebhookChannel(contractChannel));
      const r = signed({ from, text, id: `in-${Math.random()}` });
      const res = contractChannel.accept(r.headers, r.raw, Date.now());
      assert.ok(res.ok, res.ok ? '' : res.reason);
    },
  };
});

describe('webhook specifics', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink('json');
  });
  after(async () => {
    await sink.close();
  });

  it('signs the body it posts: timestamp and HMAC over "<timestamp>.<body>"', async () => {
    const ch = await makeChannel(webhook, sink);
    await ch.send(
      { id: 'o1', title: 'Disk', text: 'disk **full**', priority: 'high', tags: ['disk'] },
      AbortSignal.timeout(5000),
    );
    const req = sink.requests.at(-1)!;
    const ts = String(req.headers['x-talon-timestamp']);
    assert.equal(req.headers['x-talon-signature'], webhookSignature(SECRET, ts, req.body));
    const b = JSON.parse(req.body);
    assert.deepEqual(
      { ...b, ts: undefined },
      { id: 'o1', title: 'Disk', text: 'disk **full**', priority: 'high', tags: ['disk'], ts: undefined },
    );
    assert.equal(String(b.ts), ts);
  });

  it('a forged signature is refused and nothing is queued', async () => {
    const ch = (await makeChannel(webhook, sink)) as WebhookChannel;
    const r = signed({ from: 'x', text: 'rm -rf' }, 'not-the-secret-at-all');
    const res = ch.accept(r.headers, r.raw, Date.now());
    assert.deepEqual(res, { ok: false, reason: 'the signature does not match' });
    // the body changed after signing: refused too
    const good = signed({ from: 'x', text: 'status' });
    assert.equal(ch.accept(good.headers, good.raw.replace('status', 'reboot'), Date.now()).ok, false);
    const b = await ch.receive(undefined, AbortSignal.timeout(300));
    assert.deepEqual(b.messages, []);
  });

  it('a stale timestamp is refused (a replay), however good its signature', async () => {
    const old = Date.now() - 6 * 60_000;
    const r = signed({ from: 'x', text: 'status' }, SECRET, old);
    const res = verifyWebhook(SECRET, r.headers, r.raw, Date.now());
    assert.equal(res.ok, false);
    assert.match(res.ok ? '' : res.reason, /5 minutes/);
    // the same request within the window is fine
    assert.equal(verifyWebhook(SECRET, r.headers, r.raw, old + 1000).ok, true);
  });

  it('a good one is queued and received, its platformId the id or the body hash', async () => {
    const ch = (await makeChannel(webhook, sink)) as WebhookChannel;
    const a = signed({ from: 'alice', text: 'status', id: 'evt-1' });
    const b = signed({ from: 'bob', text: 'ack K3F9' });
    assert.equal(ch.accept(a.headers, a.raw, Date.now()).ok, true);
    assert.equal(ch.accept(b.headers, b.raw, Date.now()).ok, true);
    const got = await ch.receive(undefined, AbortSignal.timeout(5000));
    assert.deepEqual(
      got.messages.map((m) => [m.platformId.length === 64 ? 'sha256' : m.platformId, m.from, m.text, m.fromBot]),
      [
        ['evt-1', 'alice', 'status', false],
        ['sha256', 'bob', 'ack K3F9', false],
      ],
    );
  });

  it('refuses bodies without from/text, and any request when the channel has no secret', async () => {
    const r = signed({ text: 'no sender' });
    assert.match((verifyWebhook(SECRET, r.headers, r.raw, Date.now()) as { reason: string }).reason, /"from"/);
    const ch = (await makeChannel(webhook, { url: `json://127.0.0.1:${sink.port}/x`, secrets: {} })) as WebhookChannel;
    const g = signed({ from: 'a', text: 'b' });
    assert.equal(ch.accept(g.headers, g.raw, Date.now()).ok, false);
  });

  it('a short secret is a config error', async () => {
    await assert.rejects(
      makeChannel(webhook, { url: 'json://h/x?secret={secret:s}', secrets: { s: 'short' } }),
      /16 characters/,
    );
  });
});
