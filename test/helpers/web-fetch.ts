/**
 * A ctx.fetch for Hands' unit tests that reaches the fixture web (test/fixtures/web/server.ts) under real host names:
 * every request goes to 127.0.0.1:<port> with the name kept in the Host header, so `http://acme-robotics.example:<port>/`
 * is served by the fixture's `acme-robotics.example` site. Real HTTP, real bodies; what the kernel adds (the grant,
 * DNS pinning, the byte cap) is the kernel's own tests' business. A name in `deny` answers CAPABILITY_DENIED as the
 * kernel would; `calls` records every URL asked for.
 */
import http from 'node:http';
import { Readable } from 'node:stream';
import type { HandContext } from '../../hands/sdk/types.ts';
import { TalonError } from '../../runtime/core/errors.ts';

export interface WebFetch {
  fetch: HandContext['fetch'];
  calls: string[];
}

export function webFetch(port: number, opts: { deny?: string[] } = {}): WebFetch {
  const calls: string[] = [];
  const fetchFn = (async (input: string | URL | { url: string }, init: Record<string, unknown> = {}) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    calls.push(url.href);
    if (opts.deny?.some((d) => url.hostname === d || url.hostname.endsWith(`.${d}`)))
      throw new TalonError('CAPABILITY_DENIED', `Hand may not reach ${url.host}: not in its network grant`);
    const headers: Record<string, string> = {};
    new Headers(init.headers as ConstructorParameters<typeof Headers>[0]).forEach((v, k) => {
      headers[k] = v;
    });
    headers.host = url.host;
    const timeoutMs = typeof init.timeoutMs === 'number' ? init.timeoutMs : 30_000;
    const signal = AbortSignal.any([
      AbortSignal.timeout(timeoutMs),
      ...(init.signal ? [init.signal as AbortSignal] : []),
    ]);
    const body =
      init.body === undefined || init.body === null
        ? undefined
        : Buffer.from(await new Response(init.body as ConstructorParameters<typeof Response>[0]).arrayBuffer());
    return new Promise<Response>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: url.pathname + url.search,
          method: (init.method as string) ?? 'GET',
          headers,
          signal,
        },
        (res) => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined) for (const one of Array.isArray(v) ? v : [v]) h.append(k, one);
          const status = res.statusCode ?? 500;
          const nobody = status === 204 || status === 304;
          if (nobody) res.resume();
          resolve(new Response(nobody ? null : (Readable.toWeb(res) as ReadableStream), { status, headers: h }));
        },
      );
      req.once('error', (err: Error) => {
        if (signal.aborted && signal.reason?.name === 'TimeoutError')
          reject(new TalonError('NET_TIMEOUT', `${url.host} did not answer within ${timeoutMs} ms`));
        else if (err.name === 'AbortError') reject(err);
        else reject(new TalonError('NET_CONNECT', `${url.host}: ${err.message}`));
      });
      req.end(body);
    });
  }) as HandContext['fetch'];
  return { fetch: fetchFn, calls };
}
