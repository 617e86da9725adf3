import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseKeyValue,
  parseCsv,
  parseJsonLine,
  parseNmea,
  parseScalar,
  nmeaSentence,
  nmeaChecksum,
  LineSplitter,
  lineParser,
  MAX_LINE,
  type LineResult,
  type Fields,
} from '../../../drivers/serial/protocols.ts';

function ok(r: LineResult): Fields {
  assert.ok(r.ok, `expected a parse, got ${r.ok ? '' : `${r.code}: ${r.message}`}`);
  return r.fields;
}

function err(r: LineResult, code: string): void {
  assert.equal(r.ok, false, `expected ${code}, got ${JSON.stringify(r)}`);
  if (!r.ok) {
    assert.equal(r.code, code, r.message);
    assert.ok(r.message.length > 0);
  }
}

test('parseScalar: finite numbers, booleans, text; never NaN or Infinity', () => {
  assert.equal(parseScalar('21.5'), 21.5);
  assert.equal(parseScalar(' -3 '), -3);
  assert.equal(parseScalar('+.5'), 0.5);
  assert.equal(parseScalar('1e3'), 1000);
  assert.equal(parseScalar('true'), true);
  assert.equal(parseScalar('false'), false);
  assert.equal(parseScalar('NaN'), 'NaN');
  assert.equal(parseScalar('Infinity'), 'Infinity');
  assert.equal(parseScalar('1e999'), '1e999');
  assert.equal(parseScalar('0x10'), '0x10');
  assert.equal(parseScalar('12abc'), '12abc');
  assert.equal(parseScalar(''), '');
});

test('parseKeyValue: spaces, commas, semicolons, colons', () => {
  assert.deepEqual(ok(parseKeyValue('temp=21.5 hum=40')), { temp: 21.5, hum: 40 });
  assert.deepEqual(ok(parseKeyValue('temp=21.5,hum=40')), { temp: 21.5, hum: 40 });
  assert.deepEqual(ok(parseKeyValue('  temp=21.5 ;  hum=40 , door=true state=open ')), {
    temp: 21.5,
    hum: 40,
    door: true,
    state: 'open',
  });
  assert.deepEqual(ok(parseKeyValue('env.temp:-4.25\tfan_rpm=1200')), { 'env.temp': -4.25, fan_rpm: 1200 });
});

test('parseKeyValue: garbage is a typed error, whole line rejected', () => {
  err(parseKeyValue(''), 'empty');
  err(parseKeyValue('   '), 'empty');
  err(parseKeyValue('hello world'), 'garbage');
  err(parseKeyValue('temp=21.5 junk'), 'garbage'); // one bad token spoils the line
  err(parseKeyValue('temp= hum=40'), 'garbage');
  err(parseKeyValue('=5'), 'garbage');
  err(parseKeyValue('9x=5'), 'garbage');
  err(parseKeyValue('temp=2\u0000\u00ff1'), 'garbage');
  err(parseKeyValue('temp=2\ufffd1'), 'garbage'); // invalid UTF-8 decodes to U+FFFD
  err(parseKeyValue(`a=${'x'.repeat(MAX_LINE)}`), 'oversize');
  err(parseKeyValue('a=1 b=2', 5), 'oversize');
  // an overflowing number stays text: the driver faults a number sensor rather than store Infinity
  assert.deepEqual(ok(parseKeyValue('temp=1e999')), { temp: '1e999' });
});

test('parseCsv: columns, quotes, skipped and empty cells', () => {
  const cols = ['temp', 'hum', 'label'];
  assert.deepEqual(ok(parseCsv('21.5,40,greenhouse', cols)), { temp: 21.5, hum: 40, label: 'greenhouse' });
  assert.deepEqual(ok(parseCsv(' 21.5 , 40 ,"a, ""b"""', cols)), { temp: 21.5, hum: 40, label: 'a, "b"' });
  assert.deepEqual(ok(parseCsv('21.5,,x', cols)), { temp: 21.5, label: 'x' });
  assert.deepEqual(ok(parseCsv('1,2,3', ['a', '_', ''])), { a: 1 });
  err(parseCsv('21.5,40', cols), 'garbage');
  err(parseCsv('21.5,40,x,extra', cols), 'garbage');
  err(parseCsv('21.5,40,"open', cols), 'garbage');
  err(parseCsv('21.5,40,"a"b', cols), 'garbage');
  err(parseCsv('', cols), 'empty');
  err(parseCsv('\u0001\u0002,3,4', cols), 'garbage');
});

