/**
 * ProvisioningAgent: the device side of fleet provisioning, a kernel subsystem (start/stop/status).
 *
 * Lifecycle: the kernel makes one per start when the config has a `provisioning` section. A soft
 * restart (a bundle that changes more than Hands) stops the kernel and this agent with it; the
 * next kernel makes a new agent, which picks up where the old one stopped from the store
 * (`provision` sublevel, ./state.ts). The same path finishes an apply cut short by power loss.
 *
 * Flow: connect to the bootstrap broker with the claim credential (clientId = deviceId), publish
 * the signed announce (retained), subscribe to the bundle topic. Every message: rate cap, size cap,
 * parse, check (format.ts: fleet, device, signature by the anchor in force, version above the
 * last handled, expiry), open the sealed body with the device's key, validate the config — any
 * failure is audited as provision.reject, acked 'rejected', and nothing is applied. Then: pending
 * marker (sync), secrets, admin account (only when no account exists), the config as a new
 * generation; the kernel reconfigures; health is watched for healthWindowMs; unhealthy → rollback
 * to the previous generation and removal of the admin account the bundle made ('rolled-back'),
 * healthy → the outcome and the end of the marker in one sync batch ('applied'), then the fleet
 * broker with the device's own credential. Decommission wipes secrets and the broker credential,
 * goes back to the bootstrap generation and to announcing.
 */
import { randomBytes } from 'node:crypto';
import type { DeviceKey } from '../../runtime/secrets/device-key.ts';
import type { SecretStore } from '../../runtime/secrets/sealed.ts';
import type { Store } from '../../runtime/store/store.ts';
import type { Audit, AuditDecision } from '../../runtime/audit/types.ts';
import type { ConfigManager } from '../../runtime/config/apply.ts';
import type { ProvisioningConfig } from '../../runtime/config/types.ts';
import { checkConfig, invalid } from '../../runtime/config/validate.ts';
import { configHash } from '../../runtime/config/generations.ts';
import { systemClock, type Clock } from '../../runtime/core/clock.ts';
import { TalonError, type ErrorCode } from '../../runtime/core/errors.ts';
import { TokenBucket } from '../../runtime/core/token-bucket.ts';
import { USER_NAME } from '../../runtime/core/names.ts';
import {
  MAX_MESSAGE_BYTES,
  checkFleetMessage,
  encodeEnvelope,
  openBundle,
  parseEnvelope,
  provisionTopics,
  signEnvelope,
  type AckPayload,
  type AnnouncePayload,
  type DecommissionPayload,
  type Inventory,
  type OpenedBundle,
} from '../format.ts';
import { loadOrCreateBoxKey, type BoxKey } from './identity.ts';
import { readInventory } from './inventory.ts';
import { MqttLink } from './link.ts';
import { AgentStore, type AgentState, type LastResult, type PendingApply } from './state.ts';

const CALLER = { actor: 'provisioning' };
/** messages waiting behind the one being handled; more are dropped (and counted) */
const MAX_QUEUE = 32;
/** the fleet broker refusing the device's own credential this many times in a row: back to the claim credential */
const FALLBACK_AFTER = 3;

export interface AgentHealth {
  ok: boolean;
  /** not failed, but not settled either (a Hand still starting): the window waits for it */
  settling?: boolean;
  reason?: string;
}

export interface AgentDeps {
  config: ProvisioningConfig;
  key: DeviceKey;
  dataDir: string;
  store: Store;
  audit: Audit;
  secrets: SecretStore;
  configManager: ConfigManager;
  /** the kernel's health plus the Hands': not ok when a check fails or a Hand crashed */
  health: () => AgentHealth;
  /** makes the web admin's first account from a hash; false when an account exists already */
  createAdmin?: (username: string, passwordHash: string) => Promise<boolean>;
  /**
   * undoes createAdmin for a rolled-back bundle: removes the account while it still has that
   * hash (nobody took it over meanwhile) and brings the setup code back; false when left as is
   */
  removeAdmin?: (username: string, passwordHash: string) => Promise<boolean>;
  software: { version: string; node: string };
  clock?: Clock;
  inventory?: () => Inventory;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** signature verifications per second before messages are dropped (default 20) */
  verificationsPerSec?: number;
  /** reconnect backoff (default 250 ms .. 10 s) */
  backoff?: { initialMs: number; maxMs: number };
  /** how often health is sampled within the window (default 200 ms) */
  healthSampleMs?: number;
  /** how long past the window a Hand may still be starting before that counts as unhealthy (default 30 s) */
  settleTimeoutMs?: number;
}

