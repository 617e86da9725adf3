/**
 * The kernel wires the subsystems and owns their order: store → identity → audit → config
 * generation → bus → supervisor → HTTP → Hands. Every subsystem has start()/stop(); no
 * hidden singletons. `runDaemon` is what `talon run` calls.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from './store/store.ts';
import { DeviceKey } from './secrets/device-key.ts';
import { AuditChain } from './audit/chain.ts';
import { ConfigGenerations } from './config/generations.ts';
import { loadConfig } from './config/load.ts';
import { createBus } from './bus/index.ts';
import type { Bus } from './bus/types.ts';
import { topics } from './bus/topics.ts';
import { Supervisor } from './supervisor/supervisor.ts';
import { RuntimeApi, type Health } from './api/runtime-api.ts';
import type { MetricsInput } from './api/metrics.ts';
import { MqttCommands } from './api/mqtt-commands.ts';
import { HttpServer } from '../web-admin/server.ts';
import { SensorRegistry } from './sensors/registry.ts';
import { HomeAssistantDiscovery } from './homeassistant/discovery.ts';
import { createRouter } from './llm/index.ts';
import { SecretStore } from './secrets/sealed.ts';
import type { LlmRouter } from './llm/router.ts';
import { systemRandom } from './clock.ts';
import type { TalonConfig } from './config/types.ts';
import { TalonError } from './errors.ts';
import { createLogger, type Logger } from './log.ts';
import { systemClock, type Clock } from './clock.ts';
import { VERSION } from './version.ts';

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
}

export class Kernel {
  readonly config: TalonConfig;
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
  #stopping: Promise<void> | null = null;
  #clock: Clock;

  private constructor(parts: {
    config: TalonConfig; store: Store; key: DeviceKey; audit: AuditChain; generations: ConfigGenerations;
    bus: Bus; supervisor: Supervisor; api: RuntimeApi; http: HttpServer; commands: MqttCommands; logger: Logger; clock: Clock;
    sensors: SensorRegistry; homeAssistant: HomeAssistantDiscovery | null; llm: LlmRouter | null;
  }) {
    this.config = parts.config;
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

  /** Starts everything; Hands are started last and not awaited (healthz answers as soon as the kernel is up). */
  static async start(opts: KernelOptions): Promise<Kernel> {
    const { config } = opts;
    const clock = opts.clock ?? systemClock;
    const logger = opts.logger ?? createLogger(config.log.level);
    const store = await Store.open(config.dataDir);
    const undo: Array<() => Promise<unknown>> = [() => store.close()];
    try {
      const key = DeviceKey.loadOrCreate(config.dataDir);
      // the newest signed checkpoint goes out retained on talon/<id>/audit/head, so a log
      // truncated or rewritten on the disk is caught against a head seen elsewhere
      let busRef: Bus | null = null;
      const publishHead = (cp: unknown): void => {
        if (busRef?.isUp()) busRef.publish(topics.auditHead(key.id), JSON.stringify(cp), { qos: 1, retain: true }).catch(() => {});
      };
      const retention = config.audit.retention;
      const audit = new AuditChain(store, key, {
        clock,
        onCheckpoint: publishHead,
        onBroken: (r) => logger.error(`audit log broken at seq ${r.firstBrokenSeq ?? '?'}: ${r.reason ?? r.kind ?? 'unknown'} (run \`talon audit verify\`)`),
        ...(retention.maxEntries !== undefined || retention.maxAgeDays !== undefined ? {
          retention: {
            ...(retention.maxEntries !== undefined ? { maxEntries: retention.maxEntries } : {}),
            ...(retention.maxAgeDays !== undefined ? { maxAgeMs: retention.maxAgeDays * 86_400_000 } : {}),
          },
        } : {}),
      });
      await audit.start();
      undo.unshift(() => audit.stop());
      const generations = new ConfigGenerations(store);
      const applied = await generations.apply(config, { actor: 'kernel', source: opts.source ?? 'defaults' });
      if (applied.changed) {
        await audit.record({ actor: 'kernel', action: 'config.apply', subject: `generation ${applied.generation}`, decision: 'ok', detail: { source: opts.source ?? 'defaults' } });
      }
      const cliToken = loadOrCreateToken(config.dataDir);
      const bus = createBus(config.bus, key.id, { authenticateToken: (t: string) => t === cliToken, clock });
      await bus.start();
      undo.unshift(() => bus.stop());
      busRef = bus;
      const head = audit.latestCheckpoint();
      if (head) publishHead(head);
      // drivers: one that fails to start is reported and left out; the others run
      // driver code (and serialport, onoff) is loaded only when a config has drivers
      const drivers = config.drivers.length === 0 ? []
        : await import('../drivers/index.ts').then(({ createDriver }) => config.drivers.map((d) => createDriver(d, { clock })));
      const sensors = new SensorRegistry(drivers, bus, audit, {
        clock, log: (level, msg) => logger.line(level, 'sensors', msg),
      });
      await sensors.start();
      undo.unshift(() => sensors.stop());
      const supervisor = new Supervisor({
        config: config.supervisor, hands: config.hands, bus, store, audit, deviceId: key.id, clock,
        ...(opts.workerEntry ? { workerEntry: opts.workerEntry } : {}),
        ...(opts.resolveModule ? { resolveModule: opts.resolveModule } : {}),
      });
      for (const [method, service] of Object.entries(sensors.services())) supervisor.registerService(method, service);
      // the LLM router: providers' code is loaded only when the config names providers
      const secrets = new SecretStore(store, key);
      const llm = await createRouter(config.llm, { audit, clock, random: systemRandom, env: process.env, dataDir: config.dataDir, secrets });
      if (llm) for (const [method, service] of Object.entries(llm.services())) supervisor.registerService(method, service);
      supervisor.on('log', (line: { hand: string; level: 'debug' | 'info' | 'warn' | 'error'; msg: string }) => logger.line(line.level, line.hand, line.msg));
      let kernel: Kernel | null = null;
      const health = (): Health => {
        const checks = { store: store.isOpen(), bus: bus.isUp(), supervisor: supervisor.isUp() };
        return { ok: checks.store && checks.bus && checks.supervisor, deviceId: key.id, uptimeMs: kernel ? clock.now() - kernel.startedAt : 0, checks };
      };
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
      const api = new RuntimeApi({ supervisor, audit, auditLog: audit, sensors, metrics, health, llm, secrets });
      const http = new HttpServer({ api, listen: config.http, cliToken });
      await http.listen();
      undo.unshift(() => http.close());
      const commands = new MqttCommands(bus, api);
      await commands.start();
      let homeAssistant: HomeAssistantDiscovery | null = null;
      if (config.homeAssistant.enabled) {
        homeAssistant = new HomeAssistantDiscovery(bus, { deviceId: key.id, name: config.deviceName, swVersion: VERSION }, () => sensors.list(), config.homeAssistant.prefix);
        await homeAssistant.start();
        undo.unshift(() => homeAssistant!.stop());
      }
      kernel = new Kernel({ config, store, key, audit, generations, bus, supervisor, api, http, commands, sensors, homeAssistant, llm, logger, clock });
      kernel.#writeRuntimeFile();
      await audit.record({ actor: 'kernel', action: 'kernel.start', subject: key.id, decision: 'ok', detail: { version: VERSION, http: http.address() } });
      supervisor.start().catch((err: unknown) => logger.error(`starting Hands failed: ${TalonError.from(err).message}`));
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
    await this.supervisor.stop(this.config.supervisor.stopTimeoutMs).catch((err: unknown) => this.logger.error(`stopping Hands: ${TalonError.from(err).message}`));
    await this.commands.stop().catch(() => {});
    await this.homeAssistant?.stop().catch(() => {});
    await this.sensors.stop();
    await this.http.close();
    await this.audit.record({ actor: 'kernel', action: 'kernel.stop', subject: this.deviceId, decision: 'ok', detail: { ms: this.#clock.now() - t0 } }).catch(() => {});
    // the shutdown checkpoint, published as the head while the bus is still up
    await this.audit.stop().catch((err: unknown) => this.logger.error(`closing the audit log: ${TalonError.from(err).message}`));
    await this.bus.stop().catch((err: unknown) => this.logger.error(`stopping the bus: ${TalonError.from(err).message}`));
    rmSync(join(this.config.dataDir, RUNTIME_FILE), { force: true });
    await this.store.close();
  }
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

/** `talon run`: start, log where things are, stop cleanly on SIGTERM/SIGINT. Returns the exit code. */
export async function runDaemon(opts: { configFile?: string; dataDir?: string }): Promise<number> {
  const { config, source } = loadConfig({ file: opts.configFile, dataDir: opts.dataDir, env: process.env });
  const logger = createLogger(config.log.level);
  const kernel = await Kernel.start({ config, source, logger });
  const http = kernel.http.address();
  const mqtt = (kernel.bus as { address?: () => { host: string; port: number } }).address?.();
  logger.info(`device ${kernel.deviceId} up: http://${http.host}:${http.port}/healthz` +
    `${mqtt ? `, mqtt://${mqtt.host}:${mqtt.port}` : config.bus.url ? `, broker ${redactUrl(config.bus.url)}` : ''}, data ${config.dataDir}`);
  return new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (sig: NodeJS.Signals): void => {
      if (signalled) {
        logger.warn(`${sig} again: exiting now`);
        process.exit(1);
      }
      signalled = true;
      logger.info(`${sig}: stopping`);
      kernel.stop().then(() => {
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
