/**
 * The page's chat follower (web-admin/page/src/chat-stream.ts) against a real SSE server on
 * 127.0.0.1: a connection dropped mid-answer is resumed with from= the length shown, with
 * nothing lost or repeated; `done` replaces the text with the stored message; `error` shows the
 * stored message as failed; the message never ends "done" without the server saying so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { followMessage, parseSse, type FollowUpdate } from '../../web-admin/page/src/chat-stream.ts';

const FULL = 'The quick brown fox jumps over the lazy dog, twice over.';

type Script = (from: number, conn: number, res: ServerResponse) => void;

async function serve(script: Script): Promise<{ url: string; froms: number[]; close: () => Promise<void> }> {
  const froms: number[] = [];
  const server = createServer((req, res) => {
    const from = Number(new URL(req.url!, 'http://x').searchParams.get('from'));
    froms.push(from);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    script(from, froms.length, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v1/chat/c1/messages/m2/stream`,
    froms,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const delta = (res: ServerResponse, offset: number, text: string): boolean =>
  res.write(`event: delta\ndata: ${JSON.stringify({ offset, text })}\n\n`);
const done = (res: ServerResponse, content: string, status = 'done'): void => {
  res.end(`event: done\ndata: ${JSON.stringify({ id: 'm2', role: 'assistant', content, status })}\n\n`);
};

test('parseSse splits complete events and keeps the rest', () => {
  const { events, rest } = parseSse(
    'event: delta\ndata: {"a":1}\n\n: ping\n\ndata: x\r\ndata: y\r\n\r\nevent: done\ndata: {',
  );
  assert.deepEqual(events, [
    { event: 'delta', data: '{"a":1}' },
    { event: 'message', data: 'x\ny' },
  ]);
  assert.equal(rest, 'event: done\ndata: {');
});

test('a connection dropped mid-answer resumes from the length shown, and done replaces the text', async () => {
  const s = await serve((from, conn, res) => {
    if (conn === 1) {
      // 20 characters in pieces, then the connection dies without done
      for (let o = 0; o < 15; o += 5) delta(res, o, FULL.slice(o, o + 5));
      res.write(`event: delta\ndata: ${JSON.stringify({ offset: 15, text: FULL.slice(15, 20) })}\n\n`, () =>
        res.destroy(),
      );
      return;
    }
    // resent overlap: the server starts 3 characters before `from`; the client must not repeat them
    const o = Math.max(0, from - 3);
    delta(res, o, FULL.slice(o, 40));
    done(res, FULL);
  });
  const updates: FollowUpdate[] = [];
  const final = await followMessage({ url: s.url, onUpdate: (u) => updates.push(u), backoff: () => 0 });
  await s.close();
  assert.deepEqual(s.froms, [0, 20], 'the second request asks from what was shown');
  assert.equal(final.status, 'done');
  assert.equal(final.text, FULL);
  assert.equal(final.reconnects, 1);
  for (const u of updates.slice(0, -1)) {
    assert.equal(u.status, 'streaming', 'nothing looks complete before done');
    assert.ok(FULL.startsWith(u.text), `every partial text is a prefix of the answer: ${JSON.stringify(u.text)}`);
  }
  assert.ok(
    updates.some((u) => u.reconnecting),
    'the drop is shown while reconnecting',
  );
});

test('an error event shows the stored message as failed', async () => {
  const s = await serve((_from, _conn, res) => {
    delta(res, 0, 'Half an ans');
    res.end(
      `event: error\ndata: ${JSON.stringify({ error: { code: 'LLM_FAILED', message: 'the model crashed' }, message: { id: 'm2', role: 'assistant', content: 'Half an answer', status: 'error' } })}\n\n`,
    );
  });
  const final = await followMessage({ url: s.url, onUpdate: () => undefined, backoff: () => 0 });
  await s.close();
  assert.equal(final.status, 'error');
  assert.equal(final.text, 'Half an answer', 'the stored text, not what had streamed');
  assert.equal(final.error, 'the model crashed');
});

test('an already finished message answers done at once, from what the page shows', async () => {
  const s = await serve((_from, _conn, res) => done(res, FULL));
  const final = await followMessage({
    url: s.url,
    initial: FULL.slice(0, 10),
    onUpdate: () => undefined,
    backoff: () => 0,
  });
  await s.close();
  assert.deepEqual(s.froms, [10]);
  assert.equal(final.status, 'done');
  assert.equal(final.text, FULL);
});

test('a gap in offsets reconnects instead of showing a broken text; a server that never finishes ends as an error', async () => {
  const s = await serve((from, conn, res) => {
    if (conn === 1) {
      delta(res, 0, FULL.slice(0, 5));
      delta(res, 9, FULL.slice(9, 15));
      return;
    }
    delta(res, from, FULL.slice(from));
    done(res, FULL);
  });
  const final = await followMessage({ url: s.url, onUpdate: () => undefined, backoff: () => 0 });
  await s.close();
  assert.deepEqual(s.froms, [0, 5]);
  assert.equal(final.text, FULL);

  const dead = await serve((_from, _conn, res) => res.end());
  const failed = await followMessage({
    url: dead.url,
    initial: 'partial',
    onUpdate: () => undefined,
    backoff: () => 0,
    maxFailures: 3,
  });
  await dead.close();
  assert.equal(dead.froms.length, 3);
  assert.equal(failed.status, 'error', 'never left looking complete');
  assert.equal(failed.text, 'partial');
});
