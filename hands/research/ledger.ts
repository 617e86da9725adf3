/**
 * The citation ledger: what stands between the model's draft (./write.ts) and a report (./report.ts). The prompt asks
 * the model to cite only the numbered documents it was shown; this file is where that is enforced, in code.
 *
 * A draft finding's `sources` may name a document three ways:
 *   - a number n: the n-th document of the prompt (`numbered[n - 1]`); `"[2]"` and `"2"` written as strings count as
 *     numbers too (local models do that). Out of range, zero, negative or fractional: an unknown citation.
 *   - a document id (32 hex digits): any document fetched in this run or before (`lookup.get`).
 *   - a URL: any document fetched in this run or before under that URL (`lookup.byUrl`). URLs are looked up lightly
 *     normalized: as written, then without the `#fragment`, with and without a trailing `/` on the path, and with the
 *     other of http/https — nothing more (no `www.` stripping, no query reordering), so a URL that only resembles a
 *     fetched one is not taken for it.
 * Anything else (an invented URL, a title, a number past the list, a URL that was never fetched) is an unknown
 * citation, and the WHOLE claim is refused (`unknown-citation`, the bad references in `cited`), even when it also
 * cites a real document: a claim that rests partly on an invented source cannot be told apart from a claim the model
 * made up and decorated with a real reference, so it is removed, not repaired. A claim with no source is refused as
 * `no-citation`. Duplicate citations (the same document by number, id and URL) collapse to one; a claim marked
 * `confirmed` with fewer than two distinct documents is kept as `reported` and counted in `downgraded`.
 *
 * Bookkeeping on the text: claims are trimmed, control characters removed, whitespace collapsed to one line,
 * `[n]`-style references written into the text itself removed (the report adds its own, checked ones), cut at
 * MAX_CLAIM_CHARS; empty claims and exact repeats are dropped; at most MAX_FINDINGS findings are kept and at most
 * MAX_DRAFT_FINDINGS draft findings are read at all.
 *
 * A lookup that throws (the store failing) is not a fake citation: the error propagates to the caller.
 */
import type { Doc, Finding, RefusedClaim } from './types.ts';

/** what the ledger needs of the document store (./docs.ts DocStore fits) */
export interface LedgerLookup {
  get(id: string): Promise<Doc | undefined>;
  byUrl(url: string): Promise<Doc | undefined>;
}

/** one claim as the model wrote it (validated for shape by ./write.ts, not for truth) */
export interface DraftFinding {
  claim: string;
  sources: Array<string | number>;
  confirmed?: boolean;
  /** the number (1-based, as the prompt shows them) of the question it answers */
  question?: number;
}

export interface Draft {
  summary: string;
  findings: DraftFinding[];
}

export interface Checked {
  findings: Finding[];
  refused: RefusedClaim[];
  downgraded: number;
  /** every document a kept finding cites, by id (for ./report.ts modelReport) */
  docs: Map<string, Doc>;
}

/** findings kept in one report */
export const MAX_FINDINGS = 50;
/** draft findings read at all (a model that writes 10 000 of them does not make 10 000 lookups) */
export const MAX_DRAFT_FINDINGS = 100;
/** refused claims kept in one report */
export const MAX_REFUSED = 50;
export const MAX_CLAIM_CHARS = 1000;
export const MAX_SUMMARY_CHARS = 2000;
/** a reference as `cited` shows it */
const MAX_CITED_CHARS = 300;
/** distinct references read per claim; a claim citing more is refused (nobody cites 30 documents for one sentence) */
export const MAX_REFS_PER_CLAIM = 20;

const DOC_ID = /^[0-9a-f]{32}$/i;
const NUMBER_REF = /^\s*\[?\s*(-?\d+(?:\.\d+)?)\s*\]?\s*$/;
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e]/g;
/** `[1]`, `[1, 2]`, `[1-3]`, `[1][2]` written into a text */
const INLINE_REFS = /\s*\[\s*\d+(?:\s*[,;–-]\s*\d+)*\s*\]/g;

/** cut to `max` characters (not inside a surrogate pair), with `…` when cut */
export function cap(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return `${text.slice(0, end).trimEnd()}…`;
}

/** a model's text as one clean line: control characters out, whitespace collapsed, inline `[n]` references removed */
export function cleanLine(text: string, max: number): string {
  return cap(text.replace(CONTROL, ' ').replace(INLINE_REFS, '').replace(/\s+/g, ' ').trim(), max);
}

/** the model's summary as a report keeps it (paragraphs kept, inline references removed, capped) */
export function cleanSummary(text: unknown): string {
  if (typeof text !== 'string') return '';
  const paragraphs = text
    .replace(CONTROL, ' ')
    .split(/\n\s*\n/)
    .map((p) => p.replace(INLINE_REFS, '').replace(/\s+/g, ' ').trim())
    .filter(Boolean);
  return cap(paragraphs.join('\n\n'), MAX_SUMMARY_CHARS);
}

