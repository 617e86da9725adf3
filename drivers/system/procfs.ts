/**
 * Pure parsers for the /proc and /sys files the system driver polls. Each takes the file's
 * text and throws a plain Error naming what was wrong when it is not in the kernel's format
 * (the driver turns that into SENSOR_FAULT). Formats: proc(5), Documentation/admin-guide/
 * iostats.rst (diskstats), Documentation/filesystems/proc.rst (net/dev, meminfo).
 */

export interface CpuTimes {
  /** all jiffies (user..steal; guest is already inside user) */
  total: number;
  /** idle + iowait */
  idle: number;
}

function num(s: string | undefined, what: string): number {
  if (s === undefined || !/^\d+$/.test(s))
    throw new Error(`${what}: expected a counter, got ${JSON.stringify(s ?? '')}`);
  return Number(s);
}

/** /proc/stat → `cpu` (the total) and `cpu0`, `cpu1`… */
export function parseStat(text: string): Map<string, CpuTimes> {
  const out = new Map<string, CpuTimes>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu')) continue;
    const f = line.trim().split(/\s+/);
    const name = f[0]!;
    if (!/^cpu\d*$/.test(name)) throw new Error(`/proc/stat: unexpected line ${JSON.stringify(line.slice(0, 40))}`);
    if (f.length < 5) throw new Error(`/proc/stat: ${name} has ${f.length - 1} fields, expected at least 4`);
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    const v = f.slice(1, 9).map((x, i) => num(x, `/proc/stat ${name} field ${i + 1}`));
    const total = v.reduce((a, b) => a + b, 0);
    out.set(name, { total, idle: v[3]! + (v[4] ?? 0) });
  }
  if (!out.has('cpu')) throw new Error('/proc/stat: no "cpu" line');
  return out;
}

/** load % between two snapshots of the same cpu; null when no time passed */
export function cpuLoad(prev: CpuTimes, cur: CpuTimes): number | null {
  const dt = cur.total - prev.total;
  const di = cur.idle - prev.idle;
  if (dt < 0 || di < 0) throw new Error('/proc/stat: counters went backwards');
  if (dt === 0) return null;
  return Math.min(100, Math.max(0, (100 * (dt - di)) / dt));
}

/** /proc/meminfo → kB values by key */
export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const m = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line);
    if (!m) throw new Error(`/proc/meminfo: unexpected line ${JSON.stringify(line.slice(0, 40))}`);
    out.set(m[1]!, Number(m[2]));
  }
  if (!out.has('MemTotal')) throw new Error('/proc/meminfo: no MemTotal');
  return out;
}

export function memKey(m: Map<string, number>, key: string): number {
  const v = m.get(key);
  if (v === undefined) throw new Error(`/proc/meminfo: no ${key}`);
  return v;
}

export interface IoCounters {
  /** bytes read / received */
  rx: number;
  /** bytes written / sent */
  tx: number;
}

/** /proc/diskstats → bytes read and written per device (sectors are 512 bytes, always) */
export function parseDiskstats(text: string): Map<string, IoCounters> {
  const out = new Map<string, IoCounters>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.trim().split(/\s+/);
    if (f.length < 14) throw new Error(`/proc/diskstats: a line has ${f.length} fields, expected at least 14`);
    const dev = f[2]!;
    out.set(dev, {
      rx: num(f[5], `/proc/diskstats ${dev} sectors read`) * 512,
      tx: num(f[9], `/proc/diskstats ${dev} sectors written`) * 512,
    });
  }
  return out;
}

/** interfaces left out of network totals (the system driver's net.<iface> sensors, the dashboard's rates):
 * loopback and virtual ones (a veth pair or bridge counts the same bytes as sent and received) */
export const SKIP_IFACE = /^(lo|veth|docker|br-|virbr|ifb)/;

