/**
 * The one tool registry (contract: ./types.ts). Every call, from a Hand (`ctx.tools.call`, the
 * agent loop), an admin (REST, CLI) or an MCP client, takes the same seven steps in the same
 * order, and every refusal is a typed error a model can read and one `tool.call` audit entry:
 *
 *   1. TOOL_NOT_FOUND  2. CAPABILITY_DENIED (tools.allow)  3. TOOL_BAD_INPUT (ajv, field names)
 *   4. CAPABILITY_DENIED (the tool's check)  5. APPROVAL_DENIED (a person said no, or nobody answered)
 *   6. TOOL_TIMEOUT / TOOL_FAILED / the tool's own code  7. TOOL_BAD_OUTPUT, the output capped
 *
 * An admin caller skips 2, 4 and 5 (the admin is the person who would approve), never 3, 6, 7 or
 * the audit entry. The output is checked against the tool's outputSchema before it is capped (the
 * schema is the tool's promise; the cut is ours), then cut to maxOutputBytes of JSON: strings
 * shortened first, then arrays, the result always valid JSON.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Audit, AuditDecision } from '../audit/types.ts';
import { createAjv, fieldErrors, type Ajv } from '../core/ajv.ts';
import { TokenBucket } from '../core/token-bucket.ts';
import { canonicalize } from '../core/canonical.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { type ErrorCode, TalonError } from '../core/errors.ts';
import { globMatches } from '../core/grants.ts';
import type { HandCaller, KernelService } from '../supervisor/types.ts';
import type { ApprovalRequester } from './approvals.ts';
import type {
  ToolCallOptions,
  ToolCaller,
  ToolDefinition,
  ToolInfo,
  ToolResult,
  ToolRunContext,
  Tools,
  ToolsConfig,
} from './types.ts';

export const DEFAULT_TOOL_TIMEOUT_MS = 30_000;
export const DEFAULT_TOOL_MAX_OUTPUT_BYTES = 64 * 1024;
/** the input written into an audit entry when tools.auditArgs is on, at most this much JSON */
export const AUDIT_ARGS_MAX_BYTES = 4096;
/** a tool's name: dotted words (`file.read`, `mcp.<server>.<tool>`) */
const TOOL_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const TOOL_NAME_MAX = 200;

/** refusals (the caller may not, or asked wrongly) count as `denied`; the rest as `failed` */
/** the outcomes /metrics and the audit count as refused (`denied`, decision `deny`) rather than failed */
/** tool calls a second one Hand or MCP client may make when the config does not say (a burst of twice that) */
export const DEFAULT_CALLS_PER_SEC = 50;

const DENIALS: readonly ErrorCode[] = ['TOOL_NOT_FOUND', 'CAPABILITY_DENIED', 'TOOL_BAD_INPUT', 'APPROVAL_DENIED'];

export interface ToolRegistryDeps {
  audit: Audit;
  approvals: ApprovalRequester;
  config: () => ToolsConfig;
  clock?: Clock;
  /**
   * whether the audit log can be written now (AuditChain.health): a tool that may change anything is
   * refused (AUDIT_UNAVAILABLE) before it runs while it cannot, since its entry could not be kept
   */
  auditHealth?: () => { ok: boolean; reason?: string };
}

/**
 * A tool as registered: the contract's definition and, for an MCP tool (./mcp/client.ts), whether
 * its server is up (listed as `available`) and whether its server's annotations were believed
 * (false: Talon reads it as destructive, and the approval's reason says so).
 */
export type RegisteredTool = ToolDefinition & { available?: () => boolean; annotationsTrusted?: boolean };

export interface ToolCounters {
  ok: number;
  denied: number;
  failed: number;
  /** ms spent in calls, summed */
  ms: number;
}

export interface ToolStats {
  /** per tool name; calls to unknown tools under `(unknown)` */
  calls: Record<string, ToolCounters>;
  approvalsPending: number;
}

