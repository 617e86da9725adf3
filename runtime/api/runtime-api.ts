/**
 * The runtime API: plain async functions that take the caller, transport-agnostic
 * (Node-RED style). The HTTP layer (web-admin/server.ts), the CLI (through HTTP) and MQTT
 * command topics (./mqtt-commands.ts) all call these. Every call that changes state is
 * audited with the caller.
 */
import type { Audit, AuditDecision } from '../audit/types.ts';
import type { AuditChain, AuditPage, AuditQuery, VerifyOptions, VerifyReport } from '../audit/chain.ts';
import type { AnyCheckpoint } from '../audit/format.ts';
import { checkpointProblem } from '../audit/format.ts';
import type { SensorRegistry } from '../sensors/registry.ts';
import type { Reading, SensorInfo } from '../../drivers/types.ts';
import { renderMetrics, type MetricsInput } from './metrics.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { Caller, HandStatus, LogLine } from '../supervisor/types.ts';
import { TalonError } from '../errors.ts';

export interface Health {
  ok: boolean;
  deviceId: string;
  uptimeMs: number;
  checks: { store: boolean; bus: boolean; supervisor: boolean };
}

export interface RuntimeApiDeps {
  supervisor: Supervisor;
  audit: Audit;
  /** the signed log itself, for queries, verification and export */
  auditLog: AuditChain;
  sensors: SensorRegistry;
  /** what /metrics exposes, gathered from the subsystems */
  metrics: () => MetricsInput;
  health: () => Health;
}

const HAND_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

function checkName(name: string): void {
  if (!HAND_NAME.test(name)) {
    throw new TalonError('BAD_REQUEST', `"${name.slice(0, 80)}" is not a Hand name (lowercase letters, digits and dashes, at most 63)`);
  }
}

export class RuntimeApi {
  #d: RuntimeApiDeps;

  constructor(deps: RuntimeApiDeps) {
    this.#d = deps;
  }

  health(): Health {
    return this.#d.health();
  }

  readonly hands = {
    list: async (_caller: Caller): Promise<HandStatus[]> => this.#d.supervisor.list(),

    get: async (_caller: Caller, name: string): Promise<HandStatus> => {
      checkName(name);
      return this.#d.supervisor.status(name);
    },

    start: (caller: Caller, name: string) => this.#change(caller, 'hands.start', name, () => this.#d.supervisor.startHand(name, caller)),
    stop: (caller: Caller, name: string) => this.#change(caller, 'hands.stop', name, () => this.#d.supervisor.stopHand(name, caller)),
    restart: (caller: Caller, name: string) => this.#change(caller, 'hands.restart', name, () => this.#d.supervisor.restartHand(name, caller)),

    logs: async (_caller: Caller, name: string, opts: { lines?: number } = {}): Promise<LogLine[]> => {
      checkName(name);
      const lines = opts.lines ?? 100;
      if (!Number.isInteger(lines) || lines < 1 || lines > 1000) {
        throw new TalonError('BAD_REQUEST', `lines must be a whole number from 1 to 1000 (got ${String(opts.lines)})`);
      }
      return this.#d.supervisor.logs(name, { lines });
    },

    /** calls `onLine` for every new log line of the Hand until the returned function is called */
    follow: (_caller: Caller, name: string, onLine: (line: LogLine) => void): (() => void) => {
      checkName(name);
      this.#d.supervisor.status(name); // HAND_NOT_FOUND for unknown names
      const listener = (line: LogLine): void => {
        if (line.hand === name) onLine(line);
      };
      this.#d.supervisor.on('log', listener);
      return () => this.#d.supervisor.off('log', listener);
    },
  };

  readonly system = {
    metrics: async (_caller: Caller): Promise<string> => renderMetrics(this.#d.metrics()),
  };

  readonly sensors = {
    list: async (_caller: Caller): Promise<Array<SensorInfo & { driver: string; latest: Reading | null; faults: number }>> =>
      this.#d.sensors.states().map((st) => ({ ...st.info, driver: st.driver, latest: st.latest ?? null, faults: st.faults })),
    read: async (caller: Caller, id: string): Promise<Reading> => {
      if (!/^[a-z0-9][a-z0-9._-]{0,127}$/.test(id)) throw new TalonError('BAD_REQUEST', `"${id.slice(0, 80)}" is not a sensor id`);
      return this.#d.sensors.read(id);
    },
  };

  readonly audit = {
    query: async (_caller: Caller, q: AuditQuery): Promise<AuditPage> => this.#d.auditLog.query(q),

    verify: async (caller: Caller, opts: { from?: unknown; against?: unknown } = {}): Promise<VerifyReport> => {
      const v: VerifyOptions = {};
      if (opts.from !== undefined) {
        if (opts.from !== 'start' && opts.from !== 'checkpoint') throw new TalonError('BAD_REQUEST', 'from must be "start" or "checkpoint"');
        v.from = opts.from;
      }
      if (opts.against !== undefined) {
        const problem = checkpointProblem(opts.against);
        if (problem !== null || (opts.against as AnyCheckpoint).type !== 'checkpoint') {
          throw new TalonError('BAD_REQUEST', `against is not a checkpoint: ${problem ?? 'type must be "checkpoint"'}`);
        }
        v.against = opts.against as VerifyOptions['against'];
      }
      const report = await this.#d.auditLog.verify(v);
      await this.#d.audit.record({ actor: caller.actor, action: 'api.audit.verify', subject: 'audit', decision: report.ok ? 'ok' : 'error',
        detail: { checked: report.checked, ...(report.firstBrokenSeq !== undefined ? { firstBrokenSeq: report.firstBrokenSeq } : {}) } });
      return report;
    },

    export: (_caller: Caller, out: NodeJS.WritableStream, opts: { since?: number } = {}) => this.#d.auditLog.export(out, opts),

    head: async (_caller: Caller): Promise<AnyCheckpoint | null> => this.#d.auditLog.latestCheckpoint(),
  };

  async #change<T>(caller: Caller, action: string, subject: string, fn: () => Promise<T>): Promise<T> {
    checkName(subject);
    try {
      const result = await fn();
      await this.#d.audit.record({ actor: caller.actor, action: `api.${action}`, subject, decision: 'ok' });
      return result;
    } catch (err) {
      const e = TalonError.from(err);
      await this.#d.audit.record({ actor: caller.actor, action: `api.${action}`, subject, decision: 'error', detail: { code: e.code, message: e.message } });
      throw e;
    }
  }
}
