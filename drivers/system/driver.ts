/**
 * SystemDriver: the device's own health as sensors, read straight from /proc and /sys on
 * every poll (no child process, no shell: systeminformation spawns shells for load,
 * temperature, disks and network, so it serves only the rare inventory() call).
 *
 * Sensors (discovered at construction and again at start; a source that is absent on this
 * machine has no sensor rather than a made-up value):
 *   cpu.load, cpu.core<N>.load      % busy since this sensor's previous read (/proc/stat)
 *   cpu.temp                        °C (/sys/class/thermal zone, else hwmon)
 *   mem.used %, mem.available MB, swap.used % (only with swap)      (/proc/meminfo)
 *   disk.<mount>.used %, disk.<mount>.free MB   (statfs of each real mount in /proc/mounts)
 *   diskio.<dev>.read|write  B/s    (/proc/diskstats, whole disks from /sys/block)
 *   net.<iface>.rx|tx        B/s    (/proc/net/dev, without lo and virtual bridges)
 *   system.uptime s, system.load1, system.processes  (/proc/uptime, /proc/loadavg)
 *   pi.throttled    the get_throttled bit mask (only on a Pi: the firmware's sysfs file when
 *                   the kernel has it, else `vcgencmd get_throttled` on a slow timer, cached)
 *
 * Rates and loads are deltas between two reads of the same sensor; start() takes the first
 * snapshot, so the first read covers the time since start. Each file read is memoised for
 * cacheMs so 50 sensors polled together read /proc/stat once. Files are read synchronously:
 * procfs answers from kernel memory, and a threadpool round trip would cost more.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { BaseDriver } from '../base.ts';
import type { SensorInfo } from '../types.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import type { Clock } from '../../runtime/core/clock.ts';
import {
  cpuLoad,
  memKey,
  parseDiskstats,
  parseLoadavg,
  parseMeminfo,
  parseMilliCelsius,
  parseMounts,
  parseNetDev,
  parseStat,
  parseThrottled,
  parseUptime,
  PSEUDO_FS,
  SKIP_IFACE,
  slug,
  type CpuTimes,
  type IoCounters,
} from './procfs.ts';
import type { SystemDriverConfig } from './schema.ts';

// the config type is derived from the config's JSON Schema (./schema.ts)
export type { SystemDriverConfig } from './schema.ts';

export interface SystemDriverDeps {
  clock?: Clock;
  onListenerError?: (err: unknown) => void;
}

export interface Inventory {
  board: { manufacturer: string; model: string; revision: string; serial: string };
  os: { distro: string; release: string; kernel: string; arch: string; hostname: string };
  cpu: { manufacturer: string; brand: string; cores: number };
  memory: { totalMb: number };
}

type Source =
  | { kind: 'cpu'; cpu: string }
  | { kind: 'temp'; file: string }
  | { kind: 'mem'; field: 'used' | 'available' | 'swap' }
  | { kind: 'disk'; mount: string; field: 'used' | 'free' }
  | { kind: 'diskio'; dev: string; field: 'rx' | 'tx' }
  | { kind: 'net'; iface: string; field: 'rx' | 'tx' }
  | { kind: 'uptime' }
  | { kind: 'load1' }
  | { kind: 'processes' }
  | { kind: 'throttled' };

interface Sensor {
  info: SensorInfo;
  src: Source;
}

const SKIP_DISK = /^(loop|ram|zram|fd)\d*/;
const THROTTLED_SYSFS = 'devices/platform/soc/soc:firmware/get_throttled';

export class SystemDriver extends BaseDriver {
  readonly #cfg: SystemDriverConfig;
  readonly #proc: string;
  readonly #sys: string;
  readonly #cacheMs: number;
  #list: SensorInfo[] = [];
  #byId = new Map<string, Sensor>();
  readonly #fileCache = new Map<string, { at: number; text: string }>();
  /** per sensor: the previous counter snapshot and when it was taken */
  readonly #prev = new Map<string, { at: number; cpu?: CpuTimes; io?: number; last?: number }>();
  #vcgencmdPath: string | null = null;
  #throttled: { value: number } | { error: Error } | null = null;
  #throttledTimer: unknown = null;
  #inventoryCache: Promise<Inventory> | null = null;

