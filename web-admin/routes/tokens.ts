/** API tokens for automation (admin only): the secret is shown once, at creation. */
import { defineRoutes, route, type Schema } from '../route.ts';
import { TOKEN_ID_PATTERN } from '../auth/tokens.ts';
import { TAGS } from '../auth/scopes.ts';
import { int, num, obj, params, str } from './schemas.ts';

export const SCOPE = {
  type: 'string',
  pattern: `^(\\*|(${TAGS.join('|')}):(read|write))$`,
  description: '`<area>:read`, `<area>:write` or `*`',
} as const satisfies Schema;
const INFO = obj(
  {
    id: str(),
    name: str(),
    user: str(),
    scopes: { type: 'array', items: str() },
    createdAt: num,
    expiresAt: num,
    lastUsedAt: num,
  },
  ['expiresAt', 'lastUsedAt'],
);

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/tokens',
    operationId: 'listTokens',
    summary: 'API tokens (never their secrets)',
    tag: 'tokens',
    access: 'admin',
    responses: { 200: { description: 'tokens', schema: obj({ tokens: { type: 'array', items: INFO } }) } },
    handler: async ({ auth }) => ({ tokens: await auth.tokens.list() }),
  },
  route({
    method: 'POST',
    path: '/api/v1/tokens',
    operationId: 'createToken',
    summary:
      'Create an API token with scopes the caller holds (`*` only from `*`; a token makes tokens expiring no later than itself); the answer holds the secret, shown this once',
    tag: 'tokens',
    access: 'admin',
    body: obj(
      {
        name: str(64, { minLength: 1, pattern: '^[\\w .:-]+$' }),
        scopes: { type: 'array', minItems: 1, maxItems: 32, uniqueItems: true, items: SCOPE },
        expiresInDays: int(1, 3650),
      },
      ['expiresInDays'],
    ),
    responses: {
      201: {
        description: 'the token (keep it: it is not shown again) and its info',
        schema: obj({ token: str(100, { pattern: '^tln_' }), info: INFO }),
      },
    },
    handler: ({ auth, principal, body }) => auth.createToken(principal, body),
  }),
  route({
    method: 'DELETE',
    path: '/api/v1/tokens/{id}',
    operationId: 'deleteToken',
    summary: 'Revoke an API token',
    tag: 'tokens',
    access: 'admin',
    params: params({ id: { type: 'string', pattern: TOKEN_ID_PATTERN } }),
    responses: { 200: { description: 'revoked', schema: obj({ deleted: { const: true }, token: INFO }) } },
    handler: async ({ auth, principal, params: p }) => ({
      deleted: true,
      token: await auth.deleteToken(principal.actor, p.id),
    }),
  }),
]);
