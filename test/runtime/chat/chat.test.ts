/** ChatService over a real store: answers left streaming by a crash become errors at start; deltas from an offset. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../runtime/store/store.ts';
import { ChatService, type AnswerSource } from '../../../runtime/chat/chat.ts';
import type { Message } from '../../../runtime/chat/store.ts';

const audit = { record: async () => {} };
const caller = { actor: 'user:ada' };

test('an answer a crash left streaming is an interrupted error after the next start; its text is kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-chat-'));
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const slow: AnswerSource = async function* () {
    yield { text: 'half ' };
    await gate;
    yield { text: 'never' };
  };
  let store = await Store.open(dir);
  const chat = new ChatService({ store, audit, answer: slow, clock: { now: () => 5_000 } as never });
  const c = await chat.create(caller, 'router');
  const { assistant } = await chat.post(caller, c.id, 'hi');
  const seen: string[] = [];
  await new Promise<void>((resolve) => {
    void chat.subscribe(caller, c.id, assistant.id, 0, {
      delta: (_o, t) => {
        seen.push(t);
        resolve();
      },
      done: () => {},
      error: () => {},
    });
  });
  // "crash": the store holds the message as streaming (flushed), the process goes away without stop()
  const { messages } = await chat.get(caller, c.id);
  assert.equal(messages[1]!.status, 'streaming');
  const db = store.sublevel('chat');
  await db.put(`m/${c.id}/${assistant.id}`, { ...messages[1]!, content: 'half ' });
  release();
  await chat.stop();
  await db.put(`m/${c.id}/${assistant.id}`, { ...messages[1]!, content: 'half ', status: 'streaming' });
  await store.close();

  store = await Store.open(dir);
  const next = new ChatService({ store, audit, answer: slow });
  assert.equal(await next.start(), 1);
  const after = (await next.get(caller, c.id)).messages[1] as Message;
  assert.equal(after.status, 'error');
  assert.equal(after.error?.code, 'INTERRUPTED');
  assert.equal(after.content, 'half ');
  const got: string[] = [];
  let ended: Message | null = null;
  await next.subscribe(caller, c.id, assistant.id, 2, {
    delta: (o, t) => got.push(`${o}:${t}`),
    done: () => {},
    error: (m) => {
      ended = m;
    },
  });
  assert.deepEqual(got, ['2:lf ']);
  assert.equal((ended as Message | null)?.status, 'error');
  await store.close();
});
