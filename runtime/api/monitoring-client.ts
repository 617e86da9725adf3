/**
 * The kernel's side of the Monitoring Hand's request/reply on the bus
 * (hands/monitoring/index.ts): publish `{id, type, …}` on `monitoring/query`, wait for
 * `monitoring/reply/<id>`. Used for sensor history, alert lists, acknowledge and resolve.
 * A Monitoring Hand that is not running is a 503 HAND_NOT_RUNNING at once; one that does not
 * answer in time is a 504 HAND_TIMEOUT.
 */
import { randomBytes } from 'node:crypto';
import type { Bus } from '../bus/types.ts';
import type { HandStatus } from '../supervisor/types.ts';
import { TalonError, isErrorJSON } from '../core/errors.ts';

export const QUERY_TIMEOUT_MS = 5000;

interface Pending {
  resolve: (v: Record<string, unknown>) => void;
  reject: (e: TalonError) => void;
  timer: NodeJS.Timeout;
}

/** Is this the Monitoring Hand (built-in module id, or a manifest id of `monitoring`)? */
export const isMonitoring = (h: HandStatus): boolean => h.id === 'monitoring' || h.module === 'monitoring';

export class MonitoringClient {
  #bus: Bus;
  #hands: () => HandStatus[];
  #timeoutMs: number;
  #pending = new Map<string, Pending>();
  #sub: Promise<() => Promise<void>> | null = null;

  constructor(bus: Bus, hands: () => HandStatus[], opts: { timeoutMs?: number } = {}) {
    this.#bus = bus;
    this.#hands = hands;
    this.#timeoutMs = opts.timeoutMs ?? QUERY_TIMEOUT_MS;
  }

  /** The running Monitoring Hand's name; HAND_NOT_RUNNING when there is none. */
  handName(): string {
    const all = this.#hands().filter(isMonitoring);
    const running = all.find((h) => h.state === 'running');
    if (running) return running.name;
    throw new TalonError('HAND_NOT_RUNNING', all.length === 0
      ? 'no Monitoring Hand is configured (add a Hand with module "monitoring" to the config); sensor history and alerts come from it'
      : `the Monitoring Hand "${all[0]!.name}" is ${all[0]!.state}; start it to see sensor history and alerts`, { details: { hand: all[0]?.name ?? null } });
  }

  async query(type: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const hand = this.handName();
    await this.#subscribe();
    const id = randomBytes(9).toString('base64url');
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new TalonError('HAND_TIMEOUT', `the Monitoring Hand "${hand}" did not answer a ${type} query within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
    });
    await this.#bus.publish(`${this.#bus.root}/monitoring/query`, JSON.stringify({ ...args, id, type }), { qos: 0 });
    const body = await reply;
    if (body.ok !== true) {
      const e = isErrorJSON(body.error) ? body.error : { code: 'INTERNAL' as const, message: 'the Monitoring Hand answered without a result' };
      throw new TalonError(e.code === 'NOT_FOUND' || e.code === 'BAD_REQUEST' ? e.code : 'INTERNAL', e.message);
    }
    return body;
  }

  #subscribe(): Promise<unknown> {
    this.#sub ??= this.#bus.subscribe(`${this.#bus.root}/monitoring/reply/+`, (m) => {
      const id = m.topic.slice(m.topic.lastIndexOf('/') + 1);
      const p = this.#pending.get(id);
      if (!p) return;
      this.#pending.delete(id);
      clearTimeout(p.timer);
      try {
        const body = JSON.parse(m.payload.toString('utf8')) as unknown;
        if (typeof body !== 'object' || body === null) throw new Error('not an object');
        p.resolve(body as Record<string, unknown>);
      } catch {
        p.reject(new TalonError('INTERNAL', 'the Monitoring Hand sent a reply that is not a JSON object'));
      }
    });
    this.#sub.catch(() => { this.#sub = null; });
    return this.#sub;
  }

  async stop(): Promise<void> {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new TalonError('NOT_RUNNING', 'the kernel is stopping'));
      this.#pending.delete(id);
    }
    const sub = this.#sub;
    this.#sub = null;
    if (sub) await sub.then((u) => u()).catch(() => {});
  }
}
