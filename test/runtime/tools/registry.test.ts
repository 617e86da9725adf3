/**
 * The tool registry's seven steps (runtime/tools/types.ts), each refusal a typed error and one
 * audit entry: an unknown tool, a tool outside the tools grant, bad input naming the fields,
 * the tool's own check, approvals (granted, denied, timed out), the timeout aborting the tool's
 * signal, a thrown error, the output cap keeping valid JSON, the output schema; and what the
 * audit entries carry (argsHash always, args only with auditArgs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Audit, AuditEvent } from '../../../runtime/audit/types.ts';
import { canonicalJson } from '../../../runtime/core/canonical.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { systemClock } from '../../../runtime/core/clock.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import type { Capabilities } from '../../../runtime/core/hand.ts';
import { Store } from '../../../runtime/store/store.ts';
import {
  Approvals,
  type ApprovalOutcome,
  type ApprovalRequest,
  type ApprovalRequester,
} from '../../../runtime/tools/approvals.ts';
import { ToolRegistry, argsHash, capJson } from '../../../runtime/tools/registry.ts';
import type { ToolCaller, ToolDefinition, ToolRunContext } from '../../../runtime/tools/types.ts';

class RecordingAudit implements Audit {
  events: AuditEvent[] = [];
  async record(e: AuditEvent): Promise<void> {
    this.events.push(structuredClone(e));
  }
  calls(): AuditEvent[] {
    return this.events.filter((e) => e.action === 'tool.call');
  }
  last(): AuditEvent {
    const c = this.calls();
    assert.ok(c.length > 0, 'no tool.call entry');
    return c[c.length - 1]!;
  }
}

/** an approval queue that answers as told, and remembers what it was asked */
class ScriptedApprovals implements ApprovalRequester {
  asked: ApprovalRequest[] = [];
  answer: Omit<ApprovalOutcome, 'id'> = { approved: true, by: 'user:ada' };
  async request(req: ApprovalRequest): Promise<ApprovalOutcome> {
    this.asked.push(req);
    return { ...this.answer, id: `a${this.asked.length}` };
  }
  pending(): number {
    return 0;
  }
}

function grants(allow: string[], approve: string[] = [], extra: Partial<Capabilities> = {}): Capabilities {
  return { ...NO_CAPABILITIES, ...extra, tools: { allow, approve } } as Capabilities;
}

function hand(name: string, allow: string[], approve: string[] = []): ToolCaller {
  return { actor: `hand:${name}`, hand: name, admin: false, grants: grants(allow, approve), folder: `/tmp/${name}` };
}

const admin: ToolCaller = { actor: 'cli', admin: true, grants: grants([]), folder: '/tmp/admin' };

/** a tool that counts its runs */
function tool(
  name: string,
  over: Partial<ToolDefinition> = {},
): ToolDefinition & { runs: Array<{ input: unknown; ctx: ToolRunContext }> } {
  const runs: Array<{ input: unknown; ctx: ToolRunContext }> = [];
  return {
    name,
    description: `test tool ${name}`,
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['count'],
      properties: { count: { type: 'integer', minimum: 0 }, label: { type: 'string' } },
    },
    annotations: { readOnlyHint: true },
    capability: 'none',
    async run(input, ctx) {
      runs.push({ input, ctx });
      return { echoed: input };
    },
    ...over,
    runs,
  };
}

function setup(
  opts: {
    auditArgs?: boolean;
    approvals?: ApprovalRequester;
    auditHealth?: () => { ok: boolean; reason?: string };
  } = {},
) {
  const audit = new RecordingAudit();
  const approvals = opts.approvals ?? new ScriptedApprovals();
  const reg = new ToolRegistry({
    audit,
    approvals,
    config: () => ({ auditArgs: opts.auditArgs ?? false, approvalTimeoutMs: 60_000 }),
    ...(opts.auditHealth ? { auditHealth: opts.auditHealth } : {}),
  });
  return { audit, approvals, reg };
}

