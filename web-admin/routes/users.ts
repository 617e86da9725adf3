/** Accounts (admin only); a caller makes, changes or deletes only accounts whose role it holds (auth/scopes.ts). */
import { defineRoutes, route } from '../route.ts';
import { bool, num, obj, params, str } from './schemas.ts';
import { PASSWORD, USER_NAME } from './session.ts';

const ROLE = { type: 'string', enum: ['admin', 'viewer'] } as const;
const USER = obj({ name: str(), role: ROLE, createdAt: num, lastLoginAt: num, locked: bool }, [
  'lastLoginAt',
  'locked',
]);
const name = params({ name: USER_NAME });

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/users',
    operationId: 'listUsers',
    summary: 'Every account with its role and last login',
    tag: 'users',
    access: 'admin',
    responses: { 200: { description: 'accounts', schema: obj({ users: { type: 'array', items: USER } }) } },
    handler: async ({ auth }) => ({ users: (await auth.users.list()).map((u) => auth.users.info(u)) }),
  },
  route({
    method: 'POST',
    path: '/api/v1/users',
    operationId: 'createUser',
    summary: 'Create an account (the caller must hold the role: an admin only with every scope, `*`)',
    tag: 'users',
    access: 'admin',
    body: obj({ name: USER_NAME, password: PASSWORD, role: ROLE }),
    responses: { 201: { description: 'created', schema: obj({ user: USER }) } },
    handler: async ({ auth, principal, body }) => ({
      user: await auth.createUser(principal, body),
    }),
  }),
  route({
    method: 'PUT',
    path: '/api/v1/users/{name}',
    operationId: 'updateUser',
    summary: "Change an account's password or role (never demotes the last admin); ends its sessions on a new password",
    tag: 'users',
    access: 'admin',
    params: name,
    body: obj({ password: PASSWORD, role: ROLE }, ['password', 'role'], { minProperties: 1 }),
    responses: { 200: { description: 'changed', schema: obj({ user: USER }) } },
    handler: async ({ auth, principal, params: p, body }) => ({
      user: await auth.updateUser(principal, p.name, body),
    }),
  }),
  route({
    method: 'DELETE',
    path: '/api/v1/users/{name}',
    operationId: 'deleteUser',
    summary: 'Delete an account, its sessions and tokens (never the last admin)',
    tag: 'users',
    access: 'admin',
    params: name,
    responses: { 200: { description: 'deleted', schema: obj({ deleted: { const: true } }) } },
    handler: async ({ auth, principal, params: p }) => {
      await auth.deleteUser(principal, p.name);
      return { deleted: true };
    },
  }),
]);
