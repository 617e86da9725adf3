/**
 * The Research Hand: topics (questions, sources, a schedule) are watched; each run reads the topic's sources
 * (./sources/: feeds, pages, sitemaps, web.search, arXiv, Hacker News, a folder) through the web kit's Fetcher
 * (robots.txt, per-host pauses, conditional requests, byte and time caps), stores every document once by content
 * hash (./docs.ts), ranks the ones the topic has not reported yet (./rank.ts: embeddings through the `llm.embed` tool
 * when granted, keywords otherwise) and writes a report (./report.ts):
 *
 *   nothing   no relevant new document: the report says so (what was asked, searched and checked), no findings
 *   model     the model drafts findings from the numbered documents (./write.ts); the citation ledger (./ledger.ts)
 *             keeps only claims citing documents really fetched (in this run or before), two documents for
 *             "confirmed"; a claim citing anything else is removed, audited and logged. No claim left → a digest.
 *   digest    no model (none granted, `useModel: never`, or it failed): the ranked new documents with extracts
 *
 * The bookkeeping is code, never the prompt: dedup across runs (the documents a report ranked are marked seen by
 * its topic), citations, limits, scores' bounds.
 *
 * One run at a time per topic (a second ask while one runs joins it); document writes go one at a time across
 * topics. Schedules are Scheduling Hand jobs `research-<self>-<topic>` put over the task protocol at start (cron
 * trigger, action `{ ask: { hand: <self>, task: { op: 'run', topic } } }`); when the scheduler does not answer (or
 * `scheduler: ''`) the Hand keeps a local cron on its own timers, and tries the scheduler again hourly. Jobs of
 * topics no longer configured are removed.
 *
 * Bus (relative to talon/<deviceId>/):
 *   research/<topic>/findings  out (QoS 1): a FindingsEvent when a report has findings — a model report's checked
 *                              findings, or for a digest its documents, each as a `reported` finding whose claim is
 *                              the document's title (so the Communication Hand hears of new documents without a
 *                              model too); nothing reports publish nothing
 *   notify/<priority>          out: { title, text, tags, dedupKey } when the topic's `notify` is not off and a
 *                              findings event was published
 *   hands/<name>/tasks         in: { op: 'run', topic } → { reportId, mode, findings, new } (../sdk/tasks.ts)
 *   hands/<name>/replies       in: the scheduler's answers to this Hand's job puts
 * Audit: research.run (ok, or error when the run failed or no source could be read; counts in the detail),
 * research.citation.refused (one per refused claim: subject the cited reference, the claim's first 200 characters),
 * research.settings (the settings' problems, once at start).
 *
 * Store keys: doc/, url/, item/, at/, seen/ (./docs.ts); web/ (the Fetcher's robots.txt and validators);
 * report/<topic>/<runId> the whole report; reports/<runId>/<topic> its summary (newest-first listing across topics);
 * last/<topic> the topic's last run.
 */
import { Cron } from 'croner';
import { InFlight, ScheduleSync, defineHand, type AnswerOf, type RequestOf, type ScheduledJob } from '../sdk/index.ts';
import type { HandContext } from '../sdk/types.ts';
import { TaskClient, serveTasks } from '../sdk/tasks.ts';
import { Fetcher } from '../sdk/web/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { Grants } from '../../runtime/core/grants.ts';
import { DocStore } from './docs.ts';
import { checkDraft } from './ledger.ts';
import { protocol, type ResearchProtocol } from './protocol.ts';
import { rank } from './rank.ts';
import { digestReport, findingsEvent, modelReport, nothingReport, type RunBase } from './report.ts';
import { parseSettings, settingsSchema, type ParsedSettings } from './settings.ts';
import { readSource, type SourceEnv } from './sources/index.ts';
import type {
  Candidate,
  Doc,
  FindingsEvent,
  RankedDoc,
  RefusedClaim,
  Report,
  RunStats,
  SourceError,
  SourceResult,
  Topic,
} from './types.ts';
import { draftWithModel } from './write.ts';

type Req<K extends keyof ResearchProtocol & string> = RequestOf<ResearchProtocol, K>;
type Ans<K extends keyof ResearchProtocol & string> = AnswerOf<ResearchProtocol, K>;

