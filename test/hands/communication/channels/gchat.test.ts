/** The gchat channel (hands/communication/channels/gchat.ts) against the local sink speaking its wire format. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gchat } from '../../../../hands/communication/channels/gchat.ts';
import { startSink, type Sink } from '../../../fixtures/platforms/webhook.ts';
import { channelContract, makeChannel } from './contract.ts';

channelContract(gchat, () => startSink('gchat'));

describe('gchat specifics', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink('gchat');
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
  it('posts {text} as plain text to the space with its key and token', async () => {
    const ch = await makeChannel(gchat, sink);
    const r = await ch.send(msg({ title: 'Disk' }), sig());
    const req = sink.requests.at(-1)!;
    assert.equal(req.path, '/v1/spaces/AAAA1234/messages');
    assert.equal(req.query.get('token'), 'tok-en=123');
    assert.deepEqual(JSON.parse(req.body), { text: 'Disk\ndisk full on /var' });
    assert.match(r.platformIds[0]!, /^spaces\/AAAA1234\/messages\//);
  });

  it('refuses a URL without the token, naming the form', async () => {
    await assert.rejects(
      makeChannel(gchat, { url: 'gchat://AAAA/{secret:k}', secrets: { k: 'x' } }),
      /space, the key and the token/,
    );
  });
});
