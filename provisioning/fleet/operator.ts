/**
 * The operator's side on the fleet broker (mqtt.js, the operator credential from the fleet
 * folder): read the retained announces and acks into the device registry (every signature
 * and device id verified), publish bundles and decommissions (retained, QoS 1) and wait for
 * the device's signed ack, rotate the fleet key, and auto-approve by policy (`watch`).
 *
 * Listing is exact without sleeping: after subscribing, the operator publishes a marker on
 * its own sync topic; the broker delivers it after the retained messages of the subscription.
 */
import { randomBytes } from 'node:crypto';
import type { IClientOptions, MqttClient } from 'mqtt';
import { TalonError } from '../../runtime/core/errors.ts';
import {
  checkAck,
  checkAnnounce,
  encodeEnvelope,
  newSigningKeyPair,
  parseEnvelope,
  provisionTopics,
  type AckPayload,
  type AnnouncePayload,
  type Envelope,
} from '../format.ts';
import { installFleetKey, type Fleet } from './keys.ts';
import {
  getDevice,
  listDevices,
  readDevice,
  recordAck,
  recordAnnounce,
  recordIssued,
  type DeviceRecord,
} from './registry.ts';
import { buildBundle, buildDecommission, DEFAULT_EXPIRES_MS } from './bundle.ts';
import { reloadBroker, removeBrokerUser, setBrokerUser, type ReloadResult } from './broker.ts';
import { findPolicy, readPolicies, type Policy } from './policy.ts';
import { loadBundleConfig, readSecretsFile } from './bundle.ts';

export const DEFAULT_ACK_TIMEOUT_MS = 120_000;

export interface OperatorOptions {
  /** overrides the fleet's broker URL */
  url?: string;
  connectTimeoutMs?: number;
  /** keep reconnecting (watch); default off */
  reconnect?: boolean;
  now?: () => number;
}

export interface InvalidMessage {
  topic: string;
  code: string;
  message: string;
}

export interface ProvisionOptions {
  config: Record<string, unknown>;
  secrets?: Record<string, string>;
  admin?: { username: string; passwordHash: string };
  expiresInMs?: number;
  /** wait for the device's ack (default true) */
  wait?: boolean;
  timeoutMs?: number;
  /** progress while it waits: the bundle sent, ticks while no ack has come, the ack */
  onProgress?: (p: IssueProgress) => void;
}

export type IssueProgress =
  | { phase: 'sent'; deviceId: string; version: number; timeoutMs: number; waiting: boolean }
  | { phase: 'waiting'; deviceId: string; version: number; elapsedMs: number; timeoutMs: number }
  | { phase: 'acked'; deviceId: string; version: number; ack: AckPayload; elapsedMs: number }
  | { phase: 'timed-out'; deviceId: string; version: number; elapsedMs: number };

export interface IssueResult {
  deviceId: string;
  version: number;
  /** undefined when not waited for, or no ack came in time */
  ack?: AckPayload;
  timedOut: boolean;
  reload?: ReloadResult;
}

type AckWaiter = { version: number; resolve: (a: AckPayload) => void };

export class FleetOperator {
  readonly fleet: Fleet;
  readonly topics: ReturnType<typeof provisionTopics>;
  readonly invalid: InvalidMessage[] = [];
  #client: MqttClient;
  #now: () => number;
  #syncTopic: string;
  #syncWaiters = new Map<string, () => void>();
  #ackWaiters = new Map<string, Set<AckWaiter>>();
  #announceHandlers = new Set<(rec: DeviceRecord, fresh: boolean) => void>();