/** /proc/net/dev → bytes received and sent per interface */
export function parseNetDev(text: string): Map<string, IoCounters> {
  const out = new Map<string, IoCounters>();
  const lines = text.split('\n');
  if (!/\|/.test(lines[0] ?? '') || !/\|/.test(lines[1] ?? '')) throw new Error('/proc/net/dev: missing header');
  for (const line of lines.slice(2)) {
    if (!line.trim()) continue;
    const i = line.indexOf(':');
    if (i < 0) throw new Error(`/proc/net/dev: unexpected line ${JSON.stringify(line.slice(0, 40))}`);
    const iface = line.slice(0, i).trim();
    const f = line
      .slice(i + 1)
      .trim()
      .split(/\s+/);
    if (f.length < 16) throw new Error(`/proc/net/dev: ${iface} has ${f.length} fields, expected 16`);
    out.set(iface, {
      rx: num(f[0], `/proc/net/dev ${iface} rx bytes`),
      tx: num(f[8], `/proc/net/dev ${iface} tx bytes`),
    });
  }
  return out;
}

/** /proc/mounts → [device, mount point, fs type]; octal escapes (\040 = space) decoded */
export function parseMounts(text: string): Array<{ device: string; mount: string; fstype: string }> {
  const unescape = (s: string): string =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: Array<{ device: string; mount: string; fstype: string }> = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 3) continue;
    out.push({ device: unescape(f[0]!), mount: unescape(f[1]!), fstype: f[2]! });
  }
  return out;
}

/** /proc/uptime → seconds */
export function parseUptime(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s+\d+(?:\.\d+)?\s*$/.exec(text.trim());
  if (!m) throw new Error(`/proc/uptime: unexpected ${JSON.stringify(text.slice(0, 40))}`);
  return Number(m[1]);
}

/** /proc/loadavg → 1-minute load and the process (task) count */
export function parseLoadavg(text: string): { load1: number; running: number; total: number } {
  const m = /^(\d+(?:\.\d+)?)\s+\d+(?:\.\d+)?\s+\d+(?:\.\d+)?\s+(\d+)\/(\d+)\s+\d+\s*$/.exec(text.trim());
  if (!m) throw new Error(`/proc/loadavg: unexpected ${JSON.stringify(text.slice(0, 40))}`);
  return { load1: Number(m[1]), running: Number(m[2]), total: Number(m[3]) };
}

/** a /sys temperature file (millidegrees Celsius) → °C */
export function parseMilliCelsius(text: string, what: string): number {
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) throw new Error(`${what}: expected millidegrees, got ${JSON.stringify(t.slice(0, 40))}`);
  const c = Number(t) / 1000;
  // below -55 °C or above 200 °C no SoC is running: a broken sensor, not a reading
  if (c < -55 || c > 200) throw new Error(`${what}: implausible temperature ${c} °C`);
  return c;
}

/** `throttled=0x50005` (vcgencmd) or `50005` (sysfs get_throttled) → the bit mask */
export function parseThrottled(text: string): number {
  const m = /^(?:throttled=)?(?:0x)?([0-9a-fA-F]+)\s*$/.exec(text.trim());
  if (!m) throw new Error(`get_throttled: unexpected ${JSON.stringify(text.slice(0, 40))}`);
  return parseInt(m[1]!, 16);
}

/** File systems that hold no user data: never reported as disks. */
export const PSEUDO_FS = new Set([
  'proc',
  'sysfs',
  'devtmpfs',
  'devpts',
  'tmpfs',
  'ramfs',
  'cgroup',
  'cgroup2',
  'securityfs',
  'pstore',
  'debugfs',
  'tracefs',
  'configfs',
  'fusectl',
  'mqueue',
  'hugetlbfs',
  'bpf',
  'autofs',
  'binfmt_misc',
  'rpc_pipefs',
  'nsfs',
  'efivarfs',
  'squashfs',
  'overlay',
  'fuse.lxcfs',
  'fuse.portal',
  'nfsd',
  'selinuxfs',
  'rootfs',
  'devfs',
  'none',
  'fuse.gvfsd-fuse',
  'fuse.snapfuse',
  'iso9660',
  'zram',
]);

/** a mount point, interface or device name → a sensor-id segment */
export function slug(name: string): string {
  if (name === '/') return 'root';
  const s = name
    .toLowerCase()
    .replace(/^\/+/, '')
    .replace(/[^a-z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return /^[a-z0-9]/.test(s) ? s : `x${s}`;
}
