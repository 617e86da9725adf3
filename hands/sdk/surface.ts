/**
 * A Hand's surface: what it adds to the device beyond its worker, declared next to its manifest
 * in `hands/<id>/surface.ts` and served by the kernel generically (no file in runtime/ or
 * web-admin/ names a Hand). Like a zigbee2mqtt extension or a Home Assistant integration, the
 * feature plugs into a few extension points, and deleting its folder (and its line in
 * hands/catalog.ts) removes it everywhere:
 *
 * - `protocol`: the typed requests the kernel may send the running Hand, one JSON Schema for the
 *   request and one for the answer per kind. The TypeScript types are derived from the schemas
 *   (json-schema-to-ts `FromSchema`, schemas written `as const`), so the two cannot drift. The
 *   Hand answers them with one handler per kind (`requests` in defineHand, typed from the same
 *   declaration); the kernel validates every request against its kind's schema before sending it.
 * - `routes`: REST routes under `/api/v1/hands/{name}/…` or an area prefix the API documents
 *   (`/api/v1/alerts`), with their schemas: they are validated, access-checked and listed in the
 *   OpenAPI document like the kernel's own. Their handler gets `request(kind, body)` to the Hand.
 * - `cli`: `talon <id> <command>` subcommands, parsed and helped by the CLI from their declaration.
 * - `metrics`: Prometheus families rendered into /metrics, from what the Hand answers.
 * - `homeAssistant`: entities announced by MQTT discovery with the device's own.
 * - `page`: the web admin page module (`hands/<id>/page/index.tsx`, loaded lazily by the page).
 *
 * Keep a surface module light: it is loaded by the kernel and the CLI at start, so heavy code
 * (a replay engine, a parser) is imported inside the function that needs it.
 *
 * Typing: write the protocol with defineProtocol (schemas inline or `as const`) and annotate
 * the surface, `const surface: HandSurface<typeof protocol> = {…}; export default
 * defineSurface(surface)`, rather than leaning on inference: the handlers are then typed from
 * the protocol at once, and tsc never has to compare FromSchema types generically (which it
 * cannot do within its limits). The kernel sees every surface untyped (AnySurface) and checks
 * each request against its schema at run time instead.
 */
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type { HandContext } from '../../runtime/core/hand.ts';

export type { FromSchema, JSONSchema };

// ---- the typed request protocol ---------------------------------------------------------------

/** One request kind: the schema of its request body and of its answer. */
export interface RequestKind {
  /** what the request does, one line (the docs and errors name it) */
  summary?: string;
  request: JSONSchema;
  answer: JSONSchema;
}

/** A Hand's request kinds by name (`status`, `history`, `ack`, …). */
export type Protocol = Readonly<Record<string, RequestKind>>;

export type KindOf<P extends Protocol> = keyof P & string;
/** every kind's request body, derived from its schema (one mapped type: each kind's schema is evaluated once) */
export type Requests<P extends Protocol> = { [K in KindOf<P>]: FromSchema<P[K]['request']> };
/** every kind's answer, derived from its schema */
export type Answers<P extends Protocol> = { [K in KindOf<P>]: FromSchema<P[K]['answer']> };
/** the request body of kind K */
export type RequestOf<P extends Protocol, K extends KindOf<P>> = Requests<P>[K];
/** the answer of kind K */
export type AnswerOf<P extends Protocol, K extends KindOf<P>> = Answers<P>[K];

/** One function per kind, each typed from its kind's schemas; runs in the Hand's worker. */
export type RequestHandlers<P extends Protocol> =
  string extends KindOf<P>
    ? // a protocol whose kinds are not known (the kernel's view of any Hand): untyped
      Readonly<Record<string, (body: never, ctx: HandContext) => unknown>>
    : { [K in KindOf<P>]: (body: RequestOf<P, K>, ctx: HandContext) => AnswerOf<P, K> | Promise<AnswerOf<P, K>> };

