/**
 * The shape of a validated Talon config (after defaults are applied). The JSON Schema in
 * ./schema.ts is the single source of truth for validation; keep the two in step
 * (test/runtime/config checks the defaults validate against the schema).
 */
import type { DeclaredCapabilities, Quotas } from '../core/hand.ts';
import type { DriverConfig } from '../../drivers/index.ts';
import type { LlmConfig } from '../llm/config.ts';

export interface ListenAddress {
  host: string;
  port: number;
}

/** The web admin's listener; TLS is optional (a self-signed certificate is made when no files are given). */
export interface HttpConfig extends ListenAddress {
  tls?: { enabled: boolean; cert?: string; key?: string };
  /** more names or addresses the web admin answers to besides its own (web-admin/auth/origin.ts); `*`: any */
  allowedHosts?: string[];
}

export interface MqttUser {
  username: string;
  /** scrypt hash: `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>` (made by `talon config hash-password`) */
  passwordHash: string;
  /** topic filters (absolute) this user may publish and subscribe; empty = everything */
  allow?: string[];
}

export interface BusConfig {
  /** embedded aedes broker; ignored when `url` is set */
  embedded: {
    enabled: boolean;
    /** plain TCP for local clients */
    listen: ListenAddress;
    /** optional LAN listener: username/password required, TLS when cert and key are given */
    lan?: {
      enabled: boolean;
      host: string;
      port: number;
      tls?: { cert: string; key: string };
      users: MqttUser[];
    };
  };
  /** external broker (mqtt://, mqtts://, ws://); when set the embedded broker is off */
  url?: string;
  username?: string;
  password?: string;
  /** largest payload accepted from anyone, in bytes */
  maxPayloadBytes: number;
}

export interface SupervisorConfig {
  /** a worker sends a heartbeat this often */
  heartbeatMs: number;
  /** no heartbeat for this long = the event loop is blocked: terminate */
  hangTimeoutMs: number;
  /** how long a Hand gets to stop() before it is terminated */
  stopTimeoutMs: number;
  /** how long a Hand's start() may take */
  startTimeoutMs: number;
  backoff: { initialMs: number; maxMs: number; factor: number; jitter: number };
  /** `restarts` crashes within `windowMs` parks a Hand as failed */
  crashLoop: { restarts: number; windowMs: number };
}

export interface HandConfig {
  /** unique instance name, used in topics and the CLI */
  name: string;
  /** a built-in Hand id (`monitoring`) or a path to a JS module exporting defineHand(...) */
  module: string;
  enabled: boolean;
  settings: Record<string, unknown>;
  /** narrows the manifest's capabilities; may not widen them */
  capabilities?: DeclaredCapabilities;
  /** narrows or overrides the manifest's quotas */
  quotas?: Partial<Quotas>;
}

export interface TalonConfig {
  /** a human name for the device (the device id itself comes from its key) */
  deviceName: string;
  dataDir: string;
  http: HttpConfig;
  bus: BusConfig;
  supervisor: SupervisorConfig;
  hands: HandConfig[];
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
  audit: { retention: { maxEntries?: number; maxAgeDays?: number } };
  drivers: DriverConfig[];
  homeAssistant: { enabled: boolean; prefix: string };
  llm: LlmConfig;
  /** fleet membership; absent = standalone */
  provisioning?: ProvisioningConfig;
}

export interface ProvisioningConfig {
  /** the fleet id */
  fleet: string;
  /** base64 Ed25519 public key of the fleet (the trust anchor baked into the image) */
  anchor: string;
  /** the claim credential: announce and read its own bundle, nothing else */
  bootstrap: { url: string; username: string; password: string };
  /** how long a new config must stay healthy before it is kept */
  healthWindowMs: number;
  /** how often the announce is re-published while waiting for a bundle */
  announceEveryMs: number;
}
