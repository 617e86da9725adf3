/** First-run setup (the one-time code printed by the device) and login. */
import { useState } from 'preact/hooks';
import { ApiError, message, post, type User } from '../api.ts';

type Done = (user: User, csrf: string) => void;

export function Setup({ onDone }: { onDone: Done }) {
  const [f, setF] = useState({ code: '', username: 'admin', password: '', password2: '' });
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    if (f.password !== f.password2) return setError('The two passwords differ.');
    setBusy(true);
    setError('');
    try {
      const r = await post<{ user: User; csrf: string }>('/api/v1/setup', {
        code: f.code.trim(),
        username: f.username.trim(),
        password: f.password,
      });
      onDone(r.user, r.csrf);
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  };
  const set = (k: keyof typeof f) => (ev: Event) => setF({ ...f, [k]: (ev.target as HTMLInputElement).value });
  return (
    <div class="center">
      <form class="card auth" data-testid="setup-form" onSubmit={submit}>
        <h1>Set up Talon</h1>
        <p class="muted">
          No account exists yet. Enter the setup code the device printed at start (also in its data folder,{' '}
          <code>setup-code</code>), and choose the admin's name and password.
        </p>
        <label>
          Setup code
          <input data-testid="setup-code" autocomplete="one-time-code" value={f.code} onInput={set('code')} required />
        </label>
        <label>
          Username
          <input
            data-testid="setup-username"
            autocomplete="username"
            value={f.username}
            onInput={set('username')}
            required
          />
        </label>
        <label>
          Password
          <input
            data-testid="setup-password"
            type="password"
            autocomplete="new-password"
            value={f.password}
            onInput={set('password')}
            required
          />
        </label>
        <label>
          Password again
          <input
            data-testid="setup-password2"
            type="password"
            autocomplete="new-password"
            value={f.password2}
            onInput={set('password2')}
            required
          />
        </label>
        {error && (
          <p class="error" data-testid="setup-error">
            {error}
          </p>
        )}
        <button type="submit" data-testid="setup-submit" disabled={busy}>
          Create admin
        </button>
      </form>
    </div>
  );
}

export function Login({ onDone }: { onDone: Done }) {
  const [f, setF] = useState({ username: '', password: '' });
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    setBusy(true);
    setError('');
    try {
      const r = await post<{ user: User; csrf: string }>('/api/v1/session', {
        username: f.username.trim(),
        password: f.password,
      });
      onDone(r.user, r.csrf);
    } catch (err) {
      setError(
        err instanceof ApiError && err.code === 'BAD_CREDENTIALS' ? 'Wrong username or password.' : message(err),
      );
    } finally {
      setBusy(false);
    }
  };
  const set = (k: keyof typeof f) => (ev: Event) => setF({ ...f, [k]: (ev.target as HTMLInputElement).value });
  return (
    <div class="center">
      <form class="card auth" data-testid="login-form" onSubmit={submit}>
        <h1>Talon</h1>
        <label>
          Username
          <input
            data-testid="login-username"
            autocomplete="username"
            value={f.username}
            onInput={set('username')}
            required
          />
        </label>
        <label>
          Password
          <input
            data-testid="login-password"
            type="password"
            autocomplete="current-password"
            value={f.password}
            onInput={set('password')}
            required
          />
        </label>
        {error && (
          <p class="error" data-testid="login-error">
            {error}
          </p>
        )}
        <button type="submit" data-testid="login-submit" disabled={busy}>
          Log in
        </button>
      </form>
    </div>
  );
}