async function rejectsWith(p: Promise<unknown>, code: string, match?: RegExp): Promise<TalonError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TalonError, `not a TalonError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (match) assert.match(err.message, match);
    return err;
  }
  assert.fail(`expected ${code}, the call succeeded`);
}

test('a granted call runs, returns the output and writes one ok entry with the args hash only', async () => {
  const { reg, audit } = setup();
  const t = tool('demo.echo');
  reg.register(t);
  const input = { label: 'b', count: 3 };
  const r = await reg.call(hand('h1', ['demo.*']), 'demo.echo', input);
  assert.deepEqual(r.output, { echoed: input });
  assert.equal(r.truncated, false);
  assert.equal(t.runs.length, 1);
  assert.equal(t.runs[0]!.ctx.caller.hand, 'h1');
  assert.equal(audit.calls().length, 1);
  const e = audit.last();
  assert.equal(e.actor, 'hand:h1');
  assert.equal(e.subject, 'demo.echo');
  assert.equal(e.decision, 'ok');
  assert.equal(e.detail?.outcome, 'ok');
  assert.equal(e.detail?.hand, 'h1');
  assert.equal(typeof e.detail?.ms, 'number');
  const expected = createHash('sha256').update(canonicalJson(input)).digest('hex');
  assert.equal(e.detail?.argsHash, expected);
  assert.equal(argsHash({ count: 3, label: 'b' }), expected, 'the hash does not depend on key order');
  assert.ok(!('args' in (e.detail ?? {})), 'args are not written without auditArgs');
});

test('with auditArgs the input is written too', async () => {
  const { reg, audit } = setup({ auditArgs: true });
  reg.register(tool('demo.echo'));
  await reg.call(hand('h1', ['demo.echo']), 'demo.echo', { count: 1 });
  assert.deepEqual(audit.last().detail?.args, { count: 1 });
  await rejectsWith(reg.call(hand('h1', ['demo.echo']), 'demo.echo', { count: -1 }), 'TOOL_BAD_INPUT');
  assert.deepEqual(audit.last().detail?.args, { count: -1 });
});

test('an unknown tool is TOOL_NOT_FOUND, audited as a denial', async () => {
  const { reg, audit } = setup();
  const err = await rejectsWith(reg.call(hand('h1', ['*']), 'no.such', {}), 'TOOL_NOT_FOUND', /no\.such/);
  assert.equal(err.status, 404);
  const e = audit.last();
  assert.equal(e.decision, 'deny');
  assert.equal(e.detail?.outcome, 'TOOL_NOT_FOUND');
  assert.equal(typeof e.detail?.argsHash, 'string');
  assert.equal(reg.stats().calls['(unknown)']?.denied, 1);
});

test('a tool outside the tools grant is CAPABILITY_DENIED naming the tool and the grant; it never runs', async () => {
  const { reg, audit } = setup();
  const t = tool('shell.exec');
  reg.register(t);
  const err = await rejectsWith(
    reg.call(hand('h1', ['web.*', 'time.now']), 'shell.exec', { count: 1 }),
    'CAPABILITY_DENIED',
    /shell\.exec.*web\.\*, time\.now/,
  );
  assert.deepEqual(err.details, { action: 'tool.call', subject: 'shell.exec' });
  await rejectsWith(reg.call(hand('h2', []), 'shell.exec', { count: 1 }), 'CAPABILITY_DENIED', /no tools/);
  assert.equal(t.runs.length, 0);
  assert.equal(audit.last().decision, 'deny');
  assert.equal(audit.last().detail?.outcome, 'CAPABILITY_DENIED');
  assert.equal(reg.stats().calls['shell.exec']?.denied, 2);
});

test('a glob * in the grant matches across dots; an admin needs no grant', async () => {
  const { reg, audit } = setup();
  reg.register(tool('mcp.weather.forecast'));
  await reg.call(hand('h1', ['mcp.*']), 'mcp.weather.forecast', { count: 0 });
  await reg.call(admin, 'mcp.weather.forecast', { count: 0 });
  assert.deepEqual([audit.last().actor, audit.last().decision], ['cli', 'ok'], 'an admin call is audited too');
  await rejectsWith(reg.call(hand('h1', ['mcp.other.*']), 'mcp.weather.forecast', { count: 0 }), 'CAPABILITY_DENIED');
});

test('bad input is TOOL_BAD_INPUT listing the fields; the tool never runs, admin or not', async () => {
  const { reg, audit } = setup();
  const t = tool('demo.echo');
  reg.register(t);
  const err = await rejectsWith(
    reg.call(hand('h1', ['demo.echo']), 'demo.echo', { label: 5, extra: true }),
    'TOOL_BAD_INPUT',
    /\/count is required/,
  );
  const errors = (err.details as { errors: Array<{ path: string; message: string }> }).errors;
  const paths = errors.map((e) => e.path).sort();
  assert.deepEqual(paths, ['/count', '/extra', '/label']);
  assert.equal(errors.find((e) => e.path === '/extra')?.message, 'is not a known field');
  await rejectsWith(reg.call(admin, 'demo.echo', { count: 'x' }), 'TOOL_BAD_INPUT', /\/count/);
  assert.equal(t.runs.length, 0);
  assert.equal(audit.last().decision, 'deny');
  assert.equal(audit.last().detail?.outcome, 'TOOL_BAD_INPUT');
});

test("the tool's check refuses with CAPABILITY_DENIED before any approval; an admin skips it; its limits apply", async () => {
  const approvals = new ScriptedApprovals();
  const { reg } = setup({ approvals });
  const t = tool('file.delete', {
    annotations: { destructiveHint: true },
    check(input) {
      if ((input as { label?: string }).label === 'outside')
        throw new TalonError('CAPABILITY_DENIED', 'outside the folder', {
          details: { action: 'file.delete', subject: 'x' },
        });
      return { timeoutMs: 1234, maxOutputBytes: 999 };
    },
  });
  reg.register(t);
  const h = hand('h1', ['file.*']);
  await rejectsWith(reg.call(h, 'file.delete', { count: 1, label: 'outside' }), 'CAPABILITY_DENIED', /outside/);
  assert.equal(approvals.asked.length, 0, 'no person is asked about a call the grant refuses');
  await reg.call(h, 'file.delete', { count: 1, label: 'inside' });
  assert.equal(t.runs[0]!.ctx.timeoutMs, 1234);
  assert.equal(t.runs[0]!.ctx.maxOutputBytes, 999);
  await reg.call(admin, 'file.delete', { count: 1, label: 'outside' });
  assert.equal(t.runs.length, 2);
  assert.equal(approvals.asked.length, 1, 'the admin is not asked');
});

test('approval: destructive tools and the approve list wait; read-only ones and admins do not', async () => {
  const approvals = new ScriptedApprovals();
  const { reg, audit } = setup({ approvals });
  reg.register(tool('act.write', { annotations: { destructiveHint: true } }));
  reg.register(tool('act.safe', { annotations: { readOnlyHint: true, destructiveHint: true } }));
  reg.register(tool('web.read', { annotations: { readOnlyHint: true } }));
  const h = hand('h1', ['*'], ['web.*']);
  const r = await reg.call(h, 'act.write', { count: 1 }, { runId: 'run-1', goal: 'water the plants' });
  assert.deepEqual(r.approval, { id: 'a1', by: 'user:ada' });
  assert.deepEqual(approvals.asked[0], {
    actor: 'hand:h1',
    hand: 'h1',
    tool: 'act.write',
    input: { count: 1 },
    reason: 'destructive',
    goal: 'water the plants',
    runId: 'run-1',
  });
  assert.deepEqual(audit.last().detail?.approval, { id: 'a1', by: 'user:ada' });
  await reg.call(h, 'web.read', { count: 1 });
  assert.equal(approvals.asked[1]?.reason, 'approve list');
  await reg.call(h, 'act.safe', { count: 1 });
  assert.equal(approvals.asked.length, 2, 'read-only wins over destructive');
  reg.register({
    ...tool('mcp.files.rm', { annotations: { destructiveHint: true }, source: 'mcp:files' }),
    annotationsTrusted: false,
  } as ToolDefinition);
  await reg.call(h, 'mcp.files.rm', { count: 1 });
  assert.equal(approvals.asked[2]?.reason, 'untrusted MCP annotations');
  reg.unregister('mcp.files.rm');
  await reg.call(admin, 'act.write', { count: 1 });
  assert.equal(approvals.asked.length, 3, 'the admin is not asked');
  const listed = Object.fromEntries(reg.list(h).map((i) => [i.name, i.needsApproval]));
  assert.deepEqual(listed, { 'act.safe': false, 'act.write': true, 'web.read': true });
});

test("approval in advance: the config's tools.unattended runs a destructive tool without a person, audited so; approve still wins", async () => {
  const approvals = new ScriptedApprovals();
  const { reg, audit } = setup({ approvals });
  const t = tool('hands.start', { annotations: { destructiveHint: true } });
  reg.register(t);
  reg.register(tool('hands.stop', { annotations: { destructiveHint: true } }));
  const caller = (approve: string[]): ToolCaller => ({
    ...hand('scheduler', ['hands.*']),
    grants: { ...NO_CAPABILITIES, tools: { allow: ['hands.*'], approve, unattended: ['hands.start', 'hands.stop'] } },
  });
  await reg.call(caller([]), 'hands.start', { count: 1 });
  assert.equal(approvals.asked.length, 0, 'nobody was asked');
  assert.equal(t.runs.length, 1);
  assert.equal(audit.last().decision, 'ok');
  assert.deepEqual(audit.last().detail?.approval, { id: 'unattended', by: 'config' });
  await reg.call(caller(['hands.stop']), 'hands.stop', { count: 1 });
  assert.equal(approvals.asked.length, 1, 'the approve list overrides unattended');
  await reg.call(hand('other', ['hands.*']), 'hands.start', { count: 1 });
  assert.equal(approvals.asked.length, 2, 'another Hand without unattended still asks');
  assert.deepEqual(Object.fromEntries(reg.list(caller([])).map((i) => [i.name, i.needsApproval])), {
    'hands.start': false,
    'hands.stop': false,
  });
});

test('approval denied by a person: APPROVAL_DENIED says who and why; the tool never runs', async () => {
  const approvals = new ScriptedApprovals();
  approvals.answer = { approved: false, by: 'user:ada', note: 'not while I am away' };
  const { reg, audit } = setup({ approvals });
  const t = tool('act.write', { annotations: { destructiveHint: true } });
  reg.register(t);
  const err = await rejectsWith(
    reg.call(hand('h1', ['act.*']), 'act.write', { count: 1 }),
    'APPROVAL_DENIED',
    /user:ada denied the call to act\.write: not while I am away/,
  );
  assert.equal((err.details as { approvalId: string }).approvalId, 'a1');
  assert.equal(t.runs.length, 0);
  assert.equal(audit.last().decision, 'deny');
  assert.deepEqual(audit.last().detail?.approval, { id: 'a1', by: 'user:ada' });
});

test('with the real queue: approved, denied, and nobody answering is a deny', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'talon-tools-'));
  const store = await Store.open(dir);
  try {
    const audit = new RecordingAudit();
    let timeoutMs = 60_000;
    const approvals = new Approvals({ store, audit, timeoutMs: () => timeoutMs });
    await approvals.start();
    const reg = new ToolRegistry({ audit, approvals, config: () => ({ auditArgs: false, approvalTimeoutMs: 60_000 }) });
    const t = tool('act.write', { annotations: { destructiveHint: true } });
    reg.register(t);
    const h = hand('h1', ['act.write']);
    // approve as soon as it is asked
    const off = approvals.onChange((a) => {
      if (a.state === 'pending')
        void approvals.decide(
          a.id,
          a.input && (a.input as { count: number }).count === 1 ? 'approve' : 'deny',
          'user:ada',
          'ok',
        );
    });
    const ok = await reg.call(h, 'act.write', { count: 1 });
    assert.equal(ok.approval?.by, 'user:ada');
    assert.equal(t.runs.length, 1);
    await rejectsWith(reg.call(h, 'act.write', { count: 2 }), 'APPROVAL_DENIED', /user:ada denied/);
    off();
    timeoutMs = 30;
    const err = await rejectsWith(reg.call(h, 'act.write', { count: 3 }), 'APPROVAL_DENIED', /nobody answered/);
    assert.equal((err.details as { by: string }).by, 'timeout');
    assert.equal(t.runs.length, 1);
    assert.equal(approvals.pending(), 0);
    assert.equal(reg.stats().approvalsPending, 0);
    await approvals.stop();
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the timeout is TOOL_TIMEOUT and aborts the tool's signal", async () => {
  const { reg, audit } = setup();
  let seen: AbortSignal | undefined;
  let reason: unknown;
  reg.register(
    tool('slow.work', {
      timeoutMs: 40,
      run: (_input, ctx) =>
        new Promise((resolve) => {
          seen = ctx.signal;
          ctx.signal.addEventListener('abort', () => {
            reason = ctx.signal.reason;
            // a tool that ignores the abort and answers late answers nobody
            setTimeout(() => resolve({ late: true }), 5);
          });
        }),
    }),
  );
  const err = await rejectsWith(reg.call(hand('h1', ['slow.*']), 'slow.work', { count: 1 }), 'TOOL_TIMEOUT', /40 ms/);
  assert.equal(seen?.aborted, true);
  assert.ok(reason instanceof TalonError && reason.code === 'TOOL_TIMEOUT');
  assert.equal(err.status, 504);
  assert.equal(audit.last().decision, 'error');
  assert.equal(audit.last().detail?.outcome, 'TOOL_TIMEOUT');
  assert.equal(reg.stats().calls['slow.work']?.failed, 1);
});

test("the caller going away aborts the tool's signal too", async () => {
  const { reg } = setup();
  let seen: AbortSignal | undefined;
  reg.register(
    tool('slow.work', {
      run: (_input, ctx) =>
        new Promise(() => {
          seen = ctx.signal;
        }),
    }),
  );
  const ac = new AbortController();
  const p = reg.call(hand('h1', ['slow.*']), 'slow.work', { count: 1 }, { signal: ac.signal });
  await new Promise((r) => setImmediate(r));
  ac.abort();
  await rejectsWith(p, 'TOOL_FAILED', /cancelled/);
  assert.equal(seen?.aborted, true);
});

test('a thrown Error is TOOL_FAILED with its message; a TalonError keeps its code', async () => {
  const { reg, audit } = setup();
  reg.register(
    tool('bad.throw', {
      async run() {
        throw new Error('disk on fire');
      },
    }),
  );
  reg.register(
    tool('bad.net', {
      async run() {
        throw new TalonError('NET_DNS', 'example.invalid did not resolve');
      },
    }),
  );
  const h = hand('h1', ['bad.*']);
  await rejectsWith(reg.call(h, 'bad.throw', { count: 1 }), 'TOOL_FAILED', /bad\.throw failed: disk on fire/);
  assert.equal(audit.last().decision, 'error');
  await rejectsWith(reg.call(h, 'bad.net', { count: 1 }), 'NET_DNS', /did not resolve/);
  assert.equal(audit.last().detail?.outcome, 'NET_DNS');
});

test('an output outside the output schema is TOOL_BAD_OUTPUT; a non-JSON output too', async () => {
  const { reg } = setup();
  reg.register(
    tool('bad.shape', {
      outputSchema: { type: 'object', required: ['n'], properties: { n: { type: 'number' } } },
      run: async () => ({ n: 'seven' }),
    }),
  );
  reg.register(tool('bad.bigint', { run: async () => ({ n: 1n }) }));
  const h = hand('h1', ['bad.*']);
  const err = await rejectsWith(reg.call(h, 'bad.shape', { count: 1 }), 'TOOL_BAD_OUTPUT', /\/n/);
  assert.equal(err.status, 502);
  await rejectsWith(reg.call(h, 'bad.bigint', { count: 1 }), 'TOOL_BAD_OUTPUT');
});

test('a big output is cut to maxOutputBytes, still valid JSON, marked truncated', async () => {
  const { reg, audit } = setup();
  const big = {
    title: 'a page',
    text: 'word '.repeat(50_000),
    emoji: '😀'.repeat(5000),
    links: Array.from({ length: 200 }, (_, i) => ({ href: `https://example.com/${i}`, n: i })),
  };
  reg.register(tool('web.read', { maxOutputBytes: 2000, run: async () => big }));
  const r = await reg.call(hand('h1', ['web.*']), 'web.read', { count: 1 });
  assert.equal(r.truncated, true);
  const text = JSON.stringify(r.output);
  assert.ok(Buffer.byteLength(text) <= 2000, `${Buffer.byteLength(text)} bytes`);
  const out = r.output as typeof big;
  assert.equal(out.title, 'a page', 'short strings are kept');
  assert.ok(out.text.endsWith('…'));
  assert.doesNotThrow(() => canonicalJson(out), 'no lone surrogate left by the cut');
  assert.equal(audit.last().detail?.truncated, true);
});