/** the URLs a cited URL is looked up under, as written first (see the file's comment); [] when it is not http(s) */
export function urlVariants(raw: string): string[] {
  const written = raw.trim();
  let u: URL;
  try {
    u = new URL(written);
  } catch {
    return [];
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return [];
  u.hash = '';
  const out = new Set<string>([written]);
  for (const protocol of [u.protocol, u.protocol === 'http:' ? 'https:' : 'http:']) {
    const v = new URL(u.href);
    v.protocol = protocol;
    out.add(v.href);
    if (v.pathname.length > 1) {
      v.pathname = v.pathname.endsWith('/') ? v.pathname.replace(/\/+$/, '') || '/' : `${v.pathname}/`;
      out.add(v.href);
    }
  }
  return [...out];
}

/** one reference resolved: the document, or undefined (an unknown citation) */
async function resolve(
  ref: unknown,
  numbered: readonly Doc[],
  byId: Map<string, Doc>,
  lookup: LedgerLookup,
): Promise<Doc | undefined> {
  let n: number | undefined;
  if (typeof ref === 'number') n = ref;
  else if (typeof ref === 'string') {
    const m = NUMBER_REF.exec(ref);
    if (m) n = Number(m[1]);
  }
  if (n !== undefined) return Number.isInteger(n) && n >= 1 && n <= numbered.length ? numbered[n - 1] : undefined;
  if (typeof ref !== 'string') return undefined;
  const s = ref.trim();
  if (DOC_ID.test(s)) {
    const id = s.toLowerCase();
    return byId.get(id) ?? (await lookup.get(id));
  }
  const variants = urlVariants(s);
  for (const v of variants) {
    const shown = numbered.find((d) => d.url === v || d.urls.includes(v));
    if (shown) return shown;
  }
  for (const v of variants) {
    const doc = await lookup.byUrl(v);
    if (doc) return doc;
  }
  return undefined;
}

const citedText = (ref: unknown): string =>
  typeof ref === 'number' ? `[${ref}]` : typeof ref === 'string' ? cap(ref.trim(), MAX_CITED_CHARS) : String(ref);

/**
 * Checks a draft against the documents really fetched: `numbered` are the documents the model was shown as [1]…[n];
 * ids and URLs go through `lookup` (this run's documents and every earlier run's). See the file's comment.
 */
export async function checkDraft(draft: Draft, numbered: Doc[], lookup: LedgerLookup): Promise<Checked> {
  const byId = new Map(numbered.map((d) => [d.id, d]));
  const findings: Finding[] = [];
  const refused: RefusedClaim[] = [];
  const docs = new Map<string, Doc>();
  const claims = new Set<string>();
  let downgraded = 0;
  const drafted = Array.isArray(draft.findings) ? draft.findings.slice(0, MAX_DRAFT_FINDINGS) : [];
  for (const f of drafted) {
    if (findings.length >= MAX_FINDINGS) break;
    if (!f || typeof f !== 'object' || typeof f.claim !== 'string') continue;
    const claim = cleanLine(f.claim, MAX_CLAIM_CHARS);
    if (!claim) continue;
    const key = claim.toLowerCase();
    if (claims.has(key)) continue;
    claims.add(key);
    const refuse = (reason: RefusedClaim['reason'], cited: string[]): void => {
      if (refused.length < MAX_REFUSED) refused.push({ claim, reason, cited });
    };
    // distinct references as written (1 and "1" and "[1]" are told apart only by the resolved document below)
    const refs = [...new Set(Array.isArray(f.sources) ? f.sources : [])];
    if (refs.length === 0) {
      refuse('no-citation', []);
      continue;
    }
    if (refs.length > MAX_REFS_PER_CLAIM) {
      refuse('unknown-citation', refs.slice(MAX_REFS_PER_CLAIM).map(citedText));
      continue;
    }
    const cited = new Map<string, Doc>();
    const bad: string[] = [];
    for (const ref of refs) {
      const doc = await resolve(ref, numbered, byId, lookup);
      if (doc) cited.set(doc.id, doc);
      else bad.push(citedText(ref));
    }
    if (bad.length > 0) {
      refuse('unknown-citation', bad);
      continue;
    }
    let status: Finding['status'] = f.confirmed === true ? 'confirmed' : 'reported';
    if (status === 'confirmed' && cited.size < 2) {
      status = 'reported';
      downgraded++;
    }
    const finding: Finding = { claim, status, citations: [...cited.keys()] };
    // the prompt numbers questions from 1; a Finding keeps the 0-based index into topic.questions
    if (typeof f.question === 'number' && Number.isInteger(f.question) && f.question >= 1)
      finding.question = f.question - 1;
    findings.push(finding);
    for (const [id, doc] of cited) docs.set(id, doc);
  }
  return { findings, refused, downgraded, docs };
}
