/** The homeassistant channel (hands/communication/channels/homeassistant.ts) against the local sink speaking its wire format. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { homeassistant } from '../../../../hands/communication/channels/homeassistant.ts';
import { startSink, type Sink } from '../../../fixtures/platforms/webhook.ts';
import { channelContract, makeChannel } from './contract.ts';

channelContract(homeassistant, () => startSink('hassio'));

describe('homeassistant specifics', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink('hassio');
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
  it('posts {title, message} to the notify service with the Bearer token', async () => {
    const ch = await makeChannel(homeassistant, sink);
    await ch.send(msg({ title: 'Disk' }), sig());
    const req = sink.requests.at(-1)!;
    assert.equal(req.path, '/api/services/notify/mobile_app_pixel');
    assert.deepEqual(JSON.parse(req.body), { title: 'Disk', message: 'disk full on /var' });
  });

  it("a message's `to` names another service; one Home Assistant does not have is permanent", async () => {
    const ch = await makeChannel(homeassistant, sink);
    await assert.rejects(
      ch.send(msg({ to: 'notify.nobody' }), sig()),
      (e: Error & { kind?: string }) => e.kind === 'permanent',
    );
    assert.equal(sink.requests.at(-1)!.path, '/api/services/notify/nobody');
    await assert.rejects(
      makeChannel(homeassistant, { ...sink, url: `${sink.url.split('?')[0]}?service=a/b` }),
      /not a notify service/,
    );
  });
});
