/**
 * The text diff a page watch reports with its 'changed' event (./watch.ts): what was removed, what was added, a
 * unified diff a person can read in a notification, and how many characters changed (the watch's `minChange`).
 *
 * Pure and bounded, so it runs in the Hand's worker on whatever a page answered:
 *   - the common head and tail are cut first; the middle is diffed with Myers' O((N+M)·D) algorithm over lines
 *     (tokens interned to numbers); past MAX_EDITS edits the middle is reported as all removed, all added (still
 *     true, only not minimal) instead of spending memory on the trace;
 *   - two single-line texts (a price, a heading) are diffed by words, so `added`/`removed` name the words;
 *   - a changed block of lines is measured by words when it is short (changedChars counts the words that changed,
 *     not the whole line); texts over LINES_ONLY_CHARS together are measured by lines only;
 *   - `unified` and the `added`/`removed` lists are capped at `maxChars` (default 10 000) with a note of what
 *     was left out, and `truncated` says so.
 */

/** what two texts differ by */
export interface TextDiff {
  /** lines (words, for two single-line texts) only in `after`, in order */
  added: string[];
  /** lines (words, for two single-line texts) only in `before`, in order */
  removed: string[];
  /** a unified diff: `@@ -a,b +c,d @@` hunks of ' ' context, '-' removed and '+' added lines; '' when equal */
  unified: string;
  /** characters that changed: removed plus added, measured by words where that was cheap, else by lines */
  changedChars: number;
  /** true when `unified`, `added` or `removed` were cut at maxChars */
  truncated: boolean;
}

export interface TextDiffOptions {
  /** unchanged lines shown around each change in `unified` (default 2) */
  context?: number;
  /** the most characters of `unified`, and of `added` and `removed` together (default 10 000) */
  maxChars?: number;
}

/** texts longer than this together are measured by lines only (no word refinement) */
export const LINES_ONLY_CHARS = 200_000;
/** Myers gives up past this many edits (its trace is O(D²) numbers): the middle is all removed, all added */
export const MAX_EDITS = 1_000;
/** a changed block of lines this short (removed + added) is measured by words */
const WORD_BLOCK_CHARS = 4_000;
/** two single-line texts this short are diffed by words */
const WORD_TEXT_CHARS = 2_000;

type Op = { kind: ' ' | '-' | '+'; text: string };

/** the diff of `before` and `after` (see the file comment) */
export function textDiff(before: string, after: string, opts: TextDiffOptions = {}): TextDiff {
  const context = Math.max(0, Math.floor(opts.context ?? 2));
  const maxChars = Math.max(100, Math.floor(opts.maxChars ?? 10_000));
  if (before === after) return { added: [], removed: [], unified: '', changedChars: 0, truncated: false };

  const total = before.length + after.length;
  const singleLine = !before.includes('\n') && !after.includes('\n') && total <= WORD_TEXT_CHARS;
  if (singleLine) {
    const ops = diffTokens(words(before), words(after));
    const added = runs(ops, '+');
    const removed = runs(ops, '-');
    const changedChars = countChanged(ops);
    const lines: Op[] = [];
    if (before !== '') lines.push({ kind: '-', text: before });
    if (after !== '') lines.push({ kind: '+', text: after });
    return finish(lines, added, removed, changedChars, context, maxChars, before, after);
  }

  const ops = diffTokens(splitLines(before), splitLines(after));
  let changedChars = 0;
  const refine = total <= LINES_ONLY_CHARS;
  // each block of adjacent changed lines: by words when short, else by the lines' lengths
  for (let i = 0; i < ops.length; ) {
    if (ops[i]!.kind === ' ') {
      i++;
      continue;
    }
    const del: string[] = [];
    const add: string[] = [];
    for (; i < ops.length && ops[i]!.kind !== ' '; i++) (ops[i]!.kind === '-' ? del : add).push(ops[i]!.text);
    const a = del.join('\n');
    const b = add.join('\n');
    if (refine && a.length + b.length <= WORD_BLOCK_CHARS && a !== '' && b !== '') {
      changedChars += countChanged(diffTokens(words(a), words(b)));
    } else for (const line of [...del, ...add]) changedChars += line.length;
  }
  const added = ops.filter((o) => o.kind === '+').map((o) => o.text);
  const removed = ops.filter((o) => o.kind === '-').map((o) => o.text);
  return finish(ops, added, removed, changedChars, context, maxChars, before, after);
}

function finish(
  ops: Op[],
  added: string[],
  removed: string[],
  changedChars: number,
  context: number,
  maxChars: number,
  before: string,
  after: string,
): TextDiff {
  const beforeLines = before === '' ? 0 : splitLines(before).length;
  const afterLines = after === '' ? 0 : splitLines(after).length;
  const uni = unified(ops, context, maxChars, beforeLines, afterLines);
  const budget = { left: maxChars, cut: false };
  const removedCapped = capList(removed, budget);
  const addedCapped = capList(added, budget);
  return {
    added: addedCapped,
    removed: removedCapped,
    unified: uni.text,
    changedChars,
    truncated: uni.truncated || budget.cut,
  };
}

/** the list, cut where the shared budget runs out, with a note of how many items were left out */
function capList(items: string[], budget: { left: number; cut: boolean }): string[] {
  const out: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const s = items[i]!;
    if (s.length > budget.left) {
      if (budget.left > 40) out.push(`${s.slice(0, budget.left - 20)}… (cut)`);
      const more = items.length - i - (budget.left > 40 ? 1 : 0);
      if (more > 0) out.push(`… ${more} more left out`);
      budget.left = 0;
      budget.cut = true;
      return out;
    }
    budget.left -= s.length;
    out.push(s);
  }
  return out;
}

