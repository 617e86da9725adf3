/**
 * The kernel is the composition root's running half: it makes the parts and starts them as one
 * ordered list of subsystems (./lifecycle.ts); a failed start and a stop both stop the started
 * ones in reverse, through the same code. `runDaemon` is what `talon run` calls.
 *
 * The order, and why (each part is stopped in the reverse of it):
 *   store          LevelDB and talon.pid; closed last. A runtime.json left by a Talon that died is
 *                  removed here (the store's lock says no other Talon runs on this folder)
 *   config         the generation in force, the device key, the CLI token (nothing to stop)
 *   bus            MQTT (`online`, then `offline` at the stop)
 *   audit          after the bus, so that at the stop the kernel.stop entry and the shutdown
 *                  checkpoint are written, and the head published, while the bus is still up
 *   sensors        drivers and the sensor registry
 *   fetch, llm     kernel services Hands call
 *   supervisor     the Hands' runners (no Hand runs yet); its stop ends any Hand a request started
 *                  while a start was under way that then failed
 *   tools          the tool registry, approvals, agent runs and MCP clients (./tools.ts): services
 *                  Hands call; pending approvals a previous run left are expired (never allowed)
 *   chat           marks answers a previous run left unfinished, before HTTP takes new ones
 *   recorder, stats, api   the API over every part, the built-in Hands' surfaces (routes, requests, metrics) included
 *   http, mqtt-commands, home-assistant   the listeners
 *   runtime-file   runtime.json: written once the listeners are up, removed before they close
 *   state          the `degraded`/`online` publisher
 *   announce       the kernel.start audit entry
 *   hands          the Hands, started last and not awaited (healthz answers as soon as the kernel
 *                  is up); stopped first after the agent: chat answers in flight are stored as
 *                  interrupted, then every Hand stops within supervisor.stopTimeoutMs
 *   provisioning   the fleet agent, when the config has a `provisioning` section
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../store/store.ts';
import { DeviceKey } from '../secrets/device-key.ts';
import { AuditChain } from '../audit/chain.ts';
import { ConfigGenerations } from '../config/generations.ts';
import { loadConfig, withEnvOverrides } from '../config/load.ts';
import { createBus } from '../bus/index.ts';
import { HandInputs } from '../bus/inputs.ts';
import type { Bus } from '../bus/types.ts';
import { topics } from '../core/topics.ts';
import { Supervisor } from '../supervisor/supervisor.ts';
import { RuntimeApi, type Health } from '../api/runtime-api.ts';
import { kernelHealth, StatePublisher } from '../api/health.ts';
import type { MetricsInput } from '../api/metrics.ts';
import { MqttCommands } from '../api/mqtt-commands.ts';
import { HttpServer } from '../../web-admin/server.ts';
import { createDrivers } from '../../drivers/index.ts';
import { SensorRegistry } from '../sensors/registry.ts';
import { HandFetch, systemResolver } from '../capabilities/fetch.ts';
import { configResolver, mxResolver } from '../capabilities/resolver.ts';
import { HomeAssistantDiscovery } from '../homeassistant/discovery.ts';
import { createRouter } from '../llm/index.ts';
import { SecretStore } from '../secrets/sealed.ts';
import { handServices, notifier } from './hand-services.ts';
import type { LlmRouter } from '../llm/router.ts';
import { systemRandom } from '../core/clock.ts';
import type { TalonConfig } from '../config/types.ts';
import { TalonError } from '../core/errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { VERSION } from '../version.ts';
import { ConfigManager, resolveStartConfig } from '../config/apply.ts';
import { ChatService, type AnswerSource } from '../chat/chat.ts';
import { BusRecorder } from '../bus/recorder.ts';
import { BUILTIN_HANDS, BUILTIN_SURFACES } from '../../hands/catalog.ts';
import type { AnySurface } from '../../hands/sdk/surface.ts';
import { setBuiltinHands } from '../config/builtins.ts';
import { SystemStats, boardModel } from '../api/system-info.ts';
import type { SystemInfo } from '../api/areas.ts';
import type { Caller } from '../supervisor/types.ts';
import { ProvisioningAgent } from '../../provisioning/device/agent.ts';
import { rollBackFailedStart } from '../../provisioning/device/recover.ts';
import { webAdminAccounts } from './provisioned-admin.ts';
import { Lifecycle, type Subsystem } from './lifecycle.ts';
import { systemdNotifier } from '../systemd.ts';
import { ToolsSubsystem } from './tools.ts';
import { clockServices } from './clock.ts';
import { surfaceTools } from '../tools/surface-tools.ts';

// the composition root tells the config layer which Hands are built in (their ids, the default instance)
setBuiltinHands(BUILTIN_HANDS);

export const RUNTIME_FILE = 'runtime.json';
export const CLI_TOKEN_FILE = 'cli-token';
/**
 * The supervisor terminates a Hand that is not done within stopTimeoutMs; the lifecycle waits
 * that long and this much more for the Hands' stop before it goes on without them.
 */
