/**
 * Reports, in three kinds, each as JSON (types.ts Report) and Markdown (renderMarkdown):
 *
 *   modelReport    the model's draft after the citation ledger (./ledger.ts): findings that rest on fetched documents
 *   digestReport   no model (or it failed): the new relevant documents ranked, with their best extracts
 *   nothingReport  no relevant new document: says so — what was asked, searched and checked, and what failed — and
 *                  writes no findings (a report is never padded with something to say)
 *
 * A report's `sources` are only the documents its findings cite, numbered [1]…[n] in order of first citation (a
 * digest: the ranked documents, best first); the Markdown's [n] are exactly those numbers. Findings keep doc ids.
 * findingsEvent() is what the Hand publishes on research/<topic>/findings: the findings with their sources' URLs and
 * titles, and a follow-up job for the Scheduling Hand (hands/scheduling/types.ts JOB_SCHEMA) asking this Hand to look
 * again in 24 h.
 *
 * Markdown from untrusted text (titles, claims, extracts, the model's summary): `&`, `<` and `>` escaped (no raw
 * HTML reaches a renderer), `[`, `]` and backslashes escaped in link text, every claim and title on one line (no
 * heading or list can be smuggled in), only http(s) URLs become links.
 */
import { createHash } from 'node:crypto';
import { cap, cleanLine, cleanSummary, MAX_CLAIM_CHARS } from './ledger.ts';
import type {
  Doc,
  Finding,
  FindingsEvent,
  RankedDoc,
  RefusedClaim,
  Report,
  ReportSource,
  RunStats,
  SourceError,
  Topic,
} from './types.ts';

export interface RunBase {
  runId: string;
  startedAt: number;
  finishedAt: number;
  stats: RunStats;
  errors: SourceError[];
}

/** how long after a report its follow-up job runs */
export const FOLLOW_UP_MS = 24 * 3600_000;
/** extracts in a digest */
const DIGEST_EXTRACT_CHARS = 400;
/** errors listed in a report's Markdown (all of them stay in its JSON) */
const MAX_ERRORS_SHOWN = 20;
/** the Scheduling Hand's job id pattern (hands/scheduling/types.ts JOB_ID_PATTERN): [a-z0-9][a-z0-9._-]{0,63} */
const JOB_ID_MAX = 64;

/** text for Markdown: `&`, `<`, `>` as entities, one line */
export function escapeText(s: string): string {
  return s.replace(/\s+/g, ' ').trim().replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** text inside a claim or a list item: also `[`/`]` escaped, so nothing looks like a citation or a link */
const escapeInline = (s: string): string => escapeText(s).replace(/([\\[\]])/g, '\\$1');

const isHttp = (url: string): boolean => /^https?:\/\//i.test(url);

/** a URL as Markdown: a link's target for http(s) (characters that end a link encoded), else code */
function urlText(url: string): string {
  if (!isHttp(url)) return `\`${url.replace(/[`\s]/g, '')}\``;
  return `<${url.replace(/[<>\s]/g, (c) => encodeURIComponent(c))}>`;
}

/** `[title](url)` for http(s) URLs, else the title and the URL as code */
function link(title: string, url: string): string {
  const text = escapeInline(title) || 'untitled';
  if (!isHttp(url)) return `${text} (${urlText(url)})`;
  return `[${text}](${url.replace(/[()<>\s]/g, (c) => encodeURIComponent(c))})`;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

const day = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString().slice(0, 10) : 'unknown');

const source = (n: number, doc: Doc): ReportSource => ({
  n,
  docId: doc.id,
  url: doc.url,
  title: doc.title,
  fetchedAt: doc.fetchedAt,
});

function base(topic: Topic, b: RunBase) {
  return {
    id: `${topic.id}-${b.runId}`,
    topic: topic.id,
    runId: b.runId,
    startedAt: b.startedAt,
    finishedAt: b.finishedAt,
    questions: [...topic.questions],
    stats: b.stats,
    errors: b.errors,
  };
}

/**
 * The report of a model's checked draft. `docs` gives the cited documents by id (./ledger.ts checkDraft's `docs`);
 * a finding citing an id it does not know is refused whole (unknown-citation), as the ledger does; one without
 * citations is refused (no-citation). The Markdown's title is the topic's (`topic.title`), the date the run's.
 */
