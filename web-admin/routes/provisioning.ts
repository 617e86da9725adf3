/** Provisioning: whether the device belongs to a fleet (issue 7 fills this in). */
import { defineRoutes } from '../route.ts';
import { open, str } from './schemas.ts';

export default defineRoutes([
  {
    method: 'GET', path: '/api/v1/provisioning', operationId: 'provisioningStatus', summary: 'Provisioning state: standalone until a fleet is configured', tag: 'provisioning', access: 'read',
    responses: {
      200: {
        description: 'the provisioning state',
        schema: open({ state: { type: 'string', enum: ['standalone', 'announcing', 'provisioned', 'failed'] }, message: str(1000), fleet: {}, version: {}, lastResult: {} }, ['state', 'message']),
      },
    },
    handler: ({ api, caller }) => api.provisioning.status(caller),
  },
]);