const HANDS_STOP_GRACE_MS = 5000;

export interface RuntimeInfo {
  pid: number;
  deviceId: string;
  http: { host: string; port: number };
  mqtt?: { host: string; port: number };
  startedAt: string;
  version: string;
}

export interface KernelOptions {
  config: TalonConfig;
  /** the Hands' surfaces to serve (default: the built-in Hands', hands/catalog.ts); a test mounts a fixture's */
  surfaces?: readonly AnySurface[];
  /** where the config came from, recorded with its generation */
  source?: string;
  logger?: Logger;
  clock?: Clock;
  /** override the worker entry (tests) */
  workerEntry?: string;
  /** resolve a Hand's module to a file (tests) */
  resolveModule?: (module: string) => string;
  /** a soft restart: the ports the previous kernel listened on, reused where the config says 0 */
  keepPorts?: { http?: number; mqtt?: number };
  /** asks the host for a soft restart (KernelHost); without one, restarts are refused */
  requestRestart?: (actor: string) => void;
  /** TALON_HTTP / TALON_MQTT / TALON_MQTT_URL, laid over whichever generation is in force (never stored in one) */
  env?: Record<string, string | undefined>;
  /** tests: wraps each subsystem of the start (to see the order, or make one fail) */
  wrapSubsystem?: (s: Subsystem) => Subsystem;
}

/** What the subsystems make, in start order: a subsystem reads only what the ones before it made. */
interface Parts {
  store: Store;
  config: TalonConfig;
  logger: Logger;
  generations: ConfigGenerations;
  key: DeviceKey;
  cliToken: string;
  secrets: SecretStore;
  handInputs: HandInputs;
  bus: Bus;
  audit: AuditChain;
  sensors: SensorRegistry;
  fetch: HandFetch;
  llm: LlmRouter | null;
  supervisor: Supervisor;
  tools: ToolsSubsystem;
  chat: ChatService;
  recorder: BusRecorder;
  stats: SystemStats;
  configManager: ConfigManager;
  api: RuntimeApi;
  http: HttpServer;
  commands: MqttCommands;
  homeAssistant: HomeAssistantDiscovery | null;
  state: StatePublisher;
  provisioning: ProvisioningAgent | null;
}

export class Kernel {
  #opts: KernelOptions;
  #clock: Clock;
  /** filled in by the subsystems as they start; the getters below read it once Kernel.start resolved */
  #p = { llm: null, homeAssistant: null, provisioning: null } as Partial<Parts> as Parts;
  #life: Lifecycle;
  #startedAt: number | null = null;
  /** the kernel.start entry was written: the stop writes kernel.stop */
  #announced = false;

  private constructor(opts: KernelOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#life = new Lifecycle({ clock: this.#clock, log: (level, msg) => this.#logger()[level](msg) });
  }

  get store(): Store {
    return this.#p.store;
  }
  get key(): DeviceKey {
    return this.#p.key;
  }
  get audit(): AuditChain {
    return this.#p.audit;
  }
  get generations(): ConfigGenerations {
    return this.#p.generations;
  }
  get bus(): Bus {
    return this.#p.bus;
  }
  get supervisor(): Supervisor {
    return this.#p.supervisor;
  }
  get api(): RuntimeApi {
    return this.#p.api;
  }
  get http(): HttpServer {
    return this.#p.http;
  }
  get commands(): MqttCommands {
    return this.#p.commands;
  }
  get sensors(): SensorRegistry {
    return this.#p.sensors;
  }
  get homeAssistant(): HomeAssistantDiscovery | null {
    return this.#p.homeAssistant;
  }
  get llm(): LlmRouter | null {
    return this.#p.llm;
  }
  get logger(): Logger {
    return this.#p.logger;
  }
  get chat(): ChatService {
    return this.#p.chat;
  }
  get configManager(): ConfigManager {
    return this.#p.configManager;
  }

  /** when the kernel came up (its listeners open, runtime.json written), ms epoch */
  get startedAt(): number {
    return this.#startedAt ?? 0;
  }

  get deviceId(): string {
    return this.key.id;
  }

  /** the fleet provisioning agent, when the config has a `provisioning` section */
  get provisioning(): ProvisioningAgent | null {
    return this.#p.provisioning;
  }

  /** The config in force (the store's generation, or the file's when it changed). */
  get config(): TalonConfig {
    return this.#p.config;
  }

