/**
 * Chat: stored conversations with the LLM router or a Hand. Posting a message answers in the
 * kernel, detached from the request; the answer streams from any character offset, so a page
 * that lost its connection resumes with `?from=<characters shown>` (or Last-Event-ID) and
 * gets exactly the rest, then `done` (or `error`).
 */
import { defineRoutes, route, type Schema } from '../route.ts';
import { int, num, obj, open, params, str } from './schemas.ts';
import { openStream } from './live.ts';
import { CHAT_TARGET_PATTERN } from '../../runtime/core/names.ts';

const CONV_ID = { type: 'string', pattern: '^[a-f0-9]{16}$' } as const;
const MSG_ID = { type: 'string', pattern: '^[0-9]{8}$' } as const;
const TARGET = {
  type: 'string',
  pattern: CHAT_TARGET_PATTERN,
  description: '"router" (the LLM router) or "hand:<name>"',
} as const;
const CONVERSATION: Schema = open({ id: str(16), title: str(200), target: str(70), createdAt: num, updatedAt: num });
export const MESSAGE: Schema = open(
  {
    id: str(8),
    role: { type: 'string', enum: ['user', 'assistant'] },
    content: { type: 'string' },
    status: { type: 'string', enum: ['streaming', 'done', 'error'] },
    error: open({ code: str(), message: { type: 'string' } }),
    provider: str(),
    createdAt: num,
  },
  ['id', 'role', 'content', 'status', 'createdAt'],
);
const conv = params({ id: CONV_ID });

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/chat',
    operationId: 'listChats',
    summary: 'Conversations, most recently active first',
    tag: 'chat',
    access: 'read',
    responses: {
      200: { description: 'the conversations', schema: obj({ conversations: { type: 'array', items: CONVERSATION } }) },
    },
    handler: async ({ api, caller }) => ({ conversations: await api.chat.list(caller) }),
  },
  route({
    method: 'POST',
    path: '/api/v1/chat',
    operationId: 'createChat',
    summary: 'Start a conversation with the LLM router or a Hand',
    tag: 'chat',
    access: 'write',
    body: obj({ target: TARGET, title: str(200) }, ['title']),
    responses: { 201: { description: 'the new conversation', schema: obj({ conversation: CONVERSATION }) } },
    handler: async ({ api, caller, body }) => {
      return { conversation: await api.chat.create(caller, body.target, body.title) };
    },
  }),
  route({
    method: 'GET',
    path: '/api/v1/chat/{id}',
    operationId: 'getChat',
    summary: 'A conversation and its messages (an answer still streaming shows the text so far, status streaming)',
    tag: 'chat',
    access: 'read',
    params: conv,
    responses: {
      200: {
        description: 'the conversation',
        schema: obj({ conversation: CONVERSATION, messages: { type: 'array', items: MESSAGE } }),
      },
    },
    handler: ({ api, caller, params: p }) => api.chat.get(caller, p.id),
  }),
  route({
    method: 'DELETE',
    path: '/api/v1/chat/{id}',
    operationId: 'deleteChat',
    summary: 'Delete a conversation (an answer in flight is stopped)',
    tag: 'chat',
    access: 'write',
    params: conv,
    responses: { 200: { description: 'deleted', schema: obj({ deleted: { const: true } }) } },
    handler: ({ api, caller, params: p }) => api.chat.delete(caller, p.id),
  }),
  route({
    method: 'POST',
    path: '/api/v1/chat/{id}/messages',
    operationId: 'postChatMessage',
    summary: 'Send a message; the answer is written in the kernel (stream it from /messages/{mid}/stream)',
    tag: 'chat',
    access: 'write',
    params: conv,
    body: obj({ content: { type: 'string', minLength: 1, maxLength: 16000 } }),
    responses: {
      202: {
        description: 'the stored user message and the assistant message, status streaming',
        schema: obj({ user: MESSAGE, assistant: MESSAGE }),
      },
    },
    handler: ({ api, caller, params: p, body }) => api.chat.post(caller, p.id, body.content),
  }),
  route({
    method: 'GET',
    path: '/api/v1/chat/{id}/messages/{mid}/stream',
    operationId: 'streamChatMessage',
    summary:
      'Server-sent events of an answer from character `from`: `delta` {offset, text} events (id: the length after it), then `done` (the whole message) or `error` {error, message}',
    tag: 'chat',
    access: 'read',
    params: params({ id: CONV_ID, mid: MSG_ID }),
    query: obj({ from: int(0, 16 * 1024 * 1024) }, ['from']),
    responses: {
      200: {
        description: "text/event-stream; a delta event's data",
        contentType: 'text/event-stream',
        schema: obj({ offset: num, text: { type: 'string' } }),
      },
    },
    handler: async (ctx) => {
      const { api, caller, params: p, query, req } = ctx;
      const lastId = Number(req.headers['last-event-id']);
      const from = query.from !== undefined ? query.from : Number.isSafeInteger(lastId) && lastId >= 0 ? lastId : 0;
      let live: ReturnType<typeof openStream> | null = null;
      const early: Array<() => void> = [];
      const emit = (fn: () => void): void => {
        if (live) fn();
        else early.push(fn);
      };
      const off = await api.chat.follow(caller, p.id, p.mid, from, {
        delta: (offset, text) => emit(() => live!.send('delta', { offset, text }, offset + text.length)),
        done: (message) =>
          emit(() => {
            live!.send('done', message);
            live!.end();
          }),
        error: (message) =>
          emit(() => {
            live!.send('error', {
              error: message.error ?? { code: 'INTERNAL', message: 'the answer failed' },
              message,
            });
            live!.end();
          }),
      });
      live = openStream(ctx);
      live.onClose(off);
      for (const fn of early.splice(0)) fn();
      return undefined;
    },
  }),
]);