  private constructor(fleet: Fleet, client: MqttClient, clientId: string, now: () => number) {
    this.fleet = fleet;
    this.#client = client;
    this.#now = now;
    this.topics = provisionTopics(fleet.fleetId);
    this.#syncTopic = `talon/provision/${fleet.fleetId}/sync/${clientId}`;
    client.on('message', (topic, payload) => this.#onMessage(topic, payload));
  }

  static async connect(fleet: Fleet, opts: OperatorOptions = {}): Promise<FleetOperator> {
    const url = opts.url ?? fleet.brokerUrl;
    const clientId = `talon-fleet-${randomBytes(4).toString('hex')}`;
    const { default: mqtt } = await import('mqtt');
    const timeout = opts.connectTimeoutMs ?? 10_000;
    const options: IClientOptions = {
      clientId,
      username: fleet.operator.username,
      password: fleet.operator.password,
      reconnectPeriod: opts.reconnect ? 1000 : 0,
      connectTimeout: timeout,
      clean: true,
    };
    const client = await new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect(url, options);
      let last: (Error & { code?: number }) | null = null;
      const done = (err: Error | null): void => {
        clearTimeout(timer);
        c.off('connect', onConnect);
        c.off('close', onClose);
        if (err) {
          c.end(true);
          reject(err);
        } else resolve(c);
      };
      const onConnect = (): void => done(null);
      const onClose = (): void => {
        if (opts.reconnect && !last) return;
        const refused = last?.code === 4 || last?.code === 5 || last?.code === 134 || last?.code === 135;
        done(
          refused
            ? new TalonError(
                'UNAUTHORIZED',
                `the fleet broker at ${url} refused the operator credential (${fleet.dir}/operator.json)`,
              )
            : new TalonError(
                'BUS_DOWN',
                `cannot reach the fleet broker at ${url}${last ? `: ${last.message}` : ''} (is mosquitto running? \`mosquitto -c ${fleet.dir}/broker/mosquitto.conf\`)`,
              ),
        );
      };
      const timer = setTimeout(
        () => done(new TalonError('BUS_DOWN', `no answer from the fleet broker at ${url} within ${timeout} ms`)),
        timeout,
      );
      c.on('error', (err) => {
        last = err as Error & { code?: number };
      });
      c.on('connect', onConnect);
      c.on('close', onClose);
    });
    const op = new FleetOperator(fleet, client, clientId, opts.now ?? Date.now);
    await client.subscribeAsync(op.#syncTopic, { qos: 1 });
    return op;
  }

  async close(): Promise<void> {
    await this.#client.endAsync();
  }

  /** Reads every retained announce and ack into the registry; returns the records. */
  async sync(): Promise<DeviceRecord[]> {
    await this.#client.subscribeAsync([this.topics.announces, this.topics.statuses], { qos: 1 });
    await this.#barrier();
    return listDevices(this.fleet.dir);
  }

  /** Calls `fn` for every verified announce from now on (retained ones included after sync()). */
  onAnnounce(fn: (rec: DeviceRecord, fresh: boolean) => void): () => void {
    this.#announceHandlers.add(fn);
    return () => this.#announceHandlers.delete(fn);
  }

  /** Builds, signs and publishes a bundle for a device that announced itself; waits for its ack. */
  async provision(deviceId: string, opts: ProvisionOptions): Promise<IssueResult> {
    const rec = getDevice(this.fleet.dir, deviceId);
    const version = nextVersion(rec);
    let broker: { url: string; username: string; password: string } | undefined;
    let reload: ReloadResult | undefined;
    if (rec.state !== 'provisioned') {
      // its own broker user, before the bundle that carries the password leaves
      broker = { url: this.fleet.brokerUrl, username: deviceId, password: randomBytes(24).toString('base64url') };
      setBrokerUser(this.fleet.dir, deviceId, broker.password);
      reload = reloadBroker(this.fleet.dir);
    }
    const env = buildBundle({
      fleet: this.fleet,
      device: rec,
      version,
      config: opts.config,
      now: this.#now(),
      ...(opts.secrets ? { secrets: opts.secrets } : {}),
      ...(broker ? { broker } : {}),
      ...(opts.admin ? { admin: opts.admin } : {}),
      expiresInMs: opts.expiresInMs ?? DEFAULT_EXPIRES_MS,
    });
    recordIssued(this.fleet.dir, deviceId, version, 'bundle', opts.config, this.#now(), broker ? true : undefined);
    const result = await this.#issue(
      rec,
      env,
      version,
      opts.wait ?? true,
      opts.timeoutMs ?? DEFAULT_ACK_TIMEOUT_MS,
      opts.onProgress,
    );
    return reload ? { ...result, reload } : result;
  }

