/**
 * The kernel wires the subsystems and owns their order: store → identity → audit → config
 * generation → bus → supervisor → HTTP → Hands. Every subsystem has start()/stop(); no
 * hidden singletons. `runDaemon` is what `talon run` calls.
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
import { SensorRegistry } from '../sensors/registry.ts';
import { HandFetch } from '../capabilities/fetch.ts';
import { HomeAssistantDiscovery } from '../homeassistant/discovery.ts';
import { createRouter } from '../llm/index.ts';
import { SecretStore } from '../secrets/sealed.ts';
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
import { MonitoringClient } from '../api/monitoring-client.ts';
import { SystemStats, boardModel } from '../api/system-info.ts';
import type { SystemInfo } from '../api/areas.ts';
import type { Caller } from '../supervisor/types.ts';
import { ProvisioningAgent } from '../../provisioning/device/agent.ts';
import { rollBackFailedStart } from '../../provisioning/device/recover.ts';
import { webAdminAccounts } from './provisioned-admin.ts';
import { systemdNotifier } from '../systemd.ts';

export const RUNTIME_FILE = 'runtime.json';
export const CLI_TOKEN_FILE = 'cli-token';

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
}

export class Kernel {
  #config: TalonConfig;
  readonly store: Store;
  readonly key: DeviceKey;
  readonly audit: AuditChain;
  readonly generations: ConfigGenerations;
  readonly bus: Bus;
  readonly supervisor: Supervisor;
  readonly api: RuntimeApi;
  readonly http: HttpServer;
  readonly commands: MqttCommands;
  readonly sensors: SensorRegistry;
  readonly homeAssistant: HomeAssistantDiscovery | null;
  readonly llm: LlmRouter | null;
  readonly logger: Logger;
  readonly startedAt: number;
  readonly chat: ChatService;
  readonly configManager: ConfigManager;
  #extras: { recorder: BusRecorder; monitoring: MonitoringClient; provisioning: ProvisioningAgent | null; fetch: HandFetch; stats?: SystemStats };
  #stopping: Promise<void> | null = null;
  #clock: Clock;

  private constructor(parts: {
    config: TalonConfig; store: Store; key: DeviceKey; audit: AuditChain; generations: ConfigGenerations;
    bus: Bus; supervisor: Supervisor; api: RuntimeApi; http: HttpServer; commands: MqttCommands; logger: Logger; clock: Clock;
    sensors: SensorRegistry; homeAssistant: HomeAssistantDiscovery | null; llm: LlmRouter | null;
    chat: ChatService; configManager: ConfigManager; recorder: BusRecorder; monitoring: MonitoringClient; fetch: HandFetch; stats?: SystemStats;
  }) {
    this.#config = parts.config;
    this.chat = parts.chat;
    this.configManager = parts.configManager;
    this.#extras = { recorder: parts.recorder, monitoring: parts.monitoring, provisioning: null, fetch: parts.fetch, ...(parts.stats ? { stats: parts.stats } : {}) };
    this.store = parts.store;
    this.key = parts.key;
    this.audit = parts.audit;
    this.generations = parts.generations;
    this.bus = parts.bus;
    this.supervisor = parts.supervisor;
    this.api = parts.api;
    this.http = parts.http;
    this.commands = parts.commands;
    this.sensors = parts.sensors;
    this.homeAssistant = parts.homeAssistant;
    this.llm = parts.llm;
    this.logger = parts.logger;
    this.#clock = parts.clock;
    this.startedAt = parts.clock.now();
  }

  get deviceId(): string {
    return this.key.id;
  }

  /** the fleet provisioning agent, when the config has a `provisioning` section */
  get provisioning(): ProvisioningAgent | null {
    return this.#extras.provisioning;
  }

  /** The config in force (the store's generation, or the file's when it changed). */
  get config(): TalonConfig {
    return this.#config;
  }

  /** After a config apply: Hands-only changes reconcile the supervisor; anything else asks for a soft restart. */
  async reconfigure(next: TalonConfig, sections: string[], actor: string, requestRestart?: (actor: string) => void): Promise<string[]> {
    if (sections.length === 0) return [];
    if (sections.every((s) => s === 'hands')) {
      const r = await this.supervisor.reconcile(next.hands);
      this.#config = { ...this.#config, hands: next.hands };
      this.logger.info(`config: Hands reconciled (added ${r.added.join(', ') || 'none'}, removed ${r.removed.join(', ') || 'none'}, restarted ${r.restarted.join(', ') || 'none'})`);
      return [...r.restarted, ...r.added, ...r.removed];
    }
    if (!requestRestart) {
      this.logger.warn(`config: ${sections.join(', ')} changed; they take effect at the next start`);
      return [];
    }
    requestRestart(actor);
    return ['kernel'];
  }

  /** Starts everything; Hands are started last and not awaited (healthz answers as soon as the kernel is up). */
  static async start(opts: KernelOptions): Promise<Kernel> {
    const fileConfig = opts.config;
    const clock = opts.clock ?? systemClock;
    const store = await Store.open(fileConfig.dataDir);
    const undo: Array<() => Promise<unknown>> = [() => store.close()];
    try {
      // the file (plus env) wins only when it changed since it was last applied from the file;
      // otherwise the store's current generation (say, applied through the API) stays in force
      const generations = new ConfigGenerations(store, { clock });
      const startConfig = await resolveStartConfig(store, generations, fileConfig, opts.source ?? 'defaults', opts.env ? withEnvOverrides(fileConfig, opts.env) : undefined);
      const config = keepPorts(withEnvOverrides(startConfig.config, opts.env), opts.keepPorts);
      const logger = opts.logger ?? createLogger(config.log.level);
      const key = DeviceKey.loadOrCreate(config.dataDir);
      // the newest signed checkpoint goes out retained on talon/<id>/audit/head, so a log
      // truncated or rewritten on the disk is caught against a head seen elsewhere
      let busRef: Bus | null = null;
      let state: StatePublisher | null = null;
      const publishHead = (cp: unknown): void => {
        if (busRef?.isUp()) busRef.publish(topics.auditHead(key.id), JSON.stringify(cp), { qos: 1, retain: true }).catch(() => {});
      };
      const retention = config.audit.retention;
      const audit = new AuditChain(store, key, {
        clock,
        onCheckpoint: publishHead,
        onBroken: (r) => logger.error(`audit log broken at seq ${r.firstBrokenSeq ?? '?'}: ${r.reason ?? r.kind ?? 'unknown'} (run \`talon audit verify\`)`),
        onHealth: (h) => { logger[h.ok ? 'info' : 'error'](h.ok ? 'the audit log can be written again' : `${h.reason ?? 'the audit log cannot be written'}: privileged actions are refused`); state?.poke(); },
        ...(retention.maxEntries !== undefined || retention.maxAgeDays !== undefined ? {
          retention: {
            ...(retention.maxEntries !== undefined ? { maxEntries: retention.maxEntries } : {}),
            ...(retention.maxAgeDays !== undefined ? { maxAgeMs: retention.maxAgeDays * 86_400_000 } : {}),
          },
        } : {}),
      });
      await audit.start();
      undo.unshift(() => audit.stop());
      if (startConfig.changed) {
        await audit.record({ actor: 'kernel', action: 'config.apply', subject: `generation ${startConfig.generation}`, decision: 'ok', detail: { source: opts.source ?? 'defaults' } });
      }
      const cliToken = loadOrCreateToken(config.dataDir);
      // anonymous MQTT clients publish only to Hands' inputs (and Home Assistant's birth message), read only public state
      const handInputs = new HandInputs();
      const ha = config.homeAssistant.enabled ? config.homeAssistant.prefix : null;
      const bus = createBus(config.bus, key.id, { authenticateToken: (t: string) => t === cliToken, clock,
        anonymous: { inputs: handInputs, ...(ha ? { read: [`${ha}/#`], write: [`${ha}/status`] } : {}) } });
      await bus.start();
      undo.unshift(() => bus.stop());
      busRef = bus;
      const head = audit.latestCheckpoint();
      if (head) publishHead(head);
      // drivers: one that fails to start is reported and left out; the others run
      // driver code (and serialport, onoff) is loaded only when a config has drivers
      const drivers = config.drivers.length === 0 ? []
        : await import('../../drivers/index.ts').then(({ createDriver }) => config.drivers.map((d) => createDriver(d, { clock })));
      const sensors = new SensorRegistry(drivers, bus, audit, {
        clock, log: (level, msg) => logger.line(level, 'sensors', msg),
      });
      await sensors.start();
      undo.unshift(() => sensors.stop());
      const supervisor = new Supervisor({
        config: config.supervisor, hands: config.hands, bus: handInputs.track(bus), store, audit, deviceId: key.id, clock,
        ...(opts.workerEntry ? { workerEntry: opts.workerEntry } : {}),
        ...(opts.resolveModule ? { resolveModule: opts.resolveModule } : {}),
      });
      for (const [method, service] of Object.entries(sensors.services())) supervisor.registerService(method, service);
      // ctx.fetch: the network of Hands without raw sockets, through the kernel
      const netFetch = new HandFetch({ audit, clock });
      await netFetch.start();
      undo.unshift(() => netFetch.stop());
      for (const [method, service] of Object.entries(netFetch.services())) supervisor.registerService(method, service);
      supervisor.on('status', (st) => {
        if (st.state === 'stopped' || st.state === 'failed' || st.state === 'backoff') netFetch.release(st.name);
      });
      // the LLM router: providers' code is loaded only when the config names providers
      const secrets = new SecretStore(store, key);
      const llm = await createRouter(config.llm, { audit, clock, random: systemRandom, env: process.env, dataDir: config.dataDir, secrets });
      if (llm) for (const [method, service] of Object.entries(llm.services())) supervisor.registerService(method, service);
      supervisor.on('log', (line: { hand: string; level: 'debug' | 'info' | 'warn' | 'error'; msg: string }) => logger.line(line.level, line.hand, line.msg));
      let kernel: Kernel | null = null;
      const health = (): Health => kernelHealth({ store, bus, supervisor, audit, deviceId: key.id, uptimeMs: kernel ? clock.now() - kernel.startedAt : 0 });
      const metrics = (): MetricsInput => {
        const mem = process.memoryUsage();
        const cpu = process.cpuUsage();
        return {
          deviceId: key.id,
          uptimeMs: kernel ? clock.now() - kernel.startedAt : 0,
          sensors: sensors.states(),
          drivers: sensors.drivers().map((d) => ({ name: d.name, type: d.type, health: d.health() })),
          hands: supervisor.list(),
          bus: bus.stats(),
          audit: { seq: audit.head().seq, checkpointSeq: audit.latestCheckpoint()?.seq ?? 0 },
          process: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, cpuSeconds: (cpu.user + cpu.system) / 1e6 },
        };
      };
      const configManager = new ConfigManager({
        generations, audit,
        reconfigure: async (_prev, next, sections, caller) => kernel ? kernel.reconfigure(next, sections, caller.actor, opts.requestRestart) : [],
      });
      const chat = new ChatService({ store, audit, clock, answer: chatAnswers(llm, supervisor) });
      const interrupted = await chat.start();
      if (interrupted > 0) logger.warn(`chat: ${interrupted} answer(s) left unfinished by the last stop are marked interrupted`);
      undo.unshift(() => chat.stop());
      const recorder = new BusRecorder(bus, { clock });
      await recorder.start();
      undo.unshift(() => recorder.stop());
      const monitoring = new MonitoringClient(bus, () => supervisor.list());
      undo.unshift(() => monitoring.stop());
      const stats = new SystemStats({ dataDir: config.dataDir, hands: () => supervisor.list(), clock });
      // the dashboard's charts open with the last minutes of samples, taken whether or not a page watches
      stats.start();
      undo.unshift(async () => stats.stop());
      const info = async (): Promise<SystemInfo> => {
        const board = boardModel();
        return {
          deviceId: key.id, deviceName: config.deviceName, version: VERSION, node: process.version, platform: process.platform, arch: process.arch,
          ...(board ? { board } : {}), publicKey: key.publicKey.toString('base64'),
          startedAt: kernel?.startedAt ?? clock.now(), uptimeMs: kernel ? clock.now() - kernel.startedAt : 0,
          configGeneration: (await generations.current())?.generation ?? null,
        };
      };
      const restart = opts.requestRestart;
      const api = new RuntimeApi({
        supervisor, audit, auditLog: audit, sensors, metrics, health, llm, secrets,
        areas: {
          bus, info, stats, config: configManager, recorder, monitoring, chat, ...(restart ? { restart: (c: Caller) => restart(c.actor) } : {}),
          ...(config.provisioning ? { provisioning: async () => kernel?.provisioning?.status() ?? { state: 'announcing' as const, message: 'the provisioning agent is starting' } } : {}),
        },
      });
      const http = new HttpServer({
        api, listen: config.http, cliToken, store, audit, dataDir: config.dataDir, logger, clock,
        ...(config.http.tls ? { tls: config.http.tls } : {}),
      });
      await http.listen();
      undo.unshift(() => http.close());
      if (http.setupCode) {
        logger.warn(`no web admin account yet: open the web admin and enter the one-time setup code ${http.setupCode} (also in ${join(config.dataDir, 'setup-code')})`);
      }
      const commands = new MqttCommands(bus, api);
      await commands.start();
      let homeAssistant: HomeAssistantDiscovery | null = null;
      if (config.homeAssistant.enabled) {
        homeAssistant = new HomeAssistantDiscovery(bus, { deviceId: key.id, name: config.deviceName, swVersion: VERSION }, () => sensors.list(), config.homeAssistant.prefix);
        await homeAssistant.start();
        undo.unshift(() => homeAssistant!.stop());
      }
      kernel = new Kernel({ config, store, key, audit, generations, bus, supervisor, api, http, commands, sensors, homeAssistant, llm, logger, clock, chat, configManager, recorder, monitoring, fetch: netFetch, stats });
      kernel.#writeRuntimeFile();
      (state = new StatePublisher({ bus, deviceId: key.id, health, clock, done: () => !audit.isRunning() })).start();
      await audit.record({ actor: 'kernel', action: 'kernel.start', subject: key.id, decision: 'ok', detail: { version: VERSION, http: http.address() } });
      supervisor.start().catch((err: unknown) => logger.error(`starting Hands failed: ${TalonError.from(err).message}`));
      // made anew on every (soft) start, after the Hands were asked to start: its state is in the store
      if (config.provisioning) {
        const agent = new ProvisioningAgent({
          config: config.provisioning, key, dataDir: config.dataDir, store, audit, secrets, configManager, clock,
          software: { version: VERSION, node: process.version },
          health: () => {
            const h = health();
            if (!h.ok) return { ok: false, reason: `kernel checks failing: ${Object.entries(h.checks).filter(([, ok]) => !ok).map(([k]) => k).join(', ')}` };
            const hands = supervisor.list();
            const bad = hands.find((x) => x.state === 'failed' || x.state === 'backoff');
            if (bad) return { ok: false, reason: `Hand ${bad.name} is ${bad.state}${bad.lastError ? `: ${bad.lastError.message}` : ''}` };
            const enabled = new Set((kernel?.config ?? config).hands.filter((x) => x.enabled).map((x) => x.name));
            const unsettled = hands.find((x) => enabled.has(x.name) && x.state !== 'running');
            return unsettled ? { ok: true, settling: true, reason: `Hand ${unsettled.name} is ${unsettled.state}` } : { ok: true };
          },
          ...webAdminAccounts(http.auth, (msg) => logger.warn(msg)),
          log: (level, msg) => logger.line(level, 'provisioning', msg),
        });
        kernel.#extras.provisioning = agent;
        await agent.start();
      }
      return kernel;
    } catch (err) {
      for (const fn of undo) await fn().catch(() => {});
      throw err;
    }
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

  /** Graceful stop: Hands within their deadline, then HTTP, the bus (publishing `offline`), the audit log and the store. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const t0 = this.#clock.now();
    await this.#extras.provisioning?.stop().catch(() => {});
    // answers in flight are stored as interrupted before the Hands answering them go away
    await this.chat.stop().catch(() => {});
    await this.supervisor.stop(this.config.supervisor.stopTimeoutMs).catch((err: unknown) => this.logger.error(`stopping Hands: ${TalonError.from(err).message}`));
    await this.#extras.fetch.stop().catch(() => {});
    await this.commands.stop().catch(() => {});
    await this.homeAssistant?.stop().catch(() => {});
    await this.sensors.stop();
    await this.http.close();
    this.#extras.stats?.stop();
    await this.#extras.monitoring.stop();
    await this.#extras.recorder.stop();
    await this.audit.record({ actor: 'kernel', action: 'kernel.stop', subject: this.deviceId, decision: 'ok', detail: { ms: this.#clock.now() - t0 } }).catch(() => {});
    // the shutdown checkpoint, published as the head while the bus is still up
    await this.audit.stop().catch((err: unknown) => this.logger.error(`closing the audit log: ${TalonError.from(err).message}`));
    await this.bus.stop().catch((err: unknown) => this.logger.error(`stopping the bus: ${TalonError.from(err).message}`));
    rmSync(join(this.config.dataDir, RUNTIME_FILE), { force: true });
    await this.store.close();
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
    this.#restarting ??= this.#restart(actor).finally(() => { this.#restarting = null; });
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
      this.#kernel = await startOrRollBack({ ...this.#opts, keepPorts: { http: http.port, ...(mqtt ? { mqtt: mqtt.port } : {}) } });
    } catch (err) {
      const e = TalonError.from(err);
      logger.error(`soft restart failed: ${e.message}`);
      this.onRestart(null, e);
      throw e;
    }
    logger.info(`soft restart done: config generation ${(await this.#kernel.generations.current())?.generation ?? '?'} in force`);
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
    opts.logger?.error(`the kernel did not start with the config a fleet bundle brought (${TalonError.from(err).message}); rolled back to the previous generation`);
    return Kernel.start(opts);
  }
}

/** The admin page's address as a person types it: a wildcard listener is reached on loopback, IPv6 in brackets. */
export function adminUrl(tls: boolean, addr: { host: string; port: number }): string {
  const host = addr.host === '0.0.0.0' || addr.host === '' ? '127.0.0.1' : addr.host === '::' ? '[::1]' : addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  return `${tls ? 'https' : 'http'}://${host}:${addr.port}/`;
}

