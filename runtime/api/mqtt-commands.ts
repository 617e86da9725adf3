/**
 * MQTT command topics over the same runtime API:
 *   publish `talon/<deviceId>/cmd/hands/<list|status|start|stop|restart|logs>`
 *   with JSON `{"id": "<request id>", "name": "<hand>", "lines": 50}`
 *   → reply on `talon/<deviceId>/cmd/reply/<request id>`: `{"ok": true, "result": …}` or
 *     `{"ok": false, "error": {code, message}}`.
 * On the embedded broker only authenticated admin clients may publish under `cmd/`
 * (EmbeddedBus enforces it); on an external broker its ACL does.
 */
import type { Bus, BusMessage } from '../bus/types.ts';
import type { RuntimeApi } from './runtime-api.ts';
import { topics } from '../bus/topics.ts';
import { TalonError } from '../errors.ts';

const MAX_COMMAND_BYTES = 4096;
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

interface Command {
  id?: unknown;
  name?: unknown;
  lines?: unknown;
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
    const prefix = `${topics.command(this.#bus.deviceId)}/hands/`;
    this.#off = await this.#bus.subscribe(`${prefix}+`, (msg) => {
      void this.#handle(msg, msg.topic.slice(prefix.length));
    });
  }

  async stop(): Promise<void> {
    await this.#off?.();
    this.#off = null;
  }

  async #handle(msg: BusMessage, action: string): Promise<void> {
    let cmd: Command;
    try {
      if (msg.payload.length > MAX_COMMAND_BYTES) throw new Error('too large');
      cmd = msg.payload.length === 0 ? {} : (JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(msg.payload)) as Command);
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
    const caller = { actor: 'mqtt' };
    const name = typeof cmd.name === 'string' ? cmd.name : '';
    let reply: unknown;
    try {
      let result: unknown;
      switch (action) {
        case 'list': result = await this.#api.hands.list(caller); break;
        case 'status': result = await this.#api.hands.get(caller, name); break;
        case 'start': result = await this.#api.hands.start(caller, name); break;
        case 'stop': result = await this.#api.hands.stop(caller, name); break;
        case 'restart': result = await this.#api.hands.restart(caller, name); break;
        case 'logs': result = await this.#api.hands.logs(caller, name, { lines: typeof cmd.lines === 'number' ? cmd.lines : 100 }); break;
        default: throw new TalonError('NOT_FOUND', `unknown command hands/${action.slice(0, 40)}; use list, status, start, stop, restart or logs`);
      }
      reply = { ok: true, result };
    } catch (err) {
      reply = { ok: false, error: TalonError.from(err).toJSON() };
    }
    await this.#bus.publish(topics.commandReply(this.#bus.deviceId, cmd.id), JSON.stringify(reply)).catch(() => {});
  }
}
