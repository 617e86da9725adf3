import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sourceFiles } from '../../helpers/source-files.ts';
import {
  ERRORS,
  ERROR_CODES,
  TalonError,
  errorExit,
  errorStatus,
  exitForStatus,
  isErrorCode,
  type ErrorCode,
} from '../../../runtime/core/errors.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;

test('every code declares an HTTP error status and an exit code', () => {
  assert.ok(ERROR_CODES.length >= 88, `${ERROR_CODES.length} codes`);
  for (const code of ERROR_CODES) {
    const spec = ERRORS[code];
    assert.ok(
      Number.isInteger(spec.status) && spec.status >= 400 && spec.status <= 599,
      `${code}: status ${spec.status}`,
    );
    assert.ok(spec.exit === 1 || spec.exit === 2, `${code}: exit ${String(spec.exit)}`);
    assert.match(code, /^[A-Z][A-Z0-9_]*$/, "the OpenAPI Error schema's pattern");
    const e = new TalonError(code, 'x');
    assert.equal(e.status, spec.status, code);
    assert.equal(e.exitCode, spec.exit, code);
  }
});

test('the statuses and exit codes of before the single table are kept (a sample)', () => {
  const pinned: Array<[ErrorCode, number, 1 | 2]> = [
    ['USAGE', 400, 2],
    ['CONFIG_INVALID', 400, 2],
    ['CONFIG_NOT_FOUND', 404, 2],
    ['STORE_LOCKED', 500, 2],
    ['PORT_IN_USE', 500, 2],
    ['HAND_NOT_FOUND', 404, 2],
    ['BAD_REQUEST', 400, 2],
    ['HAND_STATE', 409, 1],
    ['HAND_NOT_RUNNING', 503, 1],
    ['HAND_CRASHED', 500, 1],
    ['CAPABILITY_DENIED', 403, 1],
    ['QUOTA_EXCEEDED', 429, 1],
    ['METHOD_NOT_ALLOWED', 405, 1],
    ['CONFLICT', 409, 1],
    ['NET_TIMEOUT', 504, 1],
    ['NET_DNS', 502, 1],
    ['LLM_UNAVAILABLE', 503, 1],
    ['LLM_BUDGET', 429, 1],
    ['HOST_NOT_ALLOWED', 421, 1],
    ['UNSUPPORTED_MEDIA_TYPE', 415, 1],
    ['PROVISION_EXPIRED', 410, 1],
    ['PROVISION_REPLAY', 409, 1],
    ['AUDIT_BROKEN', 500, 1],
    ['AUDIT_UNAVAILABLE', 503, 1],
    ['STORE_LIMIT', 413, 1],
    ['IMAGE_NEEDS_ROOT', 500, 1],
    ['ACK_TIMEOUT', 504, 1],
    ['INTERNAL', 500, 1],
  ];
  for (const [code, status, exit] of pinned) {
    assert.deepEqual([ERRORS[code].status, ERRORS[code].exit], [status, exit], code);
  }
  // exactly the ten codes that meant "the operator's input was wrong", and the three the tools added
  // (`talon tools call` with an input that fails the schema, a tool that is not there, a shell line
  // the kernel cannot check: each is what the operator typed)
  assert.deepEqual(ERROR_CODES.filter((c) => ERRORS[c].exit === 2).sort(), [
    'BAD_REQUEST',
    'CONFIG_INVALID',
    'CONFIG_NOT_FOUND',
    'CONFIG_PARSE',
    'HAND_NOT_FOUND',
    'MANIFEST_INVALID',
    'PORT_IN_USE',
    'SHELL_SYNTAX',
    'STORE_LOCKED',
    'STORE_READONLY',
    'TOOL_BAD_INPUT',
    'TOOL_NOT_FOUND',
    'USAGE',
  ]);
});

test('a code from a newer peer (not declared here) is a 500 and exit 1, not a crash', () => {
  const e = TalonError.from({ code: 'SOMETHING_NEW', message: 'from a newer daemon' });
  assert.equal(e.status, 500);
  assert.equal(e.exitCode, 1);
  assert.equal(isErrorCode('SOMETHING_NEW'), false);
  assert.equal(isErrorCode('toString'), false, 'only own keys');
  assert.equal(isErrorCode('HAND_STATE'), true);
  assert.equal(errorStatus('SOMETHING_NEW' as ErrorCode), 500);
  assert.equal(errorExit('SOMETHING_NEW' as ErrorCode), 1);
});

test('no second table of statuses or exit codes by error code', () => {
  const offenders: string[] = [];
  for (const top of ['runtime', 'web-admin', 'provisioning', 'hands', 'drivers', 'image']) {
    for (const file of sourceFiles(join(ROOT, top))) {
      if (file.endsWith('runtime/core/errors.ts')) continue;
      const text = readFileSync(file, 'utf8');
      if (/Record<ErrorCode,|Map<ErrorCode,|Set<ErrorCode>/.test(text)) offenders.push(file.slice(ROOT.length));
    }
  }
  assert.deepEqual(offenders, [], 'derive from ERRORS in runtime/core/errors.ts instead');
});

test("an answer from the daemon exits by its status: 2 for the operator's 4xx, 1 for the rest", () => {
  assert.deepEqual([400, 404, 409, 413, 429].map(exitForStatus), [2, 2, 2, 2, 2]);
  assert.deepEqual([401, 403, 500, 502, 503, 504, 200].map(exitForStatus), [1, 1, 1, 1, 1, 1, 1]);
});