  /** After a config apply: Hands-only changes reconcile the supervisor; anything else asks for a soft restart. */
  async reconfigure(
    next: TalonConfig,
    sections: string[],
    actor: string,
    requestRestart?: (actor: string) => void,
  ): Promise<string[]> {
    if (sections.length === 0) return [];
    if (sections.every((s) => s === 'hands')) {
      const r = await this.supervisor.reconcile(next.hands);
      this.#p.config = { ...this.#p.config, hands: next.hands };
      this.logger.info(
        `config: Hands reconciled (added ${r.added.join(', ') || 'none'}, removed ${r.removed.join(', ') || 'none'}, restarted ${r.restarted.join(', ') || 'none'})`,
      );
      return [...r.restarted, ...r.added, ...r.removed];
    }
    if (!requestRestart) {
      this.logger.warn(`config: ${sections.join(', ')} changed; they take effect at the next start`);
      return [];
    }
    requestRestart(actor);
    return ['kernel'];
  }

  /**
   * Starts every subsystem in order; when one fails, the ones started before it are stopped in
   * reverse and its error is thrown.
   */
  static async start(opts: KernelOptions): Promise<Kernel> {
    const kernel = new Kernel(opts);
    const steps = kernel.#subsystems();
    await kernel.#life.start(opts.wrapSubsystem ? steps.map(opts.wrapSubsystem) : steps);
    return kernel;
  }

  /**
   * Graceful stop: every subsystem in the reverse of the start order (see the top of this file);
   * a failure is logged and the rest still stop.
   */
  stop(): Promise<void> {
    return this.#life.stop();
  }