/** `talon run`: start, log where things are, stop cleanly on SIGTERM/SIGINT. Returns the exit code. */
export async function runDaemon(opts: { configFile?: string; dataDir?: string }): Promise<number> {
  // the listener variables go over the generation in force at every start, file or store (a
  // provisioned one), and never into the file's hash: a new TALON_HTTP does not replace that generation
  const { config, source } = loadConfig({ file: opts.configFile, dataDir: opts.dataDir, env: { TALON_DATA: process.env.TALON_DATA } });
  const logger = createLogger(config.log.level);
  const host = await KernelHost.start({ config, source, logger, env: process.env });
  const kernel = host.kernel;
  const http = kernel.http.address();
  const mqtt = (kernel.bus as { address?: () => { host: string; port: number } }).address?.();
  logger.info(`device ${kernel.deviceId} up: admin page ${adminUrl(kernel.config.http.tls?.enabled === true, http)}` +
    `${mqtt ? `, mqtt://${mqtt.host}:${mqtt.port}` : kernel.config.bus.url ? `, broker ${redactUrl(kernel.config.bus.url)}` : ''}, data ${config.dataDir}`);
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
      host.stop().then(() => {
        logger.info('stopped');
        resolve(0);
      }, (err: unknown) => {
        logger.error(`stop failed: ${TalonError.from(err).message}`);
        resolve(1);
      });
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
