/**
 * `talon fleet`: the operator's side of provisioning — a fleet folder with the signing key and
 * the broker files, the devices that announced themselves, signed and sealed bundles, policies
 * that approve matching devices, decommission and key rotation. See provisioning/fleet/.
 */
import {
  parseSubcommand,
  UsageError,
  printable,
  type CommandSpec,
  type Io,
  type OptionSpec,
  type Parsed,
} from '../args.ts';
import { TalonError } from '../../core/errors.ts';
import type { FleetOperator as FleetOperatorT, IssueProgress } from '../../../provisioning/fleet/operator.ts';

const FLEET_OPT: Record<string, OptionSpec> = {
  fleet: {
    type: 'string',
    value: 'DIR',
    description: 'the fleet folder (`talon fleet init --out DIR`); default $TALON_FLEET',
  },
};
const BROKER_OPT: Record<string, OptionSpec> = {
  broker: {
    type: 'string',
    value: 'URL',
    description: "the broker URL to use instead of the fleet's (fleet.json brokerUrl)",
  },
};
const WAIT_OPTS: Record<string, OptionSpec> = {
  'no-wait': { type: 'boolean', description: "publish and return without waiting for the device's ack" },
  timeout: { type: 'string', value: 'S', description: "seconds to wait for the device's ack (default 120)" },
};

export const spec: CommandSpec = {
  name: 'talon fleet',
  summary: 'Provision devices over MQTT: fleet keys, announced devices, signed and sealed bundles.',
  subcommands: [
    { name: 'init', summary: 'make a fleet folder: signing key, fleet id, device bootstrap, mosquitto files' },
    { name: 'broker-config', summary: "rewrite the fleet's mosquitto files (conf, acl, passwd)" },
    { name: 'devices', summary: 'list the devices that announced themselves, with their inventory' },
    {
      name: 'provision',
      summary: 'send a device a signed bundle, sealed to it (config, secrets, admin), and wait for its ack',
    },
    { name: 'decommission', summary: 'send a device a signed wipe of its credentials and secrets' },
    { name: 'policy', summary: 'auto-approve rules: `policy add`, `policy list`, `policy remove`' },
    { name: 'watch', summary: 'approve announcing devices that match a policy, until Ctrl-C' },
    { name: 'rotate-key', summary: 'make a new fleet key and install it on every provisioned device' },
  ],
  notes: 'Exit codes: 0 ok, 1 failure (a device rejected, rolled back or did not ack), 2 bad usage.',
};