  /** before the config is resolved there is no logger of the config's level yet */
  #logger(): Logger {
    return this.#p.logger ?? this.#opts.logger ?? createLogger('info');
  }

  #uptimeMs(): number {
    return this.#startedAt === null ? 0 : this.#clock.now() - this.#startedAt;
  }

  /** The kernel's parts as one ordered list; the reasons for the order are at the top of this file. */
  #subsystems(): Subsystem[] {
    const opts = this.#opts;
    const clock = this.#clock;
    const p = this.#p;
    let applied: { changed: boolean; generation: number } = { changed: false, generation: 0 };
    const health = (): Health =>
      kernelHealth({
        store: p.store,
        bus: p.bus,
        supervisor: p.supervisor,
        audit: p.audit,
        deviceId: p.key.id,
        uptimeMs: this.#uptimeMs(),
      });
    return [
      {
        name: 'store',
        start: async () => {
          p.store = await Store.open(opts.config.dataDir);
          // the store's lock is ours: a runtime.json here was left by a Talon that did not stop cleanly
          rmSync(join(opts.config.dataDir, RUNTIME_FILE), { force: true });
        },
        stop: () => p.store.close(),
      },
      {
        name: 'config',
        start: async () => {
          // the file (plus env) wins only when it changed since it was last applied from the file;
          // otherwise the store's current generation (say, applied through the API) stays in force
          const fileConfig = opts.config;
          p.generations = new ConfigGenerations(p.store, { clock });
          const startConfig = await resolveStartConfig(
            p.store,
            p.generations,
            fileConfig,
            opts.source ?? 'defaults',
            opts.env ? withEnvOverrides(fileConfig, opts.env) : undefined,
          );
          applied = { changed: startConfig.changed, generation: startConfig.generation };
          p.config = keepPorts(withEnvOverrides(startConfig.config, opts.env), opts.keepPorts);
          p.logger = opts.logger ?? createLogger(p.config.log.level);
          p.key = DeviceKey.loadOrCreate(p.config.dataDir);
          p.cliToken = loadOrCreateToken(p.config.dataDir);
          p.secrets = new SecretStore(p.store, p.key);
        },
        stop: () => {},
      },
      {
        name: 'bus',
        start: async () => {
          const config = p.config;
          const cliToken = p.cliToken;
          // anonymous MQTT clients publish only to Hands' inputs (and Home Assistant's birth message), read only public state
          p.handInputs = new HandInputs();
          const ha = config.homeAssistant.enabled ? config.homeAssistant.prefix : null;
          p.bus = createBus(config.bus, p.key.id, {
            authenticateToken: (t: string) => t === cliToken,
            clock,
            anonymous: { inputs: p.handInputs, ...(ha ? { read: [`${ha}/#`], write: [`${ha}/status`] } : {}) },
          });
          await p.bus.start();
        },
        stop: () => p.bus.stop(),
      },
      {
        name: 'audit',
        start: async () => {
          const { config, logger, key } = p;
          // the newest signed checkpoint goes out retained on talon/<id>/audit/head, so a log
          // truncated or rewritten on the disk is caught against a head seen elsewhere
          let live = false;
          const publishHead = (cp: unknown): void => {
            if (live && p.bus.isUp())
              p.bus.publish(topics.auditHead(key.id), JSON.stringify(cp), { qos: 1, retain: true }).catch(() => {});
          };
          const retention = config.audit.retention;
          const audit = new AuditChain(p.store, key, {
            clock,
            onCheckpoint: publishHead,
            onBroken: (r) =>
              logger.error(
                `audit log broken at seq ${r.firstBrokenSeq ?? '?'}: ${r.reason ?? r.kind ?? 'unknown'} (run \`talon audit verify\`)`,
              ),
            onHealth: (h) => {
              logger[h.ok ? 'info' : 'error'](
                h.ok
                  ? 'the audit log can be written again'
                  : `${h.reason ?? 'the audit log cannot be written'}: privileged actions are refused`,
              );
              p.state?.poke();
            },
            ...(retention.maxEntries !== undefined || retention.maxAgeDays !== undefined
              ? {
                  retention: {
                    ...(retention.maxEntries !== undefined ? { maxEntries: retention.maxEntries } : {}),
                    ...(retention.maxAgeDays !== undefined ? { maxAgeMs: retention.maxAgeDays * 86_400_000 } : {}),
                  },
                }
              : {}),
          });
          await audit.start();
          p.audit = audit;
          if (applied.changed) {
            await audit.record({
              actor: 'kernel',
              action: 'config.apply',
              subject: `generation ${applied.generation}`,
              decision: 'ok',
              detail: { source: opts.source ?? 'defaults' },
            });
          }
          live = true;
          const head = audit.latestCheckpoint();
          if (head) publishHead(head);
        },
        stop: async () => {
          if (this.#announced) {
            const ms = clock.now() - (this.#life.stopBegan ?? clock.now());
            await p.audit
              .record({ actor: 'kernel', action: 'kernel.stop', subject: p.key.id, decision: 'ok', detail: { ms } })
              .catch(() => {});
          }
          // the shutdown checkpoint, published as the head while the bus is still up
          await p.audit.stop();
        },
      },
      {
        name: 'sensors',
        start: async () => {
          const { config, logger } = p;
          // drivers: one that fails to start is reported and left out; the others run. The list
          // loads no driver code: each type's code (serialport, onoff) loads when a config uses it.
          // A sensor id two drivers report: the registry logs it and keeps the first
          const drivers = await createDrivers(config.drivers, { clock }, { onClash: () => {} });
          p.sensors = new SensorRegistry(drivers, p.bus, p.audit, {
            clock,
            log: (level, msg) => logger.line(level, 'sensors', msg),
          });
          await p.sensors.start();
        },
        stop: () => p.sensors.stop(),
      },
      {
        // ctx.fetch: the network of Hands without raw sockets, through the kernel
        name: 'fetch',
        start: async () => {
          const network = p.config.network;
          p.fetch = new HandFetch({
            audit: p.audit,
            clock,
            resolve: configResolver(network, systemResolver),
            mx: mxResolver(network),
          });
          await p.fetch.start();
        },
        stop: () => p.fetch.stop(),
      },
      {
        // the LLM router: providers' code is loaded only when the config names providers
        name: 'llm',
        start: async () => {
          p.llm = await createRouter(p.config.llm, {
            audit: p.audit,
            clock,
            random: systemRandom,
            env: process.env,
            dataDir: p.config.dataDir,
            secrets: p.secrets,
          });
        },
        stop: () => {},
      },
      {
        name: 'supervisor',
        start: () => {
          const { config, logger, sensors, fetch, llm } = p;
          const supervisor = new Supervisor({
            config: config.supervisor,
            hands: config.hands,
            bus: p.handInputs.track(p.bus),
            store: p.store,
            audit: p.audit,
            deviceId: p.key.id,
            clock,
            ...(opts.workerEntry ? { workerEntry: opts.workerEntry } : {}),
            ...(opts.resolveModule ? { resolveModule: opts.resolveModule } : {}),
          });
          for (const [method, service] of Object.entries(sensors.services()))
            supervisor.registerService(method, service);
          for (const [method, service] of Object.entries(fetch.services())) supervisor.registerService(method, service);
          for (const [method, service] of Object.entries(clockServices())) supervisor.registerService(method, service);
          if (llm)
            for (const [method, service] of Object.entries(llm.services())) supervisor.registerService(method, service);
          supervisor.on('status', (st) => {
            if (st.state === 'stopped' || st.state === 'failed' || st.state === 'backoff') fetch.release(st.name);
          });
          supervisor.on('log', (line: { hand: string; level: 'debug' | 'info' | 'warn' | 'error'; msg: string }) =>
            logger.line(line.level, line.hand, line.msg),
          );
          p.supervisor = supervisor;
        },
        // after a full start the `hands` subsystem stopped them all; this stops a Hand a request
        // started while a start was still under way and then failed
        stop: () => p.supervisor.stop(this.config.supervisor.stopTimeoutMs),
        get stopTimeoutMs() {
          return p.config ? p.config.supervisor.stopTimeoutMs + HANDS_STOP_GRACE_MS : undefined;
        },
      },
      {
        // the tool registry, approvals, agent runs, MCP: before the API that serves them and the Hands that call them
        name: 'tools',
        start: async () => {
          const tools = new ToolsSubsystem({
            config: p.config.tools,
            dataDir: p.config.dataDir,
            deviceId: p.key.id,
            store: p.store,
            audit: p.audit,
            bus: p.bus,
            sensors: p.sensors,
            fetch: p.fetch,
            llm: p.llm,
            secrets: p.secrets,
            supervisor: p.supervisor,
            clock,
            logger: p.logger,
            resolve: configResolver(p.config.network, systemResolver),
          });
          for (const [method, service] of Object.entries(tools.services()))
            p.supervisor.registerService(method, service);
          const relay = handServices({ secrets: p.secrets, audit: p.audit, approvals: tools.approvals });
          for (const [method, service] of Object.entries(relay)) p.supervisor.registerService(method, service);
          await tools.start();
          p.tools = tools;
        },
        stop: () => p.tools.stop(),
      },
      {
        name: 'chat',
        start: async () => {
          p.chat = new ChatService({ store: p.store, audit: p.audit, clock, answer: chatAnswers(p.llm, p.supervisor) });
          const interrupted = await p.chat.start();
          if (interrupted > 0)
            p.logger.warn(`chat: ${interrupted} answer(s) left unfinished by the last stop are marked interrupted`);
        },
        // after a full start the `hands` subsystem stopped the answers already
        stop: () => p.chat.stop(),
      },
      {
        name: 'recorder',
        start: async () => {
          p.recorder = new BusRecorder(p.bus, { clock });
          await p.recorder.start();
        },
        stop: () => p.recorder.stop(),
      },
      {
        name: 'stats',
        start: () => {
          p.stats = new SystemStats({ dataDir: p.config.dataDir, hands: () => p.supervisor.list(), clock });
          // the dashboard's charts open with the last minutes of samples, taken whether or not a page watches
          p.stats.start();
        },
        stop: () => p.stats.stop(),
      },
      {
        name: 'api',
        start: () => {
          const { config, key, generations, audit, bus, sensors, supervisor } = p;
          const metrics = (): MetricsInput => {
            const mem = process.memoryUsage();
            const cpu = process.cpuUsage();
            return {
              deviceId: key.id,
              uptimeMs: this.#uptimeMs(),
              sensors: sensors.states(),
              drivers: sensors.drivers().map((d) => ({ name: d.name, type: d.type, health: d.health() })),
              hands: supervisor.list(),
              bus: bus.stats(),
              audit: { seq: audit.head().seq, checkpointSeq: audit.latestCheckpoint()?.seq ?? 0 },
              tools: p.tools.metrics(),
              process: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, cpuSeconds: (cpu.user + cpu.system) / 1e6 },
            };
          };
          const info = async (): Promise<SystemInfo> => {
            const board = boardModel();
            return {
              deviceId: key.id,
              deviceName: config.deviceName,
              version: VERSION,
              node: process.version,
              platform: process.platform,
              arch: process.arch,
              ...(board ? { board } : {}),
              publicKey: key.publicKey.toString('base64'),
              startedAt: this.#startedAt ?? clock.now(),
              uptimeMs: this.#uptimeMs(),
              configGeneration: (await generations.current())?.generation ?? null,
            };
          };
          p.configManager = new ConfigManager({
            generations,
            audit,
            reconfigure: async (_prev, next, sections, caller) =>
              this.reconfigure(next, sections, caller.actor, opts.requestRestart),
          });
          const restart = opts.requestRestart;
          p.api = new RuntimeApi({
            surfaces: opts.surfaces ?? BUILTIN_SURFACES,
            supervisor,
            audit,
            auditLog: audit,
            sensors,
            metrics,
            health,
            llm: p.llm,
            secrets: p.secrets,
            tools: p.tools.area,
            areas: {
              bus,
              info,
              stats: p.stats,
              config: p.configManager,
              recorder: p.recorder,
              chat: p.chat,
              ...(restart ? { restart: (c: Caller) => restart(c.actor) } : {}),
              ...(config.provisioning
                ? {
                    provisioning: async () =>
                      p.provisioning?.status() ?? {
                        state: 'announcing' as const,
                        message: 'the provisioning agent is starting',
                      },
                  }
                : {}),
            },
          });
          // the Hands' surface tools (schedule.put, …): requests to their running instances, as tools
          for (const t of surfaceTools(p.api.handRequests.surfaces, (id, kind, body, o) =>
            p.api.handRequests.request(id, kind, body, o),
          ))
            p.tools.registry.register(t, { checkSchemas: false });
          // the notify tool goes to the Hand whose surface takes notifications, when the config runs one
          const messenger = p.api.handRequests.surfaces.find(
            (s) => s.notify !== undefined && config.hands.some((h) => h.module === s.id),
          );
          p.tools.setNotifier(messenger ? notifier(p.api.handRequests, messenger.id, messenger.notify!) : null);
        },
        stop: () => {},
      },
      {
        name: 'http',
        start: async () => {
          const { config, logger } = p;
          p.http = new HttpServer({
            api: p.api,
            listen: config.http,
            cliToken: p.cliToken,
            store: p.store,
            audit: p.audit,
            dataDir: config.dataDir,
            logger,
            clock,
            ...(config.http.tls ? { tls: config.http.tls } : {}),
            ...(p.tools.mcpEndpoint ? { mcp: p.tools.mcpEndpoint } : {}),
          });
          await p.http.listen();
          if (p.http.setupCode) {
            logger.warn(
              `no web admin account yet: open the web admin and enter the one-time setup code ${p.http.setupCode} (also in ${join(config.dataDir, 'setup-code')})`,
            );
          }
        },
        stop: () => p.http.close(),
      },
      {
        name: 'mqtt-commands',
        start: async () => {
          p.commands = new MqttCommands(p.bus, p.api);
          await p.commands.start();
        },
        stop: () => p.commands.stop(),
      },
      {
        name: 'home-assistant',
        start: async () => {
          const { config, key, sensors } = p;
          if (!config.homeAssistant.enabled) return;
          p.homeAssistant = new HomeAssistantDiscovery(
            p.bus,
            { deviceId: key.id, name: config.deviceName, swVersion: VERSION },
            () => sensors.list(),
            config.homeAssistant.prefix,
            p.api.handRequests.surfaces,
          );
          await p.homeAssistant.start();
        },
        stop: () => p.homeAssistant?.stop(),
      },
      {
        // says that Talon runs and where (the CLI reads it): up from here
        name: 'runtime-file',
        start: () => {
          this.#startedAt = clock.now();
          this.#writeRuntimeFile();
        },
        stop: () => rmSync(join(p.config.dataDir, RUNTIME_FILE), { force: true }),
      },
      {
        name: 'state',
        start: () => {
          const audit = p.audit;
          p.state = new StatePublisher({
            bus: p.bus,
            deviceId: p.key.id,
            health,
            clock,
            done: () => !audit.isRunning(),
          });
          p.state.start();
        },
        stop: () => p.state.stop(),
      },
      {
        // kernel.stop is written by the audit subsystem's stop, the last entry before the shutdown checkpoint
        name: 'announce',
        start: async () => {
          await p.audit.record({
            actor: 'kernel',
            action: 'kernel.start',
            subject: p.key.id,
            decision: 'ok',
            detail: { version: VERSION, http: p.http.address() },
          });
          this.#announced = true;
        },
        stop: () => {},
      },
      {
        name: 'hands',
        start: () => {
          p.supervisor
            .start()
            .catch((err: unknown) => p.logger.error(`starting Hands failed: ${TalonError.from(err).message}`));
        },
        stop: async () => {
          // answers in flight are stored as interrupted before the Hands answering them go away
          try {
            await p.chat.stop();
          } finally {
            await p.supervisor.stop(this.config.supervisor.stopTimeoutMs);
          }
        },
        get stopTimeoutMs() {
          return p.config ? p.config.supervisor.stopTimeoutMs + HANDS_STOP_GRACE_MS : undefined;
        },
      },
      {
        // made anew on every (soft) start, after the Hands were asked to start: its state is in the store
        name: 'provisioning',
        start: async () => {
          const { config, key, supervisor, http, logger } = p;
          if (!config.provisioning) return;
          const agent = new ProvisioningAgent({
            config: config.provisioning,
            key,
            dataDir: config.dataDir,
            store: p.store,
            audit: p.audit,
            secrets: p.secrets,
            configManager: p.configManager,
            clock,
            software: { version: VERSION, node: process.version },
            health: () => {
              const h = health();
              if (!h.ok)
                return {
                  ok: false,
                  reason: `kernel checks failing: ${Object.entries(h.checks)
                    .filter(([, ok]) => !ok)
                    .map(([k]) => k)
                    .join(', ')}`,
                };
              const hands = supervisor.list();
              const bad = hands.find((x) => x.state === 'failed' || x.state === 'backoff');
              if (bad)
                return {
                  ok: false,
                  reason: `Hand ${bad.name} is ${bad.state}${bad.lastError ? `: ${bad.lastError.message}` : ''}`,
                };
              const enabled = new Set(this.config.hands.filter((x) => x.enabled).map((x) => x.name));
              const unsettled = hands.find((x) => enabled.has(x.name) && x.state !== 'running');
              return unsettled
                ? { ok: true, settling: true, reason: `Hand ${unsettled.name} is ${unsettled.state}` }
                : { ok: true };
            },
            ...webAdminAccounts(http.auth, (msg) => logger.warn(msg)),
            log: (level, msg) => logger.line(level, 'provisioning', msg),
          });
          p.provisioning = agent;
          try {
            await agent.start();
          } catch (err) {
            // a subsystem that fails cleans up what it began (its broker link may be up)
            await agent.stop().catch(() => {});
            throw err;
          }
        },
        stop: () => p.provisioning?.stop(),
      },
    ];
  }

  #writeRuntimeFile(): void {
    const busAddr = (this.bus as { address?: () => { host: string; port: number } }).address?.();
    const info: RuntimeInfo = {
      pid: process.pid,
      deviceId: this.deviceId,
      http: this.http.address(),
      ...(busAddr ? { mqtt: busAddr } : {}),
      startedAt: new Date(this.startedAt).toISOString(),
      version: VERSION,
    };
    writeFileSync(join(this.config.dataDir, RUNTIME_FILE), JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  }
}