export interface AgentStatus {
  state: 'announcing' | 'provisioned' | 'decommissioned';
  message: string;
  fleet: string;
  deviceId: string;
  /** the version of the bundle in force (0: none) */
  appliedVersion: number;
  broker: { kind: 'bootstrap' | 'fleet'; url: string; connected: boolean } | null;
  pending?: { version: number; phase: PendingApply['phase'] };
  lastResult?: LastResult;
  /** messages refused / dropped unread by the rate cap since start */
  rejected: number;
  dropped: number;
}

interface Prepared {
  input: Record<string, unknown>;
  targetHash: string;
  secrets: Record<string, string>;
  brokerPassword?: string;
}

export class ProvisioningAgent {
  #d: AgentDeps;
  #clock: Clock;
  #st: AgentStore;
  #state!: AgentState;
  #pending: PendingApply | null = null;
  #box!: BoxKey;
  #link: MqttLink | null = null;
  #linkKind: 'bootstrap' | 'fleet' = 'bootstrap';
  /** link changes, one at a time */
  #linkOps: Promise<unknown> = Promise.resolve();
  #work: Promise<unknown> = Promise.resolve();
  #queued = 0;
  #stopped = false;
  #announceTimer: NodeJS.Timeout | null = null;
  #resubTimer: NodeJS.Timeout | null = null;
  #sleepers = new Set<() => void>();
  /** verificationsPerSec, burst the same */
  #bucket: TokenBucket;
  #dropped = 0;
  #rejected = 0;
  #announcedOnce = false;

  constructor(deps: AgentDeps) {
    this.#d = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#st = new AgentStore(deps.store);
    this.#bucket = new TokenBucket({ rate: deps.verificationsPerSec ?? 20, now: this.#clock.now() });
  }

  get deviceId(): string {
    return this.#d.key.id;
  }

