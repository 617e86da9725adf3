/**
 * The fleet broker's files, for a real mosquitto 2: DIR/broker/{mosquitto.conf, acl, passwd}.
 *
 * Users: `operator` (everything under talon/#), the claim user every image carries (it can only
 * announce itself, read its own bundle and write its own status: clientId = deviceId, `%c`
 * patterns), and one user per provisioned device (username = deviceId: its own talon/<id>/#,
 * its bundle, its status; `%u` patterns). mosquitto applies `pattern` lines to every client,
 * so a device user also gets the claim rights for its clientId — nothing the claim credential,
 * which every device holds, does not give already.
 *
 * Passwords are mosquitto 2's `$7$` PBKDF2-SHA512 lines (no mosquitto_passwd needed). After a
 * change, reload() sends SIGHUP to the pid in mosquitto.pid (mosquitto rereads passwd and acl).
 */
import { existsSync, readFileSync, writeFileSync, renameSync, mkdirSync, chmodSync } from 'node:fs';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { TalonError } from '../../runtime/core/errors.ts';

export const OPERATOR_USER = 'operator';
export const CLAIM_USER = 'claim';
/** mosquitto_passwd's default iteration count */
const PBKDF2_ITERATIONS = 101;

export interface BrokerPaths {
  dir: string;
  conf: string;
  acl: string;
  passwd: string;
  pid: string;
}

export function brokerPaths(fleetDir: string): BrokerPaths {
  const dir = join(fleetDir, 'broker');
  return {
    dir,
    conf: join(dir, 'mosquitto.conf'),
    acl: join(dir, 'acl'),
    passwd: join(dir, 'passwd'),
    pid: join(dir, 'mosquitto.pid'),
  };
}

/** One password_file line in mosquitto 2's format: `user:$7$<iterations>$<salt b64>$<pbkdf2-sha512 b64>`. */
export function passwdLine(user: string, password: string): string {
  const salt = randomBytes(12);
  const hash = pbkdf2Sync(password, salt, PBKDF2_ITERATIONS, 64, 'sha512');
  return `${user}:$7$${PBKDF2_ITERATIONS}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** The acl_file for one fleet. */
export function aclText(fleetId: string): string {
  const p = `talon/provision/${fleetId}`;
  return [
    '# Talon fleet ACL (written by `talon fleet init`)',
    `user ${OPERATOR_USER}`,
    'topic readwrite talon/#',
    '',
    '# the claim credential (clientId = deviceId): announce itself, read its own bundle, write its own status',
    `pattern write ${p}/announce/%c`,
    `pattern read ${p}/bundle/%c`,
    `pattern write ${p}/status/%c`,
    '# device users (username = deviceId): their own tree, their bundle, their status',
    'pattern readwrite talon/%u/#',
    `pattern read ${p}/bundle/%u`,
    `pattern write ${p}/status/%u`,
    '',
  ].join('\n');
}

export interface ConfOptions {
  /** the listener port */
  port: number;
  /** bind address; omitted = every interface */
  host?: string;
  /** `user NAME` (mosquitto started as root drops to this user; default its own `mosquitto`) */
  runAs?: string;
}

export function confText(paths: BrokerPaths, opts: ConfOptions): string {
  const lines = [
    '# Talon fleet broker (written by `talon fleet init`); run: mosquitto -c ' + paths.conf,
    `listener ${opts.port}${opts.host ? ` ${opts.host}` : ''}`,
    'allow_anonymous false',
    `password_file ${paths.passwd}`,
    `acl_file ${paths.acl}`,
    `pid_file ${paths.pid}`,
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
  ];
  if (opts.runAs) lines.push(`user ${opts.runAs}`);
  return `${lines.join('\n')}\n`;
}

/** Writes conf, acl and passwd (operator + claim users) for a fleet. */
export function writeBrokerFiles(
  fleetDir: string,
  fleetId: string,
  users: Record<string, string>,
  opts: ConfOptions,
): BrokerPaths {
  const paths = brokerPaths(fleetDir);
  mkdirSync(paths.dir, { recursive: true });
  atomicWrite(paths.conf, confText(paths, opts), 0o644);
  atomicWrite(paths.acl, aclText(fleetId), 0o600);
  atomicWrite(
    paths.passwd,
    Object.entries(users)
      .map(([u, p]) => passwdLine(u, p))
      .join('\n') + '\n',
    0o600,
  );
  return paths;
}

/** Adds or replaces a user's password line. */
export function setBrokerUser(fleetDir: string, user: string, password: string): void {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(user))
    throw new TalonError('BAD_REQUEST', `"${user.slice(0, 80)}" is not a broker user name`);
  const paths = brokerPaths(fleetDir);
  const lines = readPasswd(paths).filter((l) => !l.startsWith(`${user}:`));
  lines.push(passwdLine(user, password));
  atomicWrite(paths.passwd, lines.join('\n') + '\n', 0o600);
}

/** Removes a user's password line; false when there was none. */
export function removeBrokerUser(fleetDir: string, user: string): boolean {
  const paths = brokerPaths(fleetDir);
  const lines = readPasswd(paths);
  const kept = lines.filter((l) => !l.startsWith(`${user}:`));
  if (kept.length === lines.length) return false;
  atomicWrite(paths.passwd, kept.join('\n') + '\n', 0o600);
  return true;
}

export function brokerUsers(fleetDir: string): string[] {
  return readPasswd(brokerPaths(fleetDir)).map((l) => l.slice(0, l.indexOf(':')));
}

export type ReloadResult = 'reloaded' | 'no-pid-file' | 'not-running';

/** SIGHUP to the mosquitto whose pid is in DIR/broker/mosquitto.pid: it rereads passwd and acl. */
export function reloadBroker(fleetDir: string): ReloadResult {
  const { pid: file } = brokerPaths(fleetDir);
  if (!existsSync(file)) return 'no-pid-file';
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1) return 'not-running';
  try {
    process.kill(pid, 'SIGHUP');
    return 'reloaded';
  } catch {
    return 'not-running';
  }
}

function readPasswd(paths: BrokerPaths): string[] {
  if (!existsSync(paths.passwd))
    throw new TalonError(
      'FLEET_NOT_FOUND',
      `no broker password file ${paths.passwd} (run \`talon fleet broker-config\`)`,
    );
  return readFileSync(paths.passwd, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'));
}

export function atomicWrite(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}