/** how often old documents and reports are deleted (and a scheduler that did not answer is tried again) */
const PRUNE_MS = 3600_000;
/** sources of one run read at once */
const PARALLEL_SOURCES = 3;
/** the scheduler's answer to a put, list or remove */
const SCHEDULER_TIMEOUT_MS = 10_000;
/** texts per llm.embed call, and characters per text (the tool's limits) */
const EMBED_BATCH = 32;
const EMBED_CHARS = 8000;
/** after an embedding failure, keyword ranking only for this long */
const EMBED_RETRY_MS = 3600_000;
const STORE_PAGE = 1000;
const MAX_CITED_SUBJECT = 200;
const NOTIFY_CLAIMS = 5;

export const REPORT_PREFIX = 'report/';
export const SUMMARY_PREFIX = 'reports/';
export const LAST_PREFIX = 'last/';

/** the scheduler job of a topic: `research-<self>-<topic>` */
export const jobIdOf = (self: string, topic: string): string => `research-${self}-${topic}`;

/** a run id: the start (13 digits of ms, so ids sort by time) and 4 random base-36 characters */
export function newRunId(startedAt: number, random: () => number = Math.random): string {
  let r = '';
  for (let i = 0; i < 4; i++) r += Math.floor(random() * 36).toString(36);
  return `${String(Math.max(0, Math.floor(startedAt)))
    .padStart(13, '0')
    .slice(-13)}${r}`;
}

/** `<topic>-<runId>` → its parts, or undefined */
export function parseReportId(id: string): { topic: string; runId: string } | undefined {
  const m = /^([a-z0-9][a-z0-9_-]{0,39})-(\d{13}[a-z0-9]{4})$/.exec(id);
  return m ? { topic: m[1]!, runId: m[2]! } : undefined;
}

export type ReportSummary = Ans<'run'>['report'];

/** a report without its Markdown, its lists as counts */
export function summaryOf(r: Report): ReportSummary {
  return {
    id: r.id,
    topic: r.topic,
    runId: r.runId,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    mode: r.mode,
    summary: r.summary,
    findings: r.findings.length,
    sources: r.sources.length,
    refused: r.refused.length,
    downgraded: r.downgraded,
    stats: { ...r.stats },
    errors: r.errors.length,
    ...(r.note !== undefined && { note: r.note }),
  };
}

/**
 * What is published on research/<topic>/findings for a report, or undefined when it has nothing to say: a model
 * report's findings as they are; a digest's documents each as a `reported` finding (its title as the claim, itself
 * as the source); a nothing report (or a model report left without findings) publishes nothing.
 */
export function eventFor(r: Report, self: string): FindingsEvent | undefined {
  if (r.mode === 'nothing') return undefined;
  const e = findingsEvent(r, self);
  if (r.mode === 'digest' && e.findings.length === 0)
    e.findings = r.sources.map((s) => ({
      claim: s.title || s.url,
      status: 'reported' as const,
      sources: [{ url: s.url, title: s.title }],
    }));
  return e.findings.length > 0 ? e : undefined;
}

/** the notification for a findings event: a title, the summary and the first claims, where to read the report */
export function notificationFor(topic: Topic, e: FindingsEvent): Record<string, unknown> {
  const lines = [e.summary.trim()];
  for (const f of e.findings.slice(0, NOTIFY_CLAIMS))
    lines.push(`- ${f.claim}${f.sources[0] ? ` (${f.sources[0].url})` : ''}`);
  if (e.findings.length > NOTIFY_CLAIMS) lines.push(`… and ${e.findings.length - NOTIFY_CLAIMS} more`);
  lines.push(`Report: talon research report ${e.reportId}`);
  return {
    title: `Research: ${topic.title}`.slice(0, 200),
    text: lines.join('\n').slice(0, 4000),
    tags: ['research', topic.id],
    dedupKey: e.reportId,
  };
}

/** runs `fn` over `items`, at most `limit` at once, results in order */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

type LastRun = {
  at: number;
  finishedAt: number;
  reportId: string;
  mode: Report['mode'];
  new: number;
  relevant: number;
  errors: number;
};

