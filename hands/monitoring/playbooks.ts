/**
 * Suggested fixes. Every alert carries one.
 *
 * `Advisor` is the seam: `suggestFix(alert, recent) → Promise<string>`. The built-in
 * `PlaybookAdvisor` answers from the table below by sensor kind and rule, with the recent
 * readings summarised; an LLM advisor (a later issue: `ctx.call('llm.chat', …)` with the
 * alert and the recent readings) implements the same interface and falls back to this one.
 */
import type { Alert, AlertInput } from './alerts.ts';

export interface RecentReadings {
  ts: number[];
  values: number[];
  unit?: string;
}

export interface Advisor {
  suggestFix(alert: Alert | AlertInput, recent: RecentReadings): Promise<string>;
}

export type SensorKind =
  | 'cpu'
  | 'memory'
  | 'disk'
  | 'temperature'
  | 'humidity'
  | 'network'
  | 'power'
  | 'fan'
  | 'generic';

/** what a sensor measures, from its id, unit and Home Assistant device class */
export function sensorKind(id: string, unit?: string, deviceClass?: string): SensorKind {
  const s = `${id} ${deviceClass ?? ''}`.toLowerCase();
  const u = (unit ?? '').toLowerCase();
  if (/temp|thermal|°c|°f/.test(s) || u === '°c' || u === '°f' || u === 'c') return 'temperature';
  if (/humid/.test(s)) return 'humidity';
  if (/\b(disk|fs|storage|volume)\b|disk\.|data_size|\.disk|filesystem|mount/.test(s)) return 'disk';
  if (/\b(mem|memory|ram|swap)\b|mem\.|memory\./.test(s)) return 'memory';
  if (/\bcpu\b|cpu\.|load/.test(s)) return 'cpu';
  if (/net|wifi|wlan|eth|rssi|ping|latency|signal_strength/.test(s)) return 'network';
  if (/volt|power|current|battery|energy/.test(s)) return 'power';
  if (/fan|rpm/.test(s)) return 'fan';
  return 'generic';
}

type Rule = 'high' | 'low' | 'anomaly' | 'drift' | 'forecast';

const TABLE: Record<SensorKind, Partial<Record<Rule, string>>> = {
  cpu: {
    high: 'Find the busiest processes (top -o %CPU, or ps -eo pid,comm,%cpu --sort=-%cpu | head); stop or renice a runaway one; check for a stuck Hand in `talon hands`; on a Pi, check for throttling with `vcgencmd get_throttled`.',
    anomaly:
      'A sudden CPU change usually means a new or runaway process: compare `top` with the usual load and check recent deploys, cron jobs and `talon hands` for a Hand in a restart loop.',
    drift:
      'CPU use is creeping up: look for a process whose CPU grows over time (a leak or a growing queue) and for log or database files that are scanned on every run.',
    forecast:
      'CPU load is trending up towards its limit: plan capacity or move work off the device before it is reached.',
  },
  memory: {
    high: 'Find the largest processes (ps -eo pid,comm,rss --sort=-rss | head); restart a leaking one; check `talon hands` heap figures; add swap or zram on small boards as a stopgap.',
    anomaly:
      'A sudden memory jump: check which process grew (ps -eo pid,comm,rss --sort=-rss) and whether a Hand or service just restarted.',
    drift:
      'Memory use is creeping up: the classic sign of a leak. Note which process grows and restart it on a schedule until it is fixed.',
    forecast:
      'Memory is trending towards exhaustion: restart the growing process before the OOM killer picks one for you.',
  },
  disk: {
    high: 'Free space: `du -xh / | sort -h | tail` to find big folders; rotate or vacuum logs (`journalctl --vacuum-size=100M`), clear package caches (`apt-get clean`), remove old images and core dumps.',
    forecast:
      'The disk will fill at this rate: find what is growing (`du -xh --max-depth=2 / | sort -h | tail`), set log rotation and retention limits, or move data off the device.',
    anomaly:
      'A sudden jump in disk use: look for a large new file (find / -xdev -size +100M -mmin -60) such as a core dump or a runaway log.',
    drift: 'Disk use is growing steadily: check log rotation and data retention settings.',
    low: 'Disk use dropped sharply: check that nothing was deleted by mistake and that the volume is still mounted.',
  },
  temperature: {
    high: 'Too hot: check that the fan runs and vents are clear, improve airflow or move the device out of the sun; on a Pi check throttling (`vcgencmd measure_temp`, `vcgencmd get_throttled`); reduce load until it cools.',
    low: 'Too cold: check heating, doors and windows; protect plants or equipment from frost; check condensation once it warms up.',
    anomaly:
      'A sudden temperature change: check for an opened door or window, a heater or cooler switching, direct sun, or a sensor that moved or came loose.',
    drift:
      'Temperature is drifting: check the heating/cooling schedule, a failing fan or a blocked vent, and the sensor placement.',
    forecast:
      'Temperature is heading for its limit: start cooling or heating now (fan, vent, shade) rather than at the limit.',
  },
  humidity: {
    high: 'Too humid: ventilate or run a dehumidifier; check for leaks, standing water and watering schedules; watch for condensation on electronics.',
    low: 'Too dry: reduce ventilation, mist or humidify; check watering.',
    anomaly: 'A sudden humidity change: check for watering, an opened door, a leak, or a wet/dislodged sensor.',
    drift: 'Humidity is drifting: check ventilation and watering schedules.',
    forecast: 'Humidity is heading for its limit: adjust ventilation or watering now.',
  },
  network: {
    high: 'Network figure too high: check link quality (`ip -s link`, `iw dev wlan0 link`), retransmissions, and which process uses the bandwidth (`ss -tunap`); reboot the router or move the device closer to the access point.',
    low: 'Network figure too low: check the cable or Wi-Fi signal (`iw dev wlan0 link`), the gateway (`ip route`, `ping`), and DNS.',
    anomaly: 'A sudden network change: check the link, the access point, and whether a large transfer started.',
    drift: 'The network figure is drifting: check signal strength trends and interference.',
  },
  power: {
    high: 'Power figure too high: check the load attached to the supply and for a short; on a Pi, use the official power supply.',
    low: 'Under-voltage or low battery: check the power supply and cable (Pi: `vcgencmd get_throttled` bit 0), replace or charge the battery.',
    anomaly: 'A sudden power change: check for a device switching on or off, or a loose connection.',
  },
  fan: {
    low: 'The fan is slow or stopped: check it spins freely, clean dust, check its connector and the GPIO/PWM control.',
    anomaly: 'The fan speed changed suddenly: check for an obstruction or a failing bearing.',
  },
  generic: {
    high: 'The value is above its limit: check what drives this sensor and whether the limit still fits.',
    low: 'The value is below its limit: check what drives this sensor and whether the limit still fits.',
    anomaly: 'An unusual value for this sensor: compare with its recent history and check what changed around it.',
    drift: 'The value is drifting away from its usual level: check for gradual wear, leaks, or calibration drift.',
    forecast: 'The trend will cross the limit within the horizon: act before it does.',
  },
};

