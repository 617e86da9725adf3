import { defineHand } from '../../../hands/sdk/index.ts';

/**
 * Sends `count` messages to `bench/data` when `bench/go` arrives: as fast as it can
 * (rate 0) or paced at `rate` msg/s. Each payload carries its send time in µs (a clock
 * shared by all threads: performance.timeOrigin + performance.now()).
 */
export default defineHand({
  manifest: {
    id: 'bench-sender',
    version: '1.0.0',
    description: 'bus benchmark sender',
    capabilities: { bus: { publish: ['bench/data', 'bench/ready'], subscribe: ['bench/go'] } },
    quotas: { heapMb: 64, messagesPerSec: 1_000_000 },
  },
  async start(ctx) {
    await ctx.bus.subscribe('bench/go', async (msg) => {
      const { count, rate } = msg.json as { count: number; rate: number };
      const now = (): number => (performance.timeOrigin + performance.now()) * 1000;
      if (!rate) {
        for (let i = 0; i < count; i++) {
          ctx.bus.publish('bench/data', `${i} ${now()}`);
          if ((i & 1023) === 1023) await new Promise((r) => setImmediate(r));
        }
        return;
      }
      const t0 = performance.now();
      for (let i = 0; i < count; i++) {
        const due = t0 + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        ctx.bus.publish('bench/data', `${i} ${now()}`);
      }
    });
    ctx.bus.publish('bench/ready', 'sender');
  },
});