  constructor(config: SystemDriverConfig, deps: SystemDriverDeps = {}) {
    super({
      name: config.name,
      type: 'system',
      clock: deps.clock,
      readTimeoutMs: config.readTimeoutMs,
      onListenerError: deps.onListenerError,
    });
    this.#cfg = config;
    this.#proc = config.procRoot ?? '/proc';
    this.#sys = config.sysRoot ?? '/sys';
    this.#cacheMs = config.cacheMs ?? 200;
    this.#discover();
  }

  protected sensorList(): SensorInfo[] {
    return this.#list;
  }

  // ---- discovery ----------------------------------------------------------------------

  #discover(): void {
    const found: Sensor[] = [];
    const add = (id: string, name: string, src: Source, extra: Partial<SensorInfo> = {}): void => {
      if (this.#byId.has(id) || found.some((s) => s.info.id === id)) return;
      found.push({ info: { id, name, kind: 'number', mode: 'polled', stateClass: 'measurement', ...extra }, src });
    };
    this.#byId = new Map();

    const stat = this.#tryRead(join(this.#proc, 'stat'), parseStat);
    if (stat) {
      add('cpu.load', 'CPU load', { kind: 'cpu', cpu: 'cpu' }, { unit: '%' });
      for (const cpu of stat.keys()) {
        if (cpu !== 'cpu')
          add(`cpu.core${cpu.slice(3)}.load`, `CPU core ${cpu.slice(3)} load`, { kind: 'cpu', cpu }, { unit: '%' });
      }
    }
    const temp = this.#findTemperature();
    if (temp)
      add('cpu.temp', 'CPU temperature', { kind: 'temp', file: temp }, { unit: '°C', deviceClass: 'temperature' });

    const mem = this.#tryRead(join(this.#proc, 'meminfo'), parseMeminfo);
    if (mem) {
      add('mem.used', 'Memory used', { kind: 'mem', field: 'used' }, { unit: '%' });
      add(
        'mem.available',
        'Memory available',
        { kind: 'mem', field: 'available' },
        { unit: 'MB', deviceClass: 'data_size' },
      );
      if ((mem.get('SwapTotal') ?? 0) > 0) add('swap.used', 'Swap used', { kind: 'mem', field: 'swap' }, { unit: '%' });
    }

    const mounts = this.#tryRead(join(this.#proc, 'mounts'), parseMounts) ?? [];
    const seenDev = new Set<string>();
    for (const m of mounts) {
      if (
        this.#cfg.mounts ? !this.#cfg.mounts.includes(m.mount) : PSEUDO_FS.has(m.fstype) || m.fstype.startsWith('fuse.')
      )
        continue;
      try {
        const st = statSync(m.mount);
        if (!st.isDirectory()) continue; // a bind-mounted file (containers' /etc/hosts)
        const key = `${st.dev}`;
        if (seenDev.has(key)) continue; // the same file system mounted twice
        seenDev.add(key);
        statfsSync(m.mount);
      } catch {
        continue;
      }
      const s = slug(m.mount);
      add(`disk.${s}.used`, `Disk ${m.mount} used`, { kind: 'disk', mount: m.mount, field: 'used' }, { unit: '%' });
      add(
        `disk.${s}.free`,
        `Disk ${m.mount} free`,
        { kind: 'disk', mount: m.mount, field: 'free' },
        { unit: 'MB', deviceClass: 'data_size' },
      );
    }

    const disks = this.#tryRead(join(this.#proc, 'diskstats'), parseDiskstats);
    if (disks) {
      const whole = this.#tryList(join(this.#sys, 'block'));
      for (const dev of disks.keys()) {
        if (this.#cfg.disks ? !this.#cfg.disks.includes(dev) : SKIP_DISK.test(dev) || !whole.includes(dev)) continue;
        const s = slug(dev);
        add(
          `diskio.${s}.read`,
          `Disk ${dev} read rate`,
          { kind: 'diskio', dev, field: 'rx' },
          { unit: 'B/s', deviceClass: 'data_rate' },
        );
        add(
          `diskio.${s}.write`,
          `Disk ${dev} write rate`,
          { kind: 'diskio', dev, field: 'tx' },
          { unit: 'B/s', deviceClass: 'data_rate' },
        );
      }
    }

    const net = this.#tryRead(join(this.#proc, 'net', 'dev'), parseNetDev);
    if (net) {
      for (const iface of net.keys()) {
        if (this.#cfg.interfaces ? !this.#cfg.interfaces.includes(iface) : SKIP_IFACE.test(iface)) continue;
        const s = slug(iface);
        add(
          `net.${s}.rx`,
          `Network ${iface} receive rate`,
          { kind: 'net', iface, field: 'rx' },
          { unit: 'B/s', deviceClass: 'data_rate' },
        );
        add(
          `net.${s}.tx`,
          `Network ${iface} send rate`,
          { kind: 'net', iface, field: 'tx' },
          { unit: 'B/s', deviceClass: 'data_rate' },
        );
      }
    }

    if (this.#tryRead(join(this.#proc, 'uptime'), parseUptime) !== null) {
      add(
        'system.uptime',
        'Uptime',
        { kind: 'uptime' },
        { unit: 's', deviceClass: 'duration', stateClass: 'total_increasing' },
      );
    }
    if (this.#tryRead(join(this.#proc, 'loadavg'), parseLoadavg)) {
      add('system.load1', 'Load average (1 min)', { kind: 'load1' });
      add('system.processes', 'Processes', { kind: 'processes' });
    }

    this.#vcgencmdPath = this.#findVcgencmd();
    if (existsSync(join(this.#sys, THROTTLED_SYSFS)) || this.#vcgencmdPath) {
      add('pi.throttled', 'Throttling state (get_throttled bits)', { kind: 'throttled' });
    }

    this.#byId = new Map(found.map((s) => [s.info.id, s]));
    this.#list = found.map((s) => s.info);
  }

  /** the CPU's thermal zone (type names a CPU or SoC, else the first), else a CPU hwmon */
  #findTemperature(): string | null {
    const zones = this.#tryList(join(this.#sys, 'class', 'thermal'))
      .filter((z) => /^thermal_zone\d+$/.test(z))
      .sort((a, b) => Number(a.slice(12)) - Number(b.slice(12)));
    const readable = zones.filter(
      (z) => this.#tryRead(join(this.#sys, 'class', 'thermal', z, 'temp'), (t) => parseMilliCelsius(t, z)) !== null,
    );
    const typed = readable.find((z) =>
      /cpu|soc|x86_pkg|core|package/i.test(
        this.#tryRead(join(this.#sys, 'class', 'thermal', z, 'type'), (t) => t) ?? '',
      ),
    );
    const zone = typed ?? readable[0];
    if (zone) return join(this.#sys, 'class', 'thermal', zone, 'temp');
    for (const h of this.#tryList(join(this.#sys, 'class', 'hwmon')).sort()) {
      const dir = join(this.#sys, 'class', 'hwmon', h);
      const name = this.#tryRead(join(dir, 'name'), (t) => t.trim()) ?? '';
      if (!/coretemp|k10temp|cpu_thermal|soc_thermal|zenpower|cpu/i.test(name)) continue;
      const file = join(dir, 'temp1_input');
      if (this.#tryRead(file, (t) => parseMilliCelsius(t, file)) !== null) return file;
    }
    return null;
  }

  #findVcgencmd(): string | null {
    if (this.#cfg.vcgencmd === false) return null;
    if (typeof this.#cfg.vcgencmd === 'string') return existsSync(this.#cfg.vcgencmd) ? this.#cfg.vcgencmd : null;
    for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/opt/vc/bin']) {
      if (dir && existsSync(join(dir, 'vcgencmd'))) return join(dir, 'vcgencmd');
    }
    return null;
  }

  #tryRead<T>(file: string, parse: (text: string) => T): T | null {
    try {
      return parse(readFileSync(file, 'utf8'));
    } catch {
      return null;
    }
  }

  #tryList(dir: string): string[] {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  }

  // ---- life cycle ---------------------------------------------------------------------

  protected async onStart(): Promise<void> {
    this.#fileCache.clear();
    this.#prev.clear();
    this.#discover();
    const now = this.clock.now();
    // the first snapshot of every delta sensor: its first read covers the time since start
    for (const s of this.#byId.values()) {
      try {
        if (s.src.kind === 'cpu') this.#prev.set(s.info.id, { at: now, cpu: this.#cpuTimes(s.src.cpu) });
        else if (s.src.kind === 'diskio' || s.src.kind === 'net')
          this.#prev.set(s.info.id, { at: now, io: this.#ioCounter(s.src) });
      } catch {
        // a bad file now is reported by the sensor's first read
      }
    }
    this.#throttled = null;
    if (this.#byId.has('pi.throttled') && !existsSync(join(this.#sys, THROTTLED_SYSFS)) && this.#vcgencmdPath) {
      this.#runVcgencmd();
      this.#throttledTimer = this.clock.setInterval(() => this.#runVcgencmd(), this.#cfg.throttledIntervalMs ?? 60_000);
    }
  }

  protected async onStop(): Promise<void> {
    if (this.#throttledTimer !== null) this.clock.clearInterval(this.#throttledTimer);
    this.#throttledTimer = null;
    this.#fileCache.clear();
  }

  #runVcgencmd(): void {
    const path = this.#vcgencmdPath;
    if (!path) return;
    execFile(path, ['get_throttled'], { timeout: 5000 }, (err, stdout) => {
      if (!this.isRunning) return;
      try {
        if (err) throw err;
        this.#throttled = { value: parseThrottled(stdout) };
      } catch (e) {
        this.#throttled = { error: e instanceof Error ? e : new Error(String(e)) };
      }
    });
  }

  // ---- sampling -----------------------------------------------------------------------

  #text(file: string): string {
    const now = this.clock.now();
    const hit = this.#fileCache.get(file);
    if (hit && now - hit.at < this.#cacheMs && now >= hit.at) return hit.text;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENODEV') {
        throw new TalonError('SENSOR_UNAVAILABLE', `${file} is gone (${code})`, { cause: err });
      }
      throw err;
    }
    this.#fileCache.set(file, { at: now, text });
    return text;
  }

  #cpuTimes(cpu: string): CpuTimes {
    const t = parseStat(this.#text(join(this.#proc, 'stat'))).get(cpu);
    if (!t) throw new TalonError('SENSOR_UNAVAILABLE', `/proc/stat has no ${cpu} (CPU offline?)`);
    return t;
  }

  #ioCounter(src: Extract<Source, { kind: 'diskio' | 'net' }>): number {
    const table =
      src.kind === 'net'
        ? parseNetDev(this.#text(join(this.#proc, 'net', 'dev')))
        : parseDiskstats(this.#text(join(this.#proc, 'diskstats')));
    const name = src.kind === 'net' ? src.iface : src.dev;
    const c: IoCounters | undefined = table.get(name);
    if (!c) throw new TalonError('SENSOR_UNAVAILABLE', `${src.kind === 'net' ? 'interface' : 'disk'} ${name} is gone`);
    return c[src.field];
  }

  protected sample(info: SensorInfo): unknown {
    const s = this.#byId.get(info.id)!;
    const src = s.src;
    switch (src.kind) {
      case 'cpu': {
        const cur = this.#cpuTimes(src.cpu);
        const p = this.#prev.get(info.id);
        this.#prev.set(info.id, { at: this.clock.now(), cpu: cur, last: p?.last });
        if (!p?.cpu)
          throw new TalonError(
            'SENSOR_UNAVAILABLE',
            `sensor ${info.id} has no baseline yet; the next read has a value`,
          );
        const load = cpuLoad(p.cpu, cur);
        if (load === null) {
          // no jiffy passed since the last read: answer the last value, keep the old baseline
          // (right after start: the average since boot, the only honest figure there is)
          this.#prev.set(info.id, p);
          return p.last ?? round(cpuLoad({ total: 0, idle: 0 }, cur) ?? 0, 1);
        }
        this.#prev.set(info.id, { at: this.clock.now(), cpu: cur, last: round(load, 1) });
        return round(load, 1);
      }
      case 'diskio':
      case 'net': {
        const cur = this.#ioCounter(src);
        const now = this.clock.now();
        const p = this.#prev.get(info.id);
        if (p?.io === undefined || cur < p.io) {
          // first sight, or the counter was reset (driver reload, 32-bit wrap): a new baseline
          this.#prev.set(info.id, { at: now, io: cur });
          throw new TalonError(
            'SENSOR_UNAVAILABLE',
            `sensor ${info.id}: ${p?.io === undefined ? 'no baseline yet' : 'the counter was reset'}; the next read has a value`,
          );
        }
        if (now <= p.at) {
          // no time passed since the baseline (read right after start): the average since boot
          return p.last ?? round(cur / parseUptime(this.#text(join(this.#proc, 'uptime'))), 1);
        }
        const rate = round(((cur - p.io) * 1000) / (now - p.at), 1);
        this.#prev.set(info.id, { at: now, io: cur, last: rate });
        return rate;
      }
      case 'temp':
        return parseMilliCelsius(this.#text(src.file), src.file);
      case 'mem': {
        const m = parseMeminfo(this.#text(join(this.#proc, 'meminfo')));
        if (src.field === 'swap') {
          const total = memKey(m, 'SwapTotal');
          if (total === 0) throw new TalonError('SENSOR_UNAVAILABLE', 'swap was turned off');
          return round((100 * (total - memKey(m, 'SwapFree'))) / total, 1);
        }
        const total = memKey(m, 'MemTotal');
        // MemAvailable since Linux 3.14; older kernels: free + buffers + cache
        const avail = m.get('MemAvailable') ?? memKey(m, 'MemFree') + (m.get('Buffers') ?? 0) + (m.get('Cached') ?? 0);
        if (total <= 0 || avail > total)
          throw new Error(`/proc/meminfo: MemAvailable ${avail} kB does not fit MemTotal ${total} kB`);
        return src.field === 'used' ? round((100 * (total - avail)) / total, 1) : round(avail / 1024, 1);
      }
      case 'disk': {
        let st;
        try {
          st = statfsSync(src.mount);
        } catch (err) {
          throw new TalonError('SENSOR_UNAVAILABLE', `${src.mount} cannot be read: ${(err as Error).message}`, {
            cause: err,
          });
        }
        if (src.field === 'free') return round((st.bavail * st.bsize) / 1048576, 1);
        const used = st.blocks - st.bfree;
        const denom = used + st.bavail; // like df: space root reserves is not "free" to users
        return denom > 0 ? round((100 * used) / denom, 1) : 0;
      }
      case 'uptime':
        return parseUptime(this.#text(join(this.#proc, 'uptime')));
      case 'load1':
        return parseLoadavg(this.#text(join(this.#proc, 'loadavg'))).load1;
      case 'processes':
        return parseLoadavg(this.#text(join(this.#proc, 'loadavg'))).total;
      case 'throttled': {
        const file = join(this.#sys, THROTTLED_SYSFS);
        if (existsSync(file)) return parseThrottled(this.#text(file));
        const t = this.#throttled;
        if (t === null) throw new TalonError('SENSOR_UNAVAILABLE', 'vcgencmd get_throttled has not answered yet');
        if ('error' in t) throw new Error(`vcgencmd get_throttled failed: ${t.error.message}`);
        return t.value;
      }
    }
  }

  // ---- inventory ----------------------------------------------------------------------

  /**
   * What this device is: board, serial, OS, CPU, memory. systeminformation spawns processes
   * for some of this, so it is imported lazily, called once and cached for the process.
   */
  inventory(): Promise<Inventory> {
    this.#inventoryCache ??= (async () => {
      const si = (await import('systeminformation')).default;
      const [system, os, cpu, mem] = await Promise.all([si.system(), si.osInfo(), si.cpu(), si.mem()]);
      return {
        board: {
          manufacturer: system.manufacturer,
          model: system.model,
          revision: system.version,
          serial: system.serial,
        },
        os: { distro: os.distro, release: os.release, kernel: os.kernel, arch: os.arch, hostname: os.hostname },
        cpu: { manufacturer: cpu.manufacturer, brand: cpu.brand, cores: cpu.cores },
        memory: { totalMb: Math.round(mem.total / 1048576) },
      };
    })();
    this.#inventoryCache.catch(() => {
      this.#inventoryCache = null;
    });
    return this.#inventoryCache;
  }
}

function round(v: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(v * f) / f;
}
