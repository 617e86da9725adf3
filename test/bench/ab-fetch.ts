/**
 * `node --import tsx test/bench/ab-fetch.ts OTHER_CHECKOUT [THIS_CHECKOUT …]`: sequential HTTPS requests through the
 * kernel's Hand fetch (runtime/capabilities/fetch.ts) of each checkout, in turn, against a local server with a
 * self-signed certificate (its name pinned by an injected resolver): the cost a chat bot pays per message. Run the
 * checkouts alternately (A B A B) so the machine's noise hits both.
 */
import { createServer } from 'node:https';
import selfsigned from 'selfsigned';
const roots = process.argv.slice(2);
if (roots.length === 0) {
  console.error('usage: node --import tsx test/bench/ab-fetch.ts CHECKOUT [CHECKOUT …]');
  process.exit(2);
}
const pems = selfsigned.generate([{ name: 'commonName', value: 'svc.test' }], {
  days: 1,
  keySize: 2048,
  extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'svc.test' }] }],
});
const srv = createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
  req.resume();
  req.on('end', () => res.end('ok'));
});
await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
const port = (srv.address() as { port: number }).port;
for (const root of roots) {
  const { HandFetch } = await import(`${root}/runtime/capabilities/fetch.ts`);
  const { normalizeNetwork } = await import(`${root}/runtime/core/network.ts`);
  const net = new HandFetch({
    audit: { record: async () => {} },
    ca: pems.cert,
    resolve: async () => [{ address: '127.0.0.1', family: 4 }],
  });
  await net.start();
  const c = { name: 'h', network: normalizeNetwork(['svc.test', '127.0.0.1'], 't') };
  const one = async () => {
    const r = await net.request(c, { url: `https://svc.test:${port}/` });
    while ((await r.body!.read()) !== null);
  };
  for (let i = 0; i < 20; i++) await one();
  const t0 = performance.now();
  const N = 300;
  for (let i = 0; i < N; i++) await one();
  const ms = performance.now() - t0;
  console.log(
    `${root}: ${N} sequential HTTPS requests, ${(ms / N).toFixed(2)} ms each (${Math.round((N / ms) * 1000)}/s)`,
  );
  await net.stop();
}
srv.close();