const subspecs: Record<string, CommandSpec> = {
  init: {
    name: 'talon fleet init',
    summary:
      'Make a fleet folder: the Ed25519 fleet key (fleet-key.json, 0600), fleet.json, the operator credential, device-bootstrap.json (the `provisioning` config section an image bakes in) and broker/ (mosquitto.conf, acl, passwd).',
    options: {
      out: { type: 'string', value: 'DIR', description: 'the folder to make (must not hold a fleet yet)' },
      'fleet-id': { type: 'string', value: 'ID', description: 'the fleet id (a-z, 0-9, -); default fleet-<random>' },
      'broker-url': {
        type: 'string',
        value: 'URL',
        description: 'the broker devices and the operator use (default mqtt://127.0.0.1:1883)',
      },
      'broker-user': {
        type: 'string',
        value: 'NAME',
        description: 'the user mosquitto runs as when started as root (`user` in mosquitto.conf)',
      },
      json: { type: 'boolean', description: 'print the result as JSON' },
    },
    notes: 'Then: mosquitto -c DIR/broker/mosquitto.conf',
  },
  'broker-config': {
    name: 'talon fleet broker-config',
    summary: 'Rewrite DIR/broker/{mosquitto.conf, acl, passwd}, keeping every password.',
    options: {
      ...FLEET_OPT,
      port: {
        type: 'string',
        value: 'N',
        description: 'a new listener port (fleet.json and device-bootstrap.json follow)',
      },
      'broker-user': { type: 'string', value: 'NAME', description: 'the user mosquitto runs as when started as root' },
    },
  },
  devices: {
    name: 'talon fleet devices',
    summary:
      'Read the retained announces and acks from the broker (every signature checked) and list the devices: pending, provisioning, provisioned, rejected, decommissioned.',
    options: {
      ...FLEET_OPT,
      ...BROKER_OPT,
      offline: { type: 'boolean', description: "list the fleet folder's records without asking the broker" },
      json: { type: 'boolean', description: 'print the records as JSON' },
    },
  },
  provision: {
    name: 'talon fleet provision',
    summary:
      "Build a bundle for a device (the config file, secrets, its own broker credential, an admin account), seal all of it to the device's key (only that device can read it off the broker), sign it with the fleet key, publish it and print the device's ack.",
    positionals: [{ name: 'deviceId', required: true, description: 'the device, as `talon fleet devices` lists it' }],
    options: {
      ...FLEET_OPT,
      config: {
        type: 'string',
        value: 'FILE',
        description: 'the device config (JSON or YAML, checked before it leaves)',
      },
      secret: { type: 'string', value: 'NAME=VALUE', description: 'a secret to seal into the bundle (repeatable)' },
      'secrets-file': { type: 'string', value: 'FILE', description: 'secrets as a JSON or YAML mapping NAME: value' },
      'admin-user': {
        type: 'string',
        value: 'NAME',
        description: 'the web admin account the device creates (if it has none)',
      },
      'admin-password-file': {
        type: 'string',
        value: 'FILE',
        description: 'its password (only an scrypt hash is sent)',
      },
      'expires-in': {
        type: 'string',
        value: 'DURATION',
        description: "the bundle's lifetime: 7d (default), 12h, 30m, 90s",
      },
      'skip-validation': {
        type: 'boolean',
        description: 'send the config without checking it here (the device still does)',
      },
      ...WAIT_OPTS,
      ...BROKER_OPT,
      json: { type: 'boolean', description: 'print the result as JSON' },
    },
  },
  decommission: {
    name: 'talon fleet decommission',
    summary:
      'Send a device a signed decommission: it wipes its secrets and fleet credential and announces itself again. Its broker user is removed.',
    positionals: [{ name: 'deviceId', required: true }],
    options: { ...FLEET_OPT, ...WAIT_OPTS, ...BROKER_OPT },
  },
  watch: {
    name: 'talon fleet watch',
    summary:
      'Approve every pending device whose announce matches a policy (`talon fleet policy add`), as announces arrive. Runs until Ctrl-C.',
    options: { ...FLEET_OPT, ...BROKER_OPT, timeout: WAIT_OPTS.timeout! },
  },
  'rotate-key': {
    name: 'talon fleet rotate-key',
    summary:
      'Make a new fleet key; send every provisioned device a bundle signed by the current key that installs the new one; keep the old key as fleet-key.old.json.',
    options: { ...FLEET_OPT, ...BROKER_OPT, timeout: WAIT_OPTS.timeout! },
    notes: 'Images made before the rotation carry the old key: rebuild them from the new device-bootstrap.json.',
  },
};

const policySpec: CommandSpec = {
  name: 'talon fleet policy',
  summary: 'Auto-approve rules for `talon fleet watch`.',
  subcommands: [
    { name: 'add', summary: 'add a rule: devices matching every --match get --config' },
    { name: 'list', summary: 'list the rules' },
    { name: 'remove', summary: 'remove a rule by id' },
  ],
};
const policySubs: Record<string, CommandSpec> = {
  add: {
    name: 'talon fleet policy add',
    summary:
      "Add a rule. Keys: board, serial, memoryBytes, os, arch, hostname, version, node, deviceId; globs with * and ?. Example: --match 'board=Raspberry Pi 4*'.",
    options: {
      ...FLEET_OPT,
      match: {
        type: 'string',
        value: 'KEY=GLOB',
        description: 'an inventory field and a glob (repeatable; all must match)',
      },
      config: {
        type: 'string',
        value: 'FILE',
        description: 'the device config matching devices get (read when they are approved)',
      },
      'secrets-file': { type: 'string', value: 'FILE', description: 'secrets to seal into their bundles' },
    },
  },
  list: {
    name: 'talon fleet policy list',
    summary: 'List the rules.',
    options: { ...FLEET_OPT, json: { type: 'boolean', description: 'as JSON' } },
  },
  remove: {
    name: 'talon fleet policy remove',
    summary: 'Remove a rule.',
    positionals: [{ name: 'id', required: true }],
    options: FLEET_OPT,
  },
};