test('capJson: arrays are cut when strings are not enough, and a value always stays JSON within the cap', () => {
  const numbers = Array.from({ length: 10_000 }, (_, i) => i * 1.5);
  const a = capJson({ numbers }, 500);
  assert.equal(a.truncated, true);
  assert.ok(Buffer.byteLength(JSON.stringify(a.value)) <= 500);
  assert.deepEqual((a.value as { numbers: number[] }).numbers.slice(0, 3), [0, 1.5, 3]);
  const keys = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`key${i}`, i]));
  const b = capJson(keys, 300);
  assert.equal(b.truncated, true);
  assert.ok(Buffer.byteLength(JSON.stringify(b.value)) <= 300);
  const small = { a: 1 };
  assert.deepEqual(capJson(small, 300), { value: small, truncated: false });
  for (let size = 20; size < 400; size += 37) {
    const c = capJson({ s: 'ü😀x'.repeat(100), list: [['deep', 'er'.repeat(50)], 2, null] }, size);
    const s = JSON.stringify(c.value);
    assert.ok(Buffer.byteLength(s) <= size, `${size}: ${s}`);
    assert.doesNotThrow(() => canonicalJson(c.value));
  }
});

test('register refuses a taken name and a schema ajv cannot compile; unregister frees the name', () => {
  const { reg } = setup();
  reg.register(tool('demo.echo'));
  assert.throws(
    () => reg.register(tool('demo.echo')),
    (e: TalonError) => e.code === 'CONFLICT',
  );
  assert.throws(
    () => reg.register(tool('demo.bad', { inputSchema: { type: 'object', properties: { a: { type: 'nonsense' } } } })),
    (e: TalonError) => e.code === 'BAD_REQUEST' && /demo\.bad/.test(e.message),
  );
  assert.throws(
    () => reg.register(tool('has space')),
    (e: TalonError) => e.code === 'BAD_REQUEST',
  );
  assert.equal(reg.has('demo.bad'), false);
  assert.equal(reg.unregister('demo.echo'), true);
  assert.equal(reg.has('demo.echo'), false);
  reg.register(tool('demo.echo'));
  // a 2020-12 marker and an $id do not keep a tool out
  reg.register(
    tool('mcp.s.t', {
      inputSchema: { $schema: 'https://json-schema.org/draft/2020-12/schema', $id: 'x', type: 'object' },
    }),
  );
  reg.register(tool('mcp.s.u', { inputSchema: { $id: 'x', type: 'object' } }));
});

