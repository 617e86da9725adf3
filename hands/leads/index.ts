/**
 * The Lead Generation Hand: scans the configured sources (./sources.ts: directory and exhibitor pages by CSS
 * selectors or the model, CSV/JSON imports, feeds, search) for companies matching the ideal customer profile,
 * dedups them by normalised domain and e-mail (./normalize.ts), enriches them from public data (./enrich.ts: the
 * company's own site, MX records; every field keeps its source URL), scores them 0-100 (./score.ts: rules, plus the
 * model's judgement when granted) and routes the qualified ones (score ≥ threshold) to CRMs through a durable,
 * idempotent outbox (./outbox.ts, ./crm/).
 *
 * A scan (one at a time; a second ask joins the running one; an import waits for it):
 *   readLeadSource each source → leadIdOf (none: counted `no-id`) → mergeLead with the stored `lead/<id>` →
 *   scoreLead (excluded leads are not enriched) → enrich new leads and those older than refreshDays, up to
 *   maxPerScan → scoreLead again (+ judgeWithModel when useModel.judge: its error is counted, the rules alone then)
 *   → combineScore → leadVersion → stored in synced batches → the qualified ones enqueued to every CRM target (the
 *   outbox never enqueues a version already sent; a changed version is an update) → outbox.tick.
 * Nothing is lost: a scan's leads are stored before any delivery, and the outbox is written before it resolves.
 *
 * Bus (relative to talon/<deviceId>/):
 *   leads/qualified        out (qos 1): { id, domain, company, score, reasons } per newly qualified lead
 *   hands/<name>/tasks     in: { op: 'scan', source? } through the task protocol (../sdk/tasks.ts), e.g. from the
 *                          Scheduling Hand's job `leads-<name>-scan` (put by this Hand when `schedule` is set)
 * Kernel services: secrets.get (CRM tokens), dns.mx (MX records; absent → no MX data, logged once).
 * Audit: leads.scan (counts), leads.qualified (subject: the domain), leads.delivered, leads.delivery.failed (subject:
 * `<target>/<lead id>`).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Cron } from 'croner';
import { InFlight, ScheduleSync, defineHand, type AnswerOf, type RequestOf } from '../sdk/index.ts';
import type { HandContext, HandStoreOp } from '../sdk/types.ts';
import { TaskClient, serveTasks } from '../sdk/tasks.ts';
import { Fetcher } from '../sdk/web/index.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { crmClient, type CrmClient } from './crm/index.ts';
import { leadsToCsv } from './csv.ts';
import { enrich } from './enrich.ts';
import { leadIdOf, leadVersion, mergeLead } from './normalize.ts';
import { LeadOutbox, QUEUE_PREFIX, type LeadOutboxOptions } from './outbox.ts';
import { protocol, type LeadsProtocol } from './protocol.ts';
import { combineScore, judgeWithModel, scoreLead } from './score.ts';
import { parseSettings, settingsSchema, type ParsedSettings } from './settings.ts';
import { readLeadSource, type LeadSourceEnv, type ModelChat } from './sources.ts';
import type { Delivery, Lead, LeadSource } from './types.ts';

type Req<K extends keyof LeadsProtocol & string> = RequestOf<LeadsProtocol, K>;
type Ans<K extends keyof LeadsProtocol & string> = AnswerOf<LeadsProtocol, K>;
export type ScanResult = Ans<'scan'>;

export const LEAD_PREFIX = 'lead/';
export const leadKey = (id: string): string => `${LEAD_PREFIX}${id}`;
/** remembers the scheduler job this Hand put, so dropping `schedule` removes it */
const JOB_KEY = 'schedule/job';
/** how often the outbox sends what is due */
export const TICK_MS = 5000;
const STORE_PAGE = 1000;
const BATCH = 500;
const DAY_MS = 86_400_000;

const STATUS_LIST = ['new', 'qualified', 'unqualified', 'excluded'] as const;
type Status = (typeof STATUS_LIST)[number];

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const codeOf = (err: unknown): string | undefined =>
  typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : undefined;

