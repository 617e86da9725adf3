/**
 * `node --import tsx test/bench/serial.ts`: serial lines parsed per second, as Markdown
 * table rows in the style of test/bench/run.ts (which can call serialRows()).
 * - pure parse: each line protocol's parser on pre-built lines, in this process;
 * - splitter + parse: bytes in 4 KB chunks through LineSplitter and the parser;
 * - end to end: a device writes lines into a real socat pty pair as fast as it can, a
 *   SerialDriver (serialport) on the other end splits, parses and updates its sensors.
 * The budget column is the line rate of a real UART at 115200 baud, 8N1, for lines of the
 * same length: the parser only has to be well above it. SERIAL_BENCH_LINES sets the count.
 */
import { runIfMain } from './lib.ts';
import { SerialPort } from 'serialport';
import { lineParser, LineSplitter, nmeaSentence, type LineProtocol } from '../../drivers/serial/protocols.ts';
import { SerialDriver } from '../../drivers/serial/driver.ts';
import { startPtyPair } from '../helpers/socat.ts';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const N = Number(process.env.SERIAL_BENCH_LINES ?? 200_000);

function lines(protocol: LineProtocol, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = (20 + (i % 100) / 10).toFixed(1);
    switch (protocol) {
      case 'kv':
        out.push(`temp=${t} hum=${40 + (i % 20)} door=${i % 2 ? 'on' : 'off'}`);
        break;
      case 'csv':
        out.push(`${1_700_000_000 + i},${t},${40 + (i % 20)},ok`);
        break;
      case 'jsonl':
        out.push(`{"temp":${t},"hum":${40 + (i % 20)},"env":{"co2":${400 + (i % 50)}}}`);
        break;
      case 'nmea':
        out.push(
          i % 2
            ? nmeaSentence(
                `GPGGA,0927${String(i % 60).padStart(2, '0')}.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,`,
              )
            : nmeaSentence(
                `GNRMC,0927${String(i % 60).padStart(2, '0')}.000,A,5321.6802,N,00630.3372,W,10.80,36.88,150626,,,A`,
              ),
        );
        break;
    }
  }
  return out;
}

/** lines per second a 115200-baud 8N1 UART can carry at this line length (+ CRLF) */
function uartRate(sample: string[]): number {
  const avg = sample.reduce((a, l) => a + Buffer.byteLength(l) + 2, 0) / sample.length;
  return 115200 / 10 / avg;
}

function pureParse(protocol: LineProtocol, input: string[]): number {
  const parse = lineParser(protocol, { columns: ['ts', 'temp', 'hum', 'status'] });
  let ok = 0;
  for (let i = 0; i < Math.min(20_000, input.length); i++) if (parse(input[i]!).ok) ok++; // warm-up
  ok = 0;
  const t0 = performance.now();
  for (let i = 0; i < input.length; i++) if (parse(input[i]!).ok) ok++;
  const s = (performance.now() - t0) / 1000;
  if (ok !== input.length) throw new Error(`${protocol}: only ${ok} of ${input.length} lines parsed`);
  return input.length / s;
}

function splitAndParse(protocol: LineProtocol, input: string[]): number {
  const parse = lineParser(protocol, { columns: ['ts', 'temp', 'hum', 'status'] });
  const bytes = Buffer.from(input.join('\r\n') + '\r\n');
  let ok = 0;
  const splitter = new LineSplitter({
    line: (l) => {
      if (parse(l).ok) ok++;
    },
    oversize: () => {},
  });
  const t0 = performance.now();
  for (let off = 0; off < bytes.length; off += 4096) splitter.push(bytes.subarray(off, off + 4096));
  const s = (performance.now() - t0) / 1000;
  if (ok !== input.length) throw new Error(`${protocol}: only ${ok} of ${input.length} lines parsed`);
  return input.length / s;
}

async function endToEnd(protocol: LineProtocol, input: string[]): Promise<number> {
  const pty = await startPtyPair();
  const driver = new SerialDriver({
    name: 'bench',
    type: 'serial',
    path: pty.a,
    baudRate: 115200,
    protocol,
    columns: protocol === 'csv' ? ['ts', 'temp', 'hum', 'status'] : undefined,
    sensors: [
      { id: 'bench.temp', field: 'temp' },
      { id: 'bench.lat', field: 'lat' },
    ],
  });
  const dev = new SerialPort({ path: pty.b, baudRate: 115200, autoOpen: false });
  dev.on('error', () => {});
  try {
    await driver.start();
    await new Promise<void>((res, rej) => dev.open((e) => (e ? rej(e) : res())));
    const parsed = (): number => driver.health().counters.parsed ?? 0;
    const payload = Buffer.from(input.join('\r\n') + '\r\n');
    const t0 = performance.now();
    // write in 16 KB pieces, waiting for each to drain (a pty buffers a few KB)
    for (let off = 0; off < payload.length; off += 16384) {
      await new Promise<void>((res, rej) =>
        dev.write(payload.subarray(off, off + 16384), (e) => (e ? rej(e) : dev.drain((d) => (d ? rej(d) : res())))),
      );
    }
    const deadline = Date.now() + 120_000;
    while (parsed() < input.length) {
      if (Date.now() > deadline)
        throw new Error(
          `end to end: ${parsed()} of ${input.length} lines parsed (${JSON.stringify(driver.health().counters)})`,
        );
      await new Promise((r) => setTimeout(r, 1));
    }
    const s = (performance.now() - t0) / 1000;
    const c = driver.health().counters;
    if ((c.badLines ?? 0) + (c.oversize ?? 0) > 0)
      throw new Error(`end to end: lines damaged in transit: ${JSON.stringify(c)}`);
    return input.length / s;
  } finally {
    await driver.stop();
    await new Promise<void>((res) => (dev.isOpen ? dev.close(() => res()) : res()));
    await pty.stop();
  }
}

export async function serialRows(say: (line: string) => void): Promise<void> {
  for (const protocol of ['kv', 'csv', 'jsonl', 'nmea'] as const) {
    const input = lines(protocol, N);
    const uart = uartRate(input);
    const pure = pureParse(protocol, input);
    const split = splitAndParse(protocol, input);
    say(
      `| serial ${protocol}: pure parse (${int(N)} lines) | ${int(pure)} lines/s | 115200-baud UART: ${int(uart)} lines/s | **${int(pure / uart)}×** | ≫ UART rate |`,
    );
    say(
      `| serial ${protocol}: bytes → LineSplitter → parse | ${int(split)} lines/s | | **${int(split / uart)}×** | ≫ UART rate |`,
    );
  }
  for (const protocol of ['kv', 'nmea'] as const) {
    const n = Math.min(N, 100_000);
    const input = lines(protocol, n);
    const uart = uartRate(input);
    const e2e = await endToEnd(protocol, input);
    say(
      `| serial ${protocol}: end to end over a socat pty (${int(n)} lines, SerialDriver) | ${int(e2e)} lines/s | 115200-baud UART: ${int(uart)} lines/s | **${int(e2e / uart)}×** | ≫ UART rate |`,
    );
  }
}

await runIfMain(import.meta.url, (say) => serialRows(say));