/** Pulls every `--name V` / `--name=V` out of argv (parseArgs takes an option once). */
function takeRepeated(argv: string[], name: string): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}` && i + 1 < argv.length) values.push(argv[++i]!);
    else if (a.startsWith(`--${name}=`)) values.push(a.slice(name.length + 3));
    else rest.push(a);
  }
  return { values, rest };
}

function str(args: Parsed, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

function fleetDir(args: Parsed, io: Io, s: CommandSpec): string {
  const dir = str(args, 'fleet') ?? io.env.TALON_FLEET;
  if (!dir) throw new UsageError('--fleet DIR is required (or set TALON_FLEET)', s);
  return resolvePath(io, dir);
}

function resolvePath(io: Io, p: string): string {
  return p.startsWith('/') ? p : `${io.cwd}/${p}`;
}

function seconds(args: Parsed, s: CommandSpec): number | undefined {
  const t = str(args, 'timeout');
  if (t === undefined) return undefined;
  const n = Number(t);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--timeout takes seconds, got "${t}"`, s);
  return n * 1000;
}

export async function main(argvIn: string[], io: Io): Promise<number> {
  if (argvIn[0] === 'policy') return policyMain(argvIn.slice(1), io);
  const secrets = takeRepeated(argvIn, 'secret');
  const picked = parseSubcommand(spec, subspecs, secrets.rest, io);
  if (!picked) return 0;
  const { name, spec: s, args } = picked;
  const keys = await import('../../../provisioning/fleet/keys.ts');

  if (name === 'init') {
    const out = str(args, 'out');
    if (!out) throw new UsageError('--out DIR is required', s);
    const fleet = keys.initFleet(resolvePath(io, out), {
      ...(str(args, 'fleet-id') ? { fleetId: str(args, 'fleet-id')! } : {}),
      ...(str(args, 'broker-url') ? { brokerUrl: str(args, 'broker-url')! } : {}),
      ...(str(args, 'broker-user') ? { brokerRunAs: str(args, 'broker-user')! } : {}),
    });
    const info = {
      fleetId: fleet.fleetId,
      dir: fleet.dir,
      publicKey: fleet.publicKey.toString('base64'),
      brokerUrl: fleet.brokerUrl,
    };
    if (args.values.json) io.out(`${JSON.stringify(info)}\n`);
    else {
      io.out(
        [
          `fleet ${fleet.fleetId} in ${fleet.dir}`,
          `fleet public key (ed25519, base64) ${info.publicKey}`,
          `device bootstrap (bake into images as the \`provisioning\` config section): ${fleet.dir}/device-bootstrap.json`,
          `start the broker: mosquitto -c ${fleet.dir}/broker/mosquitto.conf`,
          '',
        ].join('\n'),
      );
    }
    return 0;
  }

  const fleet = keys.loadFleet(fleetDir(args, io, s));

  if (name === 'broker-config') {
    const p = str(args, 'port');
    const port = p === undefined ? undefined : Number(p);
    if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
      throw new UsageError(`--port takes 1-65535, got "${p}"`, s);
    const f = keys.rewriteBrokerFiles(fleet, {
      ...(port ? { port } : {}),
      ...(str(args, 'broker-user') ? { runAs: str(args, 'broker-user')! } : {}),
    });
    io.out(`wrote ${f.dir}/broker/{mosquitto.conf,acl,passwd} for ${f.brokerUrl}\n`);
    return 0;
  }

  const registry = await import('../../../provisioning/fleet/registry.ts');
  const { FleetOperator } = await import('../../../provisioning/fleet/operator.ts');
  const url = str(args, 'broker');
  const connect = (reconnect = false): Promise<FleetOperatorT> =>
    FleetOperator.connect(fleet, { ...(url ? { url } : {}), reconnect });

  if (name === 'devices') {
    let records = registry.listDevices(fleet.dir);
    let invalid: Array<{ topic: string; code: string; message: string }> = [];
    if (!args.values.offline) {
      const op = await connect();
      try {
        records = await op.sync();
        invalid = op.invalid;
      } finally {
        await op.close();
      }
    }
    if (args.values.json) {
      io.out(`${JSON.stringify({ devices: records.map(deviceJson), invalid })}\n`);
      return 0;
    }
    io.out(devicesTable(records));
    for (const i of invalid) io.err(`talon: ignored ${printable(i.topic)}: ${printable(i.message)} (${i.code})\n`);
    return 0;
  }

  if (name === 'provision') {
    const deviceId = args.positionals[0]!;
    const configFile = str(args, 'config');
    if (!configFile) throw new UsageError('--config FILE is required', s);
    const bundle = await import('../../../provisioning/fleet/bundle.ts');
    const config = bundle.loadBundleConfig(resolvePath(io, configFile), !args.values['skip-validation']);
    const sec = {
      ...(str(args, 'secrets-file') ? bundle.readSecretsFile(resolvePath(io, str(args, 'secrets-file')!)) : {}),
      ...bundle.parseSecretArgs(secrets.values),
    };
    const adminUser = str(args, 'admin-user');
    const adminFile = str(args, 'admin-password-file');
    if ((adminUser === undefined) !== (adminFile === undefined))
      throw new UsageError('--admin-user and --admin-password-file go together', s);
    const admin = adminUser && adminFile ? bundle.adminFromFile(adminUser, resolvePath(io, adminFile)) : undefined;
    const expires = str(args, 'expires-in');
    const timeoutMs = seconds(args, s);
    const op = await connect();
    try {
      await op.sync();
      const result = await op.provision(deviceId, {
        config,
        secrets: sec,
        wait: !args.values['no-wait'],
        ...(admin ? { admin } : {}),
        ...(expires ? { expiresInMs: bundle.parseDuration(expires) } : {}),
        ...(timeoutMs ? { timeoutMs } : {}),
        onProgress: progress(io),
      });
      return reportIssue(io, result, 'applied', args.values['no-wait'] === true, timeoutMs, args.values.json === true);
    } finally {
      await op.close();
    }
  }

  if (name === 'decommission') {
    const timeoutMs = seconds(args, s);
    const op = await connect();
    try {
      await op.sync();
      const result = await op.decommission(args.positionals[0]!, {
        wait: !args.values['no-wait'],
        ...(timeoutMs ? { timeoutMs } : {}),
        onProgress: progress(io, 'decommission'),
      });
      return reportIssue(io, result, 'decommissioned', args.values['no-wait'] === true, timeoutMs, false);
    } finally {
      await op.close();
    }
  }

  if (name === 'watch') {
    const timeoutMs = seconds(args, s);
    const op = await connect(true);
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    io.out(`watching fleet ${fleet.fleetId} for announces (Ctrl-C to stop)\n`);
    try {
      await op.watch(
        ac.signal,
        (e) => {
          switch (e.kind) {
            case 'announce':
              io.out(
                `announce ${e.deviceId} ${printable(e.inventory.board)} serial ${printable(e.inventory.serial)}\n`,
              );
              break;
            case 'unmatched':
              io.out(`pending ${e.deviceId}: no policy matches\n`);
              break;
            case 'approve':
              io.out(`approve ${e.deviceId} by policy ${e.policy}\n`);
              break;
            case 'result':
              io.out(
                `${e.deviceId} v${e.result.version}: ${e.result.ack ? ackText(e.result.ack) : 'no ack in time'}\n`,
              );
              break;
            case 'error':
              io.out(`${e.deviceId}: ${printable(e.message)} (${e.code})\n`);
              break;
          }
        },
        timeoutMs ? { timeoutMs } : {},
      );
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await op.close();
    }
    io.out('stopped\n');
    return 0;
  }

  if (name === 'rotate-key') {
    const timeoutMs = seconds(args, s);
    const op = await connect();
    try {
      await op.sync();
      const { results, skipped, publicKey } = await op.rotateKey(timeoutMs ? { timeoutMs } : {});
      io.out(`new fleet public key ${publicKey} (the old key is in fleet-key.old.json)\n`);
      let failed = skipped.length;
      for (const id of skipped) io.out(`${id}: skipped (no config on record to re-send)\n`);
      for (const r of results) {
        io.out(
          `${r.deviceId} v${r.version}: ${r.ack ? ackText(r.ack) : 'no ack in time (its bundle stays retained)'}\n`,
        );
        if (r.ack?.outcome !== 'applied') failed++;
      }
      return failed ? 1 : 0;
    } finally {
      await op.close();
    }
  }
  throw new UsageError(`unknown command "${name}"`, spec);
}

