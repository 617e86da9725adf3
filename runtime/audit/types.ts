/**
 * The one audit interface. Every capability decision, Hand lifecycle change, config change
 * and state-changing API call goes through `Audit.record`. The implementation is the signed
 * hash chain in ./chain.ts (format: ./FORMAT.md).
 */
export type AuditDecision = 'allow' | 'deny' | 'ok' | 'error' | 'info';

export interface AuditEvent {
  /** who: `kernel`, `hand:<name>`, `cli`, `http:<user>`, `mqtt:<clientId>` */
  actor: string;
  /** what, dotted: `hand.start`, `bus.publish`, `config.apply`, `capability.check` */
  action: string;
  /** on what: a Hand name, a topic, a config generation */
  subject: string;
  decision: AuditDecision;
  detail?: Record<string, unknown>;
}

export interface Audit {
  /** Resolves once the entry is durable. */
  record(event: AuditEvent): Promise<void>;
}