test('parseJsonLine: objects flattened, non-values dropped, garbage typed', () => {
  assert.deepEqual(ok(parseJsonLine('{"temp":21.5,"hum":40,"ok":true,"id":"s1"}')), {
    temp: 21.5,
    hum: 40,
    ok: true,
    id: 's1',
  });
  assert.deepEqual(ok(parseJsonLine(' {"env":{"temp":1,"deep":{"x":2}},"list":[1,2],"none":null} ')), {
    'env.temp': 1,
    'env.deep.x': 2,
  });
  err(parseJsonLine('{"temp":21.5'), 'garbage');
  err(parseJsonLine('[1,2]'), 'garbage');
  err(parseJsonLine('21.5'), 'garbage');
  err(parseJsonLine('{"temp":NaN}'), 'garbage');
  err(parseJsonLine('null'), 'garbage');
  err(parseJsonLine(''), 'empty');
  err(parseJsonLine(`{"a":"${'x'.repeat(MAX_LINE)}"}`), 'oversize');
});

test('NMEA checksum: known sentences verify; helpers agree', () => {
  // the classic examples from the NMEA 0183 references
  const gga = '$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47';
  assert.equal(nmeaSentence('GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,'), gga);
  assert.equal(nmeaChecksum(gga, 1, gga.length - 3), 0x47);
  const f = ok(parseNmea(gga));
  assert.equal(f.sentence, 'GGA');
  assert.equal(f.time, '12:35:19');
  assert.equal(f.lat, 48.1173);
  assert.equal(f.lon, 11.5166667);
  assert.equal(f.fix, 1);
  assert.equal(f.satellites, 8);
  assert.equal(f.hdop, 0.9);
  assert.equal(f.alt, 545.4);
  assert.equal(f.geoidSep, 46.9);
});

test('NMEA RMC, VTG, GLL; southern and western hemispheres; other talkers; lowercase hex', () => {
  const rmc = ok(parseNmea('$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A'));
  assert.deepEqual(rmc, {
    time: '12:35:19',
    valid: true,
    lat: 48.1173,
    lon: 11.5166667,
    speed: 22.4,
    speedKmh: 41.485,
    course: 84.4,
    date: '1994-03-23',
    sentence: 'RMC',
  });
  const south = ok(parseNmea(nmeaSentence('GNRMC,083559.00,A,3356.4000,S,15112.6000,W,0.004,77.52,091202,,,A,V')));
  assert.equal(south.lat, -33.94);
  assert.equal(south.lon, -151.21);
  assert.equal(south.date, '2002-12-09');
  const vtg = ok(parseNmea(nmeaSentence('GPVTG,054.7,T,034.4,M,005.5,N,010.2,K')));
  assert.deepEqual(vtg, { course: 54.7, speed: 5.5, speedKmh: 10.2, sentence: 'VTG' });
  const gll = ok(parseNmea(nmeaSentence('GLGLL,4916.45,N,12311.12,W,225444,A')));
  assert.equal(gll.valid, true);
  assert.equal(gll.lon, -123.1853333);
  // another talker (BeiDou), and the checksum in lowercase hex
  const body = 'BDGGA,010203,4807.038,N,01131.000,E,2,12,0.7,10.0,M,0.0,M,,';
  const cs = nmeaChecksum(body).toString(16).padStart(2, '0');
  assert.equal(ok(parseNmea(`$${body}*${cs}`)).fix, 2);
});

