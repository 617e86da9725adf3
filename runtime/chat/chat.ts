/**
 * Resumable chat. Posting a user message stores it and an assistant message with status
 * `streaming`, then answers in the kernel, detached from the HTTP request that asked: from
 * the LLM router or from a Hand (`hand:<name>`). While it streams, the text lives in memory
 * (written to the store about every second); it is written for good when the answer is
 * `done` or ends in `error`. Subscribers attach at any character offset and get the rest as
 * deltas, then `done` (or `error`). On start, messages left `streaming` by a stop or a crash
 * become `error` (interrupted), so a page that reloads never shows half an answer as whole.
 */
import { randomBytes } from 'node:crypto';
import type { Audit } from '../audit/types.ts';
import type { Caller } from '../supervisor/types.ts';
import type { ChatMessage } from '../llm/types.ts';
import type { Store } from '../store/store.ts';
import { TalonError } from '../core/errors.ts';
import { CHAT_TARGET as TARGET } from '../core/names.ts';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';
import { ChatStore, messageId, type ChatTarget, type Conversation, type Message } from './store.ts';

export type { ChatTarget, Conversation, Message } from './store.ts';

/** One piece of an answer: text to append, and who is answering (first piece). */
export interface AnswerPiece {
  text: string;
  provider?: string;
}

/** Produces the answer to a conversation; must stop when `signal` aborts. */
export type AnswerSource = (
  target: ChatTarget,
  messages: ChatMessage[],
  ctx: { signal: AbortSignal; actor: string },
) => AsyncIterable<AnswerPiece>;

export interface ChatListener {
  delta(offset: number, text: string): void;
  done(message: Message): void;
  error(message: Message): void;
}

export const MAX_ANSWER_CHARS = 256 * 1024;
export const MAX_CONTEXT_MESSAGES = 20;
export const FLUSH_EVERY_MS = 1000;
const CONV_ID = /^[a-f0-9]{16}$/;

interface Live {
  conversation: string;
  message: Message;
  text: string;
  listeners: Set<ChatListener>;
  abort: AbortController;
  lastFlush: number;
  finished: Promise<void>;
}

export class ChatService {
  #store: ChatStore;
  #audit: Audit;
  #answer: AnswerSource;
  #clock: Clock;
  #live = new Map<string, Live>();
  #locks = new Map<string, Promise<unknown>>();
  #stopped = false;

  constructor(opts: { store: Store; audit: Audit; answer: AnswerSource; clock?: Clock }) {
    this.#store = new ChatStore(opts.store);
    this.#audit = opts.audit;
    this.#answer = opts.answer;
    this.#clock = opts.clock ?? systemClock;
  }

