/** The msteams channel (hands/communication/channels/teams.ts) against the local sink speaking its wire format. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { msteams } from '../../../../hands/communication/channels/teams.ts';
import { startSink, type Sink } from '../../../fixtures/platforms/webhook.ts';
import { channelContract, makeChannel } from './contract.ts';

channelContract(msteams, () => startSink('msteams'));

describe('msteams specifics', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink('msteams');
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
  it('?card=adaptive posts an Adaptive Card with the title and the text', async () => {
    const ch = await makeChannel(msteams, { ...sink, url: `${sink.url}&card=adaptive` });
    await ch.send(msg({ title: 'Disk' }), sig());
    const req = sink.requests.at(-1)!;
    assert.equal(req.path, '/webhookb2/1a2b@3c4d/IncomingWebhook/5e6f/7g8h');
    const b = JSON.parse(req.body);
    assert.equal(b.attachments[0].contentType, 'application/vnd.microsoft.card.adaptive');
    assert.deepEqual(
      b.attachments[0].content.body.map((x: { text: string }) => x.text),
      ['Disk', 'disk **full** on /var'],
    );
  });

  it('a legacy connector URL written out gets a MessageCard', async () => {
    const ch = await makeChannel(msteams, {
      url: `msteams://example.webhook.office.com/webhookb2/1a2b@3c4d/IncomingWebhook/5e6f/7g8h?api=${sink.base}`,
      secrets: {},
    });
    await ch.send(msg({ title: 'Disk' }), sig());
    const b = JSON.parse(sink.requests.at(-1)!.body);
    assert.deepEqual([b['@type'], b.title, b.text], ['MessageCard', 'Disk', 'disk **full** on /var']);
  });

  it("the connector's 200 reporting a 429 downstream is a rate error; another 200 sentence is transient", async () => {
    const ch = await makeChannel(msteams, sink);
    sink.answerNext(200, 'Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0');
    await assert.rejects(ch.send(msg(), sig()), (e: Error & { kind?: string }) => e.kind === 'rate');
    sink.answerNext(200, 'Webhook message delivery failed');
    await assert.rejects(ch.send(msg(), sig()), (e: Error & { kind?: string }) => e.kind === 'transient');
  });
});
