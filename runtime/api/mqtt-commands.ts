/**
 * MQTT command topics over the same runtime API:
 *   publish `talon/<deviceId>/cmd/hands/<list|status|start|stop|restart|logs>`
 *   with JSON `{"id": "<request id>", "name": "<hand>", "lines": 50}`
 *   → reply `{"ok": true, "result": …}` or `{"ok": false, "error": {code, message}}` on a topic
 *     only the asker reads:
 *   - embedded broker: `talon/<deviceId>/cmd/reply/<client id>/<request id>`, the client id of
 *     the connection that published the command. EmbeddedBus forwards it to that client alone
 *     and refuses everyone else's subscriptions under it, so a reply (a Hand's logs, say) never
 *     reaches another client. Subscribe to your own `cmd/reply/<your client id>/+` on the same
 *     connection before publishing. A client id that cannot be a topic level (not 1-128 of
 *     A-Z a-z 0-9 . _ : @ -) gets no reply.
 *   - external broker: the MQTT 5 Response Topic when the command carries one under
 *     `talon/<deviceId>/cmd/reply/` (its Correlation Data is sent back [MQTT 5 §4.10]), else
 *     `talon/<deviceId>/cmd/reply/<request id>`; who may read it is the broker's ACL.
 * Who may command: on the embedded broker only authenticated admin clients may publish under
 * `cmd/` (EmbeddedBus refuses the others' PUBLISH); on an external broker its ACL decides.
 * Retained commands are ignored (they would run again on every start).
 */
import type { Bus, BusMessage } from '../bus/types.ts';
import type { RuntimeApi } from './runtime-api.ts';
import { REPLY_CLIENT_ID, topics, validateTopic } from '../core/topics.ts';
import { TalonError } from '../core/errors.ts';

const MAX_COMMAND_BYTES = 4096;
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

interface Command {
  id?: unknown;
  name?: unknown;
  lines?: unknown;
  /** approvals: the approval's id, and the person's reason */
  approval?: unknown;
  note?: unknown;
}

export class MqttCommands {
  #bus: Bus;
  #api: RuntimeApi;
  #off: (() => Promise<void>) | null = null;
  /** malformed commands dropped (not JSON, oversized, bad request id) */
  rejected = 0;

  constructor(bus: Bus, api: RuntimeApi) {
    this.#bus = bus;
    this.#api = api;
  }

  async start(): Promise<void> {
    const offs: Array<() => Promise<void>> = [];
    for (const area of ['hands', 'approvals'] as const) {
      const prefix = `${topics.command(this.#bus.deviceId)}/${area}/`;
      offs.push(
        await this.#bus.subscribe(`${prefix}+`, (msg) => {
          void this.#handle(msg, area, msg.topic.slice(prefix.length));
        }),
      );
    }
    this.#off = async () => {
      await Promise.all(offs.map((off) => off()));
    };
  }

  async stop(): Promise<void> {
    await this.#off?.();
    this.#off = null;
  }

  /** `cmd/approvals/<list|approve|deny>` with `{ id, approval, note? }`: a person answers a tool call's approval */
  async #approvals(caller: { actor: string }, action: string, cmd: Command): Promise<unknown> {
    const approval = typeof cmd.approval === 'string' ? cmd.approval : '';
    const note = typeof cmd.note === 'string' ? cmd.note : undefined;
    switch (action) {
      case 'list':
        return this.#api.tools.approvals.list(caller, { state: 'pending' });
      case 'approve':
      case 'deny':
        return this.#api.tools.approvals.decide(caller, approval, action, note);
      default:
        throw new TalonError(
          'NOT_FOUND',
          `unknown command approvals/${action.slice(0, 40)}; use list, approve or deny (with "approval": "<id>")`,
        );
    }
  }

  async #handle(msg: BusMessage, area: 'hands' | 'approvals', action: string): Promise<void> {
    if (msg.retain) {
      this.rejected++;
      return;
    }
    let cmd: Command;
    try {
      if (msg.payload.length > MAX_COMMAND_BYTES) throw new Error('too large');
      cmd =
        msg.payload.length === 0
          ? {}
          : (JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(msg.payload)) as Command);
      if (typeof cmd !== 'object' || cmd === null || Array.isArray(cmd)) throw new Error('not an object');
    } catch {
      this.rejected++;
      this.#bus.countMalformed();
      return; // nowhere to reply: the request id is in the payload
    }
    if (typeof cmd.id !== 'string' || !REQUEST_ID.test(cmd.id)) {
      this.rejected++;
      return;
    }
    const replyTopic = this.#replyTopic(msg, cmd.id);
    if (replyTopic === null) {
      this.rejected++;
      return; // nowhere only the asker reads
    }
    const caller = { actor: msg.clientId !== undefined ? `mqtt:${msg.clientId}` : 'mqtt' };
    const name = typeof cmd.name === 'string' ? cmd.name : '';
    let reply: unknown;
    try {
      let result: unknown;
      if (area === 'approvals') result = await this.#approvals(caller, action, cmd);
      else
        switch (action) {
          case 'list':
            result = await this.#api.hands.list(caller);
            break;
          case 'status':
            result = await this.#api.hands.get(caller, name);
            break;
          case 'start':
            result = await this.#api.hands.start(caller, name);
            break;
          case 'stop':
            result = await this.#api.hands.stop(caller, name);
            break;
          case 'restart':
            result = await this.#api.hands.restart(caller, name);
            break;
          case 'logs':
            result = await this.#api.hands.logs(caller, name, {
              lines: typeof cmd.lines === 'number' ? cmd.lines : 100,
            });
            break;
          default:
            throw new TalonError(
              'NOT_FOUND',
              `unknown command hands/${action.slice(0, 40)}; use list, status, start, stop, restart or logs`,
            );
        }
      reply = { ok: true, result };
    } catch (err) {
      reply = { ok: false, error: TalonError.from(err).toJSON() };
    }
    const opts = msg.correlationData && msg.responseTopic !== undefined ? { correlationData: msg.correlationData } : {};
    await this.#bus.publish(replyTopic, JSON.stringify(reply), opts).catch(() => {});
  }

  /** Where the answer goes, or null when there is no topic only the asker can read. */
  #replyTopic(msg: BusMessage, requestId: string): string | null {
    const deviceId = this.#bus.deviceId;
    if (msg.clientId !== undefined) {
      return REPLY_CLIENT_ID.test(msg.clientId) ? topics.commandReply(deviceId, msg.clientId, requestId) : null;
    }
    if (msg.responseTopic !== undefined) {
      // never a topic outside the reply tree: a command must not make the device publish alerts or state
      try {
        validateTopic(msg.responseTopic);
      } catch {
        return null;
      }
      return msg.responseTopic.startsWith(`${topics.command(deviceId)}/reply/`) ? msg.responseTopic : null;
    }
    return topics.commandReplyLegacy(deviceId, requestId);
  }
}
