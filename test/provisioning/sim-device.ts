/**
 * A simulated device for the fleet tests (the real agent is provisioning/device/): it makes
 * its keys, announces itself with the claim credential, checks every bundle with format.ts,
 * opens the sealed body and acks — a few lines, so the operator side can be tested on its own.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { deviceIdFromPublicKey } from '../../runtime/secrets/device-key.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import {
  checkFleetMessage,
  encodeEnvelope,
  newBoxKeyPair,
  newSigningKeyPair,
  openBundle,
  parseEnvelope,
  provisionTopics,
  signEnvelope,
  type AckOutcome,
  type AckPayload,
  type AnnouncePayload,
  type BundleBody,
  type Inventory,
} from '../../provisioning/format.ts';
import type { DeviceBootstrap } from '../../provisioning/fleet/keys.ts';

export class SimDevice {
  readonly signKeys = newSigningKeyPair();
  readonly boxKeys = newBoxKeyPair();
  readonly id = deviceIdFromPublicKey(this.signKeys.publicKey);
  appliedVersion = 0;
  anchor: Buffer;
  config: Record<string, unknown> | undefined;
  secrets: Record<string, string> = {};
  brokerPassword: string | undefined;
  admin: BundleBody['admin'];
  readonly acks: AckPayload[] = [];
  /** 'rollback': pretend the health window failed */
  behaviour: 'apply' | 'rollback' = 'apply';
  client: MqttClient | undefined;
  readonly inventory: Inventory;
  #topics: ReturnType<typeof provisionTopics>;
  #work: Promise<void> = Promise.resolve();

  constructor(
    readonly boot: DeviceBootstrap,
    inventory: Partial<Inventory> = {},
  ) {
    this.anchor = Buffer.from(boot.anchor, 'base64');
    this.#topics = provisionTopics(boot.fleet);
    this.inventory = {
      board: 'Raspberry Pi 4 Model B Rev 1.4',
      serial: `1000${this.id.slice(1, 9)}`,
      memoryBytes: 4 * 2 ** 30,
      os: 'Debian GNU/Linux 12',
      arch: 'arm64',
      hostname: `talon-${this.id.slice(1, 5)}`,
      ...inventory,
    };
  }

  announce(): Buffer {
    const p: AnnouncePayload = {
      v: 1,
      type: 'announce',
      fleet: this.boot.fleet,
      deviceId: this.id,
      ts: Date.now(),
      signPublicKey: this.signKeys.publicKey.toString('base64'),
      boxPublicKey: this.boxKeys.publicKey.toString('base64'),
      inventory: this.inventory,
      software: { version: '0.1.0', node: process.version },
      nonce: Buffer.alloc(16, 1).toString('base64'),
    };
    return encodeEnvelope(signEnvelope(p, this.signKeys.secretKey));
  }

  /** connects with the claim credential, subscribes to its bundle topic, announces (retained) */
  async start(): Promise<void> {
    const b = this.boot.bootstrap;
    this.client = await mqtt.connectAsync(b.url, {
      username: b.username,
      password: b.password,
      clientId: this.id,
      reconnectPeriod: 0,
    });
    this.client.on('message', (_t, payload) => {
      this.#work = this.#work.then(() => this.#onBundle(payload)).catch(() => undefined);
    });
    await this.client.subscribeAsync(this.#topics.bundle(this.id), { qos: 1 });
    await this.client.publishAsync(this.#topics.announce(this.id), this.announce(), { qos: 1, retain: true });
  }

  async stop(): Promise<void> {
    await this.#work; // an ack still waiting for its PUBACK goes out first
    await this.client?.endAsync(true);
  }

  async #onBundle(bytes: Buffer): Promise<void> {
    if (bytes.length === 0) return;
    let version = 0;
    try {
      const env = parseEnvelope(bytes);
      if (typeof env.payload.version === 'number') version = env.payload.version;
      if (version === this.appliedVersion) return; // the retained copy of what is applied
      const msg = checkFleetMessage(env, {
        fleet: this.boot.fleet,
        deviceId: this.id,
        anchor: this.anchor,
        appliedVersion: this.appliedVersion,
        now: Date.now(),
      });
      if (msg.type === 'decommission') {
        this.appliedVersion = msg.version;
        this.secrets = {};
        this.brokerPassword = undefined;
        return await this.#ack(msg.version, 'decommissioned');
      }
      const opened = openBundle(msg, this.boxKeys.secretKey);
      if (this.behaviour === 'rollback')
        return await this.#ack(msg.version, 'rolled-back', 'HAND_CRASHED', 'health failed in the window');
      this.appliedVersion = msg.version;
      this.config = opened.config;
      this.secrets = { ...this.secrets, ...opened.secrets };
      if (opened.broker) this.brokerPassword = opened.broker.password;
      if (opened.admin) this.admin = opened.admin;
      if (opened.anchor) this.anchor = Buffer.from(opened.anchor.publicKey, 'base64');
      await this.#ack(msg.version, 'applied', undefined, undefined, msg.version + 100);
    } catch (err) {
      const e = TalonError.from(err);
      await this.#ack(version, 'rejected', e.code, e.message);
    }
  }

  async #ack(
    version: number,
    outcome: AckOutcome,
    code?: string,
    message?: string,
    generation?: number,
  ): Promise<void> {
    const p: AckPayload = {
      v: 1,
      type: 'ack',
      fleet: this.boot.fleet,
      deviceId: this.id,
      ts: Date.now(),
      version,
      outcome,
      ...(code ? { code } : {}),
      ...(message ? { message: message.slice(0, 2000) } : {}),
      ...(generation !== undefined ? { generation } : {}),
    };
    this.acks.push(p);
    await this.client!.publishAsync(
      this.#topics.status(this.id),
      encodeEnvelope(signEnvelope(p, this.signKeys.secretKey)),
      { qos: 1, retain: true },
    );
  }
}
