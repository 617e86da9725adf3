/** The pushover channel (hands/communication/channels/pushover.ts) against the local sink speaking its wire format. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pushover } from '../../../../hands/communication/channels/pushover.ts';
import { startSink, type Sink } from '../../../fixtures/platforms/webhook.ts';
import { channelContract, makeChannel } from './contract.ts';

channelContract(pushover, () => startSink('pushover'));

describe('pushover specifics', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink('pushover');
  });
  after(async () => {
    await sink.close();
  });
  const sig = () => AbortSignal.timeout(10_000);
  const msg = (over: Record<string, unknown> = {}) => ({
    id: `o${Math.random()}`,
    text: 'disk **full** on /var',
    priority: 'high' as const,
    tags: [],
    ...over,
  });
  it('posts the form fields with the mapped priority, the device and the title', async () => {
    const ch = await makeChannel(pushover, sink);
    await ch.send(msg({ title: 'T'.repeat(300) }), sig());
    const f = new URLSearchParams(sink.requests.at(-1)!.body);
    assert.equal(f.get('priority'), '1');
    assert.equal(f.get('device'), 'phone');
    assert.equal(f.get('message'), 'disk full on /var');
    assert.equal(f.get('title')!.length, 250);
  });

  it('a critical message is an emergency with retry and expire (Pushover refuses one without)', async () => {
    const ch = await makeChannel(pushover, { ...sink, url: `${sink.url}&retry=90` });
    const r = await ch.send(msg({ priority: 'critical' }), sig());
    const f = new URLSearchParams(sink.requests.at(-1)!.body);
    assert.equal(f.get('priority'), '2');
    assert.equal(f.get('retry'), '90');
    assert.equal(f.get('expire'), '3600');
    assert.equal(r.platformIds.length, 1);
  });

  it('an invalid app token (400 {"token":"invalid"}) is an auth error; a 200 without status 1 is permanent', async () => {
    const ch = await makeChannel(pushover, { ...sink, secrets: { ...sink.secrets, po_token: 'wrong' } });
    await assert.rejects(
      ch.send(msg(), sig()),
      (e: Error & { kind?: string }) => e.kind === 'auth' && /app token/.test(e.message),
    );
    const ok = await makeChannel(pushover, sink);
    sink.answerNext(200, JSON.stringify({ status: 0, errors: ['odd'] }), { 'content-type': 'application/json' });
    await assert.rejects(ok.send(msg(), sig()), (e: Error & { kind?: string }) => e.kind === 'permanent');
  });
});