test('list and info show what the caller may call, sorted; an admin sees everything', () => {
  const { reg } = setup();
  for (const n of ['web.read', 'time.now', 'shell.exec', 'web.search']) reg.register(tool(n));
  const h = hand('h1', ['web.*', 'time.now']);
  assert.deepEqual(
    reg.list(h).map((i) => i.name),
    ['time.now', 'web.read', 'web.search'],
  );
  assert.deepEqual(
    reg.list().map((i) => i.name),
    ['shell.exec', 'time.now', 'web.read', 'web.search'],
  );
  assert.equal(reg.list(admin).length, 4);
  assert.equal(reg.info('shell.exec', h), undefined);
  const info = reg.info('web.read', h);
  assert.equal(info?.timeoutMs, 30_000);
  assert.equal(info?.maxOutputBytes, 65_536);
  assert.equal(info?.source, 'builtin');
  assert.equal(info?.needsApproval, false);
  assert.equal('available' in (info ?? {}), false);
  let up = true;
  reg.register({ ...tool('mcp.s.t'), source: 'mcp:s', available: () => up } as ToolDefinition);
  assert.equal(reg.info('mcp.s.t')?.available, true);
  up = false;
  assert.equal(reg.info('mcp.s.t')?.available, false, 'an MCP tool whose server is down is listed as unavailable');
  assert.equal(reg.info('mcp.s.t')?.source, 'mcp:s');
});