export interface RequestCallOptions {
  hand?: string;
  timeoutMs?: number;
}
/** the arguments of `request`: one tuple per kind, so a kind's body is checked against its own type */
export type RequestArgs<P extends Protocol> = {
  [K in KindOf<P>]: [kind: K, body: Requests<P>[K], opts?: RequestCallOptions];
}[KindOf<P>];
/** `request(kind, body)`: typed from P's schemas; untyped for a protocol whose kinds are not known */
export type RequestFn<P extends Protocol> =
  string extends KindOf<P>
    ? (kind: string, body: unknown, opts?: RequestCallOptions) => Promise<unknown>
    : <A extends RequestArgs<P>>(...args: A) => Promise<NoInfer<Answers<P>[A[0]]>>;

/** Checks a protocol's shape and keeps its literal type (write the schemas inline, or `as const`). */
export function defineProtocol<const P extends Protocol>(protocol: P): P {
  for (const [kind, k] of Object.entries(protocol)) {
    if (!/^[a-z][a-zA-Z0-9.-]{0,63}$/.test(kind))
      throw new TypeError(
        `defineProtocol: the request kind "${kind}" must be 1-64 letters, digits, "." or "-", starting with a lowercase letter`,
      );
    if (typeof k !== 'object' || k === null || typeof k.request !== 'object' || typeof k.answer !== 'object') {
      throw new TypeError(`defineProtocol: the request kind "${kind}" needs a request and an answer schema`);
    }
  }
  return protocol;
}

// ---- REST routes ------------------------------------------------------------------------------

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * Who may call a Hand's route (as web-admin/route.ts's Access, minus `public`: a Hand's routes
 * always need a caller): `read` a viewer or a token with `<tag>:read`; `write` an admin or
 * `<tag>:write`; `admin` an admin even to read.
 */
export type HandRouteAccess = 'read' | 'write' | 'admin';

export interface HandResponse {
  description: string;
  /** default application/json; `text/event-stream` for a stream (schema: one event's data) */
  contentType?: string;
  schema?: JSONSchema;
}

/** What a privileged action writes to the audit log before it acts (and its outcome after). */
export interface AuditIntent {
  /** `api.<area>.<verb>`: `api.alerts.ack` */
  action: string;
  subject: string;
  detail?: Record<string, unknown>;
}

/** A server-sent event stream the route opened (its handler then returns undefined). */
export interface EventStream {
  send(event: string | undefined, data: unknown, id?: string | number): void;
  /** runs when the stream closes (the client went away, the server stops, or end()) */
  onClose(fn: () => void): void;
  end(): void;
  readonly closed: boolean;
}

export interface HandRouteContext<P extends Protocol = Protocol> {
  /** who is calling, as the audit log names them (`user:ada`, `token:…`, `cli`) */
  caller: { actor: string };
  /** path parameters, validated against the route's `params` */
  params: Record<string, string>;
  /** query parameters, validated (and coerced, defaults filled in) against `query` */
  query: Record<string, unknown>;
  /** the JSON body, validated against `body` */
  body: unknown;
  /** aborted when the client goes away */
  signal: AbortSignal;
  /**
   * Sends a typed request to the Hand and resolves with its answer: to the Hand named by the
   * route's `{name}` on a `/api/v1/hands/{name}/…` path, else to the running instance of this
   * Hand's module (`opts.hand` picks one by name). HAND_NOT_RUNNING (503) when none runs,
   * HAND_TIMEOUT when it does not answer in time, BAD_REQUEST when `body` does not match the
   * kind's request schema; the Hand's own BAD_REQUEST, NOT_FOUND and CONFLICT pass through.
   */
  request: RequestFn<P>;
  /**
   * A privileged action: its intent is written to the audit log (with the caller) before `act`
   * runs, and its outcome after; when the intent cannot be written nothing happens (AUDIT_UNAVAILABLE).
   */
  audited<T>(intent: AuditIntent, act: () => Promise<T> | T): Promise<T>;
  /**
   * Follows bus messages under the device root (`alerts/#`): `onMessage` gets the topic
   * relative to the root and the payload parsed as JSON (messages that are not JSON are
   * skipped) until the returned function is called.
   */
  follow(filter: string, onMessage: (topic: string, json: unknown) => void): Promise<() => void>;
  /** Opens a server-sent event stream on the response (pings, headers, cleanup included). */
  events(): EventStream;
}