  async start(): Promise<void> {
    this.#box = loadOrCreateBoxKey(this.#d.dataDir, () => this.#clock.now());
    let s = await this.#st.state();
    if (!s) {
      s = {
        v: 1,
        state: 'announcing',
        fleet: this.#d.config.fleet,
        anchor: this.#d.config.anchor,
        appliedVersion: 0,
        floor: 0,
      };
      await this.#st.putState(s);
    }
    this.#state = s;
    const pending = await this.#st.pending();
    if (pending) {
      this.#pending = pending;
      const cur = await this.#d.configManager.current();
      if (pending.phase === 'applying' && cur.hash !== pending.targetHash && cur.hash === pending.previousHash) {
        // cut short before the new generation was written: the old one is in force; an account it
        // may have made goes (the retained bundle arrives again on connect and is applied afresh)
        if (pending.admin)
          await this.#d.removeAdmin?.(pending.admin.username, pending.admin.passwordHash).catch(() => false);
        await this.#st.clearPending();
        this.#pending = null;
        await this.#record('provision.apply', `v${pending.version}`, 'error', {
          version: pending.version,
          interrupted: true,
          generation: cur.generation,
          message: 'the apply was cut short before the config was written; generation in force unchanged',
        });
      }
    }
    await this.#connect();
    const resume = this.#pending;
    if (resume) this.#enqueue(() => this.#resume(resume));
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#announceTimer) clearInterval(this.#announceTimer);
    if (this.#resubTimer) clearTimeout(this.#resubTimer);
    for (const wake of this.#sleepers) wake();
    // closing the link first fails a publish still waiting for its PUBACK (the ack is retried
    // by nobody: the outcome is in the store and in the audit log, and the status shows it)
    const link = this.#link;
    this.#link = null;
    await link?.stop();
    await this.#work.catch(() => {});
  }

  status(): AgentStatus {
    const s = this.#state;
    const link = this.#link;
    const messages = {
      announcing: `announcing to fleet ${s.fleet}; waiting for the operator to approve this device`,
      provisioned: `provisioned by fleet ${s.fleet}: bundle version ${s.appliedVersion} in force`,
      decommissioned: `decommissioned from fleet ${s.fleet}: secrets wiped, announcing again`,
    };
    return {
      state: s.state,
      message: this.#pending
        ? `${messages[s.state]}; applying version ${this.#pending.version} (${this.#pending.phase})`
        : messages[s.state],
      fleet: s.fleet,
      deviceId: this.deviceId,
      appliedVersion: s.appliedVersion,
      broker: link ? { kind: this.#linkKind, url: link.url, connected: link.connected } : null,
      ...(this.#pending ? { pending: { version: this.#pending.version, phase: this.#pending.phase } } : {}),
      ...(s.lastResult ? { lastResult: s.lastResult } : {}),
      rejected: this.#rejected,
      dropped: this.#dropped,
    };
  }

  // ------------------------------------------------------------ connection

  #topics(): ReturnType<typeof provisionTopics> {
    return provisionTopics(this.#state.fleet);
  }

  /** `claimOnly`: the bootstrap broker and the claim credential even when the device has its own */
  async #connect(claimOnly = false): Promise<void> {
    const s = this.#state;
    let creds = {
      url: this.#d.config.bootstrap.url,
      username: this.#d.config.bootstrap.username,
      password: this.#d.config.bootstrap.password,
    };
    let kind: 'bootstrap' | 'fleet' = 'bootstrap';
    if (!claimOnly && s.state === 'provisioned' && s.fleetBroker) {
      const password = await this.#d.secrets.get(s.fleetBroker.passwordSecret).catch(() => undefined);
      if (password) {
        creds = { url: s.fleetBroker.url, username: s.fleetBroker.username, password };
        kind = 'fleet';
      } else {
        this.#log('warn', 'the fleet broker password is missing from the secret store; using the bootstrap broker');
      }
    }
    const bundleTopic = this.#topics().bundle(this.deviceId);
    const link = new MqttLink({
      ...creds,
      clientId: this.deviceId,
      subscribe: [bundleTopic],
      ...(this.#d.backoff ? { backoff: this.#d.backoff } : {}),
      maxPacketBytes: MAX_MESSAGE_BYTES * 4,
      onConnect: () => this.#onConnect(link),
      onMessage: (topic, payload, retained) => {
        if (topic === bundleTopic) this.#onMessage(payload, retained);
      },
      onRefused: (code, times) => this.#onRefused(link, kind, code, times),
      onOutage: (o) => {
        if (this.#stopped || link !== this.#link) return;
        const what = `the ${kind} broker ${link.url}`;
        const secs = Math.round(o.downMs / 1000);
        if (o.event === 'up')
          this.#log(
            'info',
            `provisioning: ${what} reachable again after ${secs} s (${o.failures} failed attempt${o.failures === 1 ? '' : 's'})`,
          );
        else
          this.#log(
            'warn',
            `provisioning: cannot reach ${what}${o.error ? ` (${o.error})` : ''}; ` +
              `${o.event === 'down' ? 'retrying with backoff' : `still trying: ${secs} s, ${o.failures} failed attempts`}`,
          );
      },
    });
    this.#link = link;
    this.#linkKind = kind;
    await link.start();
    if (this.#announceTimer) clearInterval(this.#announceTimer);
    this.#announceTimer = null;
    if (kind === 'bootstrap' && s.state !== 'provisioned') {
      this.#announceTimer = setInterval(() => {
        if (link.connected) void this.#announce(link, false);
      }, this.#d.config.announceEveryMs);
      this.#announceTimer.unref();
    }
  }

  #reconnect(claimOnly = false): Promise<void> {
    const run = this.#linkOps.then(async () => {
      const old = this.#link;
      this.#link = null;
      await old?.stop();
      if (!this.#stopped) await this.#connect(claimOnly);
    });
    this.#linkOps = run.catch(() => {});
    return run;
  }

  /**
   * The broker refused a credential (the link retries with backoff either way). The device's own
   * credential refused again and again — the operator issued a new one (a re-provision after a
   * lost ack writes a new password and reloads the broker, which drops this connection) whose
   * bundle it can only read with the claim credential: back to the bootstrap broker, where that
   * bundle is waiting; applying it moves the device to its new credential.
   */
  #onRefused(link: MqttLink, kind: 'bootstrap' | 'fleet', code: number, times: number): void {
    if (this.#stopped || link !== this.#link) return;
    this.#log(
      'warn',
      `provisioning: the ${kind} broker ${link.url} refused ${kind === 'fleet' ? "this device's own credential" : 'the claim credential'} (code ${code}, ${times} in a row); retrying`,
    );
    if (kind !== 'fleet' || times !== FALLBACK_AFTER) return;
    void this.#record('provision.link', link.url, 'error', {
      code,
      refusals: times,
      message:
        "the fleet broker refuses this device's own credential: on the claim credential until a bundle brings a new one",
    });
    this.#reconnect(true).catch((err: unknown) => this.#log('error', `provisioning: ${TalonError.from(err).message}`));
  }

  #onConnect(link: MqttLink): void {
    if (this.#stopped || link !== this.#link) return;
    this.#log(
      'info',
      `provisioning: connected to ${this.#linkKind === 'fleet' ? 'the fleet' : 'the bootstrap'} broker ${link.url}`,
    );
    if (this.#linkKind === 'bootstrap' && this.#state.state !== 'provisioned') void this.#announce(link, true);
    // the last outcome again (retained): an ack lost to a stop or a broker without persistence reaches the operator anyway
    const last = this.#state.lastResult;
    if (last && !this.#pending) {
      void this.#ack(
        {
          version: last.version,
          outcome: last.outcome,
          ...(last.code ? { code: last.code } : {}),
          ...(last.message ? { message: last.message } : {}),
          ...(last.generation !== undefined ? { generation: last.generation } : {}),
        },
        5_000,
        false,
      );
    }
  }

  async #announce(link: MqttLink, audit: boolean): Promise<void> {
    const payload: AnnouncePayload = {
      v: 1,
      type: 'announce',
      fleet: this.#state.fleet,
      deviceId: this.deviceId,
      ts: this.#clock.now(),
      signPublicKey: this.#d.key.publicKey.toString('base64'),
      boxPublicKey: this.#box.publicKey.toString('base64'),
      inventory: (this.#d.inventory ?? readInventory)(),
      software: this.#d.software,
      nonce: randomBytes(16).toString('base64'),
    };
    const env = signEnvelope(payload, this.#d.key.secretKey);
    try {
      await link.publish(this.#topics().announce(this.deviceId), encodeEnvelope(env), { retain: true });
      if (audit || !this.#announcedOnce)
        await this.#record('provision.announce', this.deviceId, 'ok', { fleet: this.#state.fleet, broker: link.url });
      this.#announcedOnce = true;
    } catch (err) {
      this.#log('warn', `provisioning: announce not delivered: ${TalonError.from(err).message}`);
    }
  }

  // ------------------------------------------------------------ messages

  /** token bucket: at most verificationsPerSec messages a second are read; the rest are dropped and counted */
  #take(): boolean {
    // a full queue refuses without spending a token
    return this.#queued < MAX_QUEUE && this.#bucket.take(this.#clock.now());
  }

  #onMessage(payload: Buffer, retained: boolean): void {
    if (this.#stopped) return;
    if (!this.#take()) {
      this.#dropped++;
      // a real bundle may have been among the dropped: ask for the retained one again once it is quiet
      if (!this.#resubTimer) {
        this.#resubTimer = setTimeout(() => {
          this.#resubTimer = null;
          this.#link?.resubscribe();
        }, 2_000);
        this.#resubTimer.unref();
      }
      return;
    }
    this.#queued++;
    this.#enqueue(async () => {
      this.#queued--;
      await this.#handle(payload, retained);
    });
  }

  #enqueue(fn: () => Promise<void>): void {
    this.#work = this.#work
      .then(() => (this.#stopped ? undefined : fn()))
      .catch((err: unknown) => {
        this.#log('error', `provisioning: ${TalonError.from(err).message}`);
      });
  }

  async #handle(bytes: Buffer, retained: boolean): Promise<void> {
    let version = 0;
    let verifiedSig: string | null = null;
    try {
      const env = parseEnvelope(bytes, MAX_MESSAGE_BYTES);
      if (Number.isSafeInteger(env.payload.version)) version = env.payload.version as number;
      // the retained copy of what was handled (or is being applied), delivered again on every
      // connect; a live copy of it is a replay and goes through the checks like any other
      if (retained && (env.sig === this.#state.lastSig || env.sig === this.#pending?.sig)) return;
      const msg = checkFleetMessage(env, {
        fleet: this.#state.fleet,
        deviceId: this.deviceId,
        anchor: Buffer.from(this.#state.anchor, 'base64'),
        appliedVersion: this.#state.floor,
        now: this.#clock.now(),
      });
      verifiedSig = env.sig;
      await this.#record('provision.bundle', `v${msg.version}`, 'ok', { type: msg.type, version: msg.version });
      if (msg.type === 'decommission') return await this.#decommission(msg, env.sig);
      // only now, signed by the fleet and meant for this device, is the body opened
      const bundle = openBundle(msg, this.#box.secretKey);
      const prepared = await this.#prepare(bundle);
      await this.#apply(bundle, env.sig, prepared);
    } catch (err) {
      const e = TalonError.from(err);
      if (retained && e.code === 'PROVISION_REPLAY') {
        // the broker's memory of a message already superseded (say, the last bundle after a
        // decommission): not an attack, and an ack would overwrite the real outcome
        await this.#record('provision.reject', `v${version}`, 'info', { code: e.code, version, retained: true });
        return;
      }
      await this.#reject(version, e, verifiedSig);
    }
  }

  async #reject(version: number, e: TalonError, verifiedSig: string | null): Promise<void> {
    this.#rejected++;
    await this.#record('provision.reject', `v${version}`, 'deny', {
      code: e.code,
      message: e.message.slice(0, 500),
      version,
      signed: verifiedSig !== null,
    });
    this.#log('warn', `provisioning: refused a message (${e.code}): ${e.message}`);
    if (verifiedSig) {
      // signed by the fleet but unusable: remembered so its retained copy is not retried on every
      // connect; the version is not spent (the operator sends a fixed bundle with the next one)
      const next: AgentState = {
        ...this.#state,
        lastSig: verifiedSig,
        lastResult: {
          version,
          outcome: 'rejected',
          code: e.code,
          message: e.message.slice(0, 500),
          at: this.#clock.now(),
        },
      };
      await this.#st.putState(next);
      this.#state = next;
    }
    void this.#ack({ version, outcome: 'rejected', code: e.code, message: e.message.slice(0, 1000) }, 2_000);
  }

  /** Everything that can fail before anything is written: the config, the admin account. */
  async #prepare(bundle: OpenedBundle): Promise<Prepared> {
    const cur = await this.#d.configManager.current();
    // where the data lives and the fleet membership are the device's own, not the bundle's
    const input: Record<string, unknown> = {
      ...bundle.config,
      dataDir: cur.config.dataDir,
      provisioning: cur.config.provisioning ?? this.#d.config,
    };
    const { config, problems } = checkConfig(input);
    if (!config) throw invalid(problems, "the bundle's config");
    if (bundle.admin && (!USER_NAME.test(bundle.admin.username) || !bundle.admin.passwordHash.startsWith('scrypt$'))) {
      throw new TalonError(
        'PROVISION_MALFORMED',
        "the bundle's admin account needs a user name (lowercase, 1-32) and a scrypt$ password hash",
      );
    }
    return {
      input,
      targetHash: configHash(config),
      secrets: bundle.secrets,
      ...(bundle.broker ? { brokerPassword: bundle.broker.password } : {}),
    };
  }

  async #apply(bundle: OpenedBundle, sig: string, prep: Prepared): Promise<void> {
    const cm = this.#d.configManager;
    const cur = await cm.current();
    const pending: PendingApply = {
      v: 1,
      phase: 'applying',
      version: bundle.version,
      sig,
      previousGeneration: cur.generation,
      previousHash: cur.hash,
      targetHash: prep.targetHash,
      startedAt: this.#clock.now(),
      ...(bundle.broker
        ? {
            broker: {
              url: bundle.broker.url,
              username: bundle.broker.username,
              passwordSecret: `provisioning.broker.v${bundle.version}`,
            },
          }
        : {}),
      ...(bundle.anchor ? { anchor: bundle.anchor } : {}),
    };
    await this.#st.putPending(pending);
    this.#pending = pending;
    try {
      for (const [name, value] of Object.entries(prep.secrets)) await this.#d.secrets.set(name, value);
      if (pending.broker && prep.brokerPassword !== undefined)
        await this.#d.secrets.set(pending.broker.passwordSecret, prep.brokerPassword);
      if (bundle.admin && this.#d.createAdmin) {
        // the marker names the account first, so a rollback (even after a power cut) can undo it
        const withAdmin: PendingApply = {
          ...this.#pending!,
          admin: { username: bundle.admin.username, passwordHash: bundle.admin.passwordHash },
        };
        await this.#st.putPending(withAdmin);
        this.#pending = withAdmin;
        const made = await this.#d.createAdmin(bundle.admin.username, bundle.admin.passwordHash);
        if (!made) {
          const { admin: _none, ...without } = withAdmin;
          await this.#st.putPending(without);
          this.#pending = without;
        }
        await this.#record('provision.apply', `user ${bundle.admin.username}`, made ? 'ok' : 'info', {
          version: bundle.version,
          admin: made ? 'created' : 'an account exists already; left as is',
        });
      }
      const r = await cm.apply(CALLER, prep.input, { source: `provisioning v${bundle.version}` });
      await this.#record('provision.apply', `v${bundle.version}`, 'ok', {
        version: bundle.version,
        generation: r.generation,
        from: cur.generation,
        changed: r.changed,
        restarted: r.restarted,
        secrets: Object.keys(prep.secrets),
      });
      // a soft restart of the kernel is on its way: the next agent watches health and finishes
      if (r.restarted.includes('kernel')) return;
    } catch (err) {
      return this.#rollback(this.#pending ?? pending, TalonError.from(err));
    }
    await this.#watchAndSettle(this.#pending ?? pending);
  }

  async #resume(pending: PendingApply): Promise<void> {
    if (pending.phase === 'rolling-back') {
      return this.#rollback(
        pending,
        new TalonError(
          (pending.reason?.code ?? 'PROVISION_UNHEALTHY') as ErrorCode,
          pending.reason?.message ?? 'rolled back',
        ),
      );
    }
    const cur = await this.#d.configManager.current();
    await this.#record('provision.apply', `v${pending.version}`, 'info', {
      version: pending.version,
      resumed: true,
      generation: cur.generation,
    });
    await this.#watchAndSettle(pending);
  }

  async #watchAndSettle(pending: PendingApply): Promise<void> {
    const verdict = await this.#watch();
    if (verdict === 'stopped') return; // the marker stays: the next start finishes
    if (verdict.ok) return this.#settleApplied(pending);
    return this.#rollback(
      pending,
      new TalonError(
        'PROVISION_UNHEALTHY',
        `the new config was not healthy within ${this.#d.config.healthWindowMs} ms: ${verdict.reason ?? 'health check failed'}`,
      ),
    );
  }

  /**
   * Samples health over the window; the first failure ends it. Healthy means: the window is over
   * and everything settled (every enabled Hand running); one still starting long after the window
   * counts as a failure.
   */
  async #watch(): Promise<AgentHealth | 'stopped'> {
    const windowMs = this.#d.config.healthWindowMs;
    const sample = Math.max(10, Math.min(this.#d.healthSampleMs ?? 200, windowMs || 10));
    const samples = Math.max(1, Math.ceil(windowMs / sample));
    const cap = samples + Math.ceil((this.#d.settleTimeoutMs ?? 30_000) / sample);
    for (let i = 0; ; i++) {
      if (this.#stopped) return 'stopped';
      const h = this.#d.health();
      if (!h.ok) return h;
      if (i >= samples && !h.settling) return { ok: true };
      if (i >= cap)
        return {
          ok: false,
          reason: `not settled ${this.#d.settleTimeoutMs ?? 30_000} ms after the window: ${h.reason ?? 'still starting'}`,
        };
      await this.#sleep(sample);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.#sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.#sleepers.add(done);
    });
  }

  async #settleApplied(pending: PendingApply): Promise<void> {
    const cur = await this.#d.configManager.current();
    const s = this.#state;
    const next: AgentState = {
      ...s,
      state: 'provisioned',
      appliedVersion: pending.version,
      floor: Math.max(s.floor, pending.version),
      lastSig: pending.sig,
      anchor: pending.anchor?.publicKey ?? s.anchor,
      fleet: pending.anchor?.fleet ?? s.fleet,
      lastResult: { version: pending.version, outcome: 'applied', generation: cur.generation, at: this.#clock.now() },
    };
    if (s.state !== 'provisioned') next.bootstrapGeneration = pending.previousGeneration;
    if (pending.broker) next.fleetBroker = pending.broker;
    await this.#st.settle(next);
    this.#state = next;
    this.#pending = null;
    const oldSecret = s.fleetBroker?.passwordSecret;
    if (pending.broker && oldSecret && oldSecret !== pending.broker.passwordSecret)
      await this.#d.secrets.delete(oldSecret).catch(() => false);
    if (pending.anchor) {
      await this.#record('provision.rotate', next.fleet, 'ok', {
        version: pending.version,
        from: s.anchor,
        to: next.anchor,
        ...(next.fleet !== s.fleet ? { fromFleet: s.fleet } : {}),
      });
    }
    this.#log('info', `provisioning: bundle version ${pending.version} applied (config generation ${cur.generation})`);
    // the fleet broker with the device's own credential (and new topics after a fleet change)
    const wantFleet = next.fleetBroker !== undefined;
    if (pending.broker || next.fleet !== s.fleet || (wantFleet && this.#linkKind !== 'fleet')) await this.#reconnect();
    await this.#ack({ version: pending.version, outcome: 'applied', generation: cur.generation }, 10_000);
  }

  async #rollback(pending: PendingApply, e: TalonError): Promise<void> {
    const rb: PendingApply = {
      ...pending,
      phase: 'rolling-back',
      reason: { code: e.code, message: e.message.slice(0, 500) },
    };
    await this.#st.putPending(rb);
    this.#pending = rb;
    await this.#record('provision.rollback', `v${pending.version}`, 'error', {
      version: pending.version,
      code: e.code,
      message: e.message.slice(0, 500),
      to: pending.previousGeneration,
    });
    this.#log('warn', `provisioning: rolling back version ${pending.version} (${e.code}): ${e.message}`);
    const cm = this.#d.configManager;
    const cur = await cm.current();
    if (cur.hash !== pending.previousHash) {
      try {
        const r = await cm.rollback(CALLER, pending.previousGeneration);
        if (r.restarted.includes('kernel')) return; // the next agent sees the old config in force and finishes
      } catch (err) {
        this.#log(
          'error',
          `provisioning: rollback to generation ${pending.previousGeneration} failed: ${TalonError.from(err).message}`,
        );
        return;
      }
    }
    await this.#settleRolledBack(rb);
  }

  async #settleRolledBack(rb: PendingApply): Promise<void> {
    const cur = await this.#d.configManager.current();
    const code = rb.reason?.code ?? 'PROVISION_UNHEALTHY';
    const message = rb.reason?.message ?? 'rolled back';
    const next: AgentState = {
      ...this.#state,
      floor: Math.max(this.#state.floor, rb.version),
      lastSig: rb.sig,
      lastResult: {
        version: rb.version,
        outcome: 'rolled-back',
        code,
        message,
        generation: cur.generation,
        at: this.#clock.now(),
      },
    };
    await this.#st.settle(next);
    this.#state = next;
    this.#pending = null;
    if (rb.broker) await this.#d.secrets.delete(rb.broker.passwordSecret).catch(() => false);
    if (rb.admin && this.#d.removeAdmin) {
      // the account came with the bundle: it goes with it (the setup code is back)
      let removed = false;
      try {
        removed = await this.#d.removeAdmin(rb.admin.username, rb.admin.passwordHash);
      } catch (err) {
        this.#log(
          'error',
          `provisioning: removing the account ${rb.admin.username} of rolled-back version ${rb.version} failed: ${TalonError.from(err).message}`,
        );
      }
      await this.#record('provision.rollback', `user ${rb.admin.username}`, removed ? 'ok' : 'info', {
        version: rb.version,
        admin: removed ? 'removed' : 'not found or changed since; left as is',
      });
    }
    await this.#ack({ version: rb.version, outcome: 'rolled-back', code, message, generation: cur.generation }, 10_000);
  }

  async #decommission(msg: DecommissionPayload, sig: string): Promise<void> {
    const s = this.#state;
    const wiped: string[] = [];
    for (const { name } of await this.#d.secrets.list()) {
      await this.#d.secrets.delete(name);
      wiped.push(name);
    }
    const cur = await this.#d.configManager.current();
    const { fleetBroker: _gone, ...rest } = s;
    const next: AgentState = {
      ...rest,
      state: 'decommissioned',
      appliedVersion: 0,
      floor: Math.max(s.floor, msg.version),
      lastSig: sig,
      lastResult: { version: msg.version, outcome: 'decommissioned', at: this.#clock.now() },
    };
    await this.#st.putState(next);
    this.#state = next;
    await this.#record('provision.decommission', `v${msg.version}`, 'ok', {
      version: msg.version,
      secretsWiped: wiped.length,
      bootstrapGeneration: s.bootstrapGeneration ?? null,
    });
    // the ack goes out on the connection in force, before the credential it uses is dropped
    await this.#ack({ version: msg.version, outcome: 'decommissioned' }, 5_000);
    await this.#reconnect();
    if (s.bootstrapGeneration !== undefined) {
      const boot = await this.#d.configManager.get(s.bootstrapGeneration).catch(() => null);
      if (boot && boot.hash !== cur.hash) await this.#d.configManager.rollback(CALLER, s.bootstrapGeneration);
    }
  }

  async #ack(
    a: Pick<AckPayload, 'version' | 'outcome' | 'code' | 'message' | 'generation'>,
    timeoutMs: number,
    audit = true,
  ): Promise<void> {
    const payload: AckPayload = {
      v: 1,
      type: 'ack',
      fleet: this.#state.fleet,
      deviceId: this.deviceId,
      ts: this.#clock.now(),
      version: a.version,
      outcome: a.outcome,
      ...(a.code !== undefined ? { code: a.code } : {}),
      ...(a.message !== undefined ? { message: a.message.slice(0, 2000) } : {}),
      ...(a.generation !== undefined ? { generation: a.generation } : {}),
    };
    const env = signEnvelope(payload, this.#d.key.secretKey);
    const link = this.#link;
    let delivered = false;
    try {
      if (link) {
        await link.publish(this.#topics().status(this.deviceId), encodeEnvelope(env), { retain: true, timeoutMs });
        delivered = true;
      }
    } catch (err) {
      this.#log('warn', `provisioning: ack ${a.outcome} v${a.version} not confirmed: ${TalonError.from(err).message}`);
    }
    if (audit)
      await this.#record('provision.ack', `v${a.version}`, delivered ? 'ok' : 'error', {
        version: a.version,
        outcome: a.outcome,
        ...(a.code ? { code: a.code } : {}),
        delivered,
      });
  }

  async #record(
    action: string,
    subject: string,
    decision: AuditDecision,
    detail: Record<string, unknown>,
  ): Promise<void> {
    await this.#d.audit.record({ actor: CALLER.actor, action, subject, decision, detail }).catch((err: unknown) => {
      this.#log('error', `provisioning: audit failed: ${TalonError.from(err).message}`);
    });
  }

  #log(level: 'info' | 'warn' | 'error', msg: string): void {
    this.#d.log?.(level, msg);
  }
}
