/** The ntfy channel (hands/communication/channels/ntfy.ts) against a local server speaking ntfy's wire format. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ntfy } from '../../../../hands/communication/channels/ntfy.ts';
import type { Channel } from '../../../../hands/communication/channels/types.ts';
import { startNtfy, type NtfyFake } from '../../../fixtures/platforms/ntfy.ts';
import { waitFor } from '../../../helpers/wait.ts';
import { channelContract, makeChannel } from './contract.ts';

channelContract(ntfy, () => startNtfy());

describe('ntfy specifics', () => {
  let fake: NtfyFake;
  const fakes: NtfyFake[] = [];
  const open: Channel[] = [];
  before(async () => {
    fake = await startNtfy();
    fakes.push(fake);
  });
  after(async () => {
    for (const ch of open) await ch.close?.();
    for (const f of fakes) await f.close();
  });
  /** a server of its own for a test that reads the topic (one second's messages all match a timestamp cursor) */
  const fresh = async (): Promise<NtfyFake> => {
    const f = await startNtfy();
    fakes.push(f);
    fake = f;
    return f;
  };
  const channel = async (url = fake.url, secrets = fake.secrets): Promise<Channel> => {
    const ch = await makeChannel(ntfy, { url, secrets });
    open.push(ch);
    return ch;
  };
  const sig = (ms = 10_000) => AbortSignal.timeout(ms);

  it('publishes JSON with the mapped priority, the talon tag, markdown and the Bearer token', async () => {
    const ch = await channel();
    const r = await ch.send(
      { id: 'o1', title: 'Disk', text: 'disk **full**', priority: 'high', tags: ['disk'] },
      sig(),
    );
    const m = fake.messages.find((x) => x.id === r.platformIds[0])!;
    assert.deepEqual(
      { title: m.title, message: m.message, priority: m.priority, tags: m.tags, ct: m.content_type },
      { title: 'Disk', message: 'disk **full**', priority: 4, tags: ['disk', 'talon'], ct: 'text/markdown' },
    );
    const crit = await ch.send({ id: 'o2', text: 'x', priority: 'critical', tags: [] }, sig());
    assert.equal(fake.messages.find((x) => x.id === crit.platformIds[0])!.priority, 5);
  });

  it('cuts at 4096 UTF-8 bytes, not characters', async () => {
    const ch = await channel();
    const text = 'ü€'.repeat(1500); // 3000 characters, 7500 bytes
    const r = await ch.send({ id: 'o3', text, priority: 'normal', tags: [] }, sig());
    const parts = r.platformIds.map((id) => fake.messages.find((x) => x.id === id)!.message);
    assert.ok(parts.length >= 2);
    for (const p of parts) assert.ok(Buffer.byteLength(p) <= 4096, `${Buffer.byteLength(p)} bytes`);
    assert.equal(parts.join(''), text);
  });

  it('a first receive without a cursor starts from now: no backlog, and the timestamp cursor comes back', async () => {
    await fresh();
    fake.publish(fake.topic, 'an old message', { time: Math.floor(Date.now() / 1000) - 3600 });
    const ch = await channel();
    const b = await ch.receive!(undefined, sig(1500));
    assert.deepEqual(b.messages, []);
    assert.match(String(b.cursor), /^\d{10}$/);
    assert.equal(fake.sinces.at(-1), b.cursor);
  });

  it('waits on the stream and returns a message published meanwhile', async () => {
    await fresh();
    const ch = await channel();
    const first = await ch.receive!(undefined, sig(800));
    const n = fake.sinces.length;
    const p = ch.receive!(first.cursor, sig(20_000));
    // the poll, then the stream: both asked with the same cursor
    await waitFor(() => fake.sinces.length >= n + 2, 'the stream request');
    const m = fake.publish(fake.topic, 'reboot please');
    const b = await p;
    assert.deepEqual(
      b.messages.map((x) => [x.platformId, x.text, x.fromBot]),
      [[m.id, 'reboot please', false]],
    );
    assert.equal(b.cursor, m.id);
  });

  it('the since-cursor carries across a restart: what came while down arrives, nothing twice', async () => {
    await fresh();
    const a = await channel();
    const start = await a.receive!(undefined, sig(800));
    const m1 = fake.publish(fake.topic, 'one');
    const b1 = await a.receive!(start.cursor, sig());
    assert.deepEqual(
      b1.messages.map((x) => x.text),
      ['one'],
    );
    const cursor = b1.cursor;
    assert.equal(cursor, m1.id);
    await a.close?.();
    // Talon is down: two messages arrive
    fake.publish(fake.topic, 'two');
    fake.publish(fake.topic, 'three');
    const b = await channel();
    const b2 = await b.receive!(cursor, sig());
    assert.deepEqual(
      b2.messages.map((x) => x.text),
      ['two', 'three'],
    );
    const again = await b.receive!(b2.cursor, sig(1200));
    assert.deepEqual(again.messages, []);
    assert.equal(again.cursor, b2.cursor);
  });

  it("Talon's own messages come back as fromBot, even to a channel started later (the talon tag)", async () => {
    await fresh();
    const a = await channel();
    const start = await a.receive!(undefined, sig(800));
    const sent = await a.send({ id: 'o9', text: 'alert: disk', priority: 'normal', tags: [] }, sig());
    const got = await a.receive!(start.cursor, sig());
    assert.deepEqual(
      got.messages.map((x) => [x.platformId, x.fromBot]),
      [[sent.platformIds[0], true]],
    );
    const later = await channel();
    const got2 = await later.receive!(start.cursor, sig());
    assert.equal(got2.messages.find((x) => x.platformId === sent.platformIds[0])?.fromBot, true);
  });

  it('a wrong token on receive is an auth error; user:pass is Basic auth', async () => {
    const ch = await channel(fake.url, { ntfy_token: 'tk_wrong' });
    await assert.rejects(ch.receive!('all', sig()), (e: Error & { kind?: string }) => e.kind === 'auth');
    const f2 = await startNtfy({ user: 'phil', password: 'pw-phil' });
    try {
      const basic = await makeChannel(ntfy, {
        url: f2.url.replace('{secret:ntfy_token}', 'phil:{secret:p}'),
        secrets: { p: 'pw-phil' },
      });
      const r = await basic.send({ id: 'o', text: 'hi', priority: 'low', tags: [] }, sig());
      assert.equal(f2.messages.find((x) => x.id === r.platformIds[0])?.priority, 2);
    } finally {
      await f2.close();
    }
  });

  it('?priority= fixes the priority; a bad topic is a config error', async () => {
    const ch = await channel(`${fake.url}?priority=max`);
    const r = await ch.send({ id: 'o', text: 'hi', priority: 'low', tags: [] }, sig());
    assert.equal(fake.messages.find((x) => x.id === r.platformIds[0])?.priority, 5);
    await assert.rejects(channel(fake.url.replace(fake.topic, 'bad topic!')), /not an ntfy topic/);
  });
});
