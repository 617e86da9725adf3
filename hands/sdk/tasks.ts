/**
 * The task protocol: how one Hand asks another to do something over the bus and gets the answer
 * back, with a correlation id and a deadline. The Scheduling Hand's `ask` action speaks it; any
 * Hand serves it with serveTasks().
 *
 *   request  → talon/<device>/hands/<name>/tasks           { id, replyTo, task, deadline? }
 *   answer   → <replyTo> (a topic the asker subscribed to)  { id, ok: true, result } | { id, ok: false, error }
 *
 * A Hand started `mode: on-demand` is started by the kernel when a task reaches its inbox; the
 * task is handed to it once it subscribes. Topics here are relative to the device root.
 */
import type { BusMessageIn, HandContext } from '../../runtime/core/hand.ts';
import { TalonError } from '../../runtime/core/errors.ts';

/** a Hand's task inbox, relative to the device root */
export const taskInbox = (hand: string): string => `hands/${hand}/tasks`;
/** where a Hand's answers to its own questions come back, relative to the device root */
export const replyTopic = (hand: string): string => `hands/${hand}/replies`;

export interface TaskRequest {
  /** the correlation id, unique per asker */
  id: string;
  /** the topic the answer goes to */
  replyTo: string;
  task: unknown;
  /** ms epoch after which the asker no longer waits (the Hand may drop it) */
  deadline?: number;
}

export type TaskReply =
  | { id: string; ok: true; result: unknown }
  | { id: string; ok: false; error: { code: string; message: string } };

export function isTaskRequest(v: unknown): v is TaskRequest {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.id === 'string' && r.id.length > 0 && r.id.length <= 200 && typeof r.replyTo === 'string';
}

/**
 * Serves the Hand's inbox: each task goes to `handler`, its answer (or its error, as code and
 * message) to the request's replyTo. Tasks past their deadline are dropped. Resolves with the
 * unsubscribe function.
 */
export function serveTasks(
  ctx: HandContext,
  handler: (task: unknown, meta: { id: string; msg: BusMessageIn }) => unknown | Promise<unknown>,
): Promise<() => Promise<void>> {
  return ctx.bus.subscribe(taskInbox(ctx.name), async (msg) => {
    const req = msg.json;
    if (!isTaskRequest(req)) {
      ctx.log.warn('a task that is not { id, replyTo, task } was dropped', { topic: msg.topic });
      return;
    }
    if (typeof req.deadline === 'number' && Date.now() > req.deadline) return;
    let reply: TaskReply;
    try {
      reply = { id: req.id, ok: true, result: (await handler(req.task, { id: req.id, msg })) ?? null };
    } catch (err) {
      const e = TalonError.from(err);
      reply = { id: req.id, ok: false, error: { code: e.code, message: e.message } };
    }
    ctx.bus.publish(req.replyTo, reply, { qos: 1 });
  });
}

/**
 * Asks Hands tasks from one Hand: one subscription to its reply topic, answers matched by id.
 * `ask` rejects with HAND_TIMEOUT after `timeoutMs`, with the answer's error (as a TalonError of
 * its code when it is one of ours, else TOOL_FAILED-like `INTERNAL`) when the Hand refused.
 */
export class TaskClient {
  #ctx: HandContext;
  #pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: () => void }>();
  #ready: Promise<unknown> | null = null;
  #seq = 0;
  #prefix = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

  constructor(ctx: HandContext) {
    this.#ctx = ctx;
  }

  /** how many answers are awaited */
  get pending(): number {
    return this.#pending.size;
  }

  async ask(
    hand: string,
    task: unknown,
    opts: { timeoutMs: number; signal?: AbortSignal; id?: string },
  ): Promise<unknown> {
    const ctx = this.#ctx;
    this.#ready ??= ctx.bus.subscribe(replyTopic(ctx.name), (msg) => this.#answer(msg.json));
    await this.#ready;
    const id = opts.id ?? `${this.#prefix}-${++this.#seq}`;
    if (this.#pending.has(id)) throw new TalonError('CONFLICT', `a task with id ${id} is already waiting`);
    return new Promise((resolve, reject) => {
      const cancelTimer = ctx.timers.after(opts.timeoutMs, () => {
        this.#pending.delete(id);
        reject(new TalonError('HAND_TIMEOUT', `Hand "${hand}" did not answer task ${id} within ${opts.timeoutMs} ms`));
      });
      const onAbort = (): void => {
        cancelTimer();
        this.#pending.delete(id);
        reject(new TalonError('HAND_STOPPED', `the task ${id} for Hand "${hand}" was cancelled`));
      };
      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        resolve: (v) => {
          opts.signal?.removeEventListener('abort', onAbort);
          resolve(v);
        },
        reject: (e) => {
          opts.signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
        timer: cancelTimer,
      });
      const req: TaskRequest = { id, replyTo: replyTopic(ctx.name), task, deadline: Date.now() + opts.timeoutMs };
      try {
        ctx.bus.publish(taskInbox(hand), req, { qos: 1 });
      } catch (err) {
        cancelTimer();
        this.#pending.delete(id);
        opts.signal?.removeEventListener('abort', onAbort);
        reject(err);
      }
    });
  }

  #answer(v: unknown): void {
    if (typeof v !== 'object' || v === null) return;
    const r = v as Partial<TaskReply> & { error?: { code?: unknown; message?: unknown } };
    if (typeof r.id !== 'string') return;
    const p = this.#pending.get(r.id);
    if (!p) return;
    this.#pending.delete(r.id);
    p.timer();
    if (r.ok === true) p.resolve((r as { result: unknown }).result);
    else {
      const code = typeof r.error?.code === 'string' ? r.error.code : 'INTERNAL';
      const message = typeof r.error?.message === 'string' ? r.error.message : 'the Hand refused the task';
      p.reject(Object.assign(new Error(message), { code }));
    }
  }
}
