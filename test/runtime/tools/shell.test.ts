import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TalonError } from '../../../runtime/core/errors.ts';
import { NO_CAPABILITIES } from '../../../runtime/core/grants.ts';
import type { Capabilities } from '../../../runtime/core/hand.ts';
import {
  SHELL_PATH,
  type ShellExecInput,
  type ShellExecOutput,
  checkCommandLine,
  shellTools,
} from '../../../runtime/tools/builtin/shell.ts';
import type { ToolCaller, ToolDefinition } from '../../../runtime/tools/types.ts';

const base = mkdtempSync(join(tmpdir(), 'talon-shell-'));
after(() => rmSync(base, { recursive: true, force: true }));

const tool = shellTools({})[0] as ToolDefinition<ShellExecInput, ShellExecOutput>;
let n = 0;

function caller(shell: string[], limits: Partial<Capabilities['shellLimits']> = {}): ToolCaller {
  const grants = {
    ...NO_CAPABILITIES,
    shell,
    shellLimits: { timeoutMs: 60_000, maxOutputBytes: 1024 * 1024, ...limits },
  } as Capabilities;
  return { actor: 'hand:t', hand: 't', admin: false, grants, folder: join(base, `hand-${++n}`, 'files') };
}

/** check, then run, the way the registry does */
async function call(
  c: ToolCaller,
  input: ShellExecInput,
  signal = new AbortController().signal,
): Promise<ShellExecOutput> {
  const limits = tool.check?.(input, c);
  return tool.run(input, {
    caller: c,
    signal,
    timeoutMs: limits?.timeoutMs ?? 60_000,
    maxOutputBytes: limits?.maxOutputBytes ?? 1024 * 1024,
  });
}

function refused(c: ToolCaller, command: string, code: string, subject?: string): TalonError {
  let caught: unknown;
  try {
    tool.check?.({ command }, c);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof TalonError, `${command}: expected a refusal`);
  assert.equal(caught.code, code, `${command}: ${caught.message}`);
  if (subject !== undefined) assert.equal((caught.details as { subject?: string }).subject, subject, command);
  return caught;
}

/** the process is gone (or a zombie nobody reaped yet): polled, no timing assertion */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return true;
    }
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
    await sleep(50);
  }
  return false;
}

async function waitFor(file: string): Promise<string> {
  for (let i = 0; i < 400; i++) {
    if (existsSync(file)) {
      const text = readFileSync(file, 'utf8').trim();
      if (text !== '') return text;
    }
    await sleep(25);
  }
  throw new Error(`${file} never appeared`);
}

test('a pipeline runs through /bin/sh: every stage granted', async () => {
  const c = caller(['printf', 'sort', 'head']);
  const r = await call(c, { command: "printf 'b\\na\\n' | sort | head -1" });
  assert.deepEqual(
    { exitCode: r.exitCode, stdout: r.stdout, truncated: r.truncated },
    {
      exitCode: 0,
      stdout: 'a\n',
      truncated: false,
    },
  );
  assert.equal(r.signal, null);
  assert.ok(existsSync(c.folder), 'the folder is made');
});

test('lists: ; && || run as the shell says; a non-zero exit is a result', async () => {
  const c = caller(['echo', 'false', 'true']);
  const r = await call(c, { command: 'echo one; false && echo two || echo three; true && echo four' });
  assert.equal(r.stdout, 'one\nthree\nfour\n');
  const f = await call(c, { command: 'echo out; false' });
  assert.equal(f.exitCode, 1);
  assert.equal(f.stdout, 'out\n');
});

test('redirection into the folder, then read back; /dev/null and 2>&1 are fine', async () => {
  const c = caller(['printf', 'cat', 'ls']);
  const r = await call(c, {
    command: "printf 'x y\\n' > out.txt && printf 'z\\n' >> out.txt; cat < out.txt; ls nope 2>/dev/null; ls nope2 2>&1",
  });
  assert.equal(readFileSync(join(c.folder, 'out.txt'), 'utf8'), 'x y\nz\n');
  assert.match(r.stdout, /^x y\nz\n.*nope2/s);
  assert.doesNotMatch(r.stdout, /nope[^2]/);
  const sub = await call(c, { command: "printf 'deep' > ../files/deep.txt 2> err.txt; cat deep.txt" });
  assert.equal(sub.stdout, 'deep', 'a .. that stays inside the folder is fine');
});