/** a soft restart keeps the ports the previous kernel got for "any free port" (0) */
function keepPorts(config: TalonConfig, keep: KernelOptions['keepPorts']): TalonConfig {
  if (!keep) return config;
  let out = config;
  if (keep.http !== undefined && config.http.port === 0) out = { ...out, http: { ...out.http, port: keep.http } };
  const listen = config.bus.embedded.listen;
  if (keep.mqtt !== undefined && listen && listen.port === 0) {
    out = { ...out, bus: { ...out.bus, embedded: { ...out.bus.embedded, listen: { ...listen, port: keep.mqtt } } } };
  }
  return out;
}

/** Where chat answers come from: the LLM router, or a Hand's chat() for `hand:<name>`. */
function chatAnswers(llm: LlmRouter | null, supervisor: Supervisor): AnswerSource {
  return async function* answer(target, messages, { signal, actor }) {
    if (target === 'router') {
      if (!llm) throw new TalonError('LLM_UNAVAILABLE', 'no LLM provider is configured (llm.providers in the config)');
      for await (const c of llm.stream({ messages, signal }, { actor, allowCloud: true })) {
        if (c.type === 'text') yield { text: c.text };
        else if (c.type === 'done') yield { text: '', provider: c.result.provider };
      }
      return;
    }
    const name = target.slice('hand:'.length);
    yield { text: '', provider: target };
    const plain = messages.flatMap((m) => (m.role === 'tool' ? [] : [{ role: m.role, content: m.content }]));
    for await (const text of supervisor.ask(name, plain, { signal })) yield { text };
  };
}