export function modelReport(
  topic: Topic,
  b: RunBase,
  summary: string,
  checked: { findings: Finding[]; refused: RefusedClaim[]; downgraded: number },
  docs: Map<string, Doc>,
): Report {
  const numbers = new Map<string, number>();
  const sources: ReportSource[] = [];
  const findings: Finding[] = [];
  const refused = [...checked.refused];
  let downgraded = checked.downgraded;
  for (const f of checked.findings) {
    const claim = cleanLine(f.claim, MAX_CLAIM_CHARS);
    if (!claim) continue;
    const known = [...new Set(f.citations)];
    const missing = known.filter((id) => !docs.has(id));
    if (known.length === 0 || missing.length > 0) {
      refused.push({ claim, reason: known.length === 0 ? 'no-citation' : 'unknown-citation', cited: missing });
      continue;
    }
    let status = f.status;
    if (status === 'confirmed' && known.length < 2) {
      status = 'reported';
      downgraded++;
    }
    for (const id of known) {
      if (numbers.has(id)) continue;
      numbers.set(id, sources.length + 1);
      sources.push(source(sources.length + 1, docs.get(id) as Doc));
    }
    const kept: Finding = { claim, status, citations: known };
    if (
      f.question !== undefined &&
      Number.isInteger(f.question) &&
      f.question >= 0 &&
      f.question < topic.questions.length
    )
      kept.question = f.question;
    findings.push(kept);
  }
  const r: Omit<Report, 'markdown'> = {
    ...base(topic, b),
    mode: 'model',
    summary: cleanSummary(summary),
    findings,
    sources,
    refused,
    downgraded,
  };
  return { ...r, markdown: renderMarkdown(r, topic.title) };
}

/** the report without a model: the ranked new documents (best first, at most topic.maxDocs) with their extracts */
export function digestReport(topic: Topic, b: RunBase, ranked: RankedDoc[], note?: string): Report {
  const max = topic.maxDocs > 0 ? topic.maxDocs : ranked.length;
  const seen = new Set<string>();
  const sources: ReportSource[] = [];
  for (const r of ranked) {
    if (sources.length >= max) break;
    if (seen.has(r.doc.id)) continue;
    seen.add(r.doc.id);
    const s = source(sources.length + 1, r.doc);
    s.extract = cleanLine(r.extract || r.doc.text, DIGEST_EXTRACT_CHARS);
    s.score = Math.round(Math.min(1, Math.max(0, Number.isFinite(r.score) ? r.score : 0)) * 1000) / 1000;
    sources.push(s);
  }
  const n = sources.length;
  const by = ranked[0]?.by === 'embeddings' ? 'by meaning (embeddings)' : 'by keywords';
  const r: Omit<Report, 'markdown'> = {
    ...base(topic, b),
    mode: 'digest',
    summary: `${plural(n, 'new document')} on ${cleanLine(topic.title, 200)}, ranked ${by}.`,
    findings: [],
    sources,
    refused: [],
    downgraded: 0,
  };
  if (note) r.note = cap(note, 500);
  return { ...r, markdown: renderMarkdown(r, topic.title) };
}

/** the report when no relevant new document was found: says so, lists what was searched; no findings, no sources */
export function nothingReport(topic: Topic, b: RunBase): Report {
  const r: Omit<Report, 'markdown'> = {
    ...base(topic, b),
    mode: 'nothing',
    summary:
      `Nothing relevant found on ${cleanLine(topic.title, 200)}: ${plural(b.stats.candidates, 'document')} checked ` +
      `from ${plural(b.stats.sources, 'source')}, ${b.stats.new} new, none new and relevant enough to report.`,
    findings: [],
    sources: [],
    refused: [],
    downgraded: 0,
  };
  return {
    ...r,
    markdown: renderMarkdown(
      r,
      topic.title,
      topic.sources.map((s) => s.label),
    ),
  };
}

function ledgerLine(r: Omit<Report, 'markdown'>): string | undefined {
  const unknown = r.refused.filter((c) => c.reason === 'unknown-citation').length;
  const uncited = r.refused.length - unknown;
  if (r.refused.length === 0 && r.downgraded === 0) return undefined;
  const parts: string[] = [];
  if (unknown > 0) parts.push(`${plural(unknown, 'claim')} refused (unknown source)`);
  if (uncited > 0) parts.push(`${plural(uncited, 'claim')} refused (no source)`);
  if (r.downgraded > 0) parts.push(`${r.downgraded} downgraded from confirmed to reported (fewer than two sources)`);
  return `_Checked by the ledger: ${parts.join(', ')}._`;
}

/**
 * The report as Markdown. `title` is the topic's title (the report keeps only its id; the id is used without it);
 * `searched` the source labels a nothing report names (default: those its errors name).
 */
