/**
 * `shell.exec`: one command line through `/bin/sh -c`, so pipes, `;`, `&&`, `||`, redirection,
 * quoting and globs work as a person types them, with the shell grant checked on every command
 * of the line before anything runs.
 *
 * The check (non-admin callers; see `checkCommandLine`):
 *   - the line is read with shell-quote after a quote-aware pre-scan that refuses, with
 *     SHELL_SYNTAX, what the kernel cannot check: command substitution `$(…)` and backticks,
 *     arithmetic `$((…))`, process substitution `<(…)` `>(…)`, here-documents `<<`, subshell
 *     and function parentheses, `case`, parameter expansion with operators (`${X:-…}`), bad
 *     quoting; unquoted newlines count as `;`, comments are dropped, a `#` inside a word is kept;
 *   - every command (the first word of the line and after `|`, `||`, `&&`, `;`, `&`, and after
 *     the keywords `if then else elif do while until ! {`; `VAR=value` assignments skipped)
 *     must be granted: a bare name by `grants.shell` holding that name, an absolute path by the
 *     same absolute path (or a bare grant of its name when it lies in a PATH folder); a program
 *     that runs other programs (`sh`, `env`, `xargs`, `eval`, …, see RUNS_OTHERS) is refused
 *     with SHELL_SYNTAX unless it is granted itself, since what it runs cannot be checked;
 *   - a program named through a variable, a glob or a relative path is refused;
 *   - every redirection target must be a literal path inside the caller's folder (resolved from
 *     it, links followed) or /dev/null, /dev/stdout, /dev/stderr; `2>&1`-style descriptor copies
 *     are fine;
 *   - assignments to variables that change what runs (PATH, LD_*, IFS, ENV, BASH_ENV, HOME, …)
 *     are refused, in the line (`VAR=x`, `for VAR`, a granted `read VAR` or `export VAR=x`) as
 *     in the input's `env`;
 *   - `cd`, `pushd`, `popd` are refused unless granted by name: after them a relative
 *     redirection would land elsewhere than the check saw.
 * What the programs do with their arguments is theirs: a granted `cat` reads any file the
 * daemon's user may read. Grant programs, not intentions.
 *
 * The run: working folder = `caller.folder` (created), environment scrubbed to PATH, HOME (the
 * folder), LANG and the input's `env`; the shell heads its own process group (`detached`), so a
 * timeout, an abort or the output cap kills the whole group (SIGTERM, SIGKILL 2 s later), and
 * what a finished line left running in the background is killed when the shell exits. A
 * non-zero exit is a result; stdout and stderr together stop at the output cap (`truncated`).
 */
import { spawn } from 'node:child_process';
import { basename, dirname, isAbsolute, normalize } from 'node:path';
import { parse } from 'shell-quote';
import type { Clock } from '../../core/clock.ts';
import { systemClock } from '../../core/clock.ts';
import { TalonError } from '../../core/errors.ts';
import { SHELL_DEFAULTS } from '../../core/grants.ts';
import type { Capabilities } from '../../core/hand.ts';
import type { ToolCaller, ToolDefinition } from '../types.ts';
import { ensureFolder, resolveInside } from './files.ts';

/** the only PATH a command line sees */
export const SHELL_PATH = '/usr/local/bin:/usr/bin:/bin';
const PATH_DIRS = SHELL_PATH.split(':');
export const MAX_COMMAND_BYTES = 8 * 1024;
/** after SIGTERM, how long the group has before SIGKILL */
export const KILL_GRACE_MS = 2_000;

/**
 * Programs and builtins that run a command given to them as words or text, so a grant of
 * anything else would mean nothing once they run: refused (SHELL_SYNTAX) unless granted by name.
 */
export const RUNS_OTHERS: ReadonlySet<string> = new Set([
  'eval',
  'exec',
  'source',
  '.',
  'command',
  'builtin',
  'env',
  'xargs',
  'sh',
  'bash',
  'dash',
  'zsh',
  'ksh',
  'fish',
  'busybox',
  'nohup',
  'timeout',
  'time',
  'nice',
  'ionice',
  'chroot',
  'sudo',
  'su',
  'doas',
  'runuser',
  'setsid',
  'stdbuf',
  'unbuffer',
  'watch',
  'flock',
  'taskset',
  'chrt',
  'strace',
  'ltrace',
  'unshare',
  'nsenter',
  'script',
  'parallel',
  'trap',
  'alias',
  'fc',
]);

