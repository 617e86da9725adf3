/**
 * The tools subsystem, composed: the registry with the built-in tools (runtime/tools/builtin), the
 * approval queue, the agent loop and its stored runs, the MCP clients of `tools.mcp.servers`, and
 * Talon's own MCP endpoint when `tools.mcp.serve.enabled`. Hands reach it through the kernel services
 * `tools.list`, `tools.call` and `agent.run`; the API (runtime/api/tools-api.ts) through `area`.
 *
 * Who holds which rights:
 *   a Hand        its effective grants (manifest narrowed by config), its folder <dataDir>/hands/<name>/files
 *   an admin      REST / CLI: every tool, no approvals (the admin is the person who would approve),
 *                 the folder <dataDir>/tools/admin
 *   an MCP client `tools.mcp.serve.capabilities`, only the exposed tools, destructive ones approved by a
 *                 person; the folder <dataDir>/tools/mcp
 */
import { join } from 'node:path';
import type { AuditChain } from '../audit/chain.ts';
import type { Bus } from '../bus/types.ts';
import type { HandFetch } from '../capabilities/fetch.ts';
import type { Clock } from '../core/clock.ts';
import { TalonError } from '../core/errors.ts';
import { effectiveGrants, NO_CAPABILITIES } from '../core/grants.ts';
import type { Capabilities } from '../core/hand.ts';
import { topics } from '../core/topics.ts';
import type { ToolsSection } from '../config/types.ts';
import type { LlmRouter } from '../llm/router.ts';
import type { Logger } from '../log.ts';
import type { SecretStore } from '../secrets/sealed.ts';
import type { SensorRegistry } from '../sensors/registry.ts';
import type { Store } from '../store/store.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { Caller, KernelService } from '../supervisor/types.ts';
import { ToolRegistry } from '../tools/registry.ts';
import { Approvals } from '../tools/approvals.ts';
import type { NotifyMessage, NotifyResult, ScopedStore } from '../tools/builtin/kernel.ts';
import { builtinTools } from '../tools/builtin/index.ts';
import { KernelBrowser } from '../tools/builtin/browser.ts';
import type { Resolver } from '../capabilities/fetch.ts';
import { McpClients } from '../tools/mcp/client.ts';
import { McpEndpoint } from '../tools/mcp/server.ts';
import type { ToolCaller } from '../tools/types.ts';
import { AgentRunner } from '../agent/loop.ts';
import { RunStore } from '../agent/runs.ts';
import { toolsArea, type ToolsArea } from '../api/tools-api.ts';
import type { MetricsInput } from '../api/metrics.ts';
import { VERSION } from '../version.ts';

export interface ToolsDeps {
  config: ToolsSection;
  dataDir: string;
  deviceId: string;
  store: Store;
  audit: AuditChain;
  bus: Bus;
  sensors: SensorRegistry;
  fetch: HandFetch;
  llm: LlmRouter | null;
  secrets: SecretStore;
  supervisor: Supervisor;
  clock: Clock;
  logger: Logger;
  /** the kernel's DNS for Hands (config `network`): the browser checks pages' hosts with it */
  resolve?: Resolver;
}

/** the folder a Hand's file.* and shell.exec work in */
export const handFolder = (dataDir: string, hand: string): string => join(dataDir, 'hands', hand, 'files');

export class ToolsSubsystem {
  readonly registry: ToolRegistry;
  readonly approvals: Approvals;
  readonly runs: RunStore;
  readonly agent: AgentRunner;
  readonly mcpClients: McpClients;
  /** null unless tools.mcp.serve.enabled */
  readonly mcpEndpoint: McpEndpoint | null;
  readonly area: ToolsArea;
  /** the browser tools' Chromium pool: made on the first browser call, closed at stop */
  readonly browser: KernelBrowser;
  #d: ToolsDeps;
  #mcpGrants: Capabilities;
  /** the Hand that delivers notifications (set once the API knows the Hands' surfaces); null: none configured */
  #notifier: ((m: NotifyMessage) => Promise<NotifyResult>) | null = null;