  /** Sends a signed decommission; once acknowledged (or right away with wait=false) the device's broker user goes. */
  async decommission(
    deviceId: string,
    opts: { wait?: boolean; timeoutMs?: number; expiresInMs?: number; onProgress?: (p: IssueProgress) => void } = {},
  ): Promise<IssueResult> {
    const rec = getDevice(this.fleet.dir, deviceId);
    const version = nextVersion(rec);
    const env = buildDecommission(this.fleet, rec, version, this.#now(), opts.expiresInMs ?? DEFAULT_EXPIRES_MS);
    recordIssued(this.fleet.dir, deviceId, version, 'decommission', undefined, this.#now());
    const result = await this.#issue(
      rec,
      env,
      version,
      opts.wait ?? true,
      opts.timeoutMs ?? DEFAULT_ACK_TIMEOUT_MS,
      opts.onProgress,
    );
    if (result.ack?.outcome === 'decommissioned' || opts.wait === false) {
      if (removeBrokerUser(this.fleet.dir, deviceId)) result.reload = reloadBroker(this.fleet.dir);
      const now = readDevice(this.fleet.dir, deviceId);
      if (now) recordIssued(this.fleet.dir, deviceId, now.version, 'decommission', undefined, this.#now(), false);
    }
    return result;
  }

  /**
   * Fleet key rotation: a bundle per provisioned device, signed by the current key, carrying the
   * new public key as `anchor` (and the device's last config, unchanged); then the new key is
   * installed (the old one kept as fleet-key.old.json) whatever the acks say — devices that
   * applied it trust only the new key now. Devices that did not ack keep their retained bundle.
   */
  async rotateKey(
    opts: { timeoutMs?: number; expiresInMs?: number } = {},
  ): Promise<{ results: IssueResult[]; skipped: string[]; publicKey: string }> {
    const next = newSigningKeyPair();
    const publicKey = next.publicKey.toString('base64');
    const skipped: string[] = [];
    const pending: Array<Promise<IssueResult>> = [];
    for (const rec of listDevices(this.fleet.dir)) {
      if (rec.state !== 'provisioned') continue;
      if (!rec.lastConfig) {
        skipped.push(rec.deviceId);
        continue;
      }
      const version = nextVersion(rec);
      const env = buildBundle({
        fleet: this.fleet,
        device: rec,
        version,
        config: rec.lastConfig,
        now: this.#now(),
        anchor: { publicKey },
        expiresInMs: opts.expiresInMs ?? DEFAULT_EXPIRES_MS,
      });
      recordIssued(this.fleet.dir, rec.deviceId, version, 'bundle', rec.lastConfig, this.#now());
      pending.push(this.#issue(rec, env, version, true, opts.timeoutMs ?? DEFAULT_ACK_TIMEOUT_MS));
    }
    const results = await Promise.all(pending);
    installFleetKey(this.fleet, next, new Date(this.#now()));
    return { results, skipped, publicKey };
  }

  /**
   * Auto-approve: every pending device whose announce matches a policy gets that policy's
   * config, one at a time. Runs until the signal aborts.
   */
  async watch(signal: AbortSignal, report: (e: WatchEvent) => void, opts: { timeoutMs?: number } = {}): Promise<void> {
    const queue: DeviceRecord[] = [];
    const queued = new Set<string>();
    let wake: (() => void) | null = null;
    const enqueue = (rec: DeviceRecord): void => {
      if (rec.state !== 'pending' || queued.has(rec.deviceId)) return;
      queued.add(rec.deviceId);
      queue.push(rec);
      wake?.();
    };
    const off = this.onAnnounce((rec, fresh) => {
      if (fresh) report({ kind: 'announce', deviceId: rec.deviceId, inventory: rec.announce.payload.inventory });
      enqueue(rec);
    });
    const records = await this.sync();
    for (const rec of records) enqueue(rec);
    const aborted = new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
    try {
      while (!signal.aborted) {
        const rec = queue.shift();
        if (!rec) {
          await Promise.race([
            new Promise<void>((r) => {
              wake = r;
            }),
            aborted,
          ]);
          wake = null;
          continue;
        }
        const current = readDevice(this.fleet.dir, rec.deviceId);
        if (!current || current.state !== 'pending') {
          queued.delete(rec.deviceId);
          continue;
        }
        const policy = findPolicy(readPolicies(this.fleet.dir), current.announce.payload);
        if (!policy) {
          report({ kind: 'unmatched', deviceId: rec.deviceId, inventory: current.announce.payload.inventory });
          queued.delete(rec.deviceId);
          continue;
        }
        report({ kind: 'approve', deviceId: rec.deviceId, policy: policy.id });
        try {
          const result = await this.provision(rec.deviceId, {
            ...policyInput(policy),
            ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
          });
          report({ kind: 'result', deviceId: rec.deviceId, result });
        } catch (err) {
          const e = TalonError.from(err);
          report({ kind: 'error', deviceId: rec.deviceId, code: e.code, message: e.message });
        }
        queued.delete(rec.deviceId);
      }
    } finally {
      off();
    }
  }

  async #issue(
    rec: DeviceRecord,
    env: Envelope<object>,
    version: number,
    wait: boolean,
    timeoutMs: number,
    onProgress?: (p: IssueProgress) => void,
  ): Promise<IssueResult> {
    const deviceId = rec.deviceId;
    let ackPromise: Promise<AckPayload | undefined> | undefined;
    let cancel = (): void => undefined;
    if (wait) {
      // subscribe before publishing: the ack cannot slip past
      const waiter: AckWaiter = { version, resolve: () => undefined };
      ackPromise = new Promise<AckPayload | undefined>((resolve) => {
        const timer = setTimeout(() => {
          cancel();
          resolve(undefined);
        }, timeoutMs);
        waiter.resolve = (a) => {
          cancel();
          clearTimeout(timer);
          resolve(a);
        };
        cancel = () => {
          this.#ackWaiters.get(deviceId)?.delete(waiter);
          clearTimeout(timer);
        };
      });
      let set = this.#ackWaiters.get(deviceId);
      if (!set) this.#ackWaiters.set(deviceId, (set = new Set()));
      set.add(waiter);
      await this.#client.subscribeAsync(this.topics.status(deviceId), { qos: 1 });
    }
    try {
      await this.#client.publishAsync(this.topics.bundle(deviceId), encodeEnvelope(env), { qos: 1, retain: true });
    } catch (err) {
      cancel();
      throw new TalonError('BUS_DOWN', `cannot publish to the fleet broker: ${(err as Error).message}`, { cause: err });
    }
    const sentAt = Date.now();
    onProgress?.({ phase: 'sent', deviceId, version, timeoutMs, waiting: ackPromise !== undefined });
    if (!ackPromise) return { deviceId, version, timedOut: false };
    // a tick every 5 s (more often for a short timeout), so a long health window is not silence
    const every = Math.max(100, Math.min(5_000, Math.floor(timeoutMs / 6)));
    const tick = onProgress
      ? setInterval(
          () => onProgress({ phase: 'waiting', deviceId, version, elapsedMs: Date.now() - sentAt, timeoutMs }),
          every,
        )
      : undefined;
    let ack: AckPayload | undefined;
    try {
      ack = await ackPromise;
    } finally {
      clearInterval(tick);
    }
    const elapsedMs = Date.now() - sentAt;
    onProgress?.(
      ack
        ? { phase: 'acked', deviceId, version, ack, elapsedMs }
        : { phase: 'timed-out', deviceId, version, elapsedMs },
    );
    return ack ? { deviceId, version, ack, timedOut: false } : { deviceId, version, timedOut: true };
  }

  async #barrier(): Promise<void> {
    const token = randomBytes(8).toString('hex');
    const seen = new Promise<void>((resolve) => this.#syncWaiters.set(token, resolve));
    await this.#client.publishAsync(this.#syncTopic, token, { qos: 1 });
    await seen;
  }

  #onMessage(topic: string, payload: Buffer): void {
    if (topic === this.#syncTopic) {
      const token = payload.toString();
      this.#syncWaiters.get(token)?.();
      this.#syncWaiters.delete(token);
      return;
    }
    if (payload.length === 0) return; // a cleared retained message
    const prefix = `talon/provision/${this.fleet.fleetId}/`;
    if (!topic.startsWith(prefix)) return;
    const [kind, deviceId, ...more] = topic.slice(prefix.length).split('/');
    if (!deviceId || more.length) return;
    try {
      const env = parseEnvelope(payload);
      if (kind === 'announce') {
        const a = checkAnnounce(env, { fleet: this.fleet.fleetId, deviceId });
        const { record, fresh } = recordAnnounce(this.fleet.dir, { payload: a, sig: env.sig }, this.#now());
        for (const fn of this.#announceHandlers) fn(record, fresh);
      } else if (kind === 'status') {
        const rec = readDevice(this.fleet.dir, deviceId);
        if (!rec) return; // an ack from a device we never saw announce: nothing to check it against
        const ack = checkAck(env, {
          fleet: this.fleet.fleetId,
          deviceId,
          signPublicKey: Buffer.from(rec.announce.payload.signPublicKey, 'base64'),
        });
        if (!rec.lastAck || ack.ts > rec.lastAck.ts || ack.version > rec.lastAck.version)
          recordAck(this.fleet.dir, ack, this.#now());
        for (const w of [...(this.#ackWaiters.get(deviceId) ?? [])]) if (w.version === ack.version) w.resolve(ack);
      }
    } catch (err) {
      const e = TalonError.from(err);
      if (this.invalid.length < 1000) this.invalid.push({ topic, code: e.code, message: e.message });
    }
  }
}

export type WatchEvent =
  | { kind: 'announce'; deviceId: string; inventory: AnnouncePayload['inventory'] }
  | { kind: 'unmatched'; deviceId: string; inventory: AnnouncePayload['inventory'] }
  | { kind: 'approve'; deviceId: string; policy: string }
  | { kind: 'result'; deviceId: string; result: IssueResult }
  | { kind: 'error'; deviceId: string; code: string; message: string };

/** The bundle a policy gives: its config file (read now, so edits apply) and secrets file. */
export function policyInput(policy: Policy): ProvisionOptions {
  return {
    config: loadBundleConfig(policy.config),
    ...(policy.secretsFile ? { secrets: readSecretsFile(policy.secretsFile) } : {}),
  };
}

/** Past the last version issued and the last one the device acknowledged (the registry may have been restored). */
function nextVersion(rec: DeviceRecord): number {
  return Math.max(rec.version, rec.lastAck?.version ?? 0, rec.applied?.version ?? 0) + 1;
}
