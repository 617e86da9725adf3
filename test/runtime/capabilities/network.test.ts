/**
 * The network grant (runtime/core/network.ts): entry syntax and its errors, host and
 * address matching (names, wildcards, CIDR ranges, the ranges a name may not reach), and a
 * config that may narrow but never widen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  NETWORK_DEFAULTS,
  NetworkPolicy,
  canonicalAddress,
  entryCovers,
  isSpecialAddress,
  normalizeNetwork,
  parseHostEntry,
} from '../../../runtime/core/network.ts';
import { effectiveGrants } from '../../../runtime/core/grants.ts';
import { checkConfig } from '../../../runtime/config/validate.ts';
import { TalonError } from '../../../runtime/core/errors.ts';
import { workerExecArgv } from '../../../runtime/supervisor/permissions.ts';

const ROOT = 'talon/dev1';
const invalid = (path: RegExp) => (e: TalonError) =>
  e instanceof TalonError && e.code === 'CONFIG_INVALID' && path.test(e.message);

test('host entries parse to one canonical form', () => {
  const text = (s: string) => parseHostEntry(s).text;
  assert.equal(text('API.Example.COM.'), 'api.example.com');
  assert.equal(text('bücher.de'), 'xn--bcher-kva.de');
  assert.equal(text('api.example.com:443'), 'api.example.com:443');
  assert.equal(text('*.Example.com'), '*.example.com');
  assert.equal(text('*'), '*');
  assert.equal(text('*:443'), '*:443');
  assert.equal(text('192.0.2.1'), '192.0.2.1');
  assert.equal(text('10.0.0.0/8'), '10.0.0.0/8');
  assert.equal(text('10.0.0.0/8:1883'), '10.0.0.0/8:1883');
  assert.equal(text('FD00::/8'), 'fd00::/8');
  assert.equal(text('[fd00::/8]:443'), '[fd00::/8]:443');
  assert.equal(text('::1'), '::1');
  assert.equal(text('[::1]:8080'), '[::1]:8080');
  assert.equal(text('mqtt_broker.lan'), 'mqtt_broker.lan');
  assert.deepEqual(
    { ...parseHostEntry('10.0.0.0/8:1883'), list: undefined },
    { kind: 'net', text: '10.0.0.0/8:1883', family: 4, address: '10.0.0.0', prefix: 8, port: 1883, list: undefined },
  );
  // canonical text parses back to itself
  for (const s of ['api.example.com:443', '*.example.com', '10.0.0.0/8:1883', '[fd00::/8]:443', '[::1]:8080'])
    assert.equal(text(text(s)), text(s));
});

test('a bad host entry says what is wrong with it', () => {
  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['a b.com', /white space/],
    ['https://api.example.com', /is a URL/],
    ['user@example.com', /is a URL/],
    ['example.com:0', /bad port/],
    ['example.com:65536', /bad port/],
    ['example.com:http', /bad port/],
    ['example.com:', /bad port/],
    ['10.0.0.0/33', /prefix length must be 0-32/],
    ['fd00::/129', /prefix length must be 0-128/],
    ['10.0.0.0/x', /prefix length/],
    ['1.2.3', /not an IP address/],
    ['256.1.1.1', /not an IP address/],
    ['10.0.0.0/8/8', /not an IP address|prefix/],
    ['a.*.com', /wildcard/],
    ['*x.com', /wildcard/],
    ['fe80::1%eth0', /zone index/],
    ['[example.com]:80', /brackets are for IPv6/],
    ['a..b', /not a valid host name/],
    ['-a.com', /not a valid host name/],
    ['::ffff:1.2.3.4', /IPv4-mapped/],
    [':443', /empty host/],
  ];
  for (const [s, re] of bad)
    assert.throws(
      () => parseHostEntry(s),
      (e: Error) => re.test(e.message),
      s,
    );
  assert.throws(() => parseHostEntry(42 as unknown as string), /empty/);
});

test('names match name entries: exact, per port, *.suffix for subdomains only, * for any name', () => {
  const p = new NetworkPolicy(
    normalizeNetwork(['api.example.com', 'mail.example.com:587', '*.iot.example.com', 'xn--bcher-kva.de'], 'x'),
  );
  assert.equal(p.allowsHost('api.example.com', 443), true);
  assert.equal(p.allowsHost('api.example.com', 8443), true, 'a name without a port: any port');
  assert.equal(p.allowsHost('API.example.com.', 443), true, 'case and a trailing dot do not matter');
  assert.equal(p.allowsHost('mail.example.com', 587), true);
  assert.equal(p.allowsHost('mail.example.com', 25), false);
  assert.equal(p.allowsHost('evil.example.com', 443), false);
  assert.equal(p.allowsHost('api.example.com.evil.net', 443), false);
  assert.equal(p.allowsHost('a.iot.example.com', 80), true);
  assert.equal(p.allowsHost('a.b.iot.example.com', 80), true);
  assert.equal(p.allowsHost('iot.example.com', 80), false, 'the wildcard does not cover the name itself');
  assert.equal(p.allowsHost('xiot.example.com', 80), false);
  assert.equal(p.allowsHost('bücher.de', 443), true);
  assert.equal(p.allowsHost('93.184.216.34', 443), false, 'a name entry never covers an address');
  const any = new NetworkPolicy(normalizeNetwork(['*:443'], 'x'));
  assert.equal(any.allowsHost('anything.example', 443), true);
  assert.equal(any.allowsHost('anything.example', 80), false);
  assert.equal(any.allowsHost('8.8.8.8', 443), false, '* is any name, not any address');
});

test('addresses match address and CIDR entries (IPv4, IPv6, with ports)', () => {
  const p = new NetworkPolicy(
    normalizeNetwork(['10.0.0.0/8:1883', '192.168.1.7', 'fd00::/8', '[2001:db8::1]:8443', '127.0.0.1:9000'], 'x'),
  );
  assert.equal(p.allowsHost('10.20.30.40', 1883), true);
  assert.equal(p.allowsHost('10.20.30.40', 80), false);
  assert.equal(p.allowsHost('11.0.0.1', 1883), false);
  assert.equal(p.allowsHost('192.168.1.7', 80), true);
  assert.equal(p.allowsHost('192.168.1.8', 80), false);
  assert.equal(p.allowsHost('[fd12:3456::1]', 80), true, 'a URL hostname keeps its brackets');
  assert.equal(p.allowsHost('fe80::1', 80), false);
  assert.equal(p.allowsHost('[2001:db8::1]', 8443), true);
  assert.equal(p.allowsHost('[2001:db8::1]', 443), false);
  assert.equal(p.allowsHost('[::ffff:7f00:1]', 9000), true, 'an IPv4-mapped IPv6 address is its IPv4 address');
  assert.equal(p.allowsHost('[::ffff:7f00:1]', 9001), false);
});

test('a name may reach public addresses; loopback, LAN, link-local and the like only when granted by address', () => {
  for (const a of [
    '127.0.0.1',
    '127.8.9.10',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.0.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.251',
    '255.255.255.255',
    '::1',
    '::',
    'fe80::1',
    'fd00::1',
    'fc00::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '64:ff9b::7f00:1',
    '2002:c0a8:0101::1',
  ]) {
    assert.equal(isSpecialAddress(a), true, a);
  }
  for (const a of [
    '8.8.8.8',
    '93.184.216.34',
    '172.32.0.1',
    '192.0.2.1',
    '2606:4700:4700::1111',
    '64:ff9b::808:808',
    '2002:808:808::1',
  ]) {
    assert.equal(isSpecialAddress(a), false, a);
  }
  assert.equal(isSpecialAddress('not an address'), true, 'anything unparseable is refused');
  const named = new NetworkPolicy(normalizeNetwork(['svc.test'], 'x'));
  assert.equal(named.allowsAddress('93.184.216.34', 443), true);
  assert.equal(named.allowsAddress('127.0.0.1', 443), false);
  assert.equal(named.allowsAddress('::ffff:127.0.0.1', 443), false);
  assert.equal(named.allowsAddress('192.168.1.20', 443), false);
  const lan = new NetworkPolicy(normalizeNetwork(['svc.test', '192.168.1.0/24:443', '127.0.0.1'], 'x'));
  assert.equal(lan.allowsAddress('192.168.1.20', 443), true);
  assert.equal(lan.allowsAddress('192.168.1.20', 80), false);
  assert.equal(lan.allowsAddress('192.168.2.20', 443), false);
  assert.equal(lan.allowsAddress('127.0.0.1', 80), true);
  assert.equal(lan.allowsAddress('127.0.0.2', 80), false);
  assert.deepEqual(canonicalAddress('[::ffff:10.0.0.1]'), { address: '10.0.0.1', family: 4 });
  assert.equal(canonicalAddress('example.com'), null);
});

test('cover rules for narrowing: names, wildcards, ranges, ports', () => {
  const c = (g: string, h: string) => entryCovers(parseHostEntry(g), parseHostEntry(h));
  assert.equal(c('*.example.com', 'api.example.com'), true);
  assert.equal(c('*.example.com', '*.iot.example.com'), true);
  assert.equal(c('*.example.com', 'example.com'), false);
  assert.equal(c('*', 'anything.example'), true);
  assert.equal(c('*', '10.0.0.1'), false, '* covers names, not addresses');
  assert.equal(c('api.example.com', 'api.example.com:443'), true);
  assert.equal(c('api.example.com:443', 'api.example.com'), false);
  assert.equal(c('10.0.0.0/8', '10.1.0.0/16'), true);
  assert.equal(c('10.0.0.0/8', '10.1.2.3'), true);
  assert.equal(c('10.0.0.0/8', '10.0.0.0/7'), false);
  assert.equal(c('10.0.0.0/8', '11.0.0.0/16'), false);
  assert.equal(c('fd00::/8', 'fd12::/16'), true);
  assert.equal(c('fd00::/8', '10.0.0.0/8'), false);
  assert.equal(c('0.0.0.0/0', '127.0.0.1:8080'), true);
});

test('a config narrows the network grant; widening it, or a bad entry, is CONFIG_INVALID naming the path', () => {
  const manifest = {
    network: { hosts: ['*.example.com', '10.0.0.0/8'], maxResponseBytes: 5_000_000, timeoutMs: 60_000 },
  };
  const w = 'hands.foo.capabilities';
  const g = effectiveGrants(manifest, undefined, ROOT, w);
  assert.deepEqual(g.network, {
    hosts: ['*.example.com', '10.0.0.0/8'],
    raw: false,
    maxResponseBytes: 5_000_000,
    timeoutMs: 60_000,
  });
  assert.deepEqual(
    effectiveGrants({ network: ['a.example.com'] }, undefined, ROOT, w).network,
    { hosts: ['a.example.com'], raw: false, ...NETWORK_DEFAULTS },
    'a host list gets the default limits',
  );
  const narrowed = effectiveGrants(manifest, { network: ['api.example.com:443', '10.1.0.0/16'] }, ROOT, w);
  assert.deepEqual(
    narrowed.network,
    { hosts: ['api.example.com:443', '10.1.0.0/16'], raw: false, maxResponseBytes: 5_000_000, timeoutMs: 60_000 },
    "limits the config leaves out are the manifest's",
  );
  assert.equal(effectiveGrants(manifest, { network: { hosts: [], timeoutMs: 1000 } }, ROOT, w).network.timeoutMs, 1000);
  assert.throws(
    () => effectiveGrants(manifest, { network: ['api.example.com', 'example.com'] }, ROOT, w),
    invalid(/hands\.foo\.capabilities\.network\[1\]: "example\.com" widens/),
  );
  assert.throws(
    () => effectiveGrants(manifest, { network: { hosts: ['192.168.0.0/16'] } }, ROOT, w),
    invalid(/network\.hosts\[0\]: "192\.168\.0\.0\/16" widens/),
  );
  assert.throws(
    () => effectiveGrants(manifest, { network: { raw: true } }, ROOT, w),
    invalid(/network\.raw: true widens/),
  );
  assert.throws(
    () => effectiveGrants(manifest, { network: { maxResponseBytes: 6_000_000 } }, ROOT, w),
    invalid(/network\.maxResponseBytes/),
  );
  assert.throws(
    () => effectiveGrants(manifest, { network: { timeoutMs: 61_000 } }, ROOT, w),
    invalid(/network\.timeoutMs/),
  );
  assert.throws(
    () => effectiveGrants(manifest, { network: ['a.example.com', '10.0.0.0/40'] }, ROOT, w),
    invalid(/network\[1\]: "10\.0\.0\.0\/40" is not a valid CIDR/),
  );
  assert.throws(() => effectiveGrants(manifest, { network: [''] }, ROOT, w), invalid(/network\[0\]: is empty/));
  // a manifest's own bad entry names its path too
  assert.throws(
    () => effectiveGrants({ network: ['ok.example.com', 'x.com:99999'] }, undefined, ROOT, w),
    invalid(/hands\.foo\.capabilities \(manifest\)\.network\[1\]: .*bad port/),
  );
  // raw: only when the manifest (or its optionalCapabilities) offers it
  assert.equal(effectiveGrants({}, { network: { raw: true } }, ROOT, w, { network: { raw: true } }).network.raw, true);
  assert.equal(
    effectiveGrants({}, { network: ['x.example.com'] }, ROOT, w, { network: { raw: true, hosts: ['*'] } }).network.raw,
    false,
    'a host list is not raw',
  );
  assert.equal(
    effectiveGrants({}, {}, ROOT, w, { network: { raw: true } }).network.raw,
    false,
    'optional means not unless the config names it',
  );
});

test('the config file: bad network entries are problems naming their path', () => {
  const problems = (network: unknown) =>
    checkConfig({ hands: [{ name: 'h', module: 'monitoring', capabilities: { network } }] }).problems;
  assert.deepEqual(
    problems(['api.example.com', '10.0.0.0/33', '*.lan:1883']).map((p) => p.path),
    ['hands[0].capabilities.network[1]'],
  );
  assert.match(problems(['10.0.0.0/33'])[0]!.message, /CIDR/);
  assert.deepEqual(
    problems({ hosts: ['ok.example', 'bad host'] }).map((p) => p.path),
    ['hands[0].capabilities.network.hosts[1]'],
  );
  assert.deepEqual(
    problems({ hots: [] }).map((p) => p.path),
    ['hands[0].capabilities.network.hots'],
  );
  assert.deepEqual(
    problems({ raw: 'yes' }).map((p) => p.path),
    ['hands[0].capabilities.network.raw'],
  );
  assert.deepEqual(
    problems('api.example.com').map((p) => p.path),
    ['hands[0].capabilities.network'],
  );
  assert.deepEqual(
    problems({ hosts: ['*.example.com', '[fd00::/8]:443'], raw: true, maxResponseBytes: 1000, timeoutMs: 5000 }),
    [],
  );
});

test('the worker gets --allow-net only with a raw grant', () => {
  const base = { workerEntry: '/w.cjs', modulePath: '/h.cjs', fs: { read: [], write: [] } };
  assert.ok(!workerExecArgv(base, '26.12.1').some((a) => a.startsWith('--allow-net')));
  assert.ok(!workerExecArgv({ ...base, rawNetwork: false }, '26.12.1').includes('--allow-net'));
  assert.ok(workerExecArgv({ ...base, rawNetwork: true }, '26.12.1').includes('--allow-net'));
});
