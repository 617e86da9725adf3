/** The LLM router: providers, breaker state and usage; one chat (JSON or streamed). */
import { defineRoutes, route } from '../route.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { anyObject, bool, int, obj, str } from './schemas.ts';
import { sseHeaders, sseSend } from './sse.ts';

const MESSAGE = obj({ role: { type: 'string', enum: ['system', 'user', 'assistant'] }, content: str(60_000) });

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/llm/providers',
    operationId: 'llmProviders',
    summary: 'LLM providers: breaker state, last error, p50 latency, calls; usage and cost per provider and Hand',
    tag: 'llm',
    access: 'read',
    responses: {
      200: {
        description: 'providers and usage',
        schema: obj({ providers: { type: 'array', items: anyObject }, usage: anyObject }),
      },
    },
    handler: async ({ api, caller }) => ({
      providers: await api.llm.providers(caller),
      usage: await api.llm.usage(caller),
    }),
  },
  route({
    method: 'POST',
    path: '/api/v1/llm/chat',
    operationId: 'llmChat',
    summary: 'Chat through the LLM router; {"stream": true} answers with server-sent events',
    tag: 'llm',
    access: 'write',
    body: {
      ...obj(
        {
          prompt: str(60_000, { minLength: 1 }),
          messages: { type: 'array', minItems: 1, maxItems: 200, items: MESSAGE },
          provider: str(64),
          maxTokens: int(1, 32768),
          stream: bool,
        },
        ['prompt', 'messages', 'provider', 'maxTokens', 'stream'],
      ),
      oneOf: [{ required: ['prompt'] }, { required: ['messages'] }],
    },
    responses: {
      200: {
        description: 'the answer (stream: text/event-stream of chunks, `event: error` on failure)',
        schema: anyObject,
      },
    },
    handler: async ({ api, caller, body, signal, res }) => {
      if (!body.stream) return api.llm.chat(caller, body);
      const it = api.llm.stream(caller, body)[Symbol.asyncIterator]();
      // the first chunk decides the status: an error before any output is a plain JSON error
      const first = await it.next();
      sseHeaders(res);
      try {
        for (let r = first; !r.done && !signal.aborted; r = await it.next()) sseSend(res, r.value);
      } catch (err) {
        sseSend(res, { error: TalonError.from(err).toJSON() }, 'error');
      }
      res.end();
      return undefined;
    },
  }),
]);