/** builtins after which redirections resolve elsewhere: refused (SHELL_SYNTAX) unless granted by name */
export const MOVES_FOLDER: ReadonlySet<string> = new Set(['cd', 'pushd', 'popd']);

/** builtins whose arguments name variables they set: PATH and the like are refused there too */
const SETS_VARIABLES: ReadonlySet<string> = new Set([
  'read',
  'getopts',
  'export',
  'readonly',
  'local',
  'declare',
  'typeset',
  'unset',
]);

/** variables a line or the input's env may not set: they change which program runs or what it loads */
export function forbiddenVariable(name: string): boolean {
  return (
    /^(PATH|HOME|IFS|ENV|BASH_ENV|CDPATH|SHELLOPTS|BASHOPTS|PS4|GCONV_PATH|NODE_OPTIONS|PERL5OPT|PERL5LIB|PYTHONSTARTUP|PYTHONPATH|LESSOPEN|LESSCLOSE|GIT_SSH|GIT_SSH_COMMAND|GIT_EXEC_PATH|GIT_EXTERNAL_DIFF|PAGER|EDITOR|VISUAL)$/.test(
      name,
    ) || /^(LD_|BASH_FUNC_)/.test(name)
  );
}

const KEYWORDS_BEFORE_COMMAND = new Set(['if', 'then', 'else', 'elif', 'do', 'while', 'until', '!', '{']);
const KEYWORDS_CLOSING = new Set(['fi', 'done', '}']);
const KEYWORDS_REFUSED = new Set(['case', 'esac', 'in', 'function', 'select', '[[', ']]', 'coproc']);
const SEPARATORS = new Set(['|', '||', '&&', ';', '&', '|&']);
const REDIRECTS = new Set(['>', '>>', '<', '>&', '<&']);
const SPECIAL_FILES = new Set(['/dev/null', '/dev/stdout', '/dev/stderr']);

function syntax(message: string, construct: string): TalonError {
  return new TalonError('SHELL_SYNTAX', `shell.exec: ${message}`, { details: { construct } });
}

/** a quoted part of a word, as shell-quote sees it: letters it has no rule for */
const MARK_OPEN = '\u0001';
const MARK_CLOSE = '\u0002';
const MARKS = /\u0001(\d+)\u0002/g;

/**
 * Refuse what cannot be checked, and rewrite the line for shell-quote so that it splits it into
 * commands the way /bin/sh does: comments dropped, unquoted newlines as ` ; `, line
 * continuations joined, and every quoted part ('…', "…", \x) replaced by a mark that stands for
 * its letters (`parts[n]`). shell-quote then never sees a quote or a backslash, where its
 * regular expressions and sh disagree (it reads \' inside single quotes as an escape).
 */
