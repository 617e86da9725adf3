/** The twilio channel (hands/communication/channels/twilio.ts) against the local sink speaking its wire format. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { twilio } from '../../../../hands/communication/channels/twilio.ts';
import { startSink, type Sink } from '../../../fixtures/platforms/webhook.ts';
import { channelContract, makeChannel } from './contract.ts';

channelContract(twilio, () => startSink('twilio'));

describe('twilio specifics', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink('twilio');
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
  it('posts From/To/Body with Basic auth; each part goes to each number', async () => {
    const ch = await makeChannel(twilio, {
      ...sink,
      url: sink.url.replace('/+15551230001', '/+15551230001/15551230002'),
    });
    const r = await ch.send(msg({ title: 'Disk' }), sig());
    const reqs = sink.requests.slice(-2).map((q) => Object.fromEntries(new URLSearchParams(q.body)));
    assert.deepEqual(reqs, [
      { From: '+15005550006', To: '+15551230001', Body: 'Disk\ndisk full on /var' },
      { From: '+15005550006', To: '+15551230002', Body: 'Disk\ndisk full on /var' },
    ]);
    assert.equal(r.platformIds.length, 2);
    assert.ok(r.platformIds.every((id) => id.startsWith('SM')));
  });

  it('an invalid number (400, code 21211) is permanent; a bad number in the URL is a config error', async () => {
    const ch = await makeChannel(twilio, sink);
    await assert.rejects(
      ch.send(msg({ to: '12' }), sig()),
      (e: Error & { kind?: string }) => e.kind === 'permanent' && /21211/.test(e.message),
    );
    await assert.rejects(
      makeChannel(twilio, { ...sink, url: sink.url.replace('+15551230001', 'bob') }),
      /not a phone number/,
    );
  });
});