function loadOrCreateToken(dataDir: string): string {
  const file = join(dataDir, CLI_TOKEN_FILE);
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim();
    if (t.length >= 32) return t;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return token;
}

/**
 * Keeps one kernel running in this process and replaces it on a soft restart (after a config
 * apply that touches more than Hands, or `POST /api/v1/system/restart`): stop everything, then
 * start again from the store's current generation, same data folder, same ports.
 */
export class KernelHost {
  #opts: KernelOptions;
  #kernel: Kernel;
  #restarting: Promise<Kernel> | null = null;
  #stopped = false;
  #timer: NodeJS.Timeout | null = null;
  /** called after every soft restart with the new kernel, or with the error that stopped it */
  onRestart: (kernel: Kernel | null, err?: TalonError) => void = () => {};

  private constructor(opts: KernelOptions, kernel: Kernel) {
    this.#opts = opts;
    this.#kernel = kernel;
  }

  static async start(opts: KernelOptions): Promise<KernelHost> {
    let host: KernelHost | null = null;
    const requestRestart = (actor: string): void => host?.requestRestart(actor);
    const kernel = await startOrRollBack({ ...opts, requestRestart });
    host = new KernelHost({ ...opts, requestRestart }, kernel);
    return host;
  }

  get kernel(): Kernel {
    return this.#kernel;
  }