/** the scheduler job's id for a Hand's scans (job ids are lower case) */
export const scanJobId = (self: string): string => `leads-${self}-scan`;

export interface LeadsHandOptions {
  now?: () => number;
  /** the outbox's retry timing and the like (tests shorten the backoff) */
  outbox?: Partial<Omit<LeadOutboxOptions, 'clients' | 'onResult'>>;
  /** how long the scheduler is waited for when the job is put (default 10 s) */
  schedulerTimeoutMs?: number;
}

export class LeadsHand {
  readonly ctx: HandContext;
  readonly settings: ParsedSettings;
  readonly fetcher: Fetcher;
  readonly clients = new Map<string, CrmClient>();
  readonly outbox: LeadOutbox;
  #now: () => number;
  #opts: LeadsHandOptions;
  /** the scan in flight (one at a time) */
  #scan = new InFlight<'scan', ScanResult>();
  /** pipelines (scans, imports) run one after the other */
  #lock: Promise<unknown> = Promise.resolve();
  #byStatus: Record<Status, number> = { new: 0, qualified: 0, unqualified: 0, excluded: 0 };
  #counters = { scans: 0, found: 0, modelErrors: 0, delivered: 0, deliveryFailures: 0 };
  #errors: Record<string, number> = {};
  #lastScan: ScanResult | undefined;
  #stops: Array<() => void> = [];
  #unsubs: Array<() => Promise<void>> = [];
  #mxWarned = false;
  #stopped = false;
  #client: TaskClient;
  #schedules: ScheduleSync;

  constructor(ctx: HandContext, opts: LeadsHandOptions = {}) {
    this.ctx = ctx;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.settings = parseSettings(ctx.settings, { llm: ctx.grants.llm !== null });
    this.fetcher = new Fetcher(ctx.fetch, ctx.store, { ...this.settings.fetcher, now: this.#now });
    for (const t of this.settings.crm) {
      try {
        this.clients.set(t.name, crmClient(t, { fetch: ctx.fetch, secret: (n) => this.#secret(n), now: this.#now }));
      } catch (err) {
        this.settings.problems.push(`crm.${t.name}: ${errorText(err)}; this CRM target is left out`);
      }
    }
    this.outbox = new LeadOutbox(ctx.store, {
      ...opts.outbox,
      clients: this.clients,
      now: this.#now,
      log: ctx.log,
      onResult: (d, outcome, err) => this.#onDelivery(d, outcome, err),
    });
    this.#client = new TaskClient(ctx);
    this.#schedules = new ScheduleSync({
      ctx,
      client: this.#client,
      Cron,
      label: 'leads',
      timeoutMs: opts.schedulerTimeoutMs ?? 10_000,
    });
  }

  async start(): Promise<void> {
    const { ctx } = this;
    for (const p of this.settings.problems) ctx.log.warn(`settings: ${p}`);
    await this.#countLeads();
    this.#unsubs.push(
      await serveTasks(ctx, async (task) => {
        const t = (typeof task === 'object' && task !== null ? task : {}) as { op?: unknown; source?: unknown };
        if (t.op === 'scan') return this.scan(typeof t.source === 'string' ? { source: t.source } : {});
        throw new TalonError('BAD_REQUEST', 'a task is { op: "scan", source?: NAME }');
      }),
    );
    this.#stops.push(ctx.timers.every(TICK_MS, () => this.tick()));
    void this.#arm().catch((err) => ctx.log.warn(`schedule: ${errorText(err)}`));
    ctx.log.info(
      `${this.settings.sources.length} source(s), ${this.clients.size} CRM target(s), threshold ${this.settings.threshold}; ${this.#byStatus.qualified} qualified of ${this.#total()} lead(s)`,
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const s of this.#stops.splice(0)) s();
    this.#schedules.stop();
    for (const u of this.#unsubs.splice(0)) await u().catch(() => {});
    await this.#scan.settled();
  }

  /** an audit entry; the audit log being down does not stop a scan or a delivery (it is logged) */
  async #audit(
    action: string,
    subject: string,
    opts: { decision: 'ok' | 'error' | 'info'; detail: Record<string, unknown> },
  ): Promise<void> {
    try {
      await this.ctx.audit(action, subject, opts);
    } catch (err) {
      this.ctx.log.warn(`audit ${action} ${subject}: ${errorText(err)}`);
    }
  }

  #total(): number {
    return STATUS_LIST.reduce((a, s) => a + this.#byStatus[s], 0);
  }

  async #countLeads(): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const rows = await this.ctx.store.list<Lead>({
        prefix: LEAD_PREFIX,
        limit: STORE_PAGE,
        ...(after !== undefined && { after }),
      });
      for (const [, l] of rows) if (l.status in this.#byStatus) this.#byStatus[l.status]++;
      if (rows.length < STORE_PAGE) return;
      after = rows[rows.length - 1]![0];
    }
  }