export function renderMarkdown(r: Omit<Report, 'markdown'>, title?: string, searched?: string[]): string {
  const out: string[] = [`# ${escapeInline(title || r.topic)} — ${day(r.finishedAt)}`, ''];
  const summary = cleanSummary(r.summary);
  if (summary) out.push(...summary.split('\n\n').map((p) => `${escapeInline(p)}\n`));
  const ledger = ledgerLine(r);

  if (r.mode === 'nothing') {
    out.push('## Nothing relevant found', '');
    out.push('No new document answered the questions, so this run has no findings.', '');
    if (r.questions.length > 0) {
      out.push('Questions:', '');
      r.questions.forEach((q, i) => out.push(`${i + 1}. ${escapeInline(q)}`));
      out.push('');
    }
    const labels = [...new Set(searched ?? r.errors.map((e) => e.source))];
    out.push(
      `Sources searched: ${r.stats.sources}${labels.length > 0 ? ` (${labels.map(escapeInline).join(', ')})` : ''}.`,
      '',
    );
    out.push(
      `Documents checked: ${r.stats.candidates} (${r.stats.new} new, ${r.stats.relevant} relevant), ` +
        `${r.stats.requests} requests, ${r.stats.notModified} not modified.`,
      '',
    );
  } else if (r.mode === 'digest') {
    if (r.note) out.push(`_${escapeInline(r.note)}_`, '');
    out.push('## New documents', '');
    for (const s of r.sources) {
      const score = s.score !== undefined ? ` — relevance ${s.score.toFixed(2)}` : '';
      out.push(`${s.n}. ${link(s.title, s.url)}${score} — fetched ${day(s.fetchedAt)}`);
      if (s.extract) out.push(`   > ${escapeInline(s.extract)}`);
      out.push('');
    }
  } else {
    const numbers = new Map(r.sources.map((s) => [s.docId, s.n]));
    out.push('## Findings', '');
    if (r.findings.length === 0) out.push('The documents did not answer the questions: no findings.', '');
    for (const f of r.findings) {
      const refs = f.citations.map((id) => numbers.get(id)).filter((n): n is number => n !== undefined);
      const q = f.question !== undefined ? ` (question ${f.question + 1})` : '';
      const mark = f.status === 'confirmed' ? ' — **confirmed**' : '';
      out.push(`- ${escapeInline(f.claim)} ${refs.map((n) => `[${n}]`).join('')}${mark}${q}`);
    }
    out.push('');
    if (ledger) out.push(ledger, '');
    out.push('## Sources', '');
    for (const s of r.sources)
      out.push(`- [${s.n}] ${escapeInline(s.title) || 'untitled'} — ${urlText(s.url)} — fetched ${day(s.fetchedAt)}`);
    out.push('');
  }

  if (r.errors.length > 0) {
    out.push('## Errors', '');
    for (const e of r.errors.slice(0, MAX_ERRORS_SHOWN)) {
      const where = e.url ? ` ${urlText(e.url)}` : '';
      out.push(`- ${escapeInline(e.source)}${where}: ${escapeInline(e.kind)} — ${escapeInline(cap(e.message, 300))}`);
    }
    if (r.errors.length > MAX_ERRORS_SHOWN) out.push(`- … and ${r.errors.length - MAX_ERRORS_SHOWN} more`);
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** a job id the Scheduling Hand takes: lower case, [a-z0-9._-], at most 64 (long ones end in a hash of the whole) */
export function followUpJobId(topic: string, runId: string): string {
  const raw = `research-followup-${topic}-${runId}`;
  const id = raw
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '');
  if (id.length <= JOB_ID_MAX) return id;
  const hash = createHash('sha256').update(raw).digest('hex').slice(0, 10);
  return `${id.slice(0, JOB_ID_MAX - hash.length - 1).replace(/[._-]+$/, '')}-${hash}`;
}

/** what the Hand publishes on research/<topic>/findings for a report (`selfName`: this Hand's name, for the job) */
export function findingsEvent(r: Report, selfName: string): FindingsEvent {
  const byId = new Map(r.sources.map((s) => [s.docId, s]));
  const findings = r.findings.map((f) => ({
    claim: f.claim,
    status: f.status,
    sources: f.citations
      .map((id) => byId.get(id))
      .filter((s): s is ReportSource => s !== undefined)
      .map((s) => ({ url: s.url, title: s.title })),
  }));
  const what =
    r.mode === 'model'
      ? plural(findings.length, 'new finding')
      : r.mode === 'digest'
        ? plural(r.sources.length, 'new document')
        : 'nothing new';
  const at = new Date(r.finishedAt + FOLLOW_UP_MS).toISOString();
  return {
    topic: r.topic,
    reportId: r.id,
    summary: r.summary,
    findings,
    followUp: {
      text: `Look again in 24 h: ${what} on ${r.topic}`,
      job: {
        id: followUpJobId(r.topic, r.runId),
        description: cap(`Research follow-up: look again at topic ${r.topic} 24 h after report ${r.id}`, 1000),
        trigger: { at },
        action: { ask: { hand: selfName, task: { op: 'run', topic: r.topic } } },
      },
    },
  };
}
