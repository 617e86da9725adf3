/**
 * The web admin page: first-run setup or login, then a left nav of pages (hash routing:
 * #/dashboard, #/hands, #/sensors, #/chat, #/tools, #/approvals, #/runs, #/audit, #/config, then the
 * Hands' own pages) and a status bar with the device id and the connection state. Everything comes from this device's
 * /api/v1. The Hands' pages and sections (hand-page.tsx) are chunks loaded when first shown.
 */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, connection, del, get, message, session, setCsrf, type User } from './api.ts';
import { refreshSystem, system, type SystemInfo } from './system.ts';
import { streams } from './sse.ts';
import { useStore } from './store.ts';
import { NavBox } from './hscroll.tsx';
import { Login, Setup } from './pages/auth.tsx';
import { Dashboard } from './pages/dashboard.tsx';
import { Hands } from './pages/hands.tsx';
import { Sensors } from './pages/sensors.tsx';
import { Chat } from './pages/chat.tsx';
import { Audit } from './pages/audit.tsx';
import { Config } from './pages/config.tsx';
import { HandView, handOwnPages, pageTitle } from './hand-page.tsx';
import type { PageProps } from './system.ts';
import { pendingApprovals, pollPending } from './pending.ts';

interface NavPage {
  id: string;
  label: string;
  view: (props: PageProps) => ComponentChildren;
}

/** tools, approvals and runs: one chunk, loaded when one of them first opens */
type ToolsModule = typeof import('./pages/tools.tsx');
let toolsChunk: Promise<ToolsModule> | null = null;
function lazyTools(pick: (m: ToolsModule) => (props: PageProps) => ComponentChildren) {
  return function LazyToolsPage(props: PageProps) {
    const [mod, setMod] = useState<ToolsModule | null>(null);
    const [error, setError] = useState('');
    useEffect(() => {
      toolsChunk ??= import('./pages/tools.tsx');
      toolsChunk.then(setMod, (err: unknown) => {
        toolsChunk = null; // tried again next time (the device upgraded under an open page)
        setError(message(err));
      });
    }, []);
    if (error) return <p class="error">{error}</p>;
    if (!mod) return <p class="muted">Loading…</p>;
    const View = pick(mod);
    return <View {...props} />;
  };
}

/** the kernel's pages, the Hands' own pages after Sensors (a Hand's section joins its page's label) */
const PAGES: NavPage[] = [
  { id: 'dashboard', label: 'Dashboard', view: Dashboard },
  { id: 'hands', label: 'Hands', view: Hands },
  { id: 'sensors', label: pageTitle('sensors', 'Sensors'), view: Sensors },
  ...handOwnPages.map(
    (entry): NavPage => ({ id: entry.id, label: entry.label, view: (props) => <HandView entry={entry} {...props} /> }),
  ),
  { id: 'chat', label: 'Chat', view: Chat },
  { id: 'tools', label: 'Tools', view: lazyTools((m) => m.Tools) },
  { id: 'approvals', label: 'Approvals', view: lazyTools((m) => m.Approvals) },
  { id: 'runs', label: 'Runs', view: lazyTools((m) => m.Runs) },
  { id: 'audit', label: 'Audit', view: Audit },
  { id: 'config', label: 'Config', view: Config },
];

function useHash(): string[] {
  const read = (): string[] => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [parts, setParts] = useState(read);
  useEffect(() => {
    const on = (): void => setParts(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return parts;
}

export async function loadSession(): Promise<void> {
  try {
    const s = await get<{ user: User; csrf: string }>('/api/v1/session');
    setCsrf(s.csrf);
    session.set(s.user);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) session.set(null);
    else throw err;
  }
}

function App() {
  const user = useStore(session);
  const route = useHash();
  const [setupNeeded, setSetupNeeded] = useState<boolean | null>(null);
  const [bootError, setBootError] = useState('');
  const pending = useStore(pendingApprovals);

  useEffect(() => {
    (async () => {
      const s = await get<{ needed: boolean }>('/api/v1/setup');
      setSetupNeeded(s.needed);
      if (!s.needed) await loadSession();
    })().catch((err: unknown) => setBootError(message(err)));
  }, []);

  useEffect(() => {
    if (!user) return;
    get<SystemInfo>('/api/v1/system').then(
      (s) => system.set(s),
      () => undefined,
    );
    // the device name, version and generation change with the config, also from elsewhere (the CLI)
    const t = setInterval(() => void refreshSystem(), 15_000);
    const stopPending = pollPending();
    return () => {
      clearInterval(t);
      stopPending();
    };
  }, [user]);

  if (bootError)
    return (
      <div class="center">
        <p class="error" data-testid="boot-error">
          {bootError}
        </p>
      </div>
    );
  if (setupNeeded === null || (user === undefined && !setupNeeded))
    return (
      <div class="center">
        <p>Loading…</p>
      </div>
    );
  if (setupNeeded) {
    return (
      <Setup
        onDone={(u, csrf) => {
          setCsrf(csrf);
          setSetupNeeded(false);
          session.set(u);
          location.hash = '#/dashboard';
        }}
      />
    );
  }
  if (!user) {
    return (
      <Login
        onDone={(u, csrf) => {
          setCsrf(csrf);
          session.set(u);
          if (!location.hash || location.hash.startsWith('#/login')) location.hash = '#/dashboard';
        }}
      />
    );
  }
  const page = PAGES.find((p) => p.id === route[0]) ?? PAGES[0]!;
  const View = page.view;
  return (
    <div class="layout">
      <NavBox>
        <nav class="nav" data-testid="nav">
          <div class="brand">Talon</div>
          {PAGES.map((p) => (
            <a href={`#/${p.id}`} class={p.id === page.id ? 'active' : ''} data-testid={`nav-${p.id}`} key={p.id}>
              {p.label}
              {p.id === 'approvals' && pending ? (
                <span class="badge bad" data-testid="nav-approvals-badge" title="tool calls waiting for an answer">
                  {pending}
                </span>
              ) : null}
            </a>
          ))}
          <div class="who">
            <span data-testid="current-user">
              {user.name} ({user.role})
            </span>
            <button
              type="button"
              class="link"
              data-testid="logout"
              onClick={() => {
                del('/api/v1/session').finally(() => {
                  setCsrf('');
                  session.set(null);
                  location.hash = '#/login';
                });
              }}
            >
              Log out
            </button>
          </div>
        </nav>
      </NavBox>
      <main class="main" data-testid={`page-${page.id}`}>
        <View key={page.id} args={route.slice(1)} user={user} />
      </main>
      <StatusBar />
    </div>
  );
}

function StatusBar() {
  const info = useStore(system);
  const conn = useStore(connection);
  const s = useStore(streams);
  const state = conn === 'offline' ? 'offline' : s.total > s.open ? 'reconnecting' : 'online';
  return (
    <footer class="status" data-testid="status-bar">
      <span data-testid="status-device">{info ? `${info.deviceName ?? ''} ${info.deviceId}`.trim() : '…'}</span>
      {info && <span>v{info.version}</span>}
      <span class={`conn conn-${state}`} data-testid="status-conn" data-state={state}>
        {state}
        {s.total ? ` · ${s.open}/${s.total} live` : ''}
      </span>
    </footer>
  );
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
