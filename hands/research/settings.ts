/**
 * The Research Hand's settings (`hands: [{ name: research, module: research, settings: {…} }]`):
 *
 *   topics         what to watch: [{ id, title?, questions (1–20), keywords?, sources, schedule?, minScore?,
 *                  maxDocs?, notify? }]; a source is the shorthand ./sources/index.ts parseSource reads
 *                  (`{ feed: URL }`, `{ page: URL }`, `{ sitemap: URL }`, `{ search: 'query' }`, `{ arxiv: 'query' }`,
 *                  `{ hn: 'query' }`, `{ folder: PATH }`)
 *   scheduler      the Scheduling Hand instance that runs the topics' schedules as jobs (default "scheduler");
 *                  '' keeps them on the Hand's own timers
 *   userAgent      sent with every request and matched against robots.txt (default the web kit's TalonBot)
 *   politenessMs   the least time between two requests to one host (default 1000; robots.txt's Crawl-delay raises it)
 *   timeoutMs      per request (default 15 000)
 *   maxPageBytes   the most of one answer read (default 5 MiB)
 *   useModel       auto (when the Hand has an llm grant) | never: reports written by the model, checked by the ledger
 *   embeddings     auto (when the `llm.embed` tool is granted and answers) | never: keyword ranking only
 *   retention      { reportsPerTopic (default 50), documentDays (default 90) }
 *
 * The schema below checks the outline only; each topic and source is checked here and named in words
 * (`topics[1].sources[0].feed: must be an http(s) URL`, `topics[0].schedule: …`): a bad topic or source is left out
 * and logged, the rest run (as the Scheduling Hand does with its jobs).
 */
import { Cron } from 'croner';
import type { FromSchema } from '../sdk/index.ts';
import { HAND_NAME } from '../../runtime/core/names.ts';
import { TOPIC_ID_PATTERN } from './protocol.ts';
import { parseSource } from './sources/index.ts';
import type { SourceSpec, Topic } from './types.ts';

const TOPIC_ID = new RegExp(TOPIC_ID_PATTERN);
export { TOPIC_ID_PATTERN };
export const MAX_TOPICS = 100;
export const MAX_SOURCES = 50;
export const MAX_QUESTIONS = 20;
export const NOTIFY_LEVELS = ['off', 'low', 'normal', 'high'] as const;

export const DEFAULTS = {
  scheduler: 'scheduler',
  politenessMs: 1000,
  timeoutMs: 15_000,
  maxPageBytes: 5 * 1024 * 1024,
  maxDocs: 10,
  minScore: 0.1,
  notify: 'off' as Topic['notify'],
  reportsPerTopic: 50,
  documentDays: 90,
} as const;

export const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    topics: {
      type: 'array',
      maxItems: MAX_TOPICS,
      default: [],
      description:
        'topics: { id, title?, questions: [..], keywords?, sources: [{ feed|page|sitemap|search|arxiv|hn|folder: … }], schedule?: cron, minScore?, maxDocs?, notify?: off|low|normal|high }',
      items: { type: 'object' },
    },
    scheduler: {
      type: 'string',
      maxLength: 63,
      description: "the Scheduling Hand instance that runs the topics' schedules ('' = the Hand's own timers)",
    },
    userAgent: { type: 'string', minLength: 1, maxLength: 300 },
    politenessMs: { type: 'integer', minimum: 0, maximum: 600_000 },
    timeoutMs: { type: 'integer', minimum: 100, maximum: 300_000 },
    maxPageBytes: { type: 'integer', minimum: 1024, maximum: 256 * 1024 * 1024 },
    useModel: { type: 'string', enum: ['auto', 'never'] },
    embeddings: { type: 'string', enum: ['auto', 'never'] },
    retention: {
      type: 'object',
      additionalProperties: false,
      properties: {
        reportsPerTopic: { type: 'integer', minimum: 1, maximum: 10_000 },
        documentDays: { type: 'number', minimum: 0.001, maximum: 3650 },
      },
    },
  },
} as const;

export type ResearchSettings = FromSchema<typeof settingsSchema>;

export interface ParsedSettings {
  topics: Topic[];
  /** '' = local timers */
  scheduler: string;
  userAgent: string | undefined;
  politenessMs: number;
  timeoutMs: number;
  maxPageBytes: number;
  useModel: 'auto' | 'never';
  embeddings: 'auto' | 'never';
  retention: { reportsPerTopic: number; documentDays: number };
  /** what was wrong, field by field; those topics and sources are left out */
  problems: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** a cron expression of five fields croner reads, or why not */
export function cronProblem(expr: unknown): string | undefined {
  if (typeof expr !== 'string' || expr.trim() === '')
    return 'must be a cron expression of five fields ("0 7 * * *": every day at 07:00)';
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5)
    return `"${expr}" has ${fields.length} field(s): write five (minute hour day-of-month month day-of-week), "0 7 * * *" for every day at 07:00`;
  try {
    new Cron(expr, { paused: true }).stop();
  } catch (err) {
    return `"${expr}" is not a cron expression croner reads (${(err as Error).message}); "0 7 * * 1-5" is 07:00 on weekdays`;
  }
  return undefined;
}