  /** A restart soon, after the reply that asked for it has gone out. */
  requestRestart(actor: string): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.restart(actor).catch(() => {});
    }, 50);
  }

  restart(actor = 'kernel'): Promise<Kernel> {
    this.#restarting ??= this.#restart(actor).finally(() => {
      this.#restarting = null;
    });
    return this.#restarting;
  }

  async #restart(actor: string): Promise<Kernel> {
    const old = this.#kernel;
    const logger = old.logger;
    const http = old.http.address();
    const mqtt = (old.bus as { address?: () => { host: string; port: number } }).address?.();
    logger.info(`soft restart asked by ${actor}: stopping the kernel`);
    await old.stop();
    if (this.#stopped) return old;
    try {
      this.#kernel = await startOrRollBack({
        ...this.#opts,
        keepPorts: { http: http.port, ...(mqtt ? { mqtt: mqtt.port } : {}) },
      });
    } catch (err) {
      const e = TalonError.from(err);
      logger.error(`soft restart failed: ${e.message}`);
      this.onRestart(null, e);
      throw e;
    }
    logger.info(
      `soft restart done: config generation ${(await this.#kernel.generations.current())?.generation ?? '?'} in force`,
    );
    this.onRestart(this.#kernel);
    return this.#kernel;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#restarting?.catch(() => {});
    await this.#kernel.stop();
  }
}