test('quoting: spaces and a | inside quotes are words, not a pipe', async () => {
  const c = caller(['printf']);
  const r = await call(c, { command: `printf '%s\\n' 'a | b' "c d" 'e;f' a'#'b x#y` });
  assert.equal(r.stdout, 'a | b\nc d\ne;f\na#b\nx#y\n');
  // if the quoted | were read as a pipe, `b` would be checked as a program and refused
  assert.equal(tool.check?.({ command: "printf '%s' 'a|b'" }, c)?.timeoutMs, 60_000);
});

test('compound commands: if, for, while check every command inside', async () => {
  const c = caller(['printf', 'true', 'test', '[']);
  const r = await call(c, {
    command: 'for f in a b; do printf "%s-" "$f"; done; if [ -d . ]; then printf yes; else printf no; fi',
  });
  assert.equal(r.stdout, 'a-b-yes');
  refused(c, 'for f in a; do rm $f; done', 'CAPABILITY_DENIED', 'rm');
  refused(c, 'if true; then printf x; else rm y; fi', 'CAPABILITY_DENIED', 'rm');
  refused(c, 'while true; do reboot; done', 'CAPABILITY_DENIED', 'reboot');
  refused(c, 'if true; then printf x; fi rm y', 'SHELL_SYNTAX');
});

test('refused: an ungranted program anywhere in the line', () => {
  const c = caller(['printf', 'sort', 'grep']);
  refused(c, 'printf x | rm -rf y', 'CAPABILITY_DENIED', 'rm');
  refused(c, 'printf x | sort | curl http://x', 'CAPABILITY_DENIED', 'curl');
  refused(c, 'printf x; rm y', 'CAPABILITY_DENIED', 'rm');
  refused(c, 'printf x && rm y', 'CAPABILITY_DENIED', 'rm');
  refused(c, 'printf x || rm y', 'CAPABILITY_DENIED', 'rm');
  refused(c, 'printf x & rm y', 'CAPABILITY_DENIED', 'rm');
  refused(c, 'printf x\nrm y', 'CAPABILITY_DENIED', 'rm');
  refused(c, 'printf x # a comment\nrm y', 'CAPABILITY_DENIED', 'rm');
  refused(c, 'printf a#b; rm y', 'CAPABILITY_DENIED', 'rm');
  // a backslash inside single quotes is a letter for sh (shell-quote reads it as an escape)
  refused(c, "printf 'a\\' ; rm y ; printf 'b'", 'CAPABILITY_DENIED', 'rm');
  refused(c, "printf 'a\\' ; rm y ; printf 'b'c", 'CAPABILITY_DENIED', 'rm');
  refused(c, 'printf "a\\\\" ; rm y ; printf "b"', 'CAPABILITY_DENIED', 'rm');
  // an escaped ; is a letter: one command, nothing to refuse
  assert.ok(tool.check?.({ command: 'printf x\\;rm y' }, c));
  refused(c, 'FOO=bar rm y', 'CAPABILITY_DENIED', 'rm');
  refused(c, '2>/dev/null rm y', 'CAPABILITY_DENIED', 'rm');
  refused(c, './sort', 'CAPABILITY_DENIED', './sort');
  refused(c, '/tmp/sort x', 'CAPABILITY_DENIED', '/tmp/sort');
  const e = refused(c, 'rm y', 'CAPABILITY_DENIED', 'rm');
  assert.equal((e.details as { action: string }).action, 'shell.exec');
  assert.match(e.message, /granted: printf, sort, grep/);
});

