/**
 * What Talon adds to a root filesystem, as a list of files: the binary, its config (the
 * fleet's provisioning bootstrap section, the web admin on the LAN, data in /var/lib/talon),
 * a hardened systemd unit, its user (sysusers.d) and the config's owner (tmpfiles.d). The
 * disk image adds the system files a board needs (systemLayer: hostname, DHCP, fstab); the
 * overlay tar for Jetson and other boards has only talonLayer.
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { TalonError } from '../../runtime/core/errors.ts';
import { BOOTSTRAP_FILE, loadFleet, type DeviceBootstrap } from '../../provisioning/fleet/keys.ts';

export type LayerEntry =
  | { path: string; kind: 'file'; mode: number; text: string }
  | { path: string; kind: 'copy'; mode: number; from: string }
  | { path: string; kind: 'symlink'; target: string }
  | { path: string; kind: 'dir'; mode: number };

export const BINARY_PATH = '/usr/local/bin/talon';
export const CONFIG_PATH = '/etc/talon/config.yaml';
export const UNIT_PATH = '/etc/systemd/system/talon.service';
export const HTTP_PORT = 8080;

/** Reads the fleet folder's device-bootstrap.json (checked by loading the whole fleet). */
export function fleetBootstrap(dir: string): DeviceBootstrap {
  if (!existsSync(dir))
    throw new TalonError(
      'FLEET_NOT_FOUND',
      `no fleet folder at ${dir} (make one with \`talon fleet init --out ${dir}\`)`,
    );
  const fleet = loadFleet(dir);
  const b = fleet.bootstrap;
  if (
    typeof b.fleet !== 'string' ||
    typeof b.anchor !== 'string' ||
    typeof b.bootstrap?.url !== 'string' ||
    typeof b.bootstrap.username !== 'string' ||
    typeof b.bootstrap.password !== 'string'
  ) {
    throw new TalonError(
      'FLEET_NOT_FOUND',
      `${join(dir, BOOTSTRAP_FILE)} is incomplete: it needs fleet, anchor and bootstrap {url, username, password}`,
    );
  }
  if (b.anchor !== fleet.publicKey.toString('base64')) {
    throw new TalonError(
      'FLEET_NOT_FOUND',
      `${join(dir, BOOTSTRAP_FILE)} names another anchor than the fleet key; rewrite it with \`talon fleet broker-config --fleet ${dir}\``,
    );
  }
  return {
    fleet: b.fleet,
    anchor: b.anchor,
    bootstrap: { url: b.bootstrap.url, username: b.bootstrap.username, password: b.bootstrap.password },
  };
}

/** The device's config: standalone without a fleet, else claimed through the fleet's broker. */
export function deviceConfig(bootstrap: DeviceBootstrap | null, deviceName = 'talon'): string {
  const config: Record<string, unknown> = {
    deviceName,
    dataDir: '/var/lib/talon',
    // the device's owner opens the admin page from the LAN: http://<device>:8080/
    http: { host: '0.0.0.0', port: HTTP_PORT },
    log: { level: 'info' },
  };
  if (bootstrap) config.provisioning = bootstrap;
  return (
    `# Talon device config, written by \`talon image\`. The web admin listens on every interface\n` +
    `# (port ${HTTP_PORT}): the device's owner reaches it from the LAN. Data lives in /var/lib/talon.\n${stringify(config)}`
  );
}

/** The hardened unit. Type=notify: Talon says READY=1 and pings the watchdog (runtime/systemd.ts). */
export function unitText(): string {
  return `[Unit]
Description=Talon agent OS
Documentation=https://github.com/talon/talon
Wants=network-online.target time-sync.target
After=network-online.target time-sync.target systemd-sysusers.service systemd-tmpfiles-setup.service

[Service]
Type=notify
NotifyAccess=all
ExecStart=${BINARY_PATH} run --config ${CONFIG_PATH}
Restart=on-failure
RestartSec=2
WatchdogSec=30
TimeoutStartSec=120
TimeoutStopSec=30
User=talon
Group=talon
StateDirectory=talon
StateDirectoryMode=0700
CacheDirectory=talon
Environment=HOME=/var/lib/talon XDG_CACHE_HOME=/var/cache/talon
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# GPIO, serial and I2C stay reachable (Talon's drivers); no MemoryDenyWriteExecute: V8 compiles code

[Install]
WantedBy=multi-user.target
`;
}