const RULE_FIXES: Record<string, string> = {
  'sensor-fault':
    "The sensor cannot be read: check its wiring or connection (loose cable, serial port, I²C address), the driver's health (`talon doctor`), permissions and power; replace the sensor if the fault persists.",
  missing:
    'No new readings: check that the sensor and its driver are running (`talon doctor`), the cable or radio link, and whether the device is overloaded.',
  stuck:
    'The sensor repeats the same value while it normally varies: it may be frozen, disconnected with a cached value, or saturated. Power-cycle or reseat it and compare with another instrument.',
  'config-error':
    'Fix the Monitoring Hand settings named in the message (`talon config`), then restart the Hand; the other sensors keep being watched meanwhile.',
  'action-failed':
    'The automatic action could not run: grant the Hand the actuator (its GPIO pin under capabilities.gpio in the config) and check the actuator wiring.',
};

function ruleFamily(rule: string): Rule | null {
  if (rule === 'above') return 'high';
  if (rule === 'below') return 'low';
  if (rule === 'spike' || rule === 'shift' || rule === 'anomaly') return 'anomaly';
  if (rule === 'drift') return 'drift';
  if (rule === 'forecast') return 'forecast';
  return null;
}

function summary(recent: RecentReadings): string {
  const n = recent.values.length;
  if (n === 0) return '';
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of recent.values) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  const u = recent.unit ? ` ${recent.unit}` : '';
  const r = (x: number): string => String(Number(x.toPrecision(4)));
  return ` Recent ${n} readings: min ${r(min)}${u}, avg ${r(sum / n)}${u}, max ${r(max)}${u}, last ${r(recent.values[n - 1]!)}${u}.`;
}

/** the playbook text, synchronous (used when an alert is created) */
export function playbookFix(sensor: string, rule: string, kind: SensorKind = sensorKind(sensor)): string {
  const direct = RULE_FIXES[rule];
  if (direct) return direct;
  const family = ruleFamily(rule);
  if (!family) return TABLE.generic.anomaly!;
  return TABLE[kind][family] ?? TABLE.generic[family] ?? TABLE.generic.anomaly!;
}

export class PlaybookAdvisor implements Advisor {
  readonly #kinds: (sensor: string) => SensorKind;

  constructor(kinds: (sensor: string) => SensorKind = (s) => sensorKind(s)) {
    this.#kinds = kinds;
  }

  async suggestFix(alert: Alert | AlertInput, recent: RecentReadings): Promise<string> {
    return playbookFix(alert.sensor, alert.rule, this.#kinds(alert.sensor)) + summary(recent);
  }
}