async function policyMain(argvIn: string[], io: Io): Promise<number> {
  const m = takeRepeated(argvIn, 'match');
  const picked = parseSubcommand(policySpec, policySubs, m.rest, io);
  if (!picked) return 0;
  const { name, spec: s, args } = picked;
  const policy = await import('../../../provisioning/fleet/policy.ts');
  const { loadFleet } = await import('../../../provisioning/fleet/keys.ts');
  const fleet = loadFleet(fleetDir(args, io, s));
  if (name === 'add') {
    const config = str(args, 'config');
    if (!config) throw new UsageError('--config FILE is required', s);
    if (m.values.length === 0) throw new UsageError('at least one --match KEY=GLOB is required', s);
    const sf = str(args, 'secrets-file');
    const p = policy.addPolicy(
      fleet.dir,
      m.values,
      resolvePath(io, config),
      sf ? { secretsFile: resolvePath(io, sf) } : {},
    );
    io.out(`policy ${p.id}: ${matchText(p.match)} → ${p.config}\n`);
    return 0;
  }
  if (name === 'list') {
    const all = policy.readPolicies(fleet.dir);
    if (args.values.json) io.out(`${JSON.stringify({ policies: all })}\n`);
    else if (all.length === 0) io.out('no policies (talon fleet policy add)\n');
    else
      for (const p of all)
        io.out(`${p.id}  ${matchText(p.match)}  → ${p.config}${p.secretsFile ? ` (secrets ${p.secretsFile})` : ''}\n`);
    return 0;
  }
  if (!policy.removePolicy(fleet.dir, args.positionals[0]!))
    throw new TalonError('NOT_FOUND', `no policy ${args.positionals[0]!.slice(0, 40)}`);
  io.out(`removed policy ${args.positionals[0]}\n`);
  return 0;
}