/** The binary, the unit (enabled), the config, the user. */
export function talonLayer(opts: { binary: string; config: string }): LayerEntry[] {
  return [
    { path: BINARY_PATH, kind: 'copy', mode: 0o755, from: opts.binary },
    { path: '/etc/talon', kind: 'dir', mode: 0o750 },
    { path: CONFIG_PATH, kind: 'file', mode: 0o640, text: opts.config },
    { path: UNIT_PATH, kind: 'file', mode: 0o644, text: unitText() },
    { path: '/etc/systemd/system/multi-user.target.wants/talon.service', kind: 'symlink', target: '../talon.service' },
    {
      path: '/usr/lib/sysusers.d/talon.conf',
      kind: 'file',
      mode: 0o644,
      text: 'u talon - "Talon agent OS" /var/lib/talon /usr/sbin/nologin\nm talon dialout\n',
    },
    {
      // the config holds the claim credential: readable by talon only (made after sysusers at boot)
      path: '/usr/lib/tmpfiles.d/talon.conf',
      kind: 'file',
      mode: 0o644,
      text: 'z /etc/talon 0750 root talon -\nz /etc/talon/config.yaml 0640 root talon -\n',
    },
  ];
}

/** What a board's root filesystem needs around Talon: name, DHCP on every ethernet port, mounts. */
export function systemLayer(opts: { hostname: string; rootPartuuid: string; bootPartuuid: string }): LayerEntry[] {
  const wants = (target: string, unit: string): LayerEntry => ({
    path: `/etc/systemd/system/${target}.wants/${unit}`,
    kind: 'symlink',
    target: `/lib/systemd/system/${unit}`,
  });
  return [
    { path: '/etc/hostname', kind: 'file', mode: 0o644, text: `${opts.hostname}\n` },
    {
      path: '/etc/hosts',
      kind: 'file',
      mode: 0o644,
      text: `127.0.0.1\tlocalhost\n127.0.1.1\t${opts.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    },
    {
      path: '/etc/fstab',
      kind: 'file',
      mode: 0o644,
      text: `PARTUUID=${opts.rootPartuuid}\t/\text4\tdefaults,noatime\t0\t1\nPARTUUID=${opts.bootPartuuid}\t/boot/firmware\tvfat\tdefaults,noatime,umask=0077\t0\t2\n`,
    },
    { path: '/boot/firmware', kind: 'dir', mode: 0o755 },
    {
      path: '/etc/systemd/network/20-wired.network',
      kind: 'file',
      mode: 0o644,
      text: '[Match]\nType=ether\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseDomains=yes\n',
    },
    wants('multi-user.target', 'systemd-networkd.service'),
    wants('sockets.target', 'systemd-networkd.socket'),
    wants('network-online.target', 'systemd-networkd-wait-online.service'),
    // wait for one link, not all of them (a board with wifi and no cable would wait 2 minutes)
    {
      path: '/etc/systemd/system/systemd-networkd-wait-online.service.d/any.conf',
      kind: 'file',
      mode: 0o644,
      text: '[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=30\n',
    },
  ];
}

/** Writes a layer under `root` (a staging folder), owned by root:root when we are root. */
export function writeLayer(root: string, layer: LayerEntry[]): void {
  const asRoot = process.getuid?.() === 0;
  for (const e of layer) {
    const dest = join(root, e.path);
    mkdirSync(dirname(dest), { recursive: true });
    if (e.kind === 'dir') {
      mkdirSync(dest, { recursive: true });
      chmodSync(dest, e.mode);
    } else if (e.kind === 'symlink') {
      if (exists(dest)) unlinkSync(dest);
      symlinkSync(e.target, dest);
    } else {
      if (exists(dest)) unlinkSync(dest);
      if (e.kind === 'copy') copyFileSync(e.from, dest);
      else writeFileSync(dest, e.text);
      chmodSync(dest, e.mode);
    }
    if (asRoot) lchownSync(dest, 0, 0);
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
