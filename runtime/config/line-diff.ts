/**
 * A unified line diff (LCS over the lines that differ, after the common head and tail are
 * trimmed). Enough for config files; a middle too large for the table is shown as a
 * whole-block replacement rather than taking seconds.
 */
const MAX_CELLS = 4_000_000;

type Op = { kind: ' ' | '-' | '+'; line: string };

function lcsOps(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  if (n * m > MAX_CELLS)
    return [...a.map((line) => ({ kind: '-' as const, line })), ...b.map((line) => ({ kind: '+' as const, line }))];
  const w = m + 1;
  const t = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      t[i * w + j] = a[i] === b[j] ? t[(i + 1) * w + j + 1]! + 1 : Math.max(t[(i + 1) * w + j]!, t[i * w + j + 1]!);
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      ops.push({ kind: ' ', line: a[i]! });
      i++;
      j++;
    } else if (t[(i + 1) * w + j]! >= t[i * w + j + 1]!) ops.push({ kind: '-', line: a[i++]! });
    else ops.push({ kind: '+', line: b[j++]! });
  }
  while (i < n) ops.push({ kind: '-', line: a[i++]! });
  while (j < m) ops.push({ kind: '+', line: b[j++]! });
  return ops;
}

/** `--- a` / `+++ b` and `@@` hunks with `context` lines around each change; '' when equal. */
export function unifiedDiff(
  before: string,
  after: string,
  opts: { from?: string; to?: string; context?: number } = {},
): string {
  if (before === after) return '';
  const a = before.split('\n');
  const b = after.split('\n');
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const ops: Op[] = [
    ...a.slice(0, head).map((line) => ({ kind: ' ' as const, line })),
    ...lcsOps(a.slice(head, a.length - tail), b.slice(head, b.length - tail)),
    ...a.slice(a.length - tail).map((line) => ({ kind: ' ' as const, line })),
  ];
  const ctx = opts.context ?? 3;
  const out = [`--- ${opts.from ?? 'current'}`, `+++ ${opts.to ?? 'proposed'}`];
  let k = 0;
  let ai = 1;
  let bi = 1;
  while (k < ops.length) {
    if (ops[k]!.kind === ' ') {
      k++;
      ai++;
      bi++;
      continue;
    }
    // a hunk: back up `ctx` context lines, run until `2*ctx` unchanged lines in a row
    const start = Math.max(0, k - ctx);
    let sa = ai - (k - start);
    let sb = bi - (k - start);
    let end = k;
    let same = 0;
    let e = k;
    while (e < ops.length) {
      if (ops[e]!.kind === ' ') {
        same++;
        if (same > 2 * ctx) break;
      } else {
        same = 0;
        end = e;
      }
      e++;
    }
    const stop = Math.min(ops.length, end + 1 + ctx);
    const lines: string[] = [];
    let na = 0;
    let nb = 0;
    for (let x = start; x < stop; x++) {
      const op = ops[x]!;
      lines.push(`${op.kind}${op.line}`);
      if (op.kind !== '+') na++;
      if (op.kind !== '-') nb++;
    }
    if (na === 0) sa--;
    if (nb === 0) sb--;
    out.push(`@@ -${sa},${na} +${sb},${nb} @@`, ...lines);
    for (let x = k; x < stop; x++) {
      if (ops[x]!.kind !== '+') ai++;
      if (ops[x]!.kind !== '-') bi++;
    }
    k = stop;
  }
  return out.join('\n') + '\n';
}