export function prescan(line: string): { text: string; parts: string[] } {
  let out = '';
  const parts: string[] = [];
  const mark = (letters: string): void => {
    out += `${MARK_OPEN}${parts.length}${MARK_CLOSE}`;
    parts.push(letters);
  };
  let i = 0;
  let wordStart = true;
  const n = line.length;
  const brace = (at: number): number => {
    const end = line.indexOf('}', at);
    const inner = end < 0 ? '' : line.slice(at + 2, end);
    if (!/^(#?[A-Za-z_][A-Za-z0-9_]*|[0-9]|[@*#?$!-])$/.test(inner)) {
      throw syntax(
        `"${line.slice(at, end < 0 ? at + 12 : end + 1)}": only plain \${NAME} expansions can be checked; ` +
          'write $NAME or set a default in an earlier command',
        'parameter expansion',
      );
    }
    return end + 1;
  };
  if (line.includes(MARK_OPEN) || line.includes(MARK_CLOSE)) {
    throw syntax('the control characters \\x01 and \\x02 are not allowed in a command line', 'control character');
  }
  while (i < n) {
    const c = line[i] as string;
    const next = line[i + 1];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw syntax('a single quote is not closed', 'quote');
      mark(line.slice(i + 1, end));
      i = end + 1;
      wordStart = false;
      continue;
    }
    if (c === '"') {
      let letters = '';
      i++;
      for (;;) {
        if (i >= n) throw syntax('a double quote is not closed', 'quote');
        const d = line[i] as string;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\') {
          const e = line[i + 1];
          if (e === '\n') {
            i += 2;
            continue;
          }
          // inside "…" a backslash escapes only $ ` " \ (POSIX 2.2.3); before anything else it is a letter
          if (e === '$' || e === '`' || e === '"' || e === '\\') {
            letters += e;
            i += 2;
            continue;
          }
          letters += d;
          i++;
          continue;
        }
        if (d === '`') throw syntax('command substitution with backticks cannot be checked', '`…`');
        if (d === '$' && line[i + 1] === '(') throw syntax('command substitution $(…) cannot be checked', '$(…)');
        if (d === '$' && line[i + 1] === '{') {
          const end = brace(i);
          letters += line.slice(i, end);
          i = end;
          continue;
        }
        letters += d;
        i++;
      }
      mark(letters);
      wordStart = false;
      continue;
    }
    if (c === '\\') {
      if (next === '\n') {
        i += 2;
        continue;
      }
      if (next === undefined) throw syntax('the line ends with a backslash', '\\');
      mark(next);
      i += 2;
      wordStart = false;
      continue;
    }
    if (c === '`') throw syntax('command substitution with backticks cannot be checked', '`…`');
    if (c === '$' && next === '(') throw syntax('command substitution $(…) cannot be checked', '$(…)');
    if (c === '$' && next === '{') {
      const end = brace(i);
      out += line.slice(i, end);
      i = end;
      wordStart = false;
      continue;
    }
    if ((c === '<' || c === '>') && next === '(') throw syntax('process substitution cannot be checked', `${c}(…)`);
    if (c === '<' && next === '<') throw syntax('here-documents (<<) are not supported; pass the text as stdin', '<<');
    if (c === '#') {
      if (wordStart) {
        while (i < n && line[i] !== '\n') i++;
        continue;
      }
      mark('#');
      i++;
      continue;
    }
    if (c === '\n') {
      out += ' ; ';
      i++;
      wordStart = true;
      continue;
    }
    out += c;
    i++;
    wordStart = c === ' ' || c === '\t' || ';&|()<>'.includes(c);
  }
  return { text: out, parts };
}

type Token = string | { op: string; pattern?: string } | { comment: string };

function programDenied(program: string, why: string): TalonError {
  return new TalonError('CAPABILITY_DENIED', `shell.exec: ${why}`, {
    details: { action: 'shell.exec', subject: program },
  });
}