function matchText(m: Record<string, string | undefined>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

interface AckLike {
  outcome: string;
  version: number;
  code?: string;
  message?: string;
  generation?: number;
}

/**
 * What `provision` and `decommission` say on stderr while they wait (stdout stays the result,
 * `--json` included): the bundle sent, a line every few seconds with the time left, the ack.
 */
function progress(io: Io, what: 'provision' | 'decommission' = 'provision'): (p: IssueProgress) => void {
  return (p) => {
    switch (p.phase) {
      case 'sent':
        io.err(
          p.waiting
            ? `sent v${p.version} to ${p.deviceId}; waiting up to ${secs(p.timeoutMs)} s for its ack ${what === 'decommission' ? '(it wipes its secrets, answers, then announces again)' : '(it applies the bundle, then watches its health for provisioning.healthWindowMs, 30 s by default, before it answers)'}\n`
            : `sent v${p.version} to ${p.deviceId} (retained at the broker until the device takes it)\n`,
        );
        return;
      case 'waiting':
        io.err(
          `  waiting for ${p.deviceId}: ${secs(p.elapsedMs)} s, ${secs(Math.max(0, p.timeoutMs - p.elapsedMs))} s left\n`,
        );
        return;
      case 'acked':
        io.err(`${p.deviceId} acked v${p.version} after ${secs(p.elapsedMs)} s: ${p.ack.outcome}\n`);
        return;
      default:
        io.err(`no ack from ${p.deviceId} after ${secs(p.elapsedMs)} s\n`);
    }
  };
}

function secs(ms: number): string {
  return ms < 10_000 ? (ms / 1000).toFixed(1).replace(/\.0$/, '') : String(Math.round(ms / 1000));
}

function ackText(a: AckLike): string {
  const extra = a.outcome === 'applied' && a.generation !== undefined ? ` (config generation ${a.generation})` : '';
  const why = a.code || a.message ? `: ${printable(a.message ?? '')}${a.code ? ` (${printable(a.code)})` : ''}` : '';
  return `${a.outcome}${extra}${why}`;
}

function reportIssue(
  io: Io,
  r: { deviceId: string; version: number; ack?: AckLike; timedOut: boolean; reload?: string },
  expected: string,
  noWait: boolean,
  timeoutMs: number | undefined,
  json: boolean,
): number {
  if (json) io.out(`${JSON.stringify(r)}\n`);
  else {
    io.out(
      `published v${r.version} to ${r.deviceId}${r.reload === 'no-pid-file' ? ' (no broker/mosquitto.pid: reload mosquitto yourself so the device user exists)' : r.reload === 'not-running' ? ' (the broker in broker/mosquitto.pid is not running)' : ''}\n`,
    );
    if (r.ack) io.out(`${r.deviceId}: ${ackText(r.ack)}\n`);
  }
  if (noWait) return 0;
  if (!r.ack)
    throw new TalonError(
      'ACK_TIMEOUT',
      `no ack from ${r.deviceId} for v${r.version} within ${Math.round((timeoutMs ?? 120_000) / 1000)} s; the bundle stays retained for when it comes back`,
    );
  return r.ack.outcome === expected ? 0 : 1;
}

function deviceJson(r: import('../../../provisioning/fleet/registry.ts').DeviceRecord): Record<string, unknown> {
  const a = r.announce.payload;
  return {
    deviceId: r.deviceId,
    state: r.state,
    version: r.version,
    applied: r.applied,
    lastAck: r.lastAck,
    inventory: a.inventory,
    software: a.software,
    signPublicKey: a.signPublicKey,
    boxPublicKey: a.boxPublicKey,
    firstSeen: r.firstSeen,
    lastSeen: r.lastSeen,
  };
}

function devicesTable(records: Array<import('../../../provisioning/fleet/registry.ts').DeviceRecord>): string {
  if (records.length === 0) return 'no devices have announced themselves yet\n';
  const rows = [['DEVICE', 'STATE', 'VERSION', 'BOARD', 'SERIAL', 'MEMORY', 'OS', 'HOSTNAME', 'LAST ACK']];
  for (const r of records) {
    const i = r.announce.payload.inventory;
    rows.push(
      [
        r.deviceId,
        r.state,
        String(r.applied?.version ?? '-'),
        i.board,
        i.serial,
        `${Math.round(i.memoryBytes / 1048576)} MB`,
        i.os,
        i.hostname,
        r.lastAck ? `v${r.lastAck.version} ${r.lastAck.outcome}${r.lastAck.code ? ` ${r.lastAck.code}` : ''}` : '-',
      ].map(printable),
    );
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return (
    rows.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(w[c]!))).join('  ')).join('\n') +
    '\n'
  );
}
