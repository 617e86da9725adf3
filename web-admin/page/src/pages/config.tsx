/**
 * The config editor: pretty JSON, validated as you type (JSON syntax here, the schema on the
 * device: ajv needs eval, which the page's CSP forbids), diff before apply, generations and
 * roll back.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { refreshSystemSoon } from '../system.ts';
import { ApiError, fieldErrors, get, message, post, put, q, type FieldError } from '../api.ts';
import { time } from '../chart.tsx';
import type { PageProps } from '../system.ts';

interface Current {
  generation: number;
  hash?: string;
  appliedAt?: number | string;
  actor?: string;
  source?: string;
  config: unknown;
}

interface Generation {
  generation: number;
  hash?: string;
  appliedAt?: number | string;
  actor?: string;
  source?: string;
}

export const VALIDATE_DEBOUNCE_MS = 300;

/** a JSON.parse error as a path-less field error, with the line and column when the engine says the position */
export function jsonProblem(text: string): FieldError | null {
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    const msg = (err as Error).message;
    const m = /position (\d+)/.exec(msg);
    if (!m) return { path: '(JSON)', message: msg };
    const pos = Number(m[1]);
    const before = text.slice(0, pos).split('\n');
    return {
      path: '(JSON)',
      message: `${msg} (line ${before.length}, column ${before[before.length - 1]!.length + 1})`,
    };
  }
}

const when = (t: number | string | undefined): string => (typeof t === 'number' ? time(t) : (t ?? ''));