/** Is `program` (a command word as the shell will see it) granted? Throws when not. */
export function checkProgram(program: string, granted: readonly string[]): void {
  if (program === '') throw syntax('an empty command name', 'empty command');
  if (/[$`]/.test(program)) {
    throw syntax(`the program "${program}" is named through a variable; name it literally`, 'variable command');
  }
  if (program !== '[' && /[*?[\]]/.test(program)) {
    throw syntax(`the program "${program}" is a glob; name it literally`, 'glob command');
  }
  const name = basename(program);
  const byName = granted.includes(name) && !name.includes('/');
  let ok: boolean;
  if (program.includes('/')) {
    if (!isAbsolute(program)) {
      throw programDenied(program, `"${program}" is a relative path; grant and call programs by name or absolute path`);
    }
    const p = normalize(program);
    ok = granted.some((g) => isAbsolute(g) && normalize(g) === p) || (byName && PATH_DIRS.includes(dirname(p)));
  } else {
    ok = granted.includes(program);
  }
  if (ok) return;
  if (MOVES_FOLDER.has(name)) {
    throw new TalonError(
      'SHELL_SYNTAX',
      `shell.exec: "${program}" changes the working folder, after which redirections could not be checked; ` +
        'it works only when granted by name itself',
      { details: { construct: 'changes the working folder', program } },
    );
  }
  if (RUNS_OTHERS.has(name)) {
    throw new TalonError(
      'SHELL_SYNTAX',
      `shell.exec: "${program}" runs other commands the kernel cannot check; it works only when granted by name itself`,
      { details: { construct: 'runs other commands', program } },
    );
  }
  const list = granted.length > 0 ? granted.join(', ') : 'none';
  throw programDenied(program, `"${program}" is not in the shell grant (granted: ${list})`);
}

function checkTarget(target: string, folder: string, op: string): void {
  if (SPECIAL_FILES.has(target)) return;
  if (/[$`]/.test(target)) {
    throw syntax(`the redirection target "${target}" uses a variable; write the path literally`, 'variable target');
  }
  if (/[*?[\]]/.test(target)) {
    throw syntax(`the redirection target "${target}" is a glob; write the path literally`, 'glob target');
  }
  let path = target;
  if (path === '~' || path.startsWith('~/')) path = path === '~' ? '.' : path.slice(2);
  else if (path.startsWith('~')) {
    throw new TalonError('CAPABILITY_DENIED', `shell.exec: "${op} ${target}" names another user's home`, {
      details: { action: 'shell.redirect', subject: target },
    });
  }
  try {
    resolveInside(folder, path, 'shell.redirect');
  } catch (err) {
    if (err instanceof TalonError && err.code === 'CAPABILITY_DENIED') {
      throw new TalonError(
        'CAPABILITY_DENIED',
        `shell.exec: "${op} ${target}" goes outside the caller's folder; redirect to files inside it or /dev/null`,
        { details: { action: 'shell.redirect', subject: target } },
      );
    }
    throw err;
  }
}

function isWord(t: Token | undefined): t is string {
  return typeof t === 'string';
}

function opOf(t: Token | undefined): string | undefined {
  return t !== undefined && typeof t === 'object' && 'op' in t ? t.op : undefined;
}

/**
 * The whole check of one command line against a shell grant, for a caller whose folder is
 * `folder`. Throws SHELL_SYNTAX or CAPABILITY_DENIED; returns the programs it found.
 */