test('NMEA: no fix gives no position, never NaN', () => {
  const f = ok(parseNmea(nmeaSentence('GPGGA,,,,,,0,00,99.99,,,,,,')));
  assert.deepEqual(f, { fix: 0, satellites: 0, hdop: 99.99, sentence: 'GGA' });
  const r = ok(parseNmea(nmeaSentence('GPRMC,,V,,,,,,,,,,N')));
  assert.deepEqual(r, { valid: false, sentence: 'RMC' });
});

test('NMEA: bad or missing checksum, garbage, unsupported sentences', () => {
  const good = '$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47';
  err(parseNmea(good.replace('*47', '*48')), 'bad_checksum');
  err(parseNmea(good.replace('4807.038', '4807.039')), 'bad_checksum');
  err(parseNmea(good.slice(0, -3)), 'bad_checksum');
  err(parseNmea(good.replace('*47', '*G7')), 'bad_checksum');
  err(parseNmea('GPGGA,123519*47'), 'garbage');
  err(parseNmea('\u0000\u00ff\u0013$GP'), 'garbage');
  err(parseNmea(nmeaSentence('GPGGA,123519,4875.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,')), 'garbage'); // 75 minutes
  err(parseNmea(nmeaSentence('GPGGA,123519,4807.038,X,01131.000,E,1,08,0.9,545.4,M,46.9,M,,')), 'garbage'); // hemisphere
  err(parseNmea(nmeaSentence('GPGGA,123519,4807.038,N,01131.000,E,1,08,abc,545.4,M,46.9,M,,')), 'garbage');
  err(parseNmea(nmeaSentence('GPGGA,123519,4807.038,N')), 'garbage'); // too few fields
  err(parseNmea(nmeaSentence('GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00')), 'unsupported');
  err(parseNmea(`$${'A'.repeat(2000)}*00`), 'oversize');
});

test('no parser ever yields NaN, Infinity or throws on random input', () => {
  let seed = 12345;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const alphabet = 'abcXYZ019.,;:=-+eE*$"{}[] \t\u0000\u00ff\ufffdNaInfity';
  const parsers = [
    lineParser('kv'),
    lineParser('csv', { columns: ['a', 'b', 'c'] }),
    lineParser('jsonl'),
    lineParser('nmea'),
  ];
  for (let i = 0; i < 3000; i++) {
    let s = '';
    const n = Math.floor(rnd() * 60);
    for (let k = 0; k < n; k++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    if (i % 7 === 0) s = nmeaSentence(`GP${['GGA', 'RMC', 'VTG', 'GLL'][i % 4]},${s.replace(/[$*]/g, '')}`);
    for (const p of parsers) {
      const r = p(s);
      if (r.ok) {
        for (const v of Object.values(r.fields)) {
          assert.ok(typeof v !== 'number' || Number.isFinite(v), `${JSON.stringify(s)} gave ${v}`);
        }
      } else {
        assert.ok(['empty', 'oversize', 'garbage', 'bad_checksum', 'unsupported'].includes(r.code));
      }
    }
  }
});

test('LineSplitter: chunks, CR/LF variants, empty lines, oversize dropped then recovery', () => {
  const lines: string[] = [];
  const over: number[] = [];
  const s = new LineSplitter({ line: (l) => lines.push(l), oversize: (n) => over.push(n) }, 16);
  s.push(Buffer.from('a=1\r\nb='));
  s.push(Buffer.from('2\n\n\rc=3\r'));
  s.push(Buffer.from('x'.repeat(10)));
  s.push(Buffer.from('y'.repeat(10))); // 20 bytes without an end: dropped
  s.push(Buffer.from('zzz\nd=4\n'));
  s.push(Buffer.from('é=5\n'));
  assert.deepEqual(lines, ['a=1', 'b=2', 'c=3', 'd=4', 'é=5']);
  assert.equal(over.length, 1);
  // exactly the limit is fine
  s.push(Buffer.from(`${'k'.repeat(16)}\n`));
  assert.equal(lines.at(-1), 'k'.repeat(16));
  // a partial line is forgotten on reset
  s.push(Buffer.from('half'));
  s.reset();
  s.push(Buffer.from('e=6\n'));
  assert.equal(lines.at(-1), 'e=6');
});