export interface HandRoute<P extends Protocol = Protocol> {
  method: HttpMethod;
  /**
   * OpenAPI template syntax. Under `/api/v1/hands/{name}/…` (the Hand's own area; `{name}`
   * names the instance), or under an area prefix the API documents (`/api/v1/alerts`).
   */
  path: string;
  /** unique across the API, camelCase: the OpenAPI operationId */
  operationId: string;
  summary: string;
  /**
   * The API area: the OpenAPI tag and the first half of the token scope that guards the route
   * (`alerts` → `alerts:read` / `alerts:write`). One of the API's areas (web-admin/route.ts
   * Tag: `hands`, `sensors`, `alerts`, …); default `hands`. A tag the API does not know is
   * refused when the routes are mounted.
   */
  tag?: string;
  access: HandRouteAccess;
  /** object schema whose properties are the path parameters (strings) */
  params?: JSONSchema;
  /** object schema of the query parameters (coerced from strings) */
  query?: JSONSchema;
  /** the JSON request body; a route without one refuses a body */
  body?: JSONSchema;
  /** keyed by status; the first 2xx is the success, errors are added by the generator */
  responses: Record<number, HandResponse>;
  /** the JSON body of the success status, or undefined when it opened an event stream */
  handler(ctx: HandRouteContext<P>): unknown;
}

/** a schema's type, or `fallback` when the route declares none */
type SchemaType<S, Fallback> = [S] extends [never] ? Fallback : S extends JSONSchema ? FromSchema<S> : Fallback;

/** A route whose handler sees its query and body typed from the route's own schemas. */
export interface TypedHandRoute<P extends Protocol, QS, BS> extends Omit<HandRoute<P>, 'query' | 'body' | 'handler'> {
  query?: QS;
  body?: BS;
  handler(
    ctx: Omit<HandRouteContext<P>, 'query' | 'body'> & {
      query: SchemaType<QS, Record<string, unknown>>;
      body: SchemaType<BS, undefined>;
    },
  ): unknown;
}

/**
 * `const route = routeOf<typeof protocol>()`, then `route({ …, query: {…}, handler: ({ query }) => … })`:
 * the handler's `query` and `body` are typed from the route's schemas (written inline), its
 * `request` from the protocol.
 */
export function routeOf<P extends Protocol>() {
  return <const QS extends JSONSchema = never, const BS extends JSONSchema = never>(
    route: TypedHandRoute<P, QS, BS>,
  ): NoInfer<HandRoute<P>> => route as unknown as HandRoute<P>;
}

// ---- CLI ----------------------------------------------------------------------------------------

export interface HandCliOption {
  type: 'string' | 'boolean';
  short?: string;
  /** placeholder in the help for string options: `FILE`, `ID` */
  value?: string;
  description: string;
  /** a string option that may be given more than once (its values arrive joined by newlines) */
  multiple?: boolean;
}

/** The process's surroundings as a command sees them (injectable in tests). */
export interface HandCliIo {
  out(s: string): void;
  err(s: string): void;
  env: Record<string, string | undefined>;
  cwd: string;
}

/** The running daemon's REST API, as the CLI reaches it (its data folder's runtime.json and CLI token). */
export interface HandDaemon {
  /** a JSON request under /api/v1; an error answer rejects with its code (and the CLI's exit code for it) */
  request<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T>;
}