  constructor(d: ToolsDeps) {
    this.#d = d;
    const { config, clock, store, audit, bus, deviceId } = d;
    this.approvals = new Approvals({
      store,
      audit,
      clock,
      // retained while it waits (a client that connects later sees it); once answered or expired the retained
      // copy is cleared and the outcome goes out once, so the topic tree holds only what still waits
      publish: (a) => {
        if (!bus.isUp()) return;
        const topic = topics.approval(deviceId, a.id);
        const body = JSON.stringify(a);
        const sent =
          a.state === 'pending'
            ? bus.publish(topic, body, { qos: 1, retain: true })
            : bus.publish(topic, '', { qos: 1, retain: true }).then(() => bus.publish(topic, body, { qos: 1 }));
        sent.catch(() => {});
      },
      timeoutMs: () => config.approvalTimeoutMs,
    });
    this.registry = new ToolRegistry({
      audit,
      approvals: this.approvals,
      config: () => config,
      clock,
      auditHealth: () => audit.health(),
    });
    this.browser = new KernelBrowser({
      log: (m) => d.logger.line('info', 'browser', m),
      ...(d.resolve && { resolve: d.resolve }),
    });
    const sensorServices = d.sensors.services();
    const hands = d.supervisor;
    const llm = d.llm;
    const tools = builtinTools({
      clock,
      kernel: {
        services: (m) => sensorServices[m],
        actuatorPin: (id) => {
          const a = d.sensors.actuators().find((x) => x.id === id);
          return a === undefined ? undefined : (a.pin ?? null);
        },
        publish: (topic, payload, opts) => bus.publish(topic, payload, opts),
        deviceRoot: topics.root(deviceId),
        store: { scope: (owner) => scopedStore(store, owner) },
        auditQuery: (q) => audit.query(q),
        hands: {
          list: () => hands.list(),
          status: (n) => hands.status(n),
          start: (n, actor) => hands.startHand(n, { actor }),
          stop: (n, actor) => hands.stopHand(n, { actor }),
          restart: (n, actor) => hands.restartHand(n, { actor }),
          ask: (n, text, o) => hands.ask(n, [{ role: 'user', content: text }], o),
        },
        ...(llm
          ? {
              embed: async (
                texts: string[],
                model: string | undefined,
                who: { actor: string; hand?: string; tokensPerHour?: number },
              ) => {
                const r = await llm.embed(texts, {
                  ...(who.hand !== undefined ? { hand: who.hand } : {}),
                  ...(who.tokensPerHour !== undefined ? { tokensPerHour: who.tokensPerHour } : {}),
                  ...(model !== undefined ? { model } : {}),
                  actor: who.actor,
                  purpose: 'embed',
                });
                return r.vectors;
              },
            }
          : {}),
        notify: (m: NotifyMessage) => {
          if (!this.#notifier)
            throw new TalonError(
              'TOOL_FAILED',
              'no Hand delivers notifications on this device: add the communication Hand with a channel to the config',
            );
          return this.#notifier(m);
        },
      },
      web: { fetch: d.fetch, search: () => config.search, secret: (name) => d.secrets.get(name) },
      browser: { browser: this.browser, secret: (name) => d.secrets.get(name) },
    });
    // their schemas are checked by test/runtime/tools/builtin-contract.test.ts, not at every start
    for (const t of tools) this.registry.register(t, { checkSchemas: false });

    this.runs = new RunStore(store);
    this.agent = new AgentRunner({
      chat: (caller, req, opts) => {
        if (!llm) throw new TalonError('LLM_UNAVAILABLE', 'no LLM provider is configured (llm.providers)');
        if (!caller.admin && !caller.grants.llm)
          throw new TalonError('CAPABILITY_DENIED', `${caller.actor} has no llm grant: an agent run needs one`, {
            details: { action: 'llm.chat', subject: 'llm' },
          });
        return llm.chat(req, {
          ...(caller.hand !== undefined ? { hand: caller.hand } : {}),
          ...(caller.grants.llm ? { tokensPerHour: caller.grants.llm.tokensPerHour } : {}),
          actor: caller.actor,
          purpose: opts.purpose,
        });
      },
      tools: this.registry,
      runs: this.runs,
      clock,
      ...(llm
        ? {
            cost: (provider: string, usage: { inputTokens: number; outputTokens: number }) =>
              llm.costOf(provider, usage),
          }
        : {}),
    });

    this.mcpClients = new McpClients({
      register: (def) => this.registry.register(def),
      unregister: (name) => this.registry.unregister(name),
      secret: (name) => d.secrets.get(name),
      log: (level, msg) => d.logger.line(level, 'mcp', msg),
      clock,
    });
    const serve = config.mcp.serve;
    this.#mcpGrants = effectiveGrants(
      { ...serve.capabilities, tools: { allow: serve.expose, approve: serve.approve } } as never,
      undefined,
      topics.root(deviceId),
      'tools.mcp.serve.capabilities',
    );
    this.mcpEndpoint = serve.enabled
      ? new McpEndpoint({
          tools: this.registry,
          expose: () => serve.expose,
          callerFor: (principal) => ({
            actor: `mcp:${principal.actor}`,
            admin: false,
            grants: this.#mcpGrants,
            folder: join(d.dataDir, 'tools', 'mcp'),
          }),
          version: VERSION,
        })
      : null;

    this.area = toolsArea({
      tools: this.registry,
      approvals: this.approvals,
      runs: this.runs,
      audit,
      callerFor: (c: Caller) => this.adminCaller(c.actor),
      handFolder: (hand: string) => handFolder(d.dataDir, hand),
    });
  }