  async #secret(name: string): Promise<string | undefined> {
    const v = await this.ctx.call<string | null>('secrets.get', name);
    return typeof v === 'string' ? v : undefined;
  }

  /** the domain's MX records through the kernel; no `dns.mx` service (or no grant for it) is no MX data, said once */
  async #mx(domain: string): Promise<Array<{ exchange: string; priority: number }>> {
    try {
      const r = await this.ctx.call<Array<{ exchange: string; priority: number }> | null>('dns.mx', domain);
      return Array.isArray(r) ? r : [];
    } catch (err) {
      const code = codeOf(err);
      if (code === 'NOT_FOUND' || code === 'CAPABILITY_DENIED') {
        if (!this.#mxWarned)
          this.ctx.log.warn(
            `no MX data: the kernel's dns.mx answered ${code} (${errorText(err)}); leads have no mx field`,
          );
        this.#mxWarned = true;
        return [];
      }
      throw err;
    }
  }

  #chat(purpose: string): ModelChat {
    return (req) => this.ctx.llm.chat(req, { purpose });
  }

  #sourceEnv(override?: { path: string; text: string }): LeadSourceEnv {
    const dir = this.settings.importDir;
    return {
      fetcher: this.fetcher,
      tools: this.ctx.tools,
      llm: this.settings.useModel.extract ? this.#chat('leads.extract') : null,
      log: this.ctx.log,
      now: this.#now,
      readFile: async (path) => {
        if (override && path === override.path) return override.text;
        return readFile(resolve(dir ?? process.cwd(), path), 'utf8');
      },
    };
  }

  // ---- the schedule ----------------------------------------------------------------------------------------------

  /** the Scheduling Hand's job when it answers, else the Hand's own timer; a job no longer wanted is removed */
  async #arm(): Promise<void> {
    const { ctx, settings } = this;
    const id = scanJobId(ctx.name);
    const timeoutMs = this.#opts.schedulerTimeoutMs ?? 10_000;
    if (!settings.schedule) {
      const had = await ctx.store.get<{ scheduler: string }>(JOB_KEY);
      if (had) {
        await this.#client
          .ask(had.scheduler, { op: 'remove', id }, { timeoutMs })
          .then(() => ctx.store.del(JOB_KEY))
          .catch((err) => {
            if (codeOf(err) === 'NOT_FOUND') return ctx.store.del(JOB_KEY);
            ctx.log.warn(`the scheduler job ${id} could not be removed: ${errorText(err)}`);
          });
      }
      return;
    }
    const job = {
      id,
      description: `Lead Generation (${ctx.name}): scan the sources`,
      trigger: { cron: settings.schedule },
      action: { ask: { hand: ctx.name, task: { op: 'scan' }, timeout: '10m' } },
    };
    // no scheduler, or one that does not take the job: the Hand's own timer (../sdk/schedules.ts)
    await this.#schedules.sync(settings.scheduler ?? '', [
      { id, cron: settings.schedule, job, fire: () => this.scan({}) },
    ]);
    if (this.#schedules.by(id) !== 'scheduler') return;
    await ctx.store.put(JOB_KEY, { scheduler: settings.scheduler });
    ctx.log.info(`scans run by the scheduler's job ${id} (${settings.schedule})`);
  }

  // ---- the pipeline ----------------------------------------------------------------------------------------------

  /** the sources now (or one by name); a scan already running is joined */
  scan(q: { source?: string }): Promise<ScanResult> {
    let sources: LeadSource[] = this.settings.sources;
    if (q.source !== undefined) {
      const one = sources.find((s) => s.name === q.source);
      if (!one)
        return Promise.reject(
          new TalonError(
            'NOT_FOUND',
            `there is no source "${q.source}" (sources: ${sources.map((s) => s.name).join(', ') || 'none'})`,
          ),
        );
      sources = [one];
    }
    const going = this.#scan.get('scan');
    if (going) return going.then((r) => ({ ...r, joined: true }));
    return this.#scan.run('scan', () => this.#locked(() => this.#pipeline(sources, this.#sourceEnv())));
  }

  /** a CSV or JSON text through the same pipeline as an `import` source */
  import(q: Req<'import'>): Promise<ScanResult> {
    const name = q.source ?? 'import';
    const path = `api-import/${name}.${q.format}`;
    const src: LeadSource = { kind: 'import', name, path, format: q.format, map: { ...(q.map ?? {}) } };
    return this.#locked(() => this.#pipeline([src], this.#sourceEnv({ path, text: q.data })));
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async #pipeline(sources: LeadSource[], env: LeadSourceEnv): Promise<ScanResult> {
    const { ctx, settings } = this;
    const startedAt = this.#now();
    const r: ScanResult = {
      found: 0,
      new: 0,
      updated: 0,
      qualified: 0,
      newlyQualified: 0,
      enqueued: 0,
      enriched: 0,
      pages: 0,
      errors: {},
      sources: sources.map((s) => s.name),
      startedAt,
      finishedAt: startedAt,
    };
    const errors = r.errors as Record<string, number>;
    const count = (kind: string): void => {
      errors[kind] = (errors[kind] ?? 0) + 1;
      this.#errors[kind] = (this.#errors[kind] ?? 0) + 1;
      if (kind.startsWith('model')) this.#counters.modelErrors++;
    };
    this.#counters.scans++;

    // read every source; merge what they found by lead id (the stored lead first)
    const stored = new Map<string, Lead | undefined>();
    const merged = new Map<string, Lead>();
    for (const src of sources) {
      if (ctx.signal.aborted || this.#stopped) break;
      let res: Awaited<ReturnType<typeof readLeadSource>>;
      try {
        res = await readLeadSource(src, env);
      } catch (err) {
        count('error');
        ctx.log.warn(`sources.${src.name}: ${errorText(err)}`);
        continue;
      }
      r.pages = (r.pages ?? 0) + res.pages;
      // the model named companies the page does not show: left out (./extract.ts checks it in code), counted
      for (let i = 0; i < (res.dropped ?? 0); i++) count('model-invented');
      for (const e of res.errors) {
        count(e.kind);
        ctx.log.warn(`sources.${src.name}: ${e.kind}: ${e.message}${e.url ? ` (${e.url})` : ''}`);
      }
      for (const raw of res.leads) {
        r.found++;
        this.#counters.found++;
        const id = leadIdOf(raw.fields);
        if (!id) {
          count('no-id');
          continue;
        }
        if (!stored.has(id)) stored.set(id, await ctx.store.get<Lead>(leadKey(id)));
        try {
          merged.set(id, mergeLead(merged.get(id) ?? stored.get(id), raw, this.#now()));
        } catch (err) {
          count('no-id');
          ctx.log.debug(`sources.${src.name}: ${errorText(err)}`);
        }
      }
    }

    // enrich, score, version
    const { criteria } = settings;
    let budget = settings.enrich.enabled ? settings.enrich.maxPerScan : 0;
    const refreshMs = settings.enrich.refreshDays * DAY_MS;
    const judge = settings.useModel.judge ? this.#chat('leads.judge') : null;
    const out: Lead[] = [];
    for (const [id, merged0] of merged) {
      if (this.#stopped) break;
      let lead = merged0;
      const before = stored.get(id);
      let rules = scoreLead(lead, criteria);
      const now = this.#now();
      if (
        !rules.excludedBy &&
        budget > 0 &&
        lead.domain &&
        (lead.enrichedAt === undefined || now - lead.enrichedAt >= refreshMs)
      ) {
        budget--;
        try {
          const e = await enrich(lead, { fetcher: this.fetcher, mx: (d) => this.#mx(d), now: this.#now });
          lead = e.lead;
          lead.enrichedAt ??= now;
          r.enriched++;
          for (const x of e.errors) {
            count(x.kind);
            ctx.log.debug(`enrich ${id}: ${x.kind}: ${x.message}${x.url ? ` (${x.url})` : ''}`);
          }
        } catch (err) {
          count('enrich');
          ctx.log.warn(`enrich ${id}: ${errorText(err)}`);
        }
        rules = scoreLead(lead, criteria);
      }
      const content = leadVersion(lead);
      if (rules.excludedBy || !judge) delete lead.model;
      else if (lead.model === undefined || before === undefined || before.version !== content) {
        const j = await judgeWithModel(lead, criteria, judge).catch((err: unknown) => ({ error: errorText(err) }));
        if ('error' in j) {
          count('model-judge');
          delete lead.model;
          ctx.log.warn(`the model's judgement of ${id} is left out: ${j.error}`);
        } else lead.model = { score: j.score, reason: j.reason };
      }
      const score = rules.excludedBy ? 0 : combineScore(rules.score, lead.model);
      lead.score = Math.max(0, Math.min(100, Math.round(Number.isFinite(score) ? score : 0)));
      lead.reasons = rules.reasons;
      if (rules.excludedBy) {
        lead.status = 'excluded';
        lead.excludedBy = rules.excludedBy;
      } else {
        lead.status = lead.score >= settings.threshold ? 'qualified' : 'unqualified';
        delete lead.excludedBy;
      }
      lead.version = leadVersion(lead);
      if (!before) r.new++;
      else if (before.version !== lead.version) r.updated++;
      if (lead.status === 'qualified') r.qualified++;
      out.push(lead);
    }

    // stored before anything is delivered
    for (let i = 0; i < out.length; i += BATCH) {
      const ops: HandStoreOp[] = out.slice(i, i + BATCH).map((l) => ({ type: 'put', key: leadKey(l.id), value: l }));
      await ctx.store.batch(ops, { sync: true });
    }
    for (const l of out) {
      const before = stored.get(l.id);
      if (before && before.status in this.#byStatus) this.#byStatus[before.status]--;
      this.#byStatus[l.status]++;
    }

    // newly qualified: audit and tell the bus; then the CRMs
    const targets = [...this.clients.keys()];
    for (const l of out) {
      if (l.status !== 'qualified') continue;
      if (stored.get(l.id)?.status !== 'qualified') {
        r.newlyQualified = (r.newlyQualified ?? 0) + 1;
        await this.#audit('qualified', l.domain ?? l.id, {
          decision: 'info',
          detail: { id: l.id, score: l.score, reasons: l.reasons.slice(0, 10) },
        });
        try {
          ctx.bus.publish(
            'leads/qualified',
            { id: l.id, domain: l.domain, company: l.company?.value, score: l.score, reasons: l.reasons },
            { qos: 1 },
          );
        } catch (err) {
          ctx.log.warn(`leads/qualified not published: ${errorText(err)}`);
        }
      }
      if (targets.length > 0) {
        try {
          r.enqueued += await this.outbox.enqueue(l, targets);
        } catch (err) {
          count('outbox');
          ctx.log.error(`outbox: ${l.id} not enqueued: ${errorText(err)}`);
        }
      }
    }
    r.finishedAt = this.#now();
    this.#lastScan = r;
    const errorCount = Object.values(errors).reduce((a, n) => a + n, 0);
    await this.#audit('scan', r.sources?.join(',') || '-', {
      decision: errorCount > 0 ? 'error' : 'ok',
      detail: {
        found: r.found,
        new: r.new,
        updated: r.updated,
        qualified: r.qualified,
        enqueued: r.enqueued,
        enriched: r.enriched,
        errors,
      },
    });
    if (r.enqueued > 0) await this.tick();
    return r;
  }

  /** sends what is due in the outbox (every TICK_MS, after a scan, after a retry) */
  async tick(): Promise<void> {
    if (this.clients.size === 0) return;
    try {
      await this.outbox.tick((id) => this.ctx.store.get<Lead>(leadKey(id)));
    } catch (err) {
      this.ctx.log.warn(`outbox: ${errorText(err)}`);
    }
  }

  async #onDelivery(d: Delivery, outcome: 'sent' | 'retry' | 'failed', err?: Error): Promise<void> {
    if (outcome === 'retry') {
      this.ctx.log.debug(`${d.key}: retry ${d.attempts} at ${new Date(d.nextAt).toISOString()}: ${err?.message ?? ''}`);
      return;
    }
    if (outcome === 'sent') this.#counters.delivered++;
    else this.#counters.deliveryFailures++;
    await this.#audit(outcome === 'sent' ? 'delivered' : 'delivery.failed', d.key, {
      decision: outcome === 'sent' ? 'ok' : 'error',
      detail: {
        target: d.target,
        lead: d.leadId,
        version: d.version,
        attempts: d.attempts,
        ...(d.crmId !== undefined && { crmId: d.crmId }),
        ...(d.action !== undefined && { action: d.action }),
        ...(err && { error: err.message.slice(0, 300) }),
      },
    });
  }

  // ---- the requests ----------------------------------------------------------------------------------------------

  async leads(q: Req<'leads'>): Promise<Ans<'leads'>> {
    const limit = q.limit ?? 50;
    const word = q.q?.toLowerCase();
    const page: Lead[] = [];
    let after = q.after !== undefined ? leadKey(q.after) : undefined;
    for (;;) {
      const rows = await this.ctx.store.list<Lead>({
        prefix: LEAD_PREFIX,
        limit: STORE_PAGE,
        ...(after !== undefined && { after }),
      });
      for (const [, l] of rows) {
        if (q.status !== undefined && l.status !== q.status) continue;
        if (q.minScore !== undefined && l.score < q.minScore) continue;
        if (word !== undefined && !matches(l, word)) continue;
        if (page.length === limit)
          return { leads: page as unknown as Ans<'leads'>['leads'], next: page[page.length - 1]!.id };
        page.push(l);
      }
      if (rows.length < STORE_PAGE) break;
      after = rows[rows.length - 1]![0];
    }
    return { leads: page as unknown as Ans<'leads'>['leads'] };
  }

  async lead(id: string): Promise<Lead> {
    const l = await this.ctx.store.get<Lead>(leadKey(id));
    if (!l) throw new TalonError('NOT_FOUND', `there is no lead "${id}" (ids are d:<domain> or e:<e-mail>)`);
    return l;
  }

  async export(q: Req<'export'>): Promise<Ans<'export'>> {
    const all: Lead[] = [];
    let after: string | undefined;
    for (;;) {
      const rows = await this.ctx.store.list<Lead>({
        prefix: LEAD_PREFIX,
        limit: STORE_PAGE,
        ...(after !== undefined && { after }),
      });
      for (const [, l] of rows) if (q.status === undefined || l.status === q.status) all.push(l);
      if (rows.length < STORE_PAGE) break;
      after = rows[rows.length - 1]![0];
    }
    return { csv: leadsToCsv(all), count: all.length };
  }

  async deliveries(q: Req<'deliveries'>): Promise<Ans<'deliveries'>> {
    const limit = q.limit ?? 50;
    const list = await this.outbox.list({
      limit: limit + 1,
      ...(q.state !== undefined && { state: q.state }),
      ...(q.after !== undefined && { after: q.after }),
    });
    const page = list.slice(0, limit);
    return {
      deliveries: page as unknown as Ans<'deliveries'>['deliveries'],
      ...(list.length > limit && { next: page[page.length - 1]!.key }),
    };
  }

  async retry(key: string): Promise<Ans<'retry'>> {
    const d = await this.outbox.retry(key);
    await this.tick();
    const now = await this.ctx.store.get<Delivery>(QUEUE_PREFIX + key);
    return { delivery: (now ?? d) as unknown as Ans<'retry'>['delivery'] };
  }

  async stats(): Promise<Ans<'stats'>> {
    const deliveries: Record<string, { pending: number; sent: number; failed: number }> = {};
    for (const t of this.clients.keys()) deliveries[t] = { pending: 0, sent: 0, failed: 0 };
    Object.assign(deliveries, await this.outbox.countsByTarget());
    return {
      leads: { ...this.#byStatus },
      scans: this.#counters.scans,
      found: this.#counters.found,
      errors: { ...this.#errors },
      modelErrors: this.#counters.modelErrors,
      deliveries,
      delivered: this.#counters.delivered,
      deliveryFailures: this.#counters.deliveryFailures,
      ...(this.#lastScan && { lastScan: this.#lastScan }),
      scanning: this.#scan !== null,
    };
  }
}

/** does the lead's company, domain, id or an e-mail hold the word? */
function matches(l: Lead, word: string): boolean {
  return (
    l.id.includes(word) ||
    (l.domain ?? '').includes(word) ||
    (l.company?.value ?? '').toLowerCase().includes(word) ||
    l.emails.some((e) => e.value.toLowerCase().includes(word))
  );
}

let hand: LeadsHand | null = null;

function running(): LeadsHand {
  if (!hand) throw new TalonError('HAND_STOPPED', 'the Lead Generation Hand is not running');
  return hand;
}

export default defineHand({
  manifest: {
    id: 'leads',
    version: '1.0.0',
    description:
      'Scans directories, exhibitor lists, imports, feeds and search for companies matching an ideal customer profile, enriches them from their own sites and MX records (each field with its source), scores them and routes the qualified ones to HubSpot, Pipedrive or a webhook exactly once',
    capabilities: {
      // leads/qualified for the Communication Hand; asks the scheduler (its inbox) and answers askers (their reply
      // topics); its own inbox and replies under the instance name `leads` (another name: grant hands/<name>/#)
      bus: {
        publish: ['leads/#', 'notify/+', 'hands/+/tasks', 'hands/+/replies'],
        subscribe: ['hands/leads/tasks', 'hands/leads/replies'],
      },
    },
    // what a config grants: the web it reads and the CRMs' hosts, the CRM tokens, the model, search, import folders
    optionalCapabilities: {
      network: { hosts: ['*', '0.0.0.0/0', '::/0'] },
      secrets: ['*'],
      llm: { tokensPerHour: 1_000_000 },
      tools: ['web.search'],
      fs: { read: ['/'] },
    },
    quotas: { heapMb: 128 },
    settingsSchema: settingsSchema as unknown as Record<string, unknown>,
  },
  async start(ctx) {
    hand = new LeadsHand(ctx);
    await hand.start();
  },
  async stop() {
    const h = hand;
    hand = null;
    await h?.stop();
  },
  protocol,
  requests: {
    leads: (q: Req<'leads'>) => running().leads(q),
    lead: async (q: Req<'lead'>) => ({ lead: (await running().lead(q.id)) as unknown as Ans<'lead'>['lead'] }),
    scan: (q: Req<'scan'>) => running().scan(q),
    import: (q: Req<'import'>) => running().import(q),
    export: (q: Req<'export'>) => running().export(q),
    deliveries: (q: Req<'deliveries'>) => running().deliveries(q),
    retry: (q: Req<'retry'>) => running().retry(q.key),
    stats: () => running().stats(),
  },
});
