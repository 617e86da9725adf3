import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  guardedFetch,
  parseRetryAfter,
  redact,
  sseEvents,
  readText,
  type SseEvent,
} from '../../../runtime/llm/providers/http.ts';
import { TalonError } from '../../../runtime/core/errors.ts';

const ctx = { provider: 't', secrets: ['sk-verysecret-123'] };

function bytes(...parts: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const p of parts) c.enqueue(enc.encode(p));
      c.close();
    },
  });
}

async function events(s: ReadableStream<Uint8Array>): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of sseEvents(s, ctx)) out.push(e);
  return out;
}

describe('providers/http', () => {
  it('SSE: LF, CRLF and CR line ends, split anywhere, comments, multi-line data, named events', async () => {
    const got = await events(
      bytes(
        ': hello\n',
        'event: a\r',
        '\ndata: {"x"',
        ':1}\r\n\r\ndata: one\ndata: two\n\n',
        'data:no-space\r\r',
        'data: dropped at EOF',
      ),
    );
    assert.deepEqual(got, [
      { event: 'a', data: '{"x":1}' },
      { event: 'message', data: 'one\ntwo' },
      { event: 'message', data: 'no-space' },
    ]);
  });

  it('Retry-After: seconds or an HTTP date against the injected clock', () => {
    assert.equal(parseRetryAfter('7'), 7000);
    assert.equal(parseRetryAfter('1.5'), 1500);
    assert.equal(
      parseRetryAfter('Wed, 01 Jan 2025 00:01:00 GMT', () => Date.parse('2025-01-01T00:00:00Z')),
      60_000,
    );
    assert.equal(
      parseRetryAfter('Wed, 01 Jan 2025 00:01:00 GMT', () => Date.parse('2025-01-02T00:00:00Z')),
      0,
    );
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(null), undefined);
  });

  it('redact: the given secret and well-known key shapes', () => {
    assert.equal(redact('key sk-verysecret-123 refused', ['sk-verysecret-123']), 'key [redacted] refused');
    assert.equal(
      redact('got AIzaSyABCDEFGHIJKLMNOP and Bearer abc.def-ghi', []),
      'got [redacted] and Bearer [redacted]',
    );
    assert.equal(redact('sk-proj-abc***wxyz', []), '[redacted]');
  });

  it('a body over the cap → LLM_BAD_RESPONSE', async () => {
    const big = 'x'.repeat(5000);
    const res = await guardedFetch(
      'http://x/',
      { method: 'GET' },
      { ...ctx, maxBytes: 1000, fetch: async () => new Response(big) },
    );
    await assert.rejects(readText(res), (e: unknown) => e instanceof TalonError && e.code === 'LLM_BAD_RESPONSE');
  });
});