  /** Marks answers a previous run left streaming as interrupted. */
  async start(): Promise<number> {
    const left = await this.#store.streaming();
    for (const { conversation, message } of left) {
      await this.#store.putMessage(conversation, {
        ...message,
        status: 'error',
        error: {
          code: 'INTERRUPTED',
          message: 'the answer was interrupted: the kernel stopped or restarted while it was being written',
        },
      });
    }
    return left.length;
  }

  /** Aborts answers in flight; each is stored as an error. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const lives = [...this.#live.values()];
    for (const l of lives) l.abort.abort();
    await Promise.all(lives.map((l) => l.finished));
  }

  list(_caller: Caller): Promise<Conversation[]> {
    return this.#store.conversations();
  }

  async create(caller: Caller, target: string, title?: string): Promise<Conversation> {
    if (!TARGET.test(target))
      throw new TalonError(
        'BAD_REQUEST',
        `target must be "router" or "hand:<name>", got ${JSON.stringify(target.slice(0, 80))}`,
      );
    const now = this.#clock.now();
    const c: Conversation = {
      id: randomBytes(8).toString('hex'),
      title: (title ?? '').trim().slice(0, 200) || 'New conversation',
      target: target as ChatTarget,
      createdAt: now,
      updatedAt: now,
    };
    await this.#store.putConversation(c);
    await this.#audit.record({
      actor: caller.actor,
      action: 'api.chat.create',
      subject: c.id,
      decision: 'ok',
      detail: { target },
    });
    return c;
  }

  async get(_caller: Caller, id: string): Promise<{ conversation: Conversation; messages: Message[] }> {
    const conversation = await this.#conversation(id);
    const messages = (await this.#store.messages(id)).map((m) => {
      const live = this.#live.get(`${id}/${m.id}`);
      return live ? { ...live.message, content: live.text } : m;
    });
    return { conversation, messages };
  }

  async delete(caller: Caller, id: string): Promise<{ deleted: true }> {
    await this.#conversation(id);
    for (const [k, l] of this.#live)
      if (l.conversation === id) {
        l.abort.abort();
        await l.finished;
        this.#live.delete(k);
      }
    await this.#store.deleteConversation(id);
    await this.#audit.record({ actor: caller.actor, action: 'api.chat.delete', subject: id, decision: 'ok' });
    return { deleted: true };
  }

  /** Stores the user's message and starts the answer; returns both (the answer `streaming`). */
  post(caller: Caller, id: string, content: string): Promise<{ user: Message; assistant: Message }> {
    const prev = this.#locks.get(id) ?? Promise.resolve();
    const run = prev.then(() => this.#post(caller, id, content));
    const tail = run.catch(() => {});
    this.#locks.set(id, tail);
    void tail.then(() => {
      if (this.#locks.get(id) === tail) this.#locks.delete(id);
    });
    return run;
  }

  async #post(caller: Caller, id: string, content: string): Promise<{ user: Message; assistant: Message }> {
    if (this.#stopped)
      throw new TalonError('NOT_RUNNING', 'the kernel is stopping; send the message again in a moment');
    if (typeof content !== 'string' || content.trim().length === 0)
      throw new TalonError('BAD_REQUEST', 'content must be non-empty text');
    const conversation = await this.#conversation(id);
    for (const l of this.#live.values()) {
      if (l.conversation === id)
        throw new TalonError(
          'CONFLICT',
          'an answer is still being written in this conversation; wait for it (or its error) first',
        );
    }
    const history = await this.#store.messages(id);
    const last = history.at(-1);
    let seq = last ? Number(last.id) + 1 : 1;
    const now = this.#clock.now();
    const user: Message = { id: messageId(seq++), role: 'user', content, status: 'done', createdAt: now };
    const assistant: Message = {
      id: messageId(seq),
      role: 'assistant',
      content: '',
      status: 'streaming',
      createdAt: now,
    };
    await this.#store.putMessage(id, user);
    await this.#store.putMessage(id, assistant);
    const title =
      conversation.title === 'New conversation' ? content.trim().replace(/\s+/g, ' ').slice(0, 60) : conversation.title;
    await this.#store.putConversation({ ...conversation, title, updatedAt: now });
    await this.#audit.record({
      actor: caller.actor,
      action: 'api.chat.message',
      subject: id,
      decision: 'ok',
      detail: { target: conversation.target, chars: content.length },
    });
    const context: ChatMessage[] = [...history, user]
      .filter((m) => m.status === 'done' && m.content.length > 0)
      .slice(-MAX_CONTEXT_MESSAGES)
      .map((m) => ({ role: m.role, content: m.content }));
    const live: Live = {
      conversation: id,
      message: assistant,
      text: '',
      listeners: new Set(),
      abort: new AbortController(),
      lastFlush: now,
      finished: Promise.resolve(),
    };
    this.#live.set(`${id}/${assistant.id}`, live);
    live.finished = this.#run(live, conversation.target, context, caller.actor);
    return { user, assistant: { ...assistant } };
  }

  async #run(live: Live, target: ChatTarget, context: ChatMessage[], actor: string): Promise<void> {
    const key = `${live.conversation}/${live.message.id}`;
    let final: Message;
    const signal = live.abort.signal;
    // a source that ignores the signal must not hold up a stop: the abort wins the race
    const aborted = new Promise<never>((_resolve, reject) => {
      signal.addEventListener(
        'abort',
        () =>
          reject(
            new TalonError(
              'NOT_RUNNING',
              'the answer was interrupted (the kernel stopped, or the conversation was deleted)',
            ),
          ),
        { once: true },
      );
    });
    aborted.catch(() => {});
    const it = this.#answer(target, context, { signal, actor })[Symbol.asyncIterator]();
    try {
      for (;;) {
        const r = await Promise.race([it.next(), aborted]);
        if (r.done) break;
        const piece = r.value;
        if (piece.provider && !live.message.provider) live.message = { ...live.message, provider: piece.provider };
        if (!piece.text) continue;
        if (live.text.length + piece.text.length > MAX_ANSWER_CHARS)
          throw new TalonError('PAYLOAD_TOO_LARGE', `the answer passed ${MAX_ANSWER_CHARS} characters and was cut`);
        const offset = live.text.length;
        live.text += piece.text;
        for (const l of live.listeners) safe(() => l.delta(offset, piece.text));
        const now = this.#clock.now();
        if (now - live.lastFlush >= FLUSH_EVERY_MS) {
          live.lastFlush = now;
          await this.#store.putMessage(live.conversation, { ...live.message, content: live.text }).catch(() => {});
        }
      }
      if (signal.aborted)
        throw new TalonError(
          'NOT_RUNNING',
          'the answer was interrupted (the kernel stopped, or the conversation was deleted)',
        );
      final = { ...live.message, content: live.text, status: 'done' };
    } catch (err) {
      const e = TalonError.from(err);
      final = {
        ...live.message,
        content: live.text,
        status: 'error',
        error: { code: e.code === 'NOT_RUNNING' ? 'INTERRUPTED' : e.code, message: e.message },
      };
      void Promise.resolve(it.return?.()).catch(() => {});
    }
    await this.#store.putMessage(live.conversation, final).catch(() => {});
    this.#live.delete(key);
    for (const l of live.listeners) safe(() => (final.status === 'done' ? l.done(final) : l.error(final)));
    live.listeners.clear();
  }

  /**
   * Attaches to an assistant message from character `from`: the text after it as one delta,
   * then live deltas, then done or error. Returns the detach function.
   */
  async subscribe(_caller: Caller, id: string, mid: string, from: number, listener: ChatListener): Promise<() => void> {
    await this.#conversation(id);
    const live = this.#live.get(`${id}/${mid}`);
    if (live) {
      const start = Math.min(Math.max(0, from), live.text.length);
      if (start < live.text.length) listener.delta(start, live.text.slice(start));
      live.listeners.add(listener);
      return () => live.listeners.delete(listener);
    }
    const m = await this.#store.message(id, mid);
    if (!m) throw new TalonError('NOT_FOUND', `conversation ${id} has no message ${mid.slice(0, 20)}`);
    const start = Math.min(Math.max(0, from), m.content.length);
    if (start < m.content.length) listener.delta(start, m.content.slice(start));
    if (m.status === 'error' || m.status === 'streaming')
      listener.error(m.status === 'error' ? m : { ...m, status: 'error' });
    else listener.done(m);
    return () => {};
  }

  async #conversation(id: string): Promise<Conversation> {
    if (!CONV_ID.test(id)) throw new TalonError('BAD_REQUEST', `"${id.slice(0, 40)}" is not a conversation id`);
    const c = await this.#store.conversation(id);
    if (!c) throw new TalonError('NOT_FOUND', `there is no conversation ${id}`);
    return c;
  }
}

function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    // a listener that throws (a closed response) must not stop the answer
  }
}