function stringList(v: unknown, where: string, max: number, maxLen: number, problems: string[]): string[] | null {
  if (!Array.isArray(v)) {
    problems.push(`${where}: must be a list of strings`);
    return null;
  }
  const out: string[] = [];
  v.forEach((s, i) => {
    if (typeof s !== 'string' || s.trim() === '' || s.length > maxLen)
      problems.push(`${where}[${i}]: must be a text of 1 to ${maxLen} characters`);
    else out.push(s.trim());
  });
  if (out.length > max) {
    problems.push(`${where}: at most ${max}; the rest are left out`);
    out.length = max;
  }
  return out;
}

/**
 * One topic from the settings, or null when it cannot run (its problems are pushed, named by field). A bad source is
 * left out alone; a topic with no source left, no question, or a bad id or schedule is left out whole.
 */
export function parseTopic(raw: unknown, where: string, problems: string[]): Topic | null {
  if (!isObject(raw)) {
    problems.push(`${where}: must be a topic { id, questions, sources, schedule?, … }`);
    return null;
  }
  const known = ['id', 'title', 'questions', 'keywords', 'sources', 'schedule', 'minScore', 'maxDocs', 'notify'];
  for (const k of Object.keys(raw))
    if (!known.includes(k)) problems.push(`${where}.${k}: is not a known field (${known.join(', ')}); ignored`);
  let ok = true;
  const id = raw.id;
  if (typeof id !== 'string' || !TOPIC_ID.test(id)) {
    problems.push(
      `${where}.id: ${JSON.stringify(id ?? null)} is not a topic id: 1-40 lowercase letters, digits, "-" or "_" ("ai-chips")`,
    );
    ok = false;
  }
  const at = where;
  let title = typeof id === 'string' ? id : '';
  if (raw.title !== undefined) {
    if (typeof raw.title === 'string' && raw.title.trim() !== '' && raw.title.length <= 200) title = raw.title.trim();
    else problems.push(`${at}.title: must be a text of 1 to 200 characters; the id is used`);
  }
  const questions =
    raw.questions === undefined ? null : stringList(raw.questions, `${at}.questions`, MAX_QUESTIONS, 500, problems);
  if (!questions || questions.length === 0) {
    problems.push(`${at}.questions: a topic needs 1 to ${MAX_QUESTIONS} questions ("What changed in RISC-V boards?")`);
    ok = false;
  }
  const keywords =
    raw.keywords === undefined ? [] : (stringList(raw.keywords, `${at}.keywords`, 100, 100, problems) ?? []);
  const sources: SourceSpec[] = [];
  if (!Array.isArray(raw.sources) || raw.sources.length === 0) {
    problems.push(
      `${at}.sources: a topic needs at least one source ({ feed: URL }, { page: URL }, { sitemap: URL }, { search: 'query' }, { arxiv: 'query' }, { hn: 'query' }, { folder: PATH })`,
    );
    ok = false;
  } else {
    raw.sources.slice(0, MAX_SOURCES).forEach((s, i) => {
      const r = parseSource(s, `${at}.sources[${i}]`);
      if (typeof r === 'string') problems.push(r);
      else sources.push(r);
    });
    if (raw.sources.length > MAX_SOURCES)
      problems.push(`${at}.sources: at most ${MAX_SOURCES} sources; the rest are left out`);
    if (sources.length === 0) {
      problems.push(`${at}.sources: no source is usable; the topic is left out`);
      ok = false;
    }
  }
  let schedule: string | undefined;
  if (raw.schedule !== undefined && raw.schedule !== null && raw.schedule !== '') {
    const p = cronProblem(raw.schedule);
    if (p) {
      problems.push(`${at}.schedule: ${p}; the topic is left out`);
      ok = false;
    } else schedule = (raw.schedule as string).trim();
  }
  let minScore: number = DEFAULTS.minScore;
  if (raw.minScore !== undefined) {
    if (typeof raw.minScore === 'number' && raw.minScore >= 0 && raw.minScore <= 1) minScore = raw.minScore;
    else problems.push(`${at}.minScore: must be a number from 0 to 1, not ${JSON.stringify(raw.minScore)}`);
  }
  let maxDocs: number = DEFAULTS.maxDocs;
  if (raw.maxDocs !== undefined) {
    if (typeof raw.maxDocs === 'number' && Number.isInteger(raw.maxDocs) && raw.maxDocs >= 1 && raw.maxDocs <= 50)
      maxDocs = raw.maxDocs;
    else problems.push(`${at}.maxDocs: must be a whole number from 1 to 50, not ${JSON.stringify(raw.maxDocs)}`);
  }
  let notify: Topic['notify'] = DEFAULTS.notify;
  if (raw.notify !== undefined) {
    if ((NOTIFY_LEVELS as readonly unknown[]).includes(raw.notify)) notify = raw.notify as Topic['notify'];
    else problems.push(`${at}.notify: must be one of ${NOTIFY_LEVELS.join(', ')}, not ${JSON.stringify(raw.notify)}`);
  }
  if (!ok || typeof id !== 'string') return null;
  return {
    id,
    title,
    questions: questions!,
    keywords,
    sources,
    ...(schedule !== undefined && { schedule }),
    minScore,
    maxDocs,
    notify,
  };
}

