/**
 * The compiled route table: path matching, and ajv validation of path parameters, query
 * (coerced from strings) and body. Validators are compiled on a route's first use, so start
 * stays fast. `checkResponse` is for tests: does a body match the route's declared schema?
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { TalonError } from '../runtime/errors.ts';
import type { Route, Schema } from './route.ts';

export interface FieldError {
  path: string;
  message: string;
}

interface Compiled {
  route: Route;
  regex: RegExp;
  keys: string[];
  v?: { params: ValidateFunction | null; query: ValidateFunction; body: ValidateFunction | null };
}

export type Match =
  | { kind: 'route'; route: Route; params: Record<string, string> }
  | { kind: 'method'; allowed: string[] }
  | { kind: 'none' };

const EMPTY_OBJECT: Schema = { type: 'object', additionalProperties: false, properties: {} };

export class Router {
  readonly routes: Route[];
  #compiled: Compiled[];
  #ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });
  #ajvQuery = new Ajv({ allErrors: true, strict: false, useDefaults: true, coerceTypes: true });
  #ajvResponse = new Ajv({ allErrors: true, strict: false });
  #responseCache = new Map<string, ValidateFunction>();

  constructor(routes: Route[]) {
    this.routes = routes;
    const ids = new Set<string>();
    const seen = new Set<string>();
    this.#compiled = routes.map((route) => {
      if (ids.has(route.operationId)) throw new Error(`duplicate operationId ${route.operationId}`);
      ids.add(route.operationId);
      const key = `${route.method} ${route.path}`;
      if (seen.has(key)) throw new Error(`duplicate route ${key}`);
      seen.add(key);
      const keys: string[] = [];
      const pattern = route.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{([A-Za-z]+)\}/g, (_m, k: string) => {
        keys.push(k);
        return '([^/]+)';
      });
      if (keys.length > 0) {
        const props = (route.params?.properties ?? {}) as Record<string, unknown>;
        const missing = keys.find((k) => !(k in props));
        if (missing) throw new Error(`${key}: path parameter ${missing} has no schema in params`);
      }
      return { route, regex: new RegExp(`^${pattern}$`), keys };
    });
  }

  match(method: string, pathname: string): Match {
    const allowed: string[] = [];
    for (const c of this.#compiled) {
      const m = c.regex.exec(pathname);
      if (!m) continue;
      if (c.route.method !== method) {
        allowed.push(c.route.method);
        continue;
      }
      const params: Record<string, string> = {};
      for (const [i, k] of c.keys.entries()) {
        try {
          params[k] = decodeURIComponent(m[i + 1]!);
        } catch {
          throw new TalonError('BAD_REQUEST', `path parameter ${k} is not valid percent-encoding`);
        }
      }
      return { kind: 'route', route: c.route, params };
    }
    return allowed.length > 0 ? { kind: 'method', allowed } : { kind: 'none' };
  }

  #validators(route: Route): NonNullable<Compiled['v']> {
    const c = this.#compiled.find((x) => x.route === route)!;
    c.v ??= {
      params: route.params ? this.#ajv.compile(route.params) : null,
      query: this.#ajvQuery.compile(route.query ?? EMPTY_OBJECT),
      body: route.body ? this.#ajv.compile(route.body) : null,
    };
    return c.v;
  }

  validateParams(route: Route, params: Record<string, string>): void {
    const v = this.#validators(route).params;
    if (v && !v(params)) throw invalid('path', v.errors);
  }

  /** Query values arrive as strings (the last one wins when repeated); coerced to the schema's types. */
  validateQuery(route: Route, search: URLSearchParams): Record<string, unknown> {
    const query: Record<string, unknown> = {};
    for (const [k, val] of search) query[k] = val;
    const v = this.#validators(route).query;
    if (!v(query)) throw invalid('query', v.errors);
    return query;
  }

  validateBody(route: Route, body: unknown): unknown {
    const v = this.#validators(route).body;
    if (!v) return undefined;
    if (!v(body)) throw invalid('body', v.errors);
    return body;
  }

  /** For tests: the problems with a response body against the route's schema for that status ([] when fine). */
  checkResponse(route: Route, status: number, body: unknown): FieldError[] {
    const schema = route.responses[status]?.schema;
    if (!schema) return [];
    const key = `${route.operationId} ${status}`;
    let v = this.#responseCache.get(key);
    if (!v) {
      v = this.#ajvResponse.compile(schema);
      this.#responseCache.set(key, v);
    }
    return v(body) ? [] : fieldErrors(v.errors);
  }
}

function fieldErrors(errors: ErrorObject[] | null | undefined): FieldError[] {
  return (errors ?? []).slice(0, 20).map((e) => {
    let path = e.instancePath || '/';
    if (e.keyword === 'additionalProperties') path = `${e.instancePath}/${String((e.params as { additionalProperty: string }).additionalProperty)}`;
    if (e.keyword === 'required') path = `${e.instancePath}/${String((e.params as { missingProperty: string }).missingProperty)}`;
    const message = e.keyword === 'additionalProperties' ? 'is not a known field' : e.keyword === 'required' ? 'is required' : e.message ?? 'is not valid';
    return { path, message };
  });
}

function invalid(where: 'path' | 'query' | 'body', errors: ErrorObject[] | null | undefined): TalonError {
  const list = fieldErrors(errors);
  const first = list[0];
  const what = where === 'path' ? 'path parameter' : where === 'query' ? 'query parameter' : 'body field';
  const message = first ? `${what} ${first.path === '/' ? '(the whole ' + where + ')' : first.path.replace(/^\//, '').replace(/\//g, '.')} ${first.message}` : `the ${where} is not valid`;
  return new TalonError('BAD_REQUEST', message.slice(0, 300), { details: { in: where, errors: list } });
}
