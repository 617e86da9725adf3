import { defineHand } from '../../../hands/sdk/index.ts';

/** Counts `bench/data` messages and their latencies; reports on `bench/result` after `expect` arrive. */
export default defineHand({
  manifest: {
    id: 'bench-receiver',
    version: '1.0.0',
    description: 'bus benchmark receiver',
    capabilities: { bus: { publish: ['bench/result', 'bench/ready'], subscribe: ['bench/data', 'bench/expect'] } },
    quotas: { heapMb: 64 },
  },
  async start(ctx) {
    let expect = 0;
    let got = 0;
    let first = 0;
    let lat: number[] = [];
    await ctx.bus.subscribe('bench/expect', (msg) => {
      expect = (msg.json as { count: number }).count;
      got = 0;
      first = 0;
      lat = [];
    });
    await ctx.bus.subscribe('bench/data', (msg) => {
      const now = (performance.timeOrigin + performance.now()) * 1000;
      const sent = Number(msg.text.slice(msg.text.indexOf(' ') + 1));
      if (got === 0) first = sent;
      got++;
      lat.push(now - sent);
      if (got === expect) {
        lat.sort((a, b) => a - b);
        const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! / 1000;
        ctx.bus.publish(
          'bench/result',
          JSON.stringify({
            count: got,
            seconds: (now - first) / 1e6,
            p50ms: q(0.5),
            p99ms: q(0.99),
            maxms: q(1),
          }),
        );
      }
    });
    ctx.bus.publish('bench/ready', 'receiver');
  },
});