export interface HandCommandArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  io: HandCliIo;
  /** a usage error: exit 2, the message and the command's usage on stderr */
  usage(message: string): never;
  /** the running daemon (commands declared `daemon: true`; opened at the first request, NOT_RUNNING when none runs) */
  daemon?: HandDaemon;
}

/** `talon <hand id> <name> …` */
export interface HandCommand {
  name: string;
  /** one line in `talon <hand id> --help` */
  summary: string;
  /** the first paragraph of the command's own help */
  description: string;
  positionals?: Array<{ name: string; required: boolean; description?: string }>;
  options?: Record<string, HandCliOption>;
  /** extra paragraphs at the end of the help */
  notes?: string;
  /** talks to the running daemon: the CLI adds its `--data DIR`, `--config FILE` and `--json` options and `daemon` */
  daemon?: boolean;
  /** the exit code; a TalonError thrown prints as `talon: <message> (<CODE>)` with its code's exit code */
  run(args: HandCommandArgs): Promise<number>;
}

export interface HandCli {
  /** one line in `talon --help` */
  summary: string;
  /** a second name for `talon <hand id>`, the one people type (`talon schedule` for the Scheduling Hand) */
  alias?: string;
  /** commands also reachable as `talon <command>` (`talon notify` runs `talon channels notify`) */
  topLevel?: string[];
  /** the first paragraph of `talon <hand id> --help` */
  description: string;
  commands: HandCommand[];
}

// ---- metrics ------------------------------------------------------------------------------------

/** One Prometheus family; the kernel adds `device` and `hand` labels to every sample. */
export interface MetricFamily {
  /** `talon_<hand id>_…` ([a-z_][a-z0-9_]*) */
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  samples: Array<{ labels?: Record<string, string>; value: number }>;
}

export interface HandMetrics<P extends Protocol = Protocol> {
  /**
   * Asked at each scrape of /metrics, once per running instance, with a short timeout (a Hand
   * that does not answer in time is left out of that scrape).
   */
  collect(ctx: { hand: string; request: RequestFn<P> }): Promise<MetricFamily[]> | MetricFamily[];
}

// ---- Home Assistant ---------------------------------------------------------------------------

/**
 * One Home Assistant entity, announced with MQTT discovery (retained config under
 * `<prefix>/<component>/<device id>/<objectId>/config`). The kernel adds `unique_id`,
 * `object_id`, the device and its availability; `config` says the rest (state topic, template,
 * classes), with topics absolute (`talon/<device id>/…`, runtime/core/topics.ts).
 */
export interface HomeAssistantEntity {
  component: 'sensor' | 'binary_sensor';
  /** [a-zA-Z0-9_-]: unique on the device */
  objectId: string;
  /** `name` first, then what Home Assistant reads (state_topic, value_template, device_class …) */
  config: { name: string } & Record<string, unknown>;
}

export interface HandHomeAssistant {
  entities(ctx: { deviceId: string }): HomeAssistantEntity[];
}

// ---- the surface --------------------------------------------------------------------------------

export interface HandSurface<P extends Protocol = Protocol> {
  /** the Hand's module id: its folder under hands/, its manifest id, the `module` a config names */
  id: string;
  /** how people call it: `Monitoring` (messages say "the Monitoring Hand") */
  title: string;
  /** what a person loses while it does not run, for HAND_NOT_RUNNING: `sensor history and alerts` */
  provides?: string;
  /**
   * the request kind the kernel's `notify` tool hands a notification to ({ text, title?, priority, source }), when
   * this Hand delivers notifications; its answer's `decisions` say where it went
   */
  notify?: keyof P & string;
  /**
   * Inbound webhooks: the kernel mounts `POST <path>` as a PUBLIC route (no token: a platform calls it) whose raw
   * body (≤ 64 KiB) and headers go to the request kind `kind` as { channel: <the path's {name}>, headers, body }.
   * The Hand checks the signature (it holds the secret) and refuses with BAD_REQUEST; nothing else is checked.
   */
  webhooks?: { path: string; kind: keyof P & string; summary: string };
  protocol?: P;
  routes?: Array<HandRoute<P>>;
  cli?: HandCli;
  metrics?: HandMetrics<P>;
  homeAssistant?: HandHomeAssistant;
  /** the web admin page (hands/<id>/page/index.tsx, a lazily loaded module of the page) */
  page?: { label: string };
  /**
   * tools the kernel registers for the Hand's request kinds (agents, MCP clients and other Hands reach them under
   * their `tools` grant, with approvals and audit as every tool): input = the kind's request schema, output = its
   * answer schema, run = the request to the running instance
   */
  tools?: ReadonlyArray<HandSurfaceTool<P>>;
}