function intIn(
  s: Record<string, unknown>,
  k: string,
  min: number,
  max: number,
  dflt: number,
  problems: string[],
): number {
  const v = s[k];
  if (v === undefined) return dflt;
  if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
  problems.push(
    `settings.${k}: must be a whole number from ${min} to ${max}, not ${JSON.stringify(v)}; ${dflt} is used`,
  );
  return dflt;
}

/** the settings with defaults; what is wrong is named and left out (the Hand starts with the rest) */
export function parseSettings(raw: unknown): ParsedSettings {
  const problems: string[] = [];
  const out: ParsedSettings = {
    topics: [],
    scheduler: DEFAULTS.scheduler,
    userAgent: undefined,
    politenessMs: DEFAULTS.politenessMs,
    timeoutMs: DEFAULTS.timeoutMs,
    maxPageBytes: DEFAULTS.maxPageBytes,
    useModel: 'auto',
    embeddings: 'auto',
    retention: { reportsPerTopic: DEFAULTS.reportsPerTopic, documentDays: DEFAULTS.documentDays },
    problems,
  };
  if (raw === undefined || raw === null) return out;
  if (!isObject(raw)) {
    problems.push('settings: must be an object { topics, scheduler?, … }');
    return out;
  }
  const s = raw;
  for (const k of Object.keys(s))
    if (!(k in settingsSchema.properties)) problems.push(`settings.${k}: is not a known field; ignored`);
  if (s.topics !== undefined) {
    if (!Array.isArray(s.topics)) problems.push('settings.topics: must be a list of topics');
    else {
      const seen = new Set<string>();
      s.topics.slice(0, MAX_TOPICS).forEach((t, i) => {
        const topic = parseTopic(t, `topics[${i}]`, problems);
        if (!topic) return;
        if (seen.has(topic.id)) {
          problems.push(`topics[${i}].id: "${topic.id}" is used by an earlier topic; this one is left out`);
          return;
        }
        seen.add(topic.id);
        out.topics.push(topic);
      });
      if (s.topics.length > MAX_TOPICS) problems.push(`settings.topics: at most ${MAX_TOPICS}; the rest are left out`);
    }
  }
  if (s.scheduler !== undefined) {
    if (typeof s.scheduler === 'string' && (s.scheduler === '' || HAND_NAME.test(s.scheduler)))
      out.scheduler = s.scheduler;
    else
      problems.push(
        `settings.scheduler: must be a Hand instance name ("scheduler") or '' for the Hand's own timers, not ${JSON.stringify(s.scheduler)}`,
      );
  }
  if (s.userAgent !== undefined) {
    if (typeof s.userAgent === 'string' && s.userAgent.trim() !== '' && !/[\r\n]/.test(s.userAgent))
      out.userAgent = s.userAgent.trim();
    else problems.push('settings.userAgent: must be one line of text ("MyLabBot/1.0 (+https://example.org/bot)")');
  }
  out.politenessMs = intIn(s, 'politenessMs', 0, 600_000, DEFAULTS.politenessMs, problems);
  out.timeoutMs = intIn(s, 'timeoutMs', 100, 300_000, DEFAULTS.timeoutMs, problems);
  out.maxPageBytes = intIn(s, 'maxPageBytes', 1024, 256 * 1024 * 1024, DEFAULTS.maxPageBytes, problems);
  for (const k of ['useModel', 'embeddings'] as const) {
    const v = s[k];
    if (v === undefined) continue;
    if (v === 'auto' || v === 'never') out[k] = v;
    else problems.push(`settings.${k}: must be "auto" or "never", not ${JSON.stringify(v)}; auto is used`);
  }
  if (s.retention !== undefined) {
    if (!isObject(s.retention)) problems.push('settings.retention: must be { reportsPerTopic?, documentDays? }');
    else {
      const r = s.retention;
      if (r.reportsPerTopic !== undefined) {
        const n = r.reportsPerTopic;
        if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 10_000) out.retention.reportsPerTopic = n;
        else
          problems.push(
            `settings.retention.reportsPerTopic: must be a whole number from 1 to 10000, not ${JSON.stringify(n)}`,
          );
      }
      if (r.documentDays !== undefined) {
        const d = r.documentDays;
        if (typeof d === 'number' && d > 0 && d <= 3650) out.retention.documentDays = d;
        else
          problems.push(
            `settings.retention.documentDays: must be a number of days from 0 to 3650, not ${JSON.stringify(d)}`,
          );
      }
    }
  }
  return out;
}
