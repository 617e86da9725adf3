/**
 * What the agent keeps in the store's `provision` sublevel, so it survives restarts (soft
 * restarts of the kernel re-create the agent; power loss restarts the process):
 *   state    AgentState     the device's standing with the fleet
 *   pending  PendingApply   written (sync) before an apply touches anything, removed in the same
 *                           sync batch that records the outcome: its presence at start means an
 *                           apply was cut short and must be finished or rolled back
 */
import type { Store, Sublevel } from '../../runtime/store/store.ts';
import { SYNC } from '../../runtime/store/store.ts';

export type AgentPhase = 'announcing' | 'provisioned' | 'decommissioned';

export interface LastResult {
  version: number;
  outcome: 'applied' | 'rolled-back' | 'rejected' | 'decommissioned';
  code?: string;
  message?: string;
  generation?: number;
  /** ms epoch */
  at: number;
}

export interface AgentState {
  v: 1;
  state: AgentPhase;
  /** the fleet id in force (a rotation may change it) */
  fleet: string;
  /** base64 fleet Ed25519 public key in force (a rotation replaces it) */
  anchor: string;
  /** the version of the bundle in force, 0 = none */
  appliedVersion: number;
  /** the highest version of a fleet message carried out (applied, rolled back, decommission): anything at or below is a replay */
  floor: number;
  /** the signature of the last fleet-signed message handled: its retained copy, delivered again on every connect, is ignored */
  lastSig?: string;
  /** the device's own fleet-broker credential (the password is the secret `passwordSecret`) */
  fleetBroker?: { url: string; username: string; passwordSecret: string };
  /** the config generation in force before the first bundle: decommission goes back to it */
  bootstrapGeneration?: number;
  lastResult?: LastResult;
}

export interface PendingApply {
  v: 1;
  phase: 'applying' | 'rolling-back';
  version: number;
  sig: string;
  previousGeneration: number;
  previousHash: string;
  /** the hash of the config the bundle brings (as validated) */
  targetHash: string;
  startedAt: number;
  broker?: { url: string; username: string; passwordSecret: string };
  anchor?: { publicKey: string; fleet?: string };
  /** the web admin account this apply made (written before it is made): a rollback removes it while it still has this hash */
  admin?: { username: string; passwordHash: string };
  /** why a rollback started */
  reason?: { code: string; message: string };
}

const STATE = 'state';
const PENDING = 'pending';

export class AgentStore {
  #db: Sublevel<unknown>;

  constructor(store: Store) {
    this.#db = store.sublevel('provision');
  }

  async state(): Promise<AgentState | undefined> {
    return (await this.#db.get(STATE)) as AgentState | undefined;
  }

  async pending(): Promise<PendingApply | undefined> {
    return (await this.#db.get(PENDING)) as PendingApply | undefined;
  }

  putState(s: AgentState): Promise<void> {
    return this.#db.put(STATE, s as unknown, SYNC);
  }

  putPending(p: PendingApply): Promise<void> {
    return this.#db.put(PENDING, p as unknown, SYNC);
  }

  clearPending(): Promise<void> {
    return this.#db.del(PENDING, SYNC);
  }

  /** the outcome and the end of the pending apply, in one sync batch */
  async settle(s: AgentState): Promise<void> {
    await this.#db.batch(
      [
        { type: 'put', key: STATE, value: s as unknown },
        { type: 'del', key: PENDING },
      ],
      SYNC,
    );
  }
}