test('refused: what cannot be checked is SHELL_SYNTAX', () => {
  const c = caller(['echo', 'cat', 'ls']);
  for (const line of [
    'echo $(id)',
    'echo "$(id)"',
    'echo `id`',
    'echo "`id`"',
    'echo $((1+2))',
    'cat <(ls)',
    'ls >(cat)',
    '(ls)',
    'ls; (cat x)',
    'ls() { cat; }; ls',
    'cat <<EOF\nhi\nEOF',
    'cat <<< hi',
    "echo 'open",
    'echo "open',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell line, not a template
    'echo ${X:-y}',
    '$CMD x',
    '"$CMD" x',
    'l* x',
    'case x in x) ls;; esac',
    'sh -c "rm x"',
    'bash -c id',
    'env rm x',
    'xargs rm',
    'eval rm x',
    'exec rm x',
    '. ./script',
    'source ./script',
    'command rm x',
    'nohup rm x',
    'timeout 5 rm x',
  ]) {
    refused(c, line, 'SHELL_SYNTAX');
  }
  // granted by name, a program that runs others is allowed (the grant says so)
  const withSh = caller(['sh']);
  assert.ok(tool.check?.({ command: 'sh -c "echo hi"' }, withSh));
});

test('refused: redirection outside the folder names the path', () => {
  const c = caller(['echo', 'cat']);
  refused(c, 'echo x > /etc/x', 'CAPABILITY_DENIED', '/etc/x');
  refused(c, 'echo x > ../x', 'CAPABILITY_DENIED', '../x');
  refused(c, 'echo x >> a/../../x', 'CAPABILITY_DENIED', 'a/../../x');
  refused(c, 'cat < /etc/passwd', 'CAPABILITY_DENIED', '/etc/passwd');
  refused(c, 'echo x 2> /tmp/log', 'CAPABILITY_DENIED', '/tmp/log');
  refused(c, 'echo x &> /tmp/log', 'CAPABILITY_DENIED', '/tmp/log');
  refused(c, 'echo x >| /tmp/log', 'CAPABILITY_DENIED', '/tmp/log');
  refused(c, 'echo x >& /tmp/log', 'CAPABILITY_DENIED', '/tmp/log');
  refused(c, 'echo x > ~root/x', 'CAPABILITY_DENIED', '~root/x');
  refused(c, 'echo x > $HOME/x', 'SHELL_SYNTAX');
  refused(c, 'echo x > *.txt', 'SHELL_SYNTAX');
  // a link inside the folder that leads out of it
  const outside = join(base, `outside-${n}`);
  mkdirSync(outside, { recursive: true });
  mkdirSync(c.folder, { recursive: true });
  symlinkSync(outside, join(c.folder, 'link'));
  refused(c, 'echo x > link/y', 'CAPABILITY_DENIED', 'link/y');
  assert.ok(tool.check?.({ command: 'echo x > ~/in.txt 2>&1 >/dev/null' }, c));
});

test('refused: assignments and env that change what runs; a timeout over the grant', () => {
  const c = caller(['echo'], { timeoutMs: 5_000 });
  refused(c, 'PATH=. echo x', 'CAPABILITY_DENIED', 'PATH');
  refused(c, 'LD_PRELOAD=/tmp/x.so echo x', 'CAPABILITY_DENIED', 'LD_PRELOAD');
  refused(c, 'IFS=/ ; echo x', 'CAPABILITY_DENIED', 'IFS');
  refused(c, 'for PATH in .; do echo x; done', 'CAPABILITY_DENIED', 'PATH');
  const reads = caller(['echo', 'read', 'export', 'cd']);
  refused(reads, 'read PATH < f; echo x', 'CAPABILITY_DENIED', 'PATH');
  refused(reads, 'echo x | read -r a LD_PRELOAD', 'CAPABILITY_DENIED', 'LD_PRELOAD');
  refused(reads, 'export PATH=.', 'CAPABILITY_DENIED', 'PATH');
  assert.ok(tool.check?.({ command: 'read -r line < f; echo PATH; export GREETING=hi' }, reads));
  refused(c, 'cd /tmp; echo x > f', 'SHELL_SYNTAX');
  assert.throws(() => tool.check?.({ command: 'echo', env: { PATH: '/tmp' } }, c), { code: 'TOOL_BAD_INPUT' });
  assert.throws(() => tool.check?.({ command: 'echo', env: { LD_PRELOAD: 'x' } }, c), { code: 'TOOL_BAD_INPUT' });
  assert.throws(
    () => tool.check?.({ command: 'echo', timeoutMs: 5_001 }, c),
    (e: TalonError) => {
      return e.code === 'CAPABILITY_DENIED' && (e.details as { action: string }).action === 'shell.timeout';
    },
  );
  assert.deepEqual(tool.check?.({ command: 'echo', timeoutMs: 100 }, c), {
    timeoutMs: 100,
    maxOutputBytes: 1024 * 1024,
  });
  assert.deepEqual(tool.check?.({ command: 'echo' }, c), { timeoutMs: 5_000, maxOutputBytes: 1024 * 1024 });
});

