/**
 * The Research Hand's records: topics and their sources (from the settings, ./settings.ts), documents (stored once by
 * content hash, ./docs.ts), ranked candidates (./rank.ts) and reports with their citation ledger (./ledger.ts,
 * ./report.ts). Pure types: imported by the worker, the surface and the tests.
 */

export type SourceKind = 'feed' | 'page' | 'sitemap' | 'search' | 'arxiv' | 'hn' | 'folder';

/** one source of a topic, normalized from the settings' shorthand (`{ feed: URL }`, `{ arxiv: 'query' }`, …) */
export interface SourceSpec {
  kind: SourceKind;
  /** feed, page, sitemap: the URL; arxiv, hn: the API's base URL (defaults to the public one) */
  url?: string;
  /** search, arxiv, hn: the query */
  query?: string;
  /** folder: a path the Hand's fs grant lets it read */
  path?: string;
  /** the most documents this source gives per run (default 50) */
  max?: number;
  /** sitemap, page: only URLs matching this regular expression */
  match?: string;
  /** feed: also fetch each item's page for its full text (default false) */
  follow?: boolean;
  /** a label for reports and metrics: `feed:example.com` */
  label: string;
}

export interface Topic {
  /** lowercase id: the bus topic and the API path use it */
  id: string;
  title: string;
  questions: string[];
  /** extra terms for keyword ranking (the questions' words are used too) */
  keywords: string[];
  sources: SourceSpec[];
  /** a cron expression (5 fields) for the Scheduling Hand's job; absent: runs only when asked */
  schedule?: string;
  /** below this relevance a document is not reported (keyword score 0–1, or cosine similarity) */
  minScore: number;
  /** the most documents one report rests on */
  maxDocs: number;
  /** publish a notification on notify/<priority> when a report has findings; 'off' publishes none */
  notify: 'off' | 'low' | 'normal' | 'high';
}

/** what a source hands over, before it is stored */
export interface Candidate {
  url: string;
  title: string;
  text: string;
  /** ms epoch when the source says it was published */
  published?: number;
  /** the source's own id for it (a feed guid, an arXiv id, an HN object id) */
  itemId?: string;
  source: string;
}

/** a failure of one source or one URL in a run: counted, logged, never fatal to the run */
export interface SourceError {
  source: string;
  url?: string;
  /** a WebErrorKind or 'model-json' | 'store' | 'fs' */
  kind: string;
  message: string;
}

export interface SourceResult {
  candidates: Candidate[];
  errors: SourceError[];
  /** conditional requests answered 304 */
  notModified: number;
  /** requests made */
  requests: number;
}

/** a stored document: the same text under any number of URLs is one document */
export interface Doc {
  /** sha256 of the normalized text, hex, first 32 characters */
  id: string;
  /** the first URL it was fetched from */
  url: string;
  /** every URL it was seen under */
  urls: string[];
  title: string;
  text: string;
  fetchedAt: number;
  published?: number;
  source: string;
}

export interface RankedDoc {
  doc: Doc;
  /** 0–1 */
  score: number;
  /** the passage that matched best, ≤ 400 characters */
  extract: string;
  /** which ranking gave the score */
  by: 'keywords' | 'embeddings';
}

/** one claim of a report and the documents it rests on (ids of fetched documents, checked by the ledger) */
export interface Finding {
  claim: string;
  /** confirmed needs at least two distinct documents */
  status: 'confirmed' | 'reported';
  /** Doc ids */
  citations: string[];
  /** the index of the topic's question it answers, when the model says */
  question?: number;
}

/** a claim the ledger took out of a report, and why */
export interface RefusedClaim {
  claim: string;
  reason: 'unknown-citation' | 'no-citation';
  /** what the model cited that was not a fetched document */
  cited: string[];
}

/** a cited document as a report lists it */
export interface ReportSource {
  /** [1], [2]… in the Markdown */
  n: number;
  docId: string;
  url: string;
  title: string;
  fetchedAt: number;
  /** digest reports: the passage that matched best and the document's relevance (0–1) */
  extract?: string;
  score?: number;
}

export interface RunStats {
  sources: number;
  requests: number;
  notModified: number;
  /** candidates the sources gave */
  candidates: number;
  /** documents not seen before by this topic */
  new: number;
  /** new documents at or above minScore */
  relevant: number;
  errors: number;
  ms: number;
}

export interface Report {
  /** `<topic>-<runId>` */
  id: string;
  topic: string;
  runId: string;
  startedAt: number;
  finishedAt: number;
  /** model: written by the model, checked by the ledger; digest: ranked new documents with extracts (no model, or
   * the model failed); nothing: no relevant new document */
  mode: 'model' | 'digest' | 'nothing';
  questions: string[];
  summary: string;
  findings: Finding[];
  sources: ReportSource[];
  refused: RefusedClaim[];
  /** claims the model marked confirmed on fewer than two documents, kept as `reported` */
  downgraded: number;
  stats: RunStats;
  errors: SourceError[];
  /** the report as Markdown (summary, findings with [n] citations, the sources list) */
  markdown: string;
  /** why the model was not used or failed, when mode is digest */
  note?: string;
}

/** what is published on research/<topic>/findings */
export interface FindingsEvent {
  topic: string;
  reportId: string;
  summary: string;
  findings: Array<{ claim: string; status: Finding['status']; sources: Array<{ url: string; title: string }> }>;
  /** a suggestion for the Scheduling Hand: look again sooner, as a job it can put */
  followUp: { text: string; job: Record<string, unknown> };
}