  /** REST and the CLI: an admin */
  adminCaller(actor: string): ToolCaller {
    return { actor, admin: true, grants: NO_CAPABILITIES, folder: join(this.#d.dataDir, 'tools', 'admin') };
  }

  /** the kernel services Hands call: tools.list, tools.call, agent.run */
  /** where the `notify` tool hands notifications (the kernel finds the Hand whose surface takes them) */
  setNotifier(fn: ((m: NotifyMessage) => Promise<NotifyResult>) | null): void {
    this.#notifier = fn;
  }

  services(): Record<string, KernelService> {
    const folderOf = (hand: string): string => handFolder(this.#d.dataDir, hand);
    return { ...this.registry.services(folderOf), ...this.agent.services(folderOf) };
  }

  async start(): Promise<void> {
    await this.approvals.start();
    const interrupted = await this.runs.start(this.#d.clock.now());
    if (interrupted > 0)
      this.#d.logger.warn(`tools: ${interrupted} agent run(s) left running by the last stop are marked failed`);
    // connected in the background: a slow or dead MCP server never holds up the kernel's start
    this.mcpClients.start(this.#d.config.mcp.servers);
  }

  async stop(): Promise<void> {
    await this.mcpClients.stop().catch(() => {});
    await this.approvals.stop();
    await this.browser.close().catch(() => {});
  }

  metrics(): NonNullable<MetricsInput['tools']> {
    const s = this.registry.stats();
    const r = this.runs.stats();
    return {
      calls: s.calls,
      approvalsPending: this.approvals.pending(),
      runs: { byState: { running: r.running, done: r.done, failed: r.failed }, steps: r.steps },
    };
  }
}

/** a Hand's ctx.store (as runtime/supervisor/hand-runner.ts keeps it), or the admins' scope */
function scopedStore(store: Store, owner: string): ScopedStore {
  const db = store.handScope(owner);
  return {
    get: async (k) => (await db.get(k)) ?? undefined,
    put: (k, v) => db.put(k, v),
    list: async ({ prefix, limit }) => {
      const range = prefix ? { gte: prefix, lt: `${prefix}\uffff` } : {};
      const out: Array<[string, unknown]> = [];
      for await (const [k, v] of db.iterator({ ...range, limit })) out.push([k, v]);
      return out;
    },
  };
}
