/** Sealed secrets: names only ever go out. */
import { defineRoutes, route } from '../route.ts';
import { SECRET_NAME, bool, num, obj, params, str } from './schemas.ts';

const name = params({ name: SECRET_NAME });

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/secrets',
    operationId: 'listSecrets',
    summary: 'Names of the sealed secrets (never their values)',
    tag: 'secrets',
    access: 'admin',
    responses: {
      200: {
        description: 'secret names',
        schema: obj({ secrets: { type: 'array', items: obj({ name: str(), updatedAt: num }) } }),
      },
    },
    handler: async ({ api, caller }) => ({ secrets: await api.secrets.list(caller) }),
  },
  route({
    method: 'PUT',
    path: '/api/v1/secrets/{name}',
    operationId: 'setSecret',
    summary: 'Seal a secret: {"value": "…"}',
    tag: 'secrets',
    access: 'admin',
    params: name,
    body: obj({ value: str(16_384) }),
    responses: { 200: { description: 'sealed', schema: obj({ name: str() }) } },
    handler: ({ api, caller, params: p, body }) => api.secrets.set(caller, p.name, body.value),
  }),
  route({
    method: 'DELETE',
    path: '/api/v1/secrets/{name}',
    operationId: 'deleteSecret',
    summary: 'Delete a sealed secret',
    tag: 'secrets',
    access: 'admin',
    params: name,
    responses: {
      200: { description: 'deleted (false when there was none)', schema: obj({ name: str(), deleted: bool }) },
    },
    handler: ({ api, caller, params: p }) => api.secrets.delete(caller, p.name),
  }),
]);
