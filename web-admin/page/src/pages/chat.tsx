/**
 * Chat with the LLM router or a Hand, in stored conversations. Answers stream in and survive
 * a dropped connection (see ../chat-stream.ts); each answer carries data-testid="chat-answer"
 * and data-status="streaming|done|error".
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { del, enc, get, message, post } from '../api.ts';
import { followMessage, type ChatMessage } from '../chat-stream.ts';
import { time } from '../chart.tsx';
import type { PageProps } from '../system.ts';

interface Conversation {
  id: string;
  title?: string;
  target: string;
  createdAt?: number | string;
  updatedAt?: number | string;
}

interface Shown extends ChatMessage {
  reconnects?: number;
  reconnecting?: boolean;
  errorText?: string;
}

export function Chat({ args }: PageProps) {
  const [list, setList] = useState<Conversation[] | null>(null);
  const [targets, setTargets] = useState<string[]>(['router']);
  const [target, setTarget] = useState('router');
  const [error, setError] = useState('');
  const current = args[0] ?? null;

  const load = (): Promise<void> =>
    get<{ conversations: Conversation[] }>('/api/v1/chat').then(
      (r) => setList(r.conversations),
      (e: unknown) => setError(message(e)),
    );
  useEffect(() => {
    void load();
    get<{ hands: Array<{ name: string }> }>('/api/v1/hands').then(
      (r) => setTargets(['router', ...r.hands.map((h) => `hand:${h.name}`)]),
      () => undefined,
    );
  }, []);

  const create = async (): Promise<void> => {
    try {
      const r = await post<{ conversation: Conversation }>('/api/v1/chat', { target });
      await load();
      location.hash = `#/chat/${enc(r.conversation.id)}`;
    } catch (e) {
      setError(message(e));
    }
  };

  return (
    <section class="chat-page">
      <h1>Chat</h1>
      {error && <p class="error">{error}</p>}
      <div class="chat-layout">
        <aside class="card conversations" data-testid="chat-conversations">
          <div class="row">
            <select
              data-testid="chat-target"
              value={target}
              onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}
            >
              {targets.map((t) => (
                <option key={t} value={t}>
                  {t === 'router' ? 'LLM router' : t}
                </option>
              ))}
            </select>
            <button type="button" class="small" data-testid="chat-new" onClick={create}>
              New chat
            </button>
          </div>
          <ul>
            {list?.map((c) => (
              <li key={c.id} class={c.id === current ? 'active' : ''}>
                <a href={`#/chat/${enc(c.id)}`} data-testid={`chat-conversation-${c.id}`}>
                  {c.title || c.id}
                </a>
                <small class="muted"> {c.target}</small>
              </li>
            ))}
          </ul>
          {list && list.length === 0 && <p class="muted">No conversations yet.</p>}
        </aside>
        {current ? (
          <Conversation
            key={current}
            id={current}
            onDeleted={() => {
              location.hash = '#/chat';
              void load();
            }}
          />
        ) : (
          <div class="card">
            <p class="muted">Pick a conversation or start a new one.</p>
          </div>
        )}
      </div>
    </section>
  );
}

function Conversation({ id, onDeleted }: { id: string; onDeleted: () => void }) {
  const [conv, setConv] = useState<Conversation | null>(null);
  const [messages, setMessages] = useState<Shown[]>([]);
  const [input, setInput] = useState('');
  const [error, setError] = useState('');
  const [sending, setSending] = useState(false);
  const aborts = useRef(new Map<string, AbortController>());
  const box = useRef<HTMLDivElement>(null);

  const patch = (mid: string, p: Partial<Shown>): void =>
    setMessages((ms) => ms.map((m) => (m.id === mid ? { ...m, ...p } : m)));

  const follow = (m: ChatMessage): void => {
    if (aborts.current.has(m.id)) return;
    const ac = new AbortController();
    aborts.current.set(m.id, ac);
    void followMessage({
      url: `/api/v1/chat/${enc(id)}/messages/${enc(m.id)}/stream`,
      initial: m.content,
      signal: ac.signal,
      onUpdate: (u) =>
        patch(m.id, {
          content: u.text,
          status: u.status,
          reconnects: u.reconnects,
          reconnecting: u.reconnecting,
          ...(u.message ? { ...u.message, content: u.text, status: u.status } : {}),
          ...(u.error ? { errorText: u.error } : {}),
        }),
    }).finally(() => aborts.current.delete(m.id));
  };

  useEffect(() => {
    get<{ conversation: Conversation; messages: ChatMessage[] }>(`/api/v1/chat/${enc(id)}`).then(
      (r) => {
        setConv(r.conversation);
        setMessages(r.messages);
        for (const m of r.messages) if (m.role === 'assistant' && m.status === 'streaming') follow(m);
      },
      (e: unknown) => setError(message(e)),
    );
    const map = aborts.current;
    return () => {
      for (const ac of map.values()) ac.abort();
      map.clear();
    };
  }, [id]);

  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [messages]);

  const send = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    const content = input.trim();
    if (!content || sending) return;
    setSending(true);
    setError('');
    try {
      const r = await post<{ user: ChatMessage; assistant: ChatMessage }>(`/api/v1/chat/${enc(id)}/messages`, {
        content,
      });
      setInput('');
      setMessages((ms) => [...ms, r.user, r.assistant]);
      if (r.assistant.status === 'streaming') follow(r.assistant);
    } catch (e) {
      setError(message(e));
    } finally {
      setSending(false);
    }
  };

  const remove = async (): Promise<void> => {
    try {
      await del(`/api/v1/chat/${enc(id)}`);
      onDeleted();
    } catch (e) {
      setError(message(e));
    }
  };

  const busy = messages.some((m) => m.status === 'streaming');
  return (
    <div class="card conversation" data-testid="chat-conversation" data-id={id}>
      <h2>
        {conv?.title || id} <small class="muted">{conv?.target}</small>
        <button type="button" class="small link" data-testid="chat-delete" onClick={remove}>
          Delete
        </button>
      </h2>
      <div class="messages" ref={box} data-testid="chat-messages">
        {messages.map((m) => (
          <div
            key={m.id}
            class={`msg msg-${m.role} msg-${m.status}`}
            data-testid={m.role === 'assistant' ? 'chat-answer' : `chat-${m.role}`}
            data-status={m.status}
            data-message-id={m.id}
            data-reconnects={String(m.reconnects ?? 0)}
          >
            <div class="msg-meta">
              {m.role === 'assistant' ? (m.provider ?? 'assistant') : m.role}
              {m.createdAt ? ` · ${time(typeof m.createdAt === 'number' ? m.createdAt : Date.parse(m.createdAt))}` : ''}
              {m.status === 'streaming' && (
                <span class="badge" data-testid="chat-streaming">
                  {m.reconnecting ? 'reconnecting…' : 'streaming…'}
                </span>
              )}
              {m.status === 'error' && <span class="badge bad">failed</span>}
            </div>
            <div class="msg-text">
              {m.content}
              {m.status === 'streaming' && <span class="cursor">▍</span>}
            </div>
            {m.status === 'error' && (
              <div class="error small" data-testid="chat-error">
                {m.errorText ?? (typeof m.error === 'string' ? m.error : m.error?.message) ?? 'the answer failed'}
                {m.content ? ' (the text above is incomplete)' : ''}
              </div>
            )}
          </div>
        ))}
      </div>
      {error && <p class="error">{error}</p>}
      <form class="chat-input" onSubmit={send}>
        <textarea
          data-testid="chat-input"
          rows={2}
          value={input}
          placeholder="Ask something…"
          onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) void send(e);
          }}
        />
        <button type="submit" data-testid="chat-send" disabled={sending || busy || !input.trim()}>
          Send
        </button>
      </form>
    </div>
  );
}