test('programs by absolute path: equal to a granted path, or a granted name in a PATH folder', () => {
  assert.ok(tool.check?.({ command: '/usr/bin/sort x' }, caller(['/usr/bin/sort'])));
  assert.ok(tool.check?.({ command: '/usr/bin/sort x' }, caller(['sort'])));
  refused(caller(['/usr/bin/sort']), '/usr/bin/head x', 'CAPABILITY_DENIED', '/usr/bin/head');
  refused(caller(['sort']), '/opt/evil/sort x', 'CAPABILITY_DENIED', '/opt/evil/sort');
});

test('the environment is scrubbed: PATH, HOME, LANG and the input env only', async () => {
  process.env.TALON_TEST_SECRET = 's3cret';
  try {
    const c = caller(['printf']);
    const r = await call(c, {
      command: 'printf "%s|%s|%s|%s|%s" "$TALON_TEST_SECRET" "$PATH" "$HOME" "$LANG" "$EXTRA"',
      env: { EXTRA: 'given' },
    });
    assert.equal(r.stdout, `|${SHELL_PATH}|${c.folder}|C.UTF-8|given`);
  } finally {
    delete process.env.TALON_TEST_SECRET;
  }
});

test('stdin is fed to the line', async () => {
  const r = await call(caller(['sort']), { command: 'sort', stdin: 'b\na\n' });
  assert.equal(r.stdout, 'a\nb\n');
});

test('a timeout kills the whole process group', async () => {
  const c = caller(['sleep', 'echo']);
  mkdirSync(c.folder, { recursive: true });
  await assert.rejects(call(c, { command: 'sleep 30 & echo $! > child.pid; sleep 30', timeoutMs: 1_000 }), (e) => {
    assert.ok(e instanceof TalonError);
    assert.equal(e.code, 'TOOL_TIMEOUT');
    return true;
  });
  const child = Number(await waitFor(join(c.folder, 'child.pid')));
  assert.ok(child > 0);
  assert.ok(await gone(child), `the background sleep ${child} was killed with its group`);
});

test('an abort kills the group; a process that ignores SIGTERM gets SIGKILL', async () => {
  const c = caller(['sleep', 'echo', 'trap']);
  mkdirSync(c.folder, { recursive: true });
  const ac = new AbortController();
  const running = call(
    c,
    { command: "trap '' TERM; echo $$ > sh.pid; sleep 30 & echo $! > child.pid; sleep 30" },
    ac.signal,
  );
  const sh = Number(await waitFor(join(c.folder, 'sh.pid')));
  const child = Number(await waitFor(join(c.folder, 'child.pid')));
  ac.abort();
  await assert.rejects(running, (e) => e instanceof TalonError && e.code === 'TOOL_FAILED');
  assert.ok(await gone(sh), 'the shell is gone');
  assert.ok(await gone(child), 'its child is gone');
});

