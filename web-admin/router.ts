/**
 * The compiled route table: path matching, and ajv validation of path parameters, query
 * (coerced from strings) and body. Nothing is compiled at start: each validator (params,
 * query, body) on its first use, and the ajv instances with the first one. A route without a
 * query schema takes no query parameters, checked without ajv, so `/healthz` (what a
 * supervisor polls right after start) never waits for a compile: the first ajv compile of a
 * process also compiles ajv's meta-schema, ~15–25 ms here. The route schemas are ours, so
 * they are not checked against the meta-schema at run time (`validateSchema: false`);
 * test/web-admin/router.test.ts checks every one of them. `checkResponse` is for tests:
 * does a body match the route's declared schema?
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { AJV_PRESETS, createAjv, fieldErrors, type Ajv, type FieldError } from '../runtime/core/ajv.ts';
import { TalonError } from '../runtime/core/errors.ts';
import type { Route, Schema } from './route.ts';

export type { FieldError };

interface Compiled {
  route: Route;
  regex: RegExp;
  keys: string[];
  params?: ValidateFunction;
  query?: ValidateFunction;
  body?: ValidateFunction;
}

export type Match =
  | { kind: 'route'; route: Route; params: Record<string, string> }
  | { kind: 'method'; allowed: string[] }
  | { kind: 'none' };

/** the options request validation uses (test/web-admin/router.test.ts compiles every route schema with them) */
export const REQUEST_AJV_OPTIONS = AJV_PRESETS.request;
export const QUERY_AJV_OPTIONS = AJV_PRESETS.query;

export class Router {
  readonly routes: Route[];
  #compiled: Compiled[];
  #byRoute = new Map<Route, Compiled>();
  #ajvBody: Ajv | null = null;
  #ajvQuery: Ajv | null = null;
  #ajvResponse: Ajv | null = null;
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
      const c: Compiled = { route, regex: new RegExp(`^${pattern}$`), keys };
      this.#byRoute.set(route, c);
      return c;
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

  #compiledFor(route: Route): Compiled {
    const c = this.#byRoute.get(route);
    if (!c) throw new Error(`${route.method} ${route.path} is not in this route table`);
    return c;
  }

  #compile(schema: Schema, ajv: 'body' | 'query'): ValidateFunction {
    if (ajv === 'query') return (this.#ajvQuery ??= createAjv('query')).compile(schema);
    return (this.#ajvBody ??= createAjv('request')).compile(schema);
  }

  validateParams(route: Route, params: Record<string, string>): void {
    if (!route.params) return;
    const c = this.#compiledFor(route);
    const v = (c.params ??= this.#compile(route.params, 'body'));
    if (!v(params)) throw invalid('path', v.errors);
  }

  /** Query values arrive as strings (the last one wins when repeated); coerced to the schema's types. */
  validateQuery(route: Route, search: URLSearchParams): Record<string, unknown> {
    const query: Record<string, unknown> = {};
    for (const [k, val] of search) query[k] = val;
    if (!route.query) {
      // no query schema: no query parameters (what `additionalProperties: false` would say, one error per name)
      const unknown = Object.keys(query);
      if (unknown.length > 0)
        throw invalidFields(
          'query',
          unknown.slice(0, 20).map((k) => ({ path: `/${k}`, message: 'is not a known field' })),
        );
      return query;
    }
    const c = this.#compiledFor(route);
    const v = (c.query ??= this.#compile(route.query, 'query'));
    if (!v(query)) throw invalid('query', v.errors);
    return query;
  }

  validateBody(route: Route, body: unknown): unknown {
    if (!route.body) return undefined;
    const c = this.#compiledFor(route);
    const v = (c.body ??= this.#compile(route.body, 'body'));
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
      v = (this.#ajvResponse ??= createAjv('check')).compile(schema);
      this.#responseCache.set(key, v);
    }
    return v(body) ? [] : fieldErrors(v.errors);
  }
}

function invalid(where: 'path' | 'query' | 'body', errors: ErrorObject[] | null | undefined): TalonError {
  return invalidFields(where, fieldErrors(errors));
}

function invalidFields(where: 'path' | 'query' | 'body', list: FieldError[]): TalonError {
  const first = list[0];
  const what = where === 'path' ? 'path parameter' : where === 'query' ? 'query parameter' : 'body field';
  const message = first
    ? `${what} ${first.path === '/' ? '(the whole ' + where + ')' : first.path.replace(/^\//, '').replace(/\//g, '.')} ${first.message}`
    : `the ${where} is not valid`;
  return new TalonError('BAD_REQUEST', message.slice(0, 300), { details: { in: where, errors: list } });
}
