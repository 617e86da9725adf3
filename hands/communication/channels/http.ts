/**
 * What every HTTP channel shares: one request through the Hand's granted fetch, its failures sorted into
 * ChannelError kinds (./types.ts), the platform's wait read from `Retry-After` or its own body field.
 */
import type { ChannelEnv } from './types.ts';
import { ChannelError } from './types.ts';
import { readAnswer, retryAfterMs } from '../../sdk/http.ts';

export interface JsonCall {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  headers?: Record<string, string>;
  /** sent as JSON unless `form` or `raw` is given */
  json?: unknown;
  /** application/x-www-form-urlencoded */
  form?: Record<string, string>;
  /** a body as is (with its own content-type in headers) */
  raw?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** the platform's wait in a 429's JSON body, in ms (Telegram parameters.retry_after, Discord retry_after) */
  retryAfterOf?: (body: unknown) => number | undefined;
  /** the platform's own "not ok" in a 200 (Slack `ok: false`): return a ChannelError to throw, or undefined */
  check?: (body: unknown, res: Response) => ChannelError | undefined;
}

/** Retry-After as ms: seconds or an HTTP date; undefined when absent or unreadable */
export function retryAfterHeader(h: Headers, now = Date.now()): number | undefined {
  return retryAfterMs(h.get('retry-after'), now);
}

/** a status that is not 2xx as a ChannelError (the body's text, cut, says why) */
export function statusError(platform: string, status: number, detail: string, retryAfterMs?: number): ChannelError {
  const why = detail ? `: ${detail.slice(0, 200)}` : '';
  if (status === 401 || status === 403)
    return new ChannelError(
      'auth',
      `${platform} refused the credentials (${status})${why}; check the channel's secret`,
      { status },
    );
  if (status === 429)
    return new ChannelError('rate', `${platform} asks to slow down (429)${why}`, {
      status,
      retryAfterMs: retryAfterMs ?? 1000,
    });
  if (status === 408 || status >= 500)
    return new ChannelError('transient', `${platform} failed (${status})${why}`, {
      status,
      ...(retryAfterMs !== undefined && { retryAfterMs }),
    });
  return new ChannelError('permanent', `${platform} refused the message (${status})${why}`, { status });
}

/** one JSON call: resolves the parsed body of a 2xx, rejects with a ChannelError otherwise */
export async function callJson<T = unknown>(
  env: ChannelEnv,
  platform: string,
  url: string,
  c: JsonCall = {},
): Promise<T> {
  const headers: Record<string, string> = {
    'user-agent': `talon/${env.self}`,
    accept: 'application/json',
    ...c.headers,
  };
  let body: string | undefined;
  if (c.json !== undefined) {
    body = JSON.stringify(c.json);
    headers['content-type'] ??= 'application/json';
  } else if (c.form !== undefined) {
    body = new URLSearchParams(c.form).toString();
    headers['content-type'] ??= 'application/x-www-form-urlencoded';
  } else if (c.raw !== undefined) body = c.raw;
  let res: Response;
  try {
    res = await env.fetch(url, {
      method: c.method ?? (body !== undefined ? 'POST' : 'GET'),
      headers,
      ...(body !== undefined && { body }),
      ...(c.signal && { signal: c.signal }),
      ...(c.timeoutMs !== undefined && { timeoutMs: c.timeoutMs }),
    });
  } catch (err) {
    const e = err as { code?: string; message?: string; name?: string };
    if (e.name === 'AbortError' || c.signal?.aborted) throw err;
    // a host outside the grant is a configuration problem, not a network one
    if (e.code === 'CAPABILITY_DENIED')
      throw new ChannelError('auth', `${platform}: ${e.message ?? 'the network grant refuses this host'}`, {
        status: e.code,
        cause: err,
      });
    throw new ChannelError('transient', `${platform}: ${e.message ?? String(err)}`, { status: e.code, cause: err });
  }
  const { text, json: parsed, isJson: parsedOk } = await readAnswer(res);
  if (!res.ok) {
    const after = retryAfterHeader(res.headers, env.now()) ?? (parsedOk ? c.retryAfterOf?.(parsed) : undefined);
    throw statusError(platform, res.status, parsedOk ? JSON.stringify(parsed) : text, after);
  }
  if (text !== '' && !parsedOk)
    throw new ChannelError(
      'transient',
      `${platform} answered ${res.status} with something that is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
      {
        status: res.status,
      },
    );
  const bad = c.check?.(parsed, res);
  if (bad) throw bad;
  return parsed as T;
}
