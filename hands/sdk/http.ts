/**
 * Small pieces of HTTP that Hands talking to web APIs share (the Communication Hand's channels, the Lead Generation
 * Hand's CRMs, the web kit's fetcher): the Retry-After header read the way RFC 9110 writes it, and an answer's body read
 * once as text and, when it is JSON, parsed.
 */

/** Retry-After (`120`, `1.5`, or an HTTP date) in ms from `now`; undefined when absent or unreadable */
export function retryAfterMs(value: string | null | undefined, now: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** the body as text (an unreadable one is ''), and parsed when it is JSON (`json` is undefined and `isJson` false if not) */
export async function readAnswer(res: Response): Promise<{ text: string; json: unknown; isJson: boolean }> {
  const text = await res.text().catch(() => '');
  if (text === '') return { text, json: undefined, isJson: false };
  try {
    return { text, json: JSON.parse(text) as unknown, isJson: true };
  } catch {
    return { text, json: undefined, isJson: false };
  }
}