interface Entry {
  def: RegisteredTool;
  /** the schemas as compiled (top-level $schema and $id dropped) */
  inSchema: Record<string, unknown>;
  outSchema: Record<string, unknown> | null;
  /** compiled at the tool's first call, then kept */
  input?: ValidateFn;
  output?: ValidateFn | null;
}

type ValidateFn = ((v: unknown) => boolean) & { errors?: Parameters<typeof fieldErrors>[0] };

export class ToolRegistry implements Tools {
  #tools = new Map<string, Entry>();
  #audit: Audit;
  #approvals: ApprovalRequester;
  #config: () => ToolsConfig;
  #clock: Clock;
  /** made at the first schema check or compile, not at the kernel's start */
  #ajvInstance: Ajv | undefined;
  #auditHealth: (() => { ok: boolean; reason?: string }) | undefined;
  /** per caller (actor): its calls-per-second bucket, and the refusals not yet in an audit entry */
  #quotas = new Map<string, { bucket: TokenBucket; refused: number; auditedAt: number }>();

  get #ajv(): Ajv {
    this.#ajvInstance ??= createAjv('check');
    return this.#ajvInstance;
  }
  #counters = new Map<string, ToolCounters>();

  constructor(deps: ToolRegistryDeps) {
    this.#audit = deps.audit;
    this.#approvals = deps.approvals;
    this.#config = deps.config;
    this.#clock = deps.clock ?? systemClock;
    this.#auditHealth = deps.auditHealth;
  }

  /**
   * add a tool: a taken name, a bad name or a schema the meta-schema refuses throws (BAD_REQUEST, CONFLICT).
   * `checkSchemas: false` skips the meta-schema (compiling it costs tens of ms at start): for the built-in
   * tools, whose schemas test/runtime/tools/builtin-contract.test.ts checks; an MCP server's always are.
   */
  register(def: RegisteredTool, opts: { checkSchemas?: boolean } = {}): void {
    if (typeof def.name !== 'string' || def.name.length > TOOL_NAME_MAX || !TOOL_NAME.test(def.name))
      throw new TalonError(
        'BAD_REQUEST',
        `"${String(def.name).slice(0, 80)}" is not a tool name: dotted words of letters, digits, "_" or "-"`,
      );
    if (this.#tools.has(def.name))
      throw new TalonError('CONFLICT', `a tool named "${def.name}" is registered already`, {
        details: { source: this.#tools.get(def.name)?.def.source ?? 'builtin' },
      });
    if (!isObject(def.inputSchema)) throw new TalonError('BAD_REQUEST', `tool ${def.name} has no inputSchema object`);
    // checked against the meta-schema now (cheap); compiled at the first call (a few ms each, not at start)
    const check = opts.checkSchemas !== false;
    const inSchema = this.#schemaOf(def.name, def.inputSchema, 'inputSchema', check);
    const outSchema = isObject(def.outputSchema)
      ? this.#schemaOf(def.name, def.outputSchema, 'outputSchema', check)
      : null;
    this.#tools.set(def.name, { def, inSchema, outSchema });
  }

  unregister(name: string): boolean {
    const e = this.#tools.get(name);
    if (!e) return false;
    if (e.input) this.#ajv.removeSchema(e.inSchema);
    if (e.output) this.#ajv.removeSchema(e.outSchema ?? {});
    this.#tools.delete(name);
    return true;
  }

  has(name: string): boolean {
    return this.#tools.has(name);
  }

  list(caller?: ToolCaller): ToolInfo[] {
    const out: ToolInfo[] = [];
    for (const { def } of this.#tools.values()) {
      if (caller && !caller.admin && !allows(caller, def.name)) continue;
      out.push(this.#info(def, caller));
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** undefined when there is no such tool, or `caller` may not call it */
  info(name: string, caller?: ToolCaller): ToolInfo | undefined {
    const e = this.#tools.get(name);
    if (!e) return undefined;
    if (caller && !caller.admin && !allows(caller, name)) return undefined;
    return this.#info(e.def, caller);
  }

  async call(caller: ToolCaller, name: string, input: unknown, opts: ToolCallOptions = {}): Promise<ToolResult> {
    const t0 = performance.now();
    const value = input === undefined ? {} : input;
    if (!caller.admin) await this.#quota(caller, typeof name === 'string' ? name : String(name), value);
    const entry = typeof name === 'string' ? this.#tools.get(name) : undefined;
    let approval: { id: string; by: string } | undefined;
    try {
      // 1. the tool exists
      if (!entry)
        throw new TalonError(
          'TOOL_NOT_FOUND',
          `there is no tool "${String(name).slice(0, 100)}"; tools.list names the tools this caller may call`,
        );
      const def = entry.def;
      // 2. the caller's tools grant
      if (!caller.admin && !allows(caller, def.name)) {
        const allow = caller.grants.tools?.allow ?? [];
        throw new TalonError(
          'CAPABILITY_DENIED',
          `${who(caller)} may not call tool ${def.name}; its tools grant allows ${allow.join(', ') || 'no tools'}`,
          { details: { action: 'tool.call', subject: def.name } },
        );
      }
      // 3. the input schema
      const check = this.#validators(entry);
      if (!check.input(value)) {
        const errors = fieldErrors(check.input.errors);
        throw new TalonError(
          'TOOL_BAD_INPUT',
          `the input of ${def.name} is not valid: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`,
          { details: { errors } },
        );
      }
      // 4. the tool's own capability check
      let limits: { timeoutMs?: number; maxOutputBytes?: number } | null = null;
      if (!caller.admin && def.check) {
        try {
          limits = def.check(value, caller);
        } catch (err) {
          if (err instanceof TalonError) throw err;
          throw new TalonError('TOOL_FAILED', `${def.name}'s grant check failed: ${(err as Error)?.message ?? err}`);
        }
      }
      // 5. a person's approval
      const reason = caller.admin ? null : approvalReason(def, caller);
      if (reason) {
        const o = await this.#approvals.request(
          {
            actor: caller.actor,
            ...(caller.hand !== undefined && { hand: caller.hand }),
            tool: def.name,
            input: value,
            reason,
            ...(opts.goal !== undefined && { goal: opts.goal }),
            ...(opts.runId !== undefined && { runId: opts.runId }),
          },
          opts.signal,
        );
        approval = { id: o.id, by: o.by };
        if (!o.approved) throw denied(def.name, reason, o);
      } else if (!caller.admin && def.annotations.destructiveHint === true && def.annotations.readOnlyHint !== true) {
        // a destructive call without a person: approved in advance by the Hand's config (tools.unattended)
        approval = { id: 'unattended', by: 'config' };
      }
      // an action whose record cannot be kept is not taken (read-only tools still answer)
      if (!def.annotations.readOnlyHint) {
        const health = this.#auditHealth?.();
        if (health && !health.ok)
          throw new TalonError(
            'AUDIT_UNAVAILABLE',
            `${def.name} is refused: ${health.reason ?? 'the audit log cannot be written'}; tools that change anything run again once it can`,
          );
      }
      // 6. run, within its time
      const timeoutMs = positive(limits?.timeoutMs) ?? positive(def.timeoutMs) ?? DEFAULT_TOOL_TIMEOUT_MS;
      const maxOutputBytes =
        positive(limits?.maxOutputBytes) ?? positive(def.maxOutputBytes) ?? DEFAULT_TOOL_MAX_OUTPUT_BYTES;
      // a tool may ask a person from inside run() too, through the same queue (recorded like step 5's)
      const approve = async (why: string, detail?: Record<string, unknown>): Promise<void> => {
        if (caller.admin) return;
        const o = await this.#approvals.request(
          {
            actor: caller.actor,
            ...(caller.hand !== undefined && { hand: caller.hand }),
            tool: def.name,
            input: detail && isObject(value) ? { ...value, ...detail } : value,
            reason: why,
            ...(opts.goal !== undefined && { goal: opts.goal }),
            ...(opts.runId !== undefined && { runId: opts.runId }),
          },
          opts.signal,
        );
        approval = { id: o.id, by: o.by };
        if (!o.approved) throw denied(def.name, why, o);
      };
      const raw = await this.#run(def, value, caller, timeoutMs, maxOutputBytes, opts.signal, approve);
      // 7. the output: JSON, its schema, its size
      let plain: unknown;
      try {
        const text = JSON.stringify(raw);
        plain = text === undefined ? null : JSON.parse(text);
      } catch (err) {
        throw new TalonError(
          'TOOL_BAD_OUTPUT',
          `${def.name} answered something that is not JSON: ${(err as Error).message}`,
        );
      }
      if (check.output && !check.output(plain)) {
        const errors = fieldErrors(check.output.errors);
        throw new TalonError(
          'TOOL_BAD_OUTPUT',
          `${def.name} answered outside its output schema: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`,
          { details: { errors } },
        );
      }
      const capped = capJson(plain, maxOutputBytes);
      const ms = performance.now() - t0;
      const result: ToolResult = {
        output: capped.value,
        truncated: capped.truncated,
        ms,
        ...(approval && { approval }),
      };
      this.#count(def.name, 'ok', ms);
      await this.#record(caller, def.name, value, 'ok', 'ok', ms, approval, capped.truncated);
      return result;
    } catch (err) {
      const e = toToolError(err, entry?.def.name ?? String(name));
      const ms = performance.now() - t0;
      const deny = DENIALS.includes(e.code);
      this.#count(entry ? entry.def.name : '(unknown)', deny ? 'denied' : 'failed', ms);
      try {
        await this.#record(caller, String(name), value, deny ? 'deny' : 'error', e.code, ms, approval, false);
      } catch {
        /* the refusal stands; the audit chain reports its own health */
      }
      throw e;
    }
  }

  /** the kernel services a Hand reaches with ctx.call: `tools.list` () and `tools.call` (name, input, opts?) */
  services(folderOf: (hand: string) => string): Record<string, KernelService> {
    const callerOf = (hand: HandCaller): ToolCaller => ({
      actor: `hand:${hand.name}`,
      hand: hand.name,
      admin: false,
      grants: hand.grants,
      folder: folderOf(hand.name),
    });
    return {
      'tools.list': async (hand) => this.list(callerOf(hand)),
      'tools.call': async (hand, args) => {
        const [name, input, o] = args;
        if (typeof name !== 'string' || name.length === 0)
          throw new TalonError('BAD_REQUEST', 'tools.call needs (tool name, input object)');
        const opts: ToolCallOptions = {};
        if (isObject(o)) {
          if (typeof o.runId === 'string') opts.runId = o.runId;
          if (typeof o.goal === 'string') opts.goal = o.goal;
        }
        return this.call(callerOf(hand), name, input, opts);
      },
    };
  }

  /** counters for /metrics */
  stats(): ToolStats {
    const calls: Record<string, ToolCounters> = {};
    for (const [name, c] of this.#counters) calls[name] = { ...c };
    return { calls, approvalsPending: this.#approvals.pending() };
  }

  /**
   * a schema with its top-level $schema and $id dropped (a draft-07 or 2020-12 marker, or two MCP
   * tools with one $id, must not keep a tool out), refused when the meta-schema refuses it
   */
  #schemaOf(tool: string, schema: Record<string, unknown>, what: string, check: boolean): Record<string, unknown> {
    const { $schema: _s, $id: _i, ...body } = schema;
    if (!check) return body;
    let ok: boolean;
    try {
      ok = this.#ajv.validateSchema(body) as boolean;
    } catch (err) {
      throw new TalonError('BAD_REQUEST', `tool ${tool}: its ${what} cannot be read: ${(err as Error).message}`);
    }
    if (!ok)
      throw new TalonError(
        'BAD_REQUEST',
        `tool ${tool}: its ${what} is not a JSON Schema: ${this.#ajv.errorsText(this.#ajv.errors, { dataVar: what })}`,
      );
    return body;
  }

  /** the tool's compiled validators, made at its first call */
  #validators(e: Entry): { input: ValidateFn; output: ValidateFn | null } {
    if (!e.input) {
      try {
        e.input = this.#ajv.compile(e.inSchema) as ValidateFn;
        e.output = e.outSchema ? (this.#ajv.compile(e.outSchema) as ValidateFn) : null;
      } catch (err) {
        if (e.input) this.#ajv.removeSchema(e.inSchema);
        e.input = undefined;
        throw new TalonError(
          'TOOL_FAILED',
          `tool ${e.def.name} cannot be called: its schemas do not compile: ${(err as Error).message}`,
        );
      }
    }
    return { input: e.input, output: e.output ?? null };
  }

  #info(def: RegisteredTool, caller: ToolCaller | undefined): ToolInfo {
    const info: ToolInfo = {
      name: def.name,
      description: def.description,
      inputSchema: def.inputSchema,
      ...(def.outputSchema && { outputSchema: def.outputSchema }),
      annotations: def.annotations,
      capability: def.capability,
      timeoutMs: positive(def.timeoutMs) ?? DEFAULT_TOOL_TIMEOUT_MS,
      maxOutputBytes: positive(def.maxOutputBytes) ?? DEFAULT_TOOL_MAX_OUTPUT_BYTES,
      source: def.source ?? 'builtin',
    };
    if (caller) info.needsApproval = !caller.admin && approvalReason(def, caller) !== null;
    if (def.available) info.available = def.available();
    return info;
  }

  async #run(
    def: ToolDefinition,
    input: unknown,
    caller: ToolCaller,
    timeoutMs: number,
    maxOutputBytes: number,
    signal: AbortSignal | undefined,
    approve: NonNullable<ToolRunContext['approve']>,
  ): Promise<unknown> {
    if (signal?.aborted) throw cancelled(def.name, signal.reason);
    const ac = new AbortController();
    let timer: unknown;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimeout(() => {
        const e = new TalonError('TOOL_TIMEOUT', `${def.name} did not finish within ${timeoutMs} ms and was stopped`, {
          details: { timeoutMs },
        });
        ac.abort(e);
        reject(e);
      }, timeoutMs);
      if (signal) {
        onAbort = () => {
          const e = cancelled(def.name, signal.reason);
          ac.abort(e);
          reject(e);
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    try {
      const running = Promise.resolve().then(() =>
        def.run(input, { caller, signal: ac.signal, timeoutMs, maxOutputBytes, approve }),
      );
      // a tool that fails after its time ran out fails for nobody
      running.catch(() => {});
      return await Promise.race([running, stopped]);
    } finally {
      this.#clock.clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * the caller's calls per second (config callsPerSec, a burst of twice that): past it QUOTA_EXCEEDED,
   * without running anything; the refusals are audited once a second per caller, with their count
   */
  async #quota(caller: ToolCaller, name: string, input: unknown): Promise<void> {
    const now = this.#clock.now();
    const rate = this.#config().callsPerSec ?? DEFAULT_CALLS_PER_SEC;
    let q = this.#quotas.get(caller.actor);
    if (!q || q.bucket.rate !== rate) {
      if (this.#quotas.size >= 4096) this.#quotas.clear();
      q = { bucket: new TokenBucket({ rate, burst: rate * 2, now }), refused: 0, auditedAt: -Infinity };
      this.#quotas.set(caller.actor, q);
    }
    if (q.bucket.take(now)) return;
    q.refused++;
    this.#count(this.#tools.has(name) ? name : '(unknown)', 'denied', 0);
    if (now - q.auditedAt >= 1000) {
      const refused = q.refused;
      q.refused = 0;
      q.auditedAt = now;
      await this.#audit
        .record({
          actor: caller.actor,
          action: 'tool.call',
          subject: name.slice(0, 200),
          decision: 'deny',
          detail: {
            ...(caller.hand !== undefined && { hand: caller.hand }),
            argsHash: argsHash(input),
            outcome: 'QUOTA_EXCEEDED',
            refused,
          },
        })
        .catch(() => {});
    }
    throw new TalonError(
      'QUOTA_EXCEEDED',
      `${who(caller)} called tools more than ${rate} times a second (tools.callsPerSec); wait and call again`,
      { details: { callsPerSec: rate } },
    );
  }

  #count(name: string, kind: 'ok' | 'denied' | 'failed', ms: number): void {
    let c = this.#counters.get(name);
    if (!c) {
      c = { ok: 0, denied: 0, failed: 0, ms: 0 };
      this.#counters.set(name, c);
    }
    c[kind]++;
    c.ms += ms;
  }

  #record(
    caller: ToolCaller,
    tool: string,
    input: unknown,
    decision: AuditDecision,
    outcome: string,
    ms: number,
    approval: { id: string; by: string } | undefined,
    truncated: boolean,
  ): Promise<void> {
    const detail: Record<string, unknown> = {
      ...(caller.hand !== undefined && { hand: caller.hand }),
      argsHash: argsHash(input),
      outcome,
      ms: Math.round(ms * 1000) / 1000,
    };
    if (this.#config().auditArgs) detail.args = capJson(input, AUDIT_ARGS_MAX_BYTES, '…').value;
    if (approval) detail.approval = approval;
    if (truncated) detail.truncated = true;
    return this.#audit.record({
      actor: caller.actor,
      action: 'tool.call',
      subject: tool.slice(0, 200),
      decision,
      detail,
    });
  }
}

/** does the caller's tools grant name this tool (globs: `*` matches any run of characters, dots too)? */
function allows(caller: ToolCaller, name: string): boolean {
  return (caller.grants.tools?.allow ?? []).some((g) => globMatches(g, name));
}

/** why a call by this caller waits for a person, or null */
export function approvalReason(def: RegisteredTool, caller: ToolCaller): string | null {
  const approveList = (caller.grants.tools?.approve ?? []).some((g) => globMatches(g, def.name));
  if (def.annotations.destructiveHint === true && def.annotations.readOnlyHint !== true) {
    // approved in advance by the config that granted the Hand this tool (tools.unattended), unless `approve` says not
    const unattended = (caller.grants.tools?.unattended ?? []).some((g) => globMatches(g, def.name));
    if (!unattended || approveList)
      return def.annotationsTrusted === false ? 'untrusted MCP annotations' : 'destructive';
  }
  if (approveList) return 'approve list';
  return null;
}

/** sha256 (hex) of the input's canonical JSON (RFC 8785) */
export function argsHash(input: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(input);
  } catch {
    text = undefined;
  }
  if (text === undefined) {
    try {
      text = JSON.stringify(input) ?? 'null';
    } catch {
      text = String(input);
    }
  }
  return createHash('sha256').update(text).digest('hex');
}

function who(caller: ToolCaller): string {
  return caller.hand !== undefined ? `Hand "${caller.hand}"` : caller.actor;
}

function denied(tool: string, reason: string, o: { by: string; note?: string; id: string }): TalonError {
  const details = { approvalId: o.id, by: o.by, reason, ...(o.note !== undefined && { note: o.note }) };
  const person = !['timeout', 'restart', 'shutdown', 'cancelled'].includes(o.by);
  const message = person
    ? `${o.by} denied the call to ${tool}${o.note ? `: ${o.note}` : ' (no reason given)'}`
    : `the call to ${tool} was not made: it needs a person's approval (${reason}) and ${o.note ?? 'nobody answered'}`;
  return new TalonError('APPROVAL_DENIED', message, { details });
}

function cancelled(tool: string, reason: unknown): TalonError {
  if (reason instanceof TalonError) return reason;
  return new TalonError('TOOL_FAILED', `the call to ${tool} was cancelled: the caller went away`);
}

function toToolError(err: unknown, tool: string): TalonError {
  if (err instanceof TalonError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new TalonError('TOOL_FAILED', `${tool} failed: ${message}`, { cause: err });
}

function positive(n: number | undefined): number | undefined {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---- capping JSON -------------------------------------------------------------------------------

/**
 * `value` (plain JSON) cut to at most `maxBytes` of JSON text, always still JSON: first every
 * string longer than some length is shortened (ending in `marker`), the longest length that
 * fits; if that is not enough, arrays are cut too (their first items kept, with strings of a
 * useful length before more items with none); if even that is not enough (a huge object's keys),
 * the value's JSON text itself, cut, as one string. Costs a few dozen JSON.stringify passes, and
 * only when the value is over the cap.
 */
export function capJson(value: unknown, maxBytes: number, marker = '…'): { value: unknown; truncated: boolean } {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = JSON.stringify(String(value));
  }
  if (text === undefined) return { value: null, truncated: false };
  if (Buffer.byteLength(text) <= maxBytes) return { value, truncated: false };
  const plain = JSON.parse(text) as unknown;
  const size = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));
  const fits = (v: unknown): boolean => size(v) <= maxBytes;

  const measured = measure(plain);
  // no string longer than the cap, and no array with more items than half the cap, can fit
  const longest = Math.min(measured.longest, maxBytes);
  const widest = Math.min(measured.widest, Math.ceil(maxBytes / 2));
  const byStrings = largest(0, longest, (l) => fits(cut(plain, l, Number.POSITIVE_INFINITY, marker)));
  if (byStrings >= 0) return { value: cut(plain, byStrings, Number.POSITIVE_INFINITY, marker), truncated: true };
  // arrays must be cut too: keep some items with strings of a useful length before all items with none
  for (const l of [256, 64, 16, 0]) {
    if (l > longest && l !== 0) continue;
    const items = largest(0, widest, (n) => fits(cut(plain, l, n, marker)));
    if (items < 1 && l !== 0) continue;
    if (items < 0) break;
    // then the strings as long as still fits with that many items
    const len = Math.max(
      l,
      largest(l, longest, (m) => fits(cut(plain, m, items, marker))),
    );
    return { value: cut(plain, len, items, marker), truncated: true };
  }
  const chars = largest(0, text.length, (n) => fits(cutString(text, n, marker)));
  return { value: chars >= 0 ? cutString(text, chars, marker) : null, truncated: true };
}