export function Config({ user }: PageProps) {
  const admin = user.role === 'admin';
  const [current, setCurrent] = useState<Current | null>(null);
  const [text, setText] = useState('');
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [checking, setChecking] = useState(false);
  const [diff, setDiff] = useState<{ changed: boolean; diff: string; sections?: string[] } | null>(null);
  const [status, setStatus] = useState<{ text: string; kind: 'ok' | 'error' | 'conflict' } | null>(null);
  const [gens, setGens] = useState<Generation[]>([]);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const seq = useRef(0);

  const load = async (): Promise<void> => {
    try {
      const c = await get<Current>('/api/v1/config');
      setCurrent(c);
      setText(JSON.stringify(c.config, null, 2));
      setErrors([]);
      setDiff(null);
      const g = await get<{ generations: Generation[] }>(`/api/v1/config/generations${q({ limit: 20 })}`);
      setGens(g.generations);
    } catch (e) {
      setStatus({ text: message(e), kind: 'error' });
    }
  };
  useEffect(() => {
    void load();
    return () => {
      if (timer.current) clearTimeout(timer.current);
    };
  }, []);

  const validate = async (value: string): Promise<void> => {
    const mine = ++seq.current;
    const syntax = jsonProblem(value);
    if (syntax) {
      setErrors([syntax]);
      setChecking(false);
      return;
    }
    if (!admin) return;
    try {
      const r = await post<{ ok: boolean; errors: FieldError[] }>('/api/v1/config/validate', {
        config: JSON.parse(value),
      });
      if (mine === seq.current) setErrors(r.ok ? [] : r.errors);
    } catch (e) {
      if (mine === seq.current) setErrors(fieldErrors(e).length ? fieldErrors(e) : [{ path: '', message: message(e) }]);
    } finally {
      if (mine === seq.current) setChecking(false);
    }
  };

  const onInput = (value: string): void => {
    setText(value);
    setDiff(null);
    setStatus(null);
    setChecking(true);
    if (timer.current) clearTimeout(timer.current);
    timer.current = setTimeout(() => void validate(value), VALIDATE_DEBOUNCE_MS);
  };

  const showDiff = async (): Promise<void> => {
    if (jsonProblem(text)) return;
    try {
      setDiff(await post('/api/v1/config/diff', { config: JSON.parse(text) }));
    } catch (e) {
      setStatus({ text: message(e), kind: 'error' });
    }
  };

  const apply = async (): Promise<void> => {
    const syntax = jsonProblem(text);
    if (syntax) return setErrors([syntax]);
    try {
      const r = await put<{ generation: number; changed: boolean; restarted?: string[] }>('/api/v1/config', {
        config: JSON.parse(text),
        baseGeneration: current?.generation,
      });
      await load();
      refreshSystemSoon();
      setStatus({
        text: r.changed
          ? `Applied as generation ${r.generation}${r.restarted?.length ? `; restarted ${r.restarted.join(', ')}` : ''}.`
          : 'No change: the config is the same as the current one.',
        kind: 'ok',
      });
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        setStatus({
          text: 'The config was changed on the device since you loaded it. Reload to get the current one (your edits here will be replaced), then apply again.',
          kind: 'conflict',
        });
      } else {
        const fe = fieldErrors(e);
        if (fe.length) setErrors(fe);
        setStatus({ text: message(e), kind: 'error' });
      }
    }
  };

  const rollback = async (generation: number): Promise<void> => {
    try {
      const r = await post<{ generation: number }>('/api/v1/config/rollback', { generation });
      await load();
      refreshSystemSoon();
      setStatus({
        text: `Rolled back: generation ${generation} is now applied as generation ${r.generation}.`,
        kind: 'ok',
      });
    } catch (e) {
      setStatus({ text: message(e), kind: 'error' });
    }
  };

  const lines = text.split('\n').length;
  return (
    <section>
      <h1>Config</h1>
      <div class="card">
        <h2>
          Generation {current?.generation ?? '…'}{' '}
          <small class="muted">
            {current ? `by ${current.actor ?? '?'} · ${when(current.appliedAt)} · ${current.source ?? ''}` : ''}
          </small>
        </h2>
        <textarea
          class="code"
          data-testid="config-editor"
          spellcheck={false}
          rows={Math.min(40, Math.max(12, lines + 1))}
          value={text}
          readOnly={!admin}
          onInput={(e) => onInput((e.target as HTMLTextAreaElement).value)}
        />
        <div
          class="validation"
          data-testid="config-validation"
          data-state={checking ? 'checking' : errors.length ? 'invalid' : 'valid'}
        >
          {checking ? (
            <span class="muted">checking…</span>
          ) : errors.length === 0 ? (
            <span class="ok-text">valid</span>
          ) : null}
          {errors.length > 0 && (
            <ul class="errors" data-testid="config-errors" data-count={String(errors.length)}>
              {errors.map((e, i) => (
                <li key={i} data-testid="config-error" data-path={e.path}>
                  <code>{e.path || '(root)'}</code>: {e.message}
                </li>
              ))}
            </ul>
          )}
        </div>
        <div class="row">
          <button type="button" data-testid="config-diff" disabled={checking || errors.length > 0} onClick={showDiff}>
            Diff
          </button>
          {admin && (
            <button type="button" data-testid="config-apply" disabled={checking || errors.length > 0} onClick={apply}>
              Apply
            </button>
          )}
          <button
            type="button"
            class="small"
            data-testid="config-reload"
            onClick={() => {
              setStatus(null);
              void load();
            }}
          >
            Reload
          </button>
        </div>
        {status && (
          <p class={status.kind === 'ok' ? 'ok-text' : 'error'} data-testid="config-status" data-kind={status.kind}>
            {status.text}
          </p>
        )}
        {diff && (
          <div data-testid="config-diff-output" data-changed={String(diff.changed)}>
            {diff.changed ? (
              <>
                <p>Sections changed: {diff.sections?.join(', ') || '–'}</p>
                <pre class="diff">
                  {diff.diff.split('\n').map((l, i) => (
                    <span key={i} class={l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : ''}>
                      {l}
                      {'\n'}
                    </span>
                  ))}
                </pre>
              </>
            ) : (
              <p class="muted">No changes.</p>
            )}
          </div>
        )}
      </div>
      <div class="card">
        <h2>Generations</h2>
        <div class="scroll">
          <table data-testid="config-generations">
            <thead>
              <tr>
                <th>#</th>
                <th>Applied</th>
                <th>By</th>
                <th>Source</th>
                <th>Hash</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {gens.map((g) => (
                <tr key={g.generation} data-testid={`config-gen-${g.generation}`}>
                  <td>
                    {g.generation}
                    {g.generation === current?.generation ? ' (current)' : ''}
                  </td>
                  <td>{when(g.appliedAt)}</td>
                  <td>{g.actor ?? ''}</td>
                  <td>{g.source ?? ''}</td>
                  <td>
                    <code>{g.hash?.slice(0, 12)}</code>
                  </td>
                  <td>
                    {admin && g.generation !== current?.generation && (
                      <button
                        type="button"
                        class="small"
                        data-testid={`config-rollback-${g.generation}`}
                        onClick={() => rollback(g.generation)}
                      >
                        Roll back
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </div>
    </section>
  );
}