export interface ResearchHandOptions {
  now?: () => number;
  random?: () => number;
  /** how long the scheduler gets to answer (default 10 s) */
  schedulerTimeoutMs?: number;
  /** sources read at once (default 3) */
  parallel?: number;
}

export class ResearchHand {
  readonly ctx: HandContext;
  readonly settings: ParsedSettings;
  readonly topics: Map<string, Topic>;
  readonly docs: DocStore;
  readonly fetcher: Fetcher;
  readonly grants: Grants;
  /** resolves when the schedules were put (or fell back to local timers) */
  scheduled: Promise<void> = Promise.resolve();
  #now: () => number;
  #random: () => number;
  #parallel: number;
  #client: TaskClient;
  #running = new InFlight<string, Report>();
  #last = new Map<string, LastRun>();
  #schedules: ScheduleSync;
  #unserve: (() => Promise<void>) | null = null;
  #stopPrune: (() => void) | null = null;
  #embedFailedAt = Number.NEGATIVE_INFINITY;
  /** DocStore writes go one at a time (runs of different topics overlap) */
  #docLock: Promise<unknown> = Promise.resolve();
  #counters = {
    runs: { model: 0, digest: 0, nothing: 0, failed: 0 } as Record<string, number>,
    new: 0,
    requests: 0,
    notModified: 0,
    errors: {} as Record<string, number>,
    refused: 0,
    downgraded: 0,
    published: 0,
  };

  constructor(ctx: HandContext, opts: ResearchHandOptions = {}) {
    this.ctx = ctx;
    this.#now = opts.now ?? (() => Date.now());
    this.#random = opts.random ?? Math.random;
    this.#parallel = Math.max(1, opts.parallel ?? PARALLEL_SOURCES);
    this.settings = parseSettings(ctx.settings);
    this.topics = new Map(this.settings.topics.map((t) => [t.id, t]));
    this.grants = new Grants(ctx.grants, `talon/${ctx.deviceId}`);
    this.docs = new DocStore(ctx.store, { now: this.#now });
    this.fetcher = new Fetcher(ctx.fetch, ctx.store, {
      ...(this.settings.userAgent !== undefined && { userAgent: this.settings.userAgent }),
      minIntervalMs: this.settings.politenessMs,
      timeoutMs: this.settings.timeoutMs,
      maxBytes: this.settings.maxPageBytes,
      now: this.#now,
    });
    this.#client = new TaskClient(ctx);
    this.#schedules = new ScheduleSync({
      ctx,
      client: this.#client,
      Cron,
      label: 'research',
      prefix: jobIdOf(ctx.name, ''),
      timeoutMs: opts.schedulerTimeoutMs ?? SCHEDULER_TIMEOUT_MS,
    });
  }

  async start(): Promise<void> {
    const ctx = this.ctx;
    const problems = this.settings.problems;
    for (const p of problems) ctx.log('error', p);
    if (problems.length > 0)
      ctx
        .audit('settings', ctx.name, { decision: 'error', detail: { problems: problems.slice(0, 50) } })
        .catch(() => undefined);
    for (const [key, last] of await this.#listAll<LastRun>(LAST_PREFIX)) {
      const topic = key.slice(LAST_PREFIX.length);
      if (this.topics.has(topic)) this.#last.set(topic, last);
    }
    this.#unserve = await serveTasks(ctx, (task) => this.task(task));
    this.#stopPrune = ctx.timers.every(PRUNE_MS, () => this.#hourly());
    this.scheduled = this.syncSchedules().catch((err: unknown) =>
      ctx.log('error', `the topics' schedules could not be set up: ${message(err)}`),
    );
    ctx.log('info', `researching ${this.topics.size} topic(s)`, {
      scheduled: this.settings.topics.filter((t) => t.schedule).length,
      model: this.#modelProblem() ?? 'yes',
    });
  }

  async stop(): Promise<void> {
    this.#stopPrune?.();
    this.#schedules.stop();
    await this.#unserve?.().catch(() => undefined);
  }

  // -- runs --------------------------------------------------------------------------------------------------------

  /** runs a topic now, or joins its run in flight */
  run(topicId: string, cause = 'api'): Promise<Report> {
    const topic = this.topics.get(topicId);
    if (!topic)
      return Promise.reject(
        new TalonError(
          'NOT_FOUND',
          `topic "${topicId}" is not configured; the topics are: ${[...this.topics.keys()].join(', ') || 'none (add them to the settings)'}`,
        ),
      );
    return this.#running.run(topicId, () => this.#run(topic, cause));
  }

  /** why the model is not used, or undefined when it is */
  #modelProblem(): string | undefined {
    if (this.settings.useModel === 'never') return 'the settings say useModel: never';
    if (!this.ctx.grants.llm) return 'the Hand has no llm grant';
    return undefined;
  }

  /** the embedding function for rank(), or undefined for keyword ranking */
  #embedder(): ((texts: string[]) => Promise<number[][]>) | undefined {
    if (this.settings.embeddings === 'never' || !this.grants.canCallTool('llm.embed')) return undefined;
    if (this.#now() - this.#embedFailedAt < EMBED_RETRY_MS) return undefined;
    return async (texts) => {
      const out: number[][] = [];
      try {
        for (let i = 0; i < texts.length; i += EMBED_BATCH) {
          const batch = texts.slice(i, i + EMBED_BATCH).map((t) => t.slice(0, EMBED_CHARS) || ' ');
          const r = await this.ctx.tools.call<{ vectors?: number[][] }>('llm.embed', { texts: batch });
          const v = r.output?.vectors;
          if (!Array.isArray(v) || v.length !== batch.length)
            throw new Error(
              `llm.embed answered ${Array.isArray(v) ? v.length : 'no'} vectors for ${batch.length} texts`,
            );
          out.push(...v);
        }
      } catch (err) {
        this.#embedFailedAt = this.#now();
        throw err;
      }
      return out;
    };
  }

  #withDocs<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#docLock.then(fn, fn);
    this.#docLock = p.catch(() => undefined);
    return p;
  }

  async #read(topic: Topic): Promise<SourceResult[]> {
    const env: SourceEnv = {
      fetcher: this.fetcher,
      tools: this.ctx.tools,
      log: this.ctx.log,
      now: this.#now,
      signal: this.ctx.signal,
    };
    return mapLimit(topic.sources, this.#parallel, (s) =>
      readSource(s, env).catch(
        (err: unknown): SourceResult => ({
          candidates: [],
          errors: [{ source: s.label, kind: 'internal', message: message(err) }],
          notModified: 0,
          requests: 0,
        }),
      ),
    );
  }

  async #run(topic: Topic, cause: string): Promise<Report> {
    const ctx = this.ctx;
    const startedAt = this.#now();
    const runId = newRunId(startedAt, this.#random);
    const t0 = performance.now();
    try {
      const results = await this.#read(topic);
      const errors: SourceError[] = results.flatMap((r) => r.errors);
      const candidates: Candidate[] = results.flatMap((r) => r.candidates);
      const stats: RunStats = {
        sources: topic.sources.length,
        requests: results.reduce((n, r) => n + r.requests, 0),
        notModified: results.reduce((n, r) => n + r.notModified, 0),
        candidates: candidates.length,
        new: 0,
        relevant: 0,
        errors: 0,
        ms: 0,
      };
      // store each candidate once; the ones this topic has not reported are new
      const fresh = await this.#withDocs(async () => {
        const byId = new Set<string>();
        const out: Doc[] = [];
        for (const c of candidates) {
          try {
            const { doc } = await this.docs.put(c, this.#now());
            if (!doc.id || byId.has(doc.id)) continue;
            byId.add(doc.id);
            if (!(await this.docs.seen(topic.id, doc.id))) out.push(doc);
          } catch (err) {
            errors.push({ source: c.source, url: c.url, kind: 'store', message: message(err) });
          }
        }
        return out;
      });
      stats.new = fresh.length;
      const ranked: RankedDoc[] = fresh.length > 0 ? await rank(topic, fresh, this.#embedder()) : [];
      const relevant = ranked
        .filter((r) => Number.isFinite(r.score) && r.score >= topic.minScore)
        .slice(0, Math.max(1, topic.maxDocs));
      stats.relevant = relevant.length;
      const base = (): RunBase => {
        stats.errors = errors.length;
        stats.ms = Math.round(performance.now() - t0);
        return { runId, startedAt, finishedAt: this.#now(), stats, errors };
      };

      let report: Report;
      let refused: RefusedClaim[] = [];
      const why = this.#modelProblem();
      if (relevant.length === 0) report = nothingReport(topic, base());
      else if (why) report = digestReport(topic, base(), relevant, `No model: ${why}.`);
      else {
        let note: string | undefined;
        let written: Report | undefined;
        try {
          const d = await draftWithModel(topic, relevant, {
            chat: (req) => ctx.llm.chat(req, { purpose: `research ${topic.id}` }),
          });
          if ('error' in d) {
            errors.push({
              source: 'model',
              kind: d.error.startsWith('model-json') ? 'model-json' : 'model',
              message: d.error.slice(0, 500),
            });
            note = `The model failed (${d.error.slice(0, 200)}): the ranked documents instead.`;
          } else {
            const checked = await checkDraft(d.draft, d.numbered, this.docs);
            refused = checked.refused;
            if (checked.findings.length === 0)
              note = `The citation ledger refused every claim of the model (${checked.refused.length}): the ranked documents instead.`;
            else written = modelReport(topic, base(), d.draft.summary, checked, checked.docs);
          }
        } catch (err) {
          errors.push({ source: 'model', kind: 'model', message: message(err).slice(0, 500) });
          note = `The model failed (${message(err).slice(0, 200)}): the ranked documents instead.`;
        }
        report = written ?? { ...digestReport(topic, base(), relevant, note), ...(refused.length > 0 && { refused }) };
        if (written) refused = written.refused;
      }
      await this.#keep(topic, report, ranked);
      this.#count(report, refused);
      this.#announce(topic, report);
      for (const r of refused) this.#auditRefusal(topic, report, r);
      const unreadable = stats.sources > 0 && stats.candidates === 0 && errors.length > 0;
      await ctx
        .audit('run', topic.id, {
          decision: unreadable ? 'error' : 'ok',
          detail: {
            reportId: report.id,
            cause,
            mode: report.mode,
            sources: stats.sources,
            requests: stats.requests,
            notModified: stats.notModified,
            candidates: stats.candidates,
            new: stats.new,
            relevant: stats.relevant,
            findings: report.findings.length,
            refused: refused.length,
            downgraded: report.downgraded,
            errors: report.errors.length,
            ms: stats.ms,
          },
        })
        .catch(() => undefined);
      ctx.log('info', `research ${topic.id}: ${report.mode} report ${report.id}`, {
        new: stats.new,
        relevant: stats.relevant,
        findings: report.findings.length,
        errors: report.errors.length,
      });
      return report;
    } catch (err) {
      this.#counters.runs.failed = (this.#counters.runs.failed ?? 0) + 1;
      ctx.log('error', `research ${topic.id}: the run failed: ${message(err)}`);
      await ctx
        .audit('run', topic.id, { decision: 'error', detail: { runId, cause, error: message(err).slice(0, 500) } })
        .catch(() => undefined);
      throw err;
    }
  }

  /** stores the report and its summary, marks the ranked documents seen, keeps the last run, drops old reports */
  async #keep(topic: Topic, report: Report, ranked: RankedDoc[]): Promise<void> {
    const last: LastRun = {
      at: report.startedAt,
      finishedAt: report.finishedAt,
      reportId: report.id,
      mode: report.mode,
      new: report.stats.new,
      relevant: report.stats.relevant,
      errors: report.errors.length,
    };
    await this.ctx.store.batch([
      { type: 'put', key: `${REPORT_PREFIX}${topic.id}/${report.runId}`, value: report },
      { type: 'put', key: `${SUMMARY_PREFIX}${report.runId}/${topic.id}`, value: summaryOf(report) },
      { type: 'put', key: `${LAST_PREFIX}${topic.id}`, value: last },
    ]);
    this.#last.set(topic.id, last);
    // after the report is stored: a crash in between reports them again rather than never
    if (ranked.length > 0)
      await this.#withDocs(() =>
        this.docs.markSeen(
          topic.id,
          ranked.map((r) => r.doc.id),
        ),
      );
    await this.#pruneReports(topic.id).catch((err: unknown) =>
      this.ctx.log('warn', `research ${topic.id}: old reports could not be deleted: ${message(err)}`),
    );
  }

  #count(report: Report, refused: RefusedClaim[]): void {
    const c = this.#counters;
    c.runs[report.mode] = (c.runs[report.mode] ?? 0) + 1;
    c.new += report.stats.new;
    c.requests += report.stats.requests;
    c.notModified += report.stats.notModified;
    for (const e of report.errors) c.errors[e.kind] = (c.errors[e.kind] ?? 0) + 1;
    c.refused += refused.length;
    c.downgraded += report.downgraded;
  }

  /** publishes the findings event (and the notification) when the report has something to say */
  #announce(topic: Topic, report: Report): void {
    const e = eventFor(report, this.ctx.name);
    if (!e) return;
    const publish = (t: string, payload: unknown): boolean => {
      try {
        this.ctx.bus.publish(t, payload, { qos: 1 });
        return true;
      } catch (err) {
        this.ctx.log('warn', `research ${topic.id}: not published on ${t}: ${message(err)}`);
        return false;
      }
    };
    if (publish(`research/${topic.id}/findings`, e)) this.#counters.published++;
    if (topic.notify !== 'off') publish(`notify/${topic.notify}`, notificationFor(topic, e));
  }

  #auditRefusal(topic: Topic, report: Report, r: RefusedClaim): void {
    const cited = r.cited.map(String);
    const subject = (cited[0] ?? '(no citation)').slice(0, MAX_CITED_SUBJECT);
    this.ctx.log('warn', `research ${topic.id}: a claim was refused (${r.reason}): cited ${subject}`, {
      reportId: report.id,
      claim: r.claim.slice(0, 200),
    });
    this.ctx
      .audit('citation.refused', subject, {
        decision: 'info',
        detail: { topic: topic.id, reportId: report.id, reason: r.reason, claim: r.claim.slice(0, 200), cited },
      })
      .catch(() => undefined);
  }

  // -- the task inbox -----------------------------------------------------------------------------------------------

  async task(task: unknown): Promise<unknown> {
    const t = task as { op?: unknown; topic?: unknown } | null;
    if (typeof t !== 'object' || t === null || t.op !== 'run')
      throw new TalonError(
        'BAD_REQUEST',
        `task.op: must be "run" ({ op: 'run', topic }), not ${JSON.stringify((t as { op?: unknown } | null)?.op ?? null)}`,
      );
    if (typeof t.topic !== 'string' || t.topic === '')
      throw new TalonError('BAD_REQUEST', 'task.topic: op "run" needs the topic id (a string)');
    const r = await this.run(t.topic, 'task');
    return { reportId: r.id, mode: r.mode, findings: r.findings.length, new: r.stats.new };
  }

  // -- schedules ------------------------------------------------------------------------------------------------------

  /** a scheduled topic's job: it asks this Hand to run the topic */
  #scheduledJob(t: Topic, cron: string): ScheduledJob {
    const id = jobIdOf(this.ctx.name, t.id);
    return {
      id,
      cron,
      job: {
        id,
        description: `Research topic ${t.id}: ${t.title}`.slice(0, 200),
        trigger: { cron },
        action: { ask: { hand: this.ctx.name, task: { op: 'run', topic: t.id }, timeout: '14m' } },
        policy: { overlap: 'skip', timeout: '15m' },
      },
      fire: () => this.run(t.id, 'schedule'),
    };
  }

  /**
   * Puts each scheduled topic's job into the Scheduling Hand; a topic whose job is not taken (the scheduler not
   * answering, refusing, or `scheduler: ''`) runs on a local cron. When the scheduler answered, its jobs of this
   * Hand (`research-<self>-…`) for topics no longer scheduled are removed (../sdk/schedules.ts).
   */
  async syncSchedules(): Promise<void> {
    const wanted = this.settings.topics.flatMap((t) => (t.schedule ? [this.#scheduledJob(t, t.schedule)] : []));
    await this.#schedules.sync(this.settings.scheduler, wanted);
  }

  // -- retention ------------------------------------------------------------------------------------------------------

  async #hourly(): Promise<void> {
    await this.prune().catch((err: unknown) => this.ctx.log('warn', `research: prune failed: ${message(err)}`));
    await this.#schedules.retry();
  }

  /** deletes documents older than retention.documentDays and each topic's reports past retention.reportsPerTopic */
  async prune(): Promise<{ documents: number; reports: number }> {
    const before = this.#now() - this.settings.retention.documentDays * 86_400_000;
    const documents = await this.#withDocs(() => this.docs.prune(before));
    let reports = 0;
    const topics = new Set<string>(this.topics.keys());
    for (const [key] of await this.#listAll(REPORT_PREFIX)) topics.add(key.slice(REPORT_PREFIX.length).split('/')[0]!);
    for (const t of topics) reports += await this.#pruneReports(t);
    if (documents || reports) this.ctx.log('info', `research: pruned ${documents} document(s), ${reports} report(s)`);
    return { documents, reports };
  }

  async #pruneReports(topic: string): Promise<number> {
    // a topic no longer configured keeps its reports as well (deleting them is a person's decision)
    const keep = this.settings.retention.reportsPerTopic;
    const rows = await this.#listAll(`${REPORT_PREFIX}${topic}/`, true);
    const old = rows.slice(keep);
    if (old.length === 0) return 0;
    const ops = old.flatMap(([key]) => {
      const runId = key.slice(`${REPORT_PREFIX}${topic}/`.length);
      return [
        { type: 'del' as const, key },
        { type: 'del' as const, key: `${SUMMARY_PREFIX}${runId}/${topic}` },
      ];
    });
    for (let i = 0; i < ops.length; i += STORE_PAGE) await this.ctx.store.batch(ops.slice(i, i + STORE_PAGE));
    return old.length;
  }

  async #listAll<T = unknown>(prefix: string, reverse = false): Promise<Array<[string, T]>> {
    const out: Array<[string, T]> = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.ctx.store.list<T>({
        prefix,
        limit: STORE_PAGE,
        ...(reverse && { reverse: true }),
        ...(after !== undefined && { after }),
      });
      out.push(...page);
      if (page.length < STORE_PAGE) return out;
      after = page[page.length - 1]![0];
    }
  }

  // -- requests -------------------------------------------------------------------------------------------------------

  topicsView(): Ans<'topics'> {
    return {
      topics: this.settings.topics.map((t) => {
        const last = this.#last.get(t.id);
        return {
          id: t.id,
          title: t.title,
          questions: t.questions,
          sources: t.sources.map((s) => s.label),
          ...(t.schedule !== undefined && {
            schedule: t.schedule,
            scheduledBy: this.#schedules.by(jobIdOf(this.ctx.name, t.id)) ?? 'none',
          }),
          notify: t.notify,
          running: this.#running.has(t.id),
          ...(last && { lastRun: last }),
        };
      }),
    };
  }

  async reports(q: Req<'reports'>): Promise<Ans<'reports'>> {
    const limit = q.limit ?? 20;
    let before: string | undefined;
    if (q.before !== undefined) {
      const p = parseReportId(q.before);
      if (!p) throw new TalonError('BAD_REQUEST', 'before: must be a report id (`<topic>-<run id>`)');
      before =
        q.topic !== undefined ? `${REPORT_PREFIX}${q.topic}/${p.runId}` : `${SUMMARY_PREFIX}${p.runId}/${p.topic}`;
    }
    const out: ReportSummary[] = [];
    if (q.topic !== undefined) {
      const rows = await this.ctx.store.list<Report>({
        prefix: `${REPORT_PREFIX}${q.topic}/`,
        reverse: true,
        limit: limit + 1,
        ...(before !== undefined && { after: before }),
      });
      for (const [, r] of rows) out.push(summaryOf(r));
    } else {
      const rows = await this.ctx.store.list<ReportSummary>({
        prefix: SUMMARY_PREFIX,
        reverse: true,
        limit: limit + 1,
        ...(before !== undefined && { after: before }),
      });
      for (const [, s] of rows) out.push(s);
    }
    const more = out.length > limit;
    const page = out.slice(0, limit);
    return { reports: page, ...(more && page.length > 0 && { next: page[page.length - 1]!.id }) };
  }

  async report(id: string): Promise<Ans<'report'>> {
    const p = parseReportId(id);
    const r = p ? await this.ctx.store.get<Report>(`${REPORT_PREFIX}${p.topic}/${p.runId}`) : undefined;
    if (!r) throw new TalonError('NOT_FOUND', `no report ${id}; \`talon research reports\` lists them`);
    return { report: r as unknown as Ans<'report'>['report'] };
  }

  async documents(q: Req<'documents'>): Promise<Ans<'documents'>> {
    const limit = q.limit ?? 50;
    const topic = q.topic !== undefined ? this.topics.get(q.topic) : undefined;
    const labels = new Set(topic?.sources.map((s) => s.label) ?? []);
    const out: Ans<'documents'>['documents'] = [];
    let after = q.after;
    let more = false;
    // a topic's documents: from its sources, or reported by it; pages of the store until the page is full
    for (let pages = 0; pages < 50; pages++) {
      const docs = await this.docs.list({ limit: STORE_PAGE, ...(after !== undefined && { after }) });
      for (const d of docs) {
        if (q.topic !== undefined && !labels.has(d.source) && !(await this.docs.seen(q.topic, d.id))) continue;
        if (out.length === limit) {
          more = true;
          break;
        }
        out.push({
          id: d.id,
          url: d.url,
          urls: d.urls,
          title: d.title,
          fetchedAt: d.fetchedAt,
          ...(d.published !== undefined && { published: d.published }),
          source: d.source,
          chars: d.text.length,
        });
      }
      if (more || docs.length < STORE_PAGE) break;
      after = docs[docs.length - 1]!.id;
    }
    return { documents: out, ...(more && out.length > 0 && { next: out[out.length - 1]!.id }) };
  }

  async stats(): Promise<Ans<'stats'>> {
    const c = this.#counters;
    return {
      stats: {
        topics: this.topics.size,
        running: this.#running.size,
        runs: { ...c.runs },
        documents: await this.docs.count(),
        new: c.new,
        requests: c.requests,
        notModified: c.notModified,
        errors: { ...c.errors },
        refused: c.refused,
        downgraded: c.downgraded,
        published: c.published,
      },
    };
  }
}