/** the largest n in [lo, hi] with ok(n), ok being monotone (true up to some n); -1 when none */
function largest(lo: number, hi: number, ok: (n: number) => boolean): number {
  if (!ok(lo)) return -1;
  if (ok(hi)) return hi;
  let good = lo;
  let bad = hi;
  while (bad - good > 1) {
    const mid = Math.floor((good + bad) / 2);
    if (ok(mid)) good = mid;
    else bad = mid;
  }
  return good;
}

function measure(v: unknown, acc = { longest: 0, widest: 0 }): { longest: number; widest: number } {
  if (typeof v === 'string') acc.longest = Math.max(acc.longest, v.length);
  else if (Array.isArray(v)) {
    acc.widest = Math.max(acc.widest, v.length);
    for (const x of v) measure(x, acc);
  } else if (v && typeof v === 'object') for (const x of Object.values(v)) measure(x, acc);
  return acc;
}

function cut(v: unknown, maxLen: number, maxItems: number, marker: string): unknown {
  if (typeof v === 'string') return cutString(v, maxLen, marker);
  if (Array.isArray(v)) return v.slice(0, maxItems).map((x) => cut(x, maxLen, maxItems, marker));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = cut(x, maxLen, maxItems, marker);
    return out;
  }
  return v;
}

/** the first `n` UTF-16 units and the marker, never splitting a surrogate pair */
function cutString(s: string, n: number, marker: string): string {
  if (s.length <= n) return s;
  let end = n;
  const c = s.charCodeAt(end - 1);
  if (end > 0 && c >= 0xd800 && c <= 0xdbff) end--;
  return s.slice(0, end) + marker;
}
