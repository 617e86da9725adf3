/** The gotify channel (hands/communication/channels/gotify.ts) against the local sink speaking its wire format. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gotify } from '../../../../hands/communication/channels/gotify.ts';
import { startSink, type Sink } from '../../../fixtures/platforms/webhook.ts';
import { channelContract, makeChannel } from './contract.ts';

channelContract(gotify, () => startSink('gotify'));

describe('gotify specifics', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink('gotify');
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
  it('posts Markdown with the app key header and the mapped priority', async () => {
    const ch = await makeChannel(gotify, sink);
    const r = await ch.send(msg({ title: 'Disk' }), sig());
    const req = sink.requests.at(-1)!;
    assert.equal(req.headers['x-gotify-key'], 'AKm5cHtQ8Jy7nF.');
    const b = JSON.parse(req.body);
    assert.deepEqual(
      { title: b.title, message: b.message, priority: b.priority, ct: b.extras['client::display'].contentType },
      { title: 'Disk', message: 'disk **full** on /var', priority: 8, ct: 'text/markdown' },
    );
    assert.match(r.platformIds[0]!, /^\d+$/);
  });

  it('?priority= fixes the priority; out of 0-10 is a config error', async () => {
    const ch = await makeChannel(gotify, { ...sink, url: `${sink.url}?priority=1` });
    await ch.send(msg(), sig());
    assert.equal(JSON.parse(sink.requests.at(-1)!.body).priority, 1);
    await assert.rejects(makeChannel(gotify, { ...sink, url: `${sink.url}?priority=11` }), /0-10/);
  });
});