test('the kernel services give a Hand tools.list and tools.call under its own grants and folder', async () => {
  const { reg, audit } = setup();
  const t = tool('demo.echo');
  reg.register(t);
  reg.register(tool('demo.hidden'));
  const services = reg.services((name) => `/data/hands/${name}/files`);
  const caller = { name: 'h9', grants: grants(['demo.echo']) };
  const list = (await services['tools.list']!(caller, [])) as Array<{ name: string }>;
  assert.deepEqual(
    list.map((i) => i.name),
    ['demo.echo'],
  );
  const r = (await services['tools.call']!(caller, ['demo.echo', { count: 2 }])) as { output: unknown };
  assert.deepEqual(r.output, { echoed: { count: 2 } });
  assert.deepEqual(t.runs[0]!.ctx.caller, {
    actor: 'hand:h9',
    hand: 'h9',
    admin: false,
    grants: caller.grants,
    folder: '/data/hands/h9/files',
  });
  await rejectsWith(services['tools.call']!(caller, ['demo.hidden', { count: 2 }]), 'CAPABILITY_DENIED');
  await rejectsWith(services['tools.call']!(caller, [42]), 'BAD_REQUEST');
  assert.equal(audit.calls().length, 2);
  const s = reg.stats();
  assert.deepEqual({ ok: s.calls['demo.echo']?.ok, denied: s.calls['demo.hidden']?.denied }, { ok: 1, denied: 1 });
});

