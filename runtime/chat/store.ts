/**
 * Stored conversations in the store's `chat` sublevel:
 *   c/<conversation id>                 Conversation
 *   m/<conversation id>/<message id>    Message (ids are zero-padded sequence numbers, so keys sort in order)
 */
import type { Store, Sublevel } from '../store/store.ts';

export type ChatTarget = 'router' | `hand:${string}`;

export interface Conversation {
  id: string;
  title: string;
  target: ChatTarget;
  createdAt: number;
  updatedAt: number;
}

export type MessageStatus = 'streaming' | 'done' | 'error';

export interface Message {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  status: MessageStatus;
  error?: { code: string; message: string };
  /** who answered: the LLM provider, or `hand:<name>` */
  provider?: string;
  createdAt: number;
}

export const MESSAGE_ID_WIDTH = 8;
export const messageId = (seq: number): string => String(seq).padStart(MESSAGE_ID_WIDTH, '0');

export class ChatStore {
  #db: Sublevel<unknown>;

  constructor(store: Store) {
    this.#db = store.sublevel('chat');
  }

  async conversations(limit = 200): Promise<Conversation[]> {
    const out: Conversation[] = [];
    for await (const v of this.#db.values({ gte: 'c/', lt: 'c/\uffff' })) out.push(v as Conversation);
    return out.sort((a, b) => b.updatedAt - a.updatedAt).slice(0, limit);
  }

  async conversation(id: string): Promise<Conversation | undefined> {
    return (await this.#db.get(`c/${id}`)) as Conversation | undefined;
  }

  putConversation(c: Conversation): Promise<void> {
    return this.#db.put(`c/${c.id}`, c);
  }

  async messages(conversation: string): Promise<Message[]> {
    const out: Message[] = [];
    for await (const v of this.#db.values({ gte: `m/${conversation}/`, lt: `m/${conversation}/\uffff` }))
      out.push(v as Message);
    return out;
  }

  async message(conversation: string, id: string): Promise<Message | undefined> {
    return (await this.#db.get(`m/${conversation}/${id}`)) as Message | undefined;
  }

  putMessage(conversation: string, m: Message): Promise<void> {
    return this.#db.put(`m/${conversation}/${m.id}`, m);
  }

  async deleteConversation(id: string): Promise<void> {
    const keys: string[] = [];
    for await (const k of this.#db.keys({ gte: `m/${id}/`, lt: `m/${id}/\uffff` })) keys.push(k);
    await this.#db.batch([
      ...keys.map((key) => ({ type: 'del' as const, key })),
      { type: 'del' as const, key: `c/${id}` },
    ]);
  }

  /** every message still marked streaming (left by a stop or a crash mid-answer) */
  async streaming(): Promise<Array<{ conversation: string; message: Message }>> {
    const out: Array<{ conversation: string; message: Message }> = [];
    for await (const [k, v] of this.#db.iterator({ gte: 'm/', lt: 'm/\uffff' })) {
      const m = v as Message;
      if (m.status === 'streaming') out.push({ conversation: k.split('/')[1]!, message: m });
    }
    return out;
  }
}
