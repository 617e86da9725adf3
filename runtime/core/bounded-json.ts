/**
 * JSON with a size budget, for what crosses between a Hand's worker and the kernel: gives up as
 * soon as the budget is spent, so a 100 MB object costs no more than the budget to refuse.
 */

/** `value` as JSON when that takes at most `max` bytes, else null (also for what is not JSON: a cycle, a BigInt) */
export function boundedJson(value: unknown, max: number): string | null {
  let budget = max;
  const over = new Error('over');
  let json: string | undefined;
  try {
    json = JSON.stringify(value, (key, v: unknown) => {
      budget -= key.length + 4;
      if (typeof v === 'string') budget -= v.length + 2;
      else if (typeof v !== 'object' || v === null) budget -= 8;
      if (budget < 0) throw over;
      return v;
    });
  } catch {
    return null;
  }
  if (json === undefined || Buffer.byteLength(json) > max) return null;
  return json;
}