export function checkCommandLine(line: string, granted: readonly string[], folder: string): string[] {
  const { text, parts } = prescan(line);
  const letters = (w: string): string => w.replace(MARKS, (_, k: string) => parts[Number(k)] ?? '');
  const tokens = (parse(text, (key) => `$${key}`) as Token[]).map((t) =>
    typeof t === 'string'
      ? letters(t)
      : 'pattern' in t && t.pattern !== undefined
        ? { ...t, pattern: letters(t.pattern) }
        : t,
  );
  const programs: string[] = [];
  let expectCommand = true;
  /** after fi/done/}: only a separator or a redirection may follow */
  let closed = false;
  /** inside `for NAME [in WORDS]`: 'name' then 'words' until a separator */
  let forState: 'name' | 'words' | null = null;
  /** the current command is `read`, `export`, …: its words name variables */
  let setsVariables = false;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t === undefined) continue;
    if (typeof t === 'object' && 'comment' in t) continue;
    const op = opOf(t);
    if (op !== undefined && op !== 'glob') {
      if (SEPARATORS.has(op)) {
        if (forState === 'name' || (forState === 'words' && op !== ';')) {
          throw syntax('a `for` loop must read `for NAME in WORDS; do …; done`', 'for');
        }
        forState = null;
        expectCommand = true;
        closed = false;
        setsVariables = false;
        continue;
      }
      if (op === '(' || op === ')') {
        throw syntax('subshells, functions and `case` patterns (parentheses) cannot be checked', '( )');
      }
      if (op === ';;') throw syntax('`case` is not supported', 'case');
      if (op === '<(') throw syntax('process substitution cannot be checked', '<(…)');
      if (op === '<<<') throw syntax('here-strings (<<<) are not supported; pass the text as stdin', '<<<');
      if (REDIRECTS.has(op)) {
        let shown = op;
        let next = tokens[i + 1];
        // `>|` (clobber) and `<>` (read-write) come out of shell-quote as two operators
        if ((op === '>' && opOf(next) === '|') || (op === '<' && opOf(next) === '>')) {
          shown += opOf(next);
          i++;
          next = tokens[i + 1];
        }
        if (opOf(next) === 'glob') {
          const pattern = (next as { pattern: string }).pattern;
          throw syntax(`the redirection target "${pattern}" is a glob; write the path literally`, 'glob target');
        }
        if (!isWord(next)) throw syntax(`"${shown}" needs a file name after it`, 'redirection');
        i++;
        if ((op === '>&' || op === '<&') && /^([0-9]+|-)$/.test(next)) continue; // 2>&1, >&-
        checkTarget(next, folder, shown);
        continue;
      }
      throw syntax(`the operator "${op}" is not supported`, op);
    }
    // a word (a glob is a word too)
    const word = isWord(t) ? t : ((t as { pattern?: string }).pattern ?? '');
    if (forState === 'name') {
      if (!isWord(t) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(word)) {
        throw syntax(`"for ${word}": the loop variable must be a plain name`, 'for');
      }
      if (forbiddenVariable(word)) {
        throw new TalonError('CAPABILITY_DENIED', `shell.exec: a loop may not set ${word}`, {
          details: { action: 'shell.env', subject: word },
        });
      }
      forState = 'words';
      continue;
    }
    if (forState === 'words') continue;
    if (closed) throw syntax(`"${word}" after a closing keyword; separate commands with ; or a new line`, 'keyword');
    if (!expectCommand) {
      const name = setsVariables && isWord(t) ? /^([A-Za-z_][A-Za-z0-9_]*)(=|$)/.exec(t)?.[1] : undefined;
      if (name !== undefined && forbiddenVariable(name)) {
        throw new TalonError('CAPABILITY_DENIED', `shell.exec: a command line may not set ${name}`, {
          details: { action: 'shell.env', subject: name },
        });
      }
      continue;
    }
    // an fd number before a redirection (`2>/dev/null cmd`)
    if (isWord(t) && /^[0-9]+$/.test(t) && REDIRECTS.has(opOf(tokens[i + 1]) ?? '')) continue;
    if (isWord(t)) {
      const assignment = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(t);
      if (assignment) {
        const name = assignment[1] as string;
        if (forbiddenVariable(name)) {
          throw new TalonError('CAPABILITY_DENIED', `shell.exec: a command line may not set ${name}`, {
            details: { action: 'shell.env', subject: name },
          });
        }
        continue;
      }
      if (KEYWORDS_BEFORE_COMMAND.has(t)) continue;
      if (KEYWORDS_CLOSING.has(t)) {
        expectCommand = false;
        closed = true;
        continue;
      }
      if (t === 'for') {
        forState = 'name';
        continue;
      }
      if (KEYWORDS_REFUSED.has(t)) throw syntax(`"${t}" is not supported`, t);
    }
    if (!isWord(t) && word !== '[') {
      throw syntax(`the program "${word}" is a glob; name it literally`, 'glob command');
    }
    checkProgram(word, granted);
    programs.push(word);
    expectCommand = false;
    setsVariables = SETS_VARIABLES.has(basename(word));
  }
  if (forState !== null) throw syntax('a `for` loop must read `for NAME in WORDS; do …; done`', 'for');
  return programs;
}