export interface HandSurfaceTool<P extends Protocol = Protocol> {
  /** `group.verb` (`schedule.put`) */
  name: string;
  /** the request kind it sends */
  kind: KindOf<P>;
  /** what a model reads: what it does, when to use it */
  description: string;
  /** changes nothing (no approval, allowed while the audit log is down) */
  readOnly?: boolean;
  /** a person approves each call (as for hands.stop) */
  destructive?: boolean;
}

/** Checks a surface's shape and keeps its protocol's type for its routes and metrics. */
/** what defineSurface checks (kept free of the protocol's types: comparing those generically is too deep for tsc) */
export interface SurfaceShape {
  id: string;
  title: string;
  protocol?: Protocol;
  routes?: ReadonlyArray<{ method: string; path: string }>;
  cli?: { alias?: string; commands: ReadonlyArray<{ name: string }> };
  tools?: ReadonlyArray<{ name: string; kind: string }>;
  metrics?: object;
}

/**
 * Checks a surface's shape at load. Annotate the surface with its protocol rather than leaning on
 * inference (`const surface: HandSurface<typeof protocol> = {…}`): the routes' handlers are then
 * typed from the protocol at once.
 */
export function defineSurface<S extends SurfaceShape>(declared: S): AnySurface {
  const surface: SurfaceShape = declared;
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(surface.id))
    throw new TypeError(`defineSurface: id "${surface.id}" must be a Hand module id (lowercase letters, digits, "-")`);
  const kinds = Object.keys(surface.protocol ?? {});
  if ((surface.routes?.length || surface.metrics) && kinds.length === 0) {
    throw new TypeError(`defineSurface: Hand "${surface.id}" has routes or metrics but no protocol to answer them`);
  }
  for (const r of surface.routes ?? []) {
    if (!r.path.startsWith('/api/v1/'))
      throw new TypeError(`defineSurface: Hand "${surface.id}": route ${r.method} ${r.path} must be under /api/v1/`);
  }
  if (surface.cli?.alias !== undefined && !/^[a-z][a-z0-9-]{0,30}$/.test(surface.cli.alias))
    throw new TypeError(`defineSurface: Hand "${surface.id}": cli.alias "${surface.cli.alias}" must be a command name`);
  for (const c of surface.cli?.commands ?? []) {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(c.name))
      throw new TypeError(
        `defineSurface: Hand "${surface.id}": command "${c.name}" must be lowercase letters, digits and "-"`,
      );
  }
  for (const t of surface.tools ?? []) {
    if (!/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$/.test(t.name))
      throw new TypeError(`defineSurface: Hand "${surface.id}": tool "${t.name}" must be dotted lowercase words`);
    if (!kinds.includes(t.kind))
      throw new TypeError(
        `defineSurface: Hand "${surface.id}": tool "${t.name}" sends "${t.kind}", not in its protocol`,
      );
  }
  // the kernel's view: untyped (it validates each request against its schema at run time)
  return declared as unknown as AnySurface;
}

/**
 * A surface as the kernel lists them: its protocol's kinds not known, so `request` is untyped.
 * (What defineSurface returns: tsc cannot compare a typed surface with this one generically.)
 */
export type AnySurface = HandSurface<Protocol>;
