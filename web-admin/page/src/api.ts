/**
 * Calls to /api/v1 from the page: JSON in and out, the CSRF token on every write, 401 sends
 * the page to the login form, and the connection state for the status bar.
 */
import { store } from './store.ts';

export interface User {
  name: string;
  role: 'admin' | 'viewer';
}

export type Connection = 'online' | 'offline';

/** who is logged in (null: nobody; undefined: not known yet) */
export const session = store<User | null | undefined>(undefined);
export const connection = store<Connection>('online');

let csrf = '';
export const setCsrf = (token: string | null | undefined): void => {
  csrf = token ?? '';
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export interface FieldError {
  path: string;
  message: string;
}

/** details.errors of a validation error, as [{path, message}] */
export function fieldErrors(err: unknown): FieldError[] {
  if (!(err instanceof ApiError)) return [];
  const list = err.details?.errors;
  if (!Array.isArray(list)) return [];
  return list
    .filter(
      (e): e is FieldError => typeof e === 'object' && e !== null && typeof (e as FieldError).message === 'string',
    )
    .map((e) => ({ path: typeof e.path === 'string' ? e.path : '', message: e.message }));
}

export async function request(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['x-csrf-token'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    connection.set('offline');
    throw new ApiError(0, 'OFFLINE', `cannot reach the device (${(err as Error).message})`);
  }
  connection.set('online');
  if (!res.ok) {
    let code = `HTTP_${res.status}`;
    let message = `${method} ${path} failed with HTTP ${res.status}`;
    let details: Record<string, unknown> | undefined;
    try {
      const j = (await res.json()) as {
        error?: { code?: string; message?: string; details?: Record<string, unknown> };
      };
      if (j.error) {
        code = j.error.code ?? code;
        message = j.error.message ?? message;
        details = j.error.details;
      }
    } catch {
      // not JSON: keep the status line
    }
    if (res.status === 401 && !path.startsWith('/api/v1/session') && !path.startsWith('/api/v1/setup')) {
      session.set(null);
      location.hash = '#/login';
    }
    throw new ApiError(res.status, code, message, details);
  }
  return res;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(method, path, body);
  const text = await res.text();
  return (text ? JSON.parse(text) : {}) as T;
}

export const get = <T>(path: string): Promise<T> => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown): Promise<T> => api<T>('POST', path, body);
export const put = <T>(path: string, body: unknown): Promise<T> => api<T>('PUT', path, body);
export const del = <T>(path: string): Promise<T> => api<T>('DELETE', path);

export const q = (params: Record<string, string | number | undefined | null>): string => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') s.set(k, String(v));
  const t = s.toString();
  return t ? `?${t}` : '';
};

export const enc = encodeURIComponent;

export const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