export interface ShellExecInput {
  command: string;
  stdin?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export interface ShellExecOutput {
  /** the shell's exit code; null when it was killed */
  exitCode: number | null;
  /** the signal that killed it (SIGTERM, SIGKILL) or null */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** output stopped at the cap (the group was killed) */
  truncated: boolean;
  ms: number;
}

const ENV_NAME = '^[A-Z_][A-Z0-9_]*$';

function shellLimitsOf(grants: Capabilities): { timeoutMs: number; maxOutputBytes: number } {
  const l = (grants as Partial<Capabilities>).shellLimits;
  return {
    timeoutMs: l?.timeoutMs ?? SHELL_DEFAULTS.timeoutMs,
    maxOutputBytes: l?.maxOutputBytes ?? SHELL_DEFAULTS.maxOutputBytes,
  };
}

function checkEnv(env: Record<string, string> | undefined): void {
  for (const name of Object.keys(env ?? {})) {
    if (!new RegExp(ENV_NAME).test(name) || forbiddenVariable(name)) {
      throw new TalonError(
        'TOOL_BAD_INPUT',
        `shell.exec: the variable "${name}" cannot be set (names are A-Z, 0-9, _; PATH, HOME, LD_*, IFS, ENV and ` +
          'others that change what runs are fixed)',
        { details: { errors: [{ path: `/env/${name}`, message: 'not allowed' }] } },
      );
    }
  }
}

/** Kill a process group; false when it is gone already. */
function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

export function shellTools(deps: { clock?: Clock } = {}): ToolDefinition[] {
  const clock = deps.clock ?? systemClock;

  const exec: ToolDefinition<ShellExecInput, ShellExecOutput> = {
    name: 'shell.exec',
    description:
      'Run one command line with /bin/sh -c in the caller\'s folder: pipes, ";", "&&", "||", redirection into ' +
      'the folder, quoting and globs work. Every program of the line must be in the shell grant; $(…), backticks, ' +
      'subshells and here-documents are refused. Returns exitCode, stdout, stderr (cut at the output cap: ' +
      'truncated) and ms; a non-zero exit is an answer, not an error.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['command'],
      properties: {
        command: { type: 'string', minLength: 1, maxLength: MAX_COMMAND_BYTES, description: 'the command line' },
        stdin: {
          type: 'string',
          maxLength: 10 * 1024 * 1024,
          description: 'text fed to the line as its standard input (default: none; at most 10 MiB)',
        },
        timeoutMs: {
          type: 'integer',
          minimum: 1,
          description: "stop the line after this many ms (at most the shell grant's timeout, which is the default)",
        },
        env: {
          type: 'object',
          description: 'extra environment variables (PATH, HOME, LD_*, IFS and the like cannot be set)',
          // PATH, HOME, LD_* and the like: refused by the check, with a message that says why
          propertyNames: { pattern: ENV_NAME },
          additionalProperties: { type: 'string' },
        },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['exitCode', 'signal', 'stdout', 'stderr', 'truncated', 'ms'],
      properties: {
        exitCode: { type: ['integer', 'null'] },
        signal: { type: ['string', 'null'] },
        stdout: { type: 'string' },
        stderr: { type: 'string' },
        truncated: { type: 'boolean' },
        ms: { type: 'number' },
      },
    },
    // the grant is the control: a Hand whose every line needs a person lists shell.exec in tools.approve
    annotations: {
      title: 'Run a shell command line',
      readOnlyHint: false,
      destructiveHint: false,
      idempotentHint: false,
      openWorldHint: false,
    },
    capability: 'shell: every program of the line; shellLimits: its timeout and output cap',
    timeoutMs: SHELL_DEFAULTS.timeoutMs,
    maxOutputBytes: SHELL_DEFAULTS.maxOutputBytes,
    check(input, caller) {
      const limits = shellLimitsOf(caller.grants);
      if (Buffer.byteLength(input.command) > MAX_COMMAND_BYTES) {
        throw new TalonError('TOOL_BAD_INPUT', `shell.exec: the command line is over ${MAX_COMMAND_BYTES} bytes`, {
          details: { errors: [{ path: '/command', message: `over ${MAX_COMMAND_BYTES} bytes` }] },
        });
      }
      checkEnv(input.env);
      if (input.timeoutMs !== undefined && input.timeoutMs > limits.timeoutMs) {
        throw new TalonError(
          'CAPABILITY_DENIED',
          `shell.exec: timeoutMs ${input.timeoutMs} is over the shell grant's ${limits.timeoutMs} ms`,
          { details: { action: 'shell.timeout', subject: String(input.timeoutMs), limit: limits.timeoutMs } },
        );
      }
      checkCommandLine(input.command, caller.grants.shell ?? [], caller.folder);
      return { timeoutMs: input.timeoutMs ?? limits.timeoutMs, maxOutputBytes: limits.maxOutputBytes };
    },
    run(input, ctx) {
      checkEnv(input.env);
      return runLine(input, ctx.caller, ctx.signal, {
        // a timer longer than 2^31-1 ms would fire at once
        timeoutMs: Math.min(input.timeoutMs ?? ctx.timeoutMs, ctx.timeoutMs, 2_147_483_647),
        maxOutputBytes: ctx.maxOutputBytes,
        clock,
      });
    },
  };
  return [exec as ToolDefinition];
}

function runLine(
  input: ShellExecInput,
  caller: ToolCaller,
  signal: AbortSignal,
  o: { timeoutMs: number; maxOutputBytes: number; clock: Clock },
): Promise<ShellExecOutput> {
  const { clock } = o;
  return new Promise<ShellExecOutput>((resolvePromise, reject) => {
    if (signal.aborted) {
      reject(abortError(signal.reason));
      return;
    }
    let folder: string;
    try {
      folder = ensureFolder(caller);
    } catch (err) {
      reject(
        new TalonError(
          'TOOL_FAILED',
          `shell.exec: the folder ${caller.folder} cannot be made: ${(err as Error).message}`,
        ),
      );
      return;
    }
    const started = clock.now();
    const env: Record<string, string> = { ...input.env, PATH: SHELL_PATH, HOME: folder, LANG: 'C.UTF-8' };
    const child = spawn('/bin/sh', ['-c', input.command], {
      cwd: folder,
      env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let bytes = 0;
    let truncated = false;
    /** why the group was stopped: the error to reject with, or 'cap' */
    let stopped: TalonError | 'cap' | null = null;
    let killTimer: unknown;
    let deadline: unknown;
    const pid = child.pid;

    const stop = (why: TalonError | 'cap'): void => {
      if (stopped !== null || pid === undefined) return;
      stopped = why;
      if (killGroup(pid, 'SIGTERM')) killTimer = clock.setTimeout(() => killGroup(pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    const onAbort = (): void => stop(abortError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    deadline = clock.setTimeout(
      () =>
        stop(
          new TalonError('TOOL_TIMEOUT', `shell.exec: the command line ran past ${o.timeoutMs} ms and was killed`, {
            details: { timeoutMs: o.timeoutMs },
          }),
        ),
      o.timeoutMs,
    );

    const take = (into: Buffer[]) => (chunk: Buffer) => {
      if (truncated) return;
      const room = o.maxOutputBytes - bytes;
      if (chunk.length > room) {
        if (room > 0) into.push(chunk.subarray(0, room));
        bytes = o.maxOutputBytes;
        truncated = true;
        stop('cap');
        return;
      }
      into.push(chunk);
      bytes += chunk.length;
    };
    child.stdout.on('data', take(out));
    child.stderr.on('data', take(err));
    child.stdin.on('error', () => {}); // EPIPE: the line did not read its input
    child.stdin.end(input.stdin ?? '');

    // the shell is done: what it left running in the background goes with it
    child.on('exit', () => {
      if (pid !== undefined) killGroup(pid, 'SIGKILL');
    });
    const finish = (): void => {
      clock.clearTimeout(deadline);
      clock.clearTimeout(killTimer);
      signal.removeEventListener('abort', onAbort);
    };
    child.on('error', (e) => {
      finish();
      if (pid !== undefined) killGroup(pid, 'SIGKILL');
      reject(new TalonError('TOOL_FAILED', `shell.exec: /bin/sh could not run: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, sig) => {
      finish();
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (stopped instanceof TalonError) {
        // what the line printed before it was killed helps the caller see where it hung
        const partial = { stdout: stdout.slice(0, 4096), stderr: stderr.slice(0, 4096) };
        const details = typeof stopped.details === 'object' && stopped.details !== null ? stopped.details : {};
        reject(new TalonError(stopped.code, stopped.message, { details: { ...details, ...partial }, cause: stopped }));
        return;
      }
      resolvePromise({ exitCode: code, signal: sig, stdout, stderr, truncated, ms: clock.now() - started });
    });
  });
}

function abortError(reason: unknown): TalonError {
  if (reason instanceof TalonError) return reason;
  return new TalonError('TOOL_FAILED', 'shell.exec: the call was cancelled and the command line killed', {
    details: {},
  });
}

/** For tests and listings: does a grant let `program` run (no throw)? */
export function programGranted(program: string, granted: readonly string[]): boolean {
  try {
    checkProgram(program, granted);
    return true;
  } catch {
    return false;
  }
}