/** A kernel that cannot start with a config a fleet bundle brought goes back to the previous one (provisioning/device/recover.ts). */
async function startOrRollBack(opts: KernelOptions): Promise<Kernel> {
  try {
    return await Kernel.start(opts);
  } catch (err) {
    if (!opts.config.provisioning || !(await rollBackFailedStart(opts.config.dataDir, err))) throw err;
    opts.logger?.error(
      `the kernel did not start with the config a fleet bundle brought (${TalonError.from(err).message}); rolled back to the previous generation`,
    );
    return Kernel.start(opts);
  }
}

/** The admin page's address as a person types it: a wildcard listener is reached on loopback, IPv6 in brackets. */
export function adminUrl(tls: boolean, addr: { host: string; port: number }): string {
  const host =
    addr.host === '0.0.0.0' || addr.host === ''
      ? '127.0.0.1'
      : addr.host === '::'
        ? '[::1]'
        : addr.host.includes(':')
          ? `[${addr.host}]`
          : addr.host;
  return `${tls ? 'https' : 'http'}://${host}:${addr.port}/`;
}

/** `talon run`: start, log where things are, stop cleanly on SIGTERM/SIGINT. Returns the exit code. */
export async function runDaemon(opts: { configFile?: string; dataDir?: string }): Promise<number> {
  // the listener variables go over the generation in force at every start, file or store (a
  // provisioned one), and never into the file's hash: a new TALON_HTTP does not replace that generation
  const { config, source } = loadConfig({
    file: opts.configFile,
    dataDir: opts.dataDir,
    env: { TALON_DATA: process.env.TALON_DATA },
  });
  const logger = createLogger(config.log.level);
  const host = await KernelHost.start({ config, source, logger, env: process.env });
  const kernel = host.kernel;
  const http = kernel.http.address();
  const mqtt = (kernel.bus as { address?: () => { host: string; port: number } }).address?.();
  logger.info(
    `device ${kernel.deviceId} up: admin page ${adminUrl(kernel.config.http.tls?.enabled === true, http)}` +
      `${mqtt ? `, mqtt://${mqtt.host}:${mqtt.port}` : kernel.config.bus.url ? `, broker ${redactUrl(kernel.config.bus.url)}` : ''}, data ${config.dataDir}`,
  );
  const sd = systemdNotifier({ logger }); // READY=1 and the watchdog under systemd (Type=notify); a no-op elsewhere
  sd.ready();
  return new Promise<number>((resolve) => {
    let signalled = false;
    // a soft restart that cannot start the kernel again ends the daemon (a supervisor such as systemd restarts it)
    host.onRestart = (k) => {
      if (k === null && !signalled) resolve(1);
    };
    const onSignal = (sig: NodeJS.Signals): void => {
      if (signalled) {
        logger.warn(`${sig} again: exiting now`);
        process.exit(1);
      }
      signalled = true;
      logger.info(`${sig}: stopping`);
      sd.stopping();
      host.stop().then(
        () => {
          logger.info('stopped');
          resolve(0);
        },
        (err: unknown) => {
          logger.error(`stop failed: ${TalonError.from(err).message}`);
          resolve(1);
        },
      );
    };
    // `on`, not `once`: libraries that use signal-exit (node-llama-cpp's dependencies do)
    // re-raise a signal when they see no other listener left, killing us mid-shutdown
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