let hand: ResearchHand | null = null;

/** the running Hand; HAND_STOPPED between stop() and the worker's end */
function running(): ResearchHand {
  if (!hand) throw new TalonError('HAND_STOPPED', 'the Research Hand is not running');
  return hand;
}

export default defineHand({
  manifest: {
    id: 'research',
    version: '1.0.0',
    description:
      'Watches research topics: reads feeds, pages, sitemaps, search, arXiv, Hacker News and local documents on a schedule, stores each document once, ranks the new ones and writes reports whose every citation is a fetched document (a ranked digest without a model)',
    capabilities: {
      // its findings and notifications; asks the scheduler (its inbox) and answers askers (their reply topics); its
      // own inbox and replies under the default instance name `research` (a config naming the Hand otherwise grants
      // hands/<name>/#)
      bus: {
        publish: ['research/#', 'notify/+', 'hands/+/tasks', 'hands/+/replies'],
        subscribe: ['hands/research/tasks', 'hands/research/replies'],
      },
    },
    // what a config grants: the sites (any host, LAN addresses only when named; robots.txt and the never-scrape list still apply), a model and the
    // embeddings, a folder of documents, the search tool
    optionalCapabilities: {
      network: { hosts: ['*', '0.0.0.0/0', '::/0'] },
      llm: { tokensPerHour: 1_000_000 },
      fs: { read: ['/'] },
      tools: ['web.search', 'llm.embed'],
      bus: { publish: ['#'], subscribe: ['#'] },
    },
    quotas: { heapMb: 128, messagesPerSec: 200 },
    settingsSchema: settingsSchema as unknown as Record<string, unknown>,
  },
  async start(ctx) {
    hand = new ResearchHand(ctx);
    await hand.start();
  },
  async stop() {
    const h = hand;
    hand = null;
    await h?.stop();
  },
  protocol,
  requests: {
    topics: () => running().topicsView(),
    run: async (q: Req<'run'>) => ({ report: summaryOf(await running().run(q.topic, 'api')) }),
    reports: (q: Req<'reports'>) => running().reports(q),
    report: (q: Req<'report'>) => running().report(q.id),
    documents: (q: Req<'documents'>) => running().documents(q),
    stats: () => running().stats(),
  },
});
