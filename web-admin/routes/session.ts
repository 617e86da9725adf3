/** First-run setup, login, logout and "who am I". */
import { defineRoutes, route, type Schema } from '../route.ts';
import { TalonError } from '../../runtime/core/errors.ts';
import { USER_NAME_PATTERN } from '../auth/users.ts';
import { bool, obj, str } from './schemas.ts';

export const USER_NAME = {
  type: 'string',
  pattern: USER_NAME_PATTERN,
  description: 'lowercase letters, digits, . _ -; starts with a letter; at most 32',
} as const satisfies Schema;
export const PASSWORD = {
  type: 'string',
  minLength: 10,
  maxLength: 256,
  description: 'at least 10 characters',
} as const satisfies Schema;
const USER = obj({ name: str(), role: { type: 'string', enum: ['admin', 'viewer'] } });
const LOGGED_IN = obj({ user: USER, csrf: str() });

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/setup',
    operationId: 'setupStatus',
    summary: 'Whether first-run setup is needed (no account exists yet)',
    tag: 'session',
    access: 'public',
    responses: { 200: { description: 'needed is true until the first admin exists', schema: obj({ needed: bool }) } },
    handler: async ({ auth }) => ({ needed: await auth.setupNeeded() }),
  },
  route({
    method: 'POST',
    path: '/api/v1/setup',
    operationId: 'completeSetup',
    summary:
      "Create the first admin with the one-time setup code from the console (or the data folder's setup-code); logs in. 5 wrong codes lock the address they came from; many from anywhere make every attempt wait first",
    tag: 'session',
    access: 'public',
    body: obj({ code: str(64, { minLength: 1 }), username: USER_NAME, password: PASSWORD }),
    responses: {
      201: { description: 'the admin exists and is logged in (Set-Cookie talon_session)', schema: LOGGED_IN },
    },
    handler: async ({ auth, body, res, ip }) => {
      const out = await auth.completeSetup(body.code, body.username, body.password, ip);
      res.setHeader('set-cookie', auth.cookie(out.sessionId));
      return { user: { name: out.user.name, role: out.user.role }, csrf: out.csrf };
    },
  }),
  route({
    method: 'POST',
    path: '/api/v1/session',
    operationId: 'login',
    summary: 'Log in with a user name and password (5 failures lock the account for 15 minutes, doubling)',
    tag: 'session',
    access: 'public',
    body: obj({ username: str(64, { minLength: 1 }), password: str(256, { minLength: 1 }) }),
    responses: { 200: { description: 'logged in (Set-Cookie talon_session)', schema: LOGGED_IN } },
    handler: async ({ auth, body, res, ip }) => {
      const out = await auth.login(body.username, body.password, ip);
      res.setHeader('set-cookie', auth.cookie(out.sessionId));
      return { user: { name: out.user.name, role: out.user.role }, csrf: out.csrf };
    },
  }),
  {
    method: 'GET',
    path: '/api/v1/session',
    operationId: 'whoami',
    summary: 'Who is logged in, and the CSRF token for writes from the page',
    tag: 'session',
    access: 'public',
    responses: {
      200: {
        description: 'the caller',
        schema: obj({
          user: USER,
          csrf: { type: ['string', 'null'] },
          kind: { type: 'string', enum: ['cli', 'session', 'token'] },
        }),
      },
    },
    handler: ({ principal, session }) => {
      if (principal.kind === 'anonymous' || principal.role === null)
        throw new TalonError('UNAUTHORIZED', 'not logged in');
      return {
        user: { name: principal.user ?? principal.actor, role: principal.role },
        csrf: session?.csrf ?? null,
        kind: principal.kind,
      };
    },
  },
  {
    method: 'DELETE',
    path: '/api/v1/session',
    operationId: 'logout',
    summary:
      'Log out (ends the session, clears the cookie); with a live session it needs the x-csrf-token header like any write',
    tag: 'session',
    access: 'public',
    responses: { 200: { description: 'logged out', schema: obj({ ok: { const: true } }) } },
    handler: async ({ auth, principal, session, req, res }) => {
      if (session) {
        auth.requireCsrf(session.csrf, req);
        await auth.logout({ principal, sessionId: session.id, csrf: session.csrf });
      }
      res.setHeader('set-cookie', auth.clearCookie());
      return { ok: true };
    },
  },
]);