test('what a finished line left in the background is killed', async () => {
  const c = caller(['sleep', 'echo']);
  const r = await call(c, { command: 'sleep 30 >/dev/null 2>&1 & echo $!' });
  const bg = Number(r.stdout.trim());
  assert.ok(bg > 0);
  assert.ok(await gone(bg), `the background sleep ${bg} did not outlive its shell`);
});

test('the output cap stops the line: truncated, the group killed', async () => {
  const c = caller(['yes', 'echo'], { maxOutputBytes: 1000 });
  const r = await call(c, { command: 'echo start; yes' });
  assert.equal(r.truncated, true);
  assert.equal(Buffer.byteLength(r.stdout) + Buffer.byteLength(r.stderr), 1000);
  assert.ok(r.stdout.startsWith('start\ny\ny\n'));
  assert.equal(r.exitCode, null);
  assert.ok(r.signal === 'SIGTERM' || r.signal === 'SIGKILL');
});

test('differential: whatever the check lets through, /bin/sh runs only granted programs', () => {
  // stub programs a, b (granted) and c, d (not) log their name when sh runs them; random lines
  // from shell fragments are checked, and those let through are run by the real /bin/sh
  const dir = join(base, 'differential');
  const bin = join(dir, 'bin');
  const folder = join(dir, 'files');
  mkdirSync(bin, { recursive: true });
  mkdirSync(folder, { recursive: true });
  const log = join(dir, 'log');
  for (const p of ['a', 'b', 'c', 'd']) {
    writeFileSync(join(bin, p), `#!/bin/sh\necho ${p} >> "$STUB_LOG"\nexit 1\n`, { mode: 0o755 });
  }
  const fragments: string[] = [
    'a',
    'b',
    'c',
    'd',
    'x',
    "'c'",
    '"d"',
    '\\c',
    'c#',
    '#c',
    'a#c',
    ';',
    '|',
    '||',
    '&&',
    '&',
    '\n',
    '>f',
    '2>&1',
    '<f',
    'if',
    'then',
    'else',
    'fi',
    'for',
    'in',
    'do',
    'done',
    'while',
    '!',
    '{',
    '}',
    "'",
    '"',
    '\\',
    '\\\n',
    'X=c',
    '$X',
    '*',
    "'a;c'",
    '"a|c"',
    '"a\\"',
    "'a\\'",
    '\t',
    '\r',
    ' ',
    '  ',
    'a\\ c',
    '\\;',
    '\\|c',
    '"',
  ];
  // mulberry32: a seeded generator, so a failure replays
  let seed = 42;
  const rnd = (k: number): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % k;
  };

  // granted programs and separators often, so that many lines pass the check and run
  for (let k = 0; k < 6; k++) fragments.push('a', 'b', ';', '|', '&&', '\n');
  let accepted = 0;
  let ran = 0;
  for (let i = 0; i < 3000; i++) {
    const len = 1 + rnd(10);
    let line = '';
    for (let j = 0; j < len; j++) line += (rnd(3) === 0 ? '' : ' ') + fragments[rnd(fragments.length)];
    try {
      checkCommandLine(line, ['a', 'b'], folder);
    } catch (err) {
      assert.ok(err instanceof TalonError && ['SHELL_SYNTAX', 'CAPABILITY_DENIED'].includes(err.code), String(err));
      continue;
    }
    accepted++;
    writeFileSync(log, '');
    spawnSync('/bin/sh', ['-c', line], {
      cwd: folder,
      env: { PATH: `${bin}:/usr/bin:/bin`, STUB_LOG: log },
      timeout: 3_000,
      stdio: 'ignore',
    });
    const runs = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    if (runs.length > 0) ran++;
    for (const p of runs) assert.ok(p === 'a' || p === 'b', `${JSON.stringify(line)} was let through and ran ${p}`);
  }
  // the fragments must have produced real work, or the test proves nothing
  assert.ok(accepted > 200, `only ${accepted} lines were let through`);
  assert.ok(ran > 100, `only ${ran} lines ran a stub`);
});