/** `ops` as unified hunks with `context` lines around each change, cut at maxChars */
function unified(
  ops: Op[],
  context: number,
  maxChars: number,
  beforeLines: number,
  afterLines: number,
): { text: string; truncated: boolean } {
  // line numbers of each op in before (a) and after (b), 1-based
  const posA: number[] = [];
  const posB: number[] = [];
  let a = 1;
  let b = 1;
  for (const o of ops) {
    posA.push(a);
    posB.push(b);
    if (o.kind !== '+') a++;
    if (o.kind !== '-') b++;
  }
  // hunks: ranges of op indexes covering each change with its context, overlapping ranges merged
  const ranges: Array<[number, number]> = [];
  for (let i = 0; i < ops.length; i++) {
    if (ops[i]!.kind === ' ') continue;
    const from = Math.max(0, i - context);
    let j = i;
    while (j + 1 < ops.length && ops[j + 1]!.kind !== ' ') j++;
    const to = Math.min(ops.length - 1, j + context);
    const last = ranges.at(-1);
    if (last && from <= last[1] + 1) last[1] = to;
    else ranges.push([from, to]);
    i = j;
  }
  const out: string[] = [];
  let used = 0;
  for (const [from, to] of ranges) {
    let countA = 0;
    let countB = 0;
    for (let k = from; k <= to; k++) {
      if (ops[k]!.kind !== '+') countA++;
      if (ops[k]!.kind !== '-') countB++;
    }
    const startA = countA === 0 ? Math.min(posA[from]! - 1, beforeLines) : posA[from]!;
    const startB = countB === 0 ? Math.min(posB[from]! - 1, afterLines) : posB[from]!;
    const lines = [`@@ -${startA},${countA} +${startB},${countB} @@`];
    for (let k = from; k <= to; k++) lines.push(`${ops[k]!.kind}${ops[k]!.text}`);
    for (const line of lines) {
      if (used + line.length + 1 > maxChars) {
        out.push('… (diff cut)');
        return { text: out.join('\n'), truncated: true };
      }
      used += line.length + 1;
      out.push(line);
    }
  }
  return { text: out.join('\n'), truncated: false };
}

const splitLines = (s: string): string[] => (s === '' ? [] : s.split(/\r?\n/));
/** words and the white space between them, so a run of words joins back to its text */
const words = (s: string): string[] => s.match(/\s+|[^\s]+/g) ?? [];

/** runs of `kind` tokens not split by a kept word (the other side's tokens and kept white space join them) */
function runs(ops: Op[], kind: '+' | '-'): string[] {
  const out: string[] = [];
  let cur = '';
  for (const o of ops) {
    if (o.kind === kind) cur += o.text;
    else if (o.kind !== ' ') continue;
    else if (o.kind === ' ' && /^\s+$/.test(o.text) && cur !== '') cur += o.text;
    else if (cur !== '') {
      if (cur.trim() !== '') out.push(cur.trim());
      cur = '';
    }
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

/** characters of the tokens that changed, white space not counted */
function countChanged(ops: Op[]): number {
  let n = 0;
  for (const o of ops) if (o.kind !== ' ') n += o.text.replace(/\s+/g, '').length;
  return n;
}

/** the edit script from `a` to `b`: common head and tail cut, the middle by Myers (bounded) */
export function diffTokens(a: string[], b: string[]): Op[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const out: Op[] = [];
  for (let i = 0; i < head; i++) out.push({ kind: ' ', text: a[i]! });
  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  out.push(...myers(midA, midB));
  for (let i = a.length - tail; i < a.length; i++) out.push({ kind: ' ', text: a[i]! });
  return out;
}

/** Myers' greedy diff over interned tokens; all removed then all added past MAX_EDITS */
function myers(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const allChanged = (): Op[] => [
    ...a.map((text) => ({ kind: '-' as const, text })),
    ...b.map((text) => ({ kind: '+' as const, text })),
  ];
  if (n === 0 || m === 0) return allChanged();
  const ids = new Map<string, number>();
  const intern = (s: string): number => {
    let id = ids.get(s);
    if (id === undefined) {
      id = ids.size;
      ids.set(s, id);
    }
    return id;
  };
  const A = Int32Array.from(a, intern);
  const B = Int32Array.from(b, intern);
  const max = Math.min(n + m, MAX_EDITS);
  const offset = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = -1;
  for (let d = 0; d <= max && found < 0; d++) {
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x: number;
      if (k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!)) x = v[offset + k + 1]!;
      else x = v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && A[x] === B[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
  }
  if (found < 0) return allChanged();
  // walk back through the trace; trace[d] holds v[-d-1 .. d+1] as it was before step d
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = found; d > 0; d--) {
    const vd = trace[d]!;
    const at = (k: number): number => vd[k + d + 1]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ kind: ' ', text: a[--x]! });
      y--;
    }
    if (x === prevX) ops.push({ kind: '+', text: b[--y]! });
    else ops.push({ kind: '-', text: a[--x]! });
  }
  while (x > 0 && y > 0) {
    ops.push({ kind: ' ', text: a[--x]! });
    y--;
  }
  ops.reverse();
  return ops;
}