test('while the audit log cannot be written, a tool that changes anything is refused before it runs; read-only ones answer', async () => {
  let health: { ok: boolean; reason?: string } = {
    ok: false,
    reason: 'the audit log cannot be written since now (ENOSPC)',
  };
  const { reg } = setup({ auditHealth: () => health });
  const reader = tool('demo.read');
  const writer = tool('demo.write', { annotations: { readOnlyHint: false, destructiveHint: false } });
  reg.register(reader);
  reg.register(writer);
  const h = hand('h1', ['demo.*']);
  await rejectsWith(reg.call(h, 'demo.write', { count: 1 }), 'AUDIT_UNAVAILABLE', /ENOSPC/);
  await rejectsWith(reg.call(admin, 'demo.write', { count: 1 }), 'AUDIT_UNAVAILABLE');
  assert.equal(writer.runs.length, 0, 'nothing ran');
  await reg.call(h, 'demo.read', { count: 1 });
  assert.equal(reader.runs.length, 1);
  health = { ok: true };
  await reg.call(h, 'demo.write', { count: 2 });
  assert.equal(writer.runs.length, 1);
});

test('a Hand calling faster than tools.callsPerSec gets QUOTA_EXCEEDED without the tool running, audited once a second with the count', async () => {
  let now = 1_000_000;
  const clock = { ...systemClock, now: () => now };
  const audit = new RecordingAudit();
  const reg = new ToolRegistry({
    audit,
    approvals: new ScriptedApprovals(),
    config: () => ({ auditArgs: false, approvalTimeoutMs: 60_000, callsPerSec: 5 }),
    clock,
  });
  const t = tool('demo.echo');
  reg.register(t);
  const h = hand('busy', ['demo.*']);
  // a burst of twice the rate passes
  for (let i = 0; i < 10; i++) await reg.call(h, 'demo.echo', { count: i });
  const refusals: string[] = [];
  for (let i = 0; i < 30; i++) {
    try {
      await reg.call(h, 'demo.echo', { count: i });
    } catch (err) {
      refusals.push((err as TalonError).code);
    }
  }
  assert.deepEqual(new Set(refusals), new Set(['QUOTA_EXCEEDED']));
  assert.equal(refusals.length, 30);
  assert.equal(t.runs.length, 10, 'the refused calls never ran');
  const quota = () => audit.calls().filter((e) => e.detail?.outcome === 'QUOTA_EXCEEDED');
  assert.equal(quota().length, 1, 'one entry for the second, not one per refusal');
  assert.equal(quota()[0]!.detail!.refused, 1);
  // a second later: five more tokens (the rate), then refused again; that refusal is the next entry,
  // carrying the 29 refusals not yet in one plus itself
  now += 1000;
  for (let i = 0; i < 5; i++) await reg.call(h, 'demo.echo', { count: i });
  await rejectsWith(reg.call(h, 'demo.echo', { count: 0 }), 'QUOTA_EXCEEDED', /5 times a second/);
  assert.equal(quota().length, 2);
  assert.equal(quota()[1]!.detail!.refused, 30);
  // the quota is per caller; admins have none
  await reg.call(hand('other', ['demo.*']), 'demo.echo', { count: 1 });
  for (let i = 0; i < 20; i++) await reg.call(admin, 'demo.echo', { count: 1 });
  assert.equal(reg.stats().calls['demo.echo']!.denied, 31);
});
