/** Provisioning: whether the device belongs to a fleet, and the agent's state (provisioning/device/agent.ts). */
import { defineRoutes } from '../route.ts';
import { open, str } from './schemas.ts';

export default defineRoutes([
  {
    method: 'GET',
    path: '/api/v1/provisioning',
    operationId: 'provisioningStatus',
    summary:
      'Provisioning state: standalone, announcing, provisioned or decommissioned; fleet, applied version, last result',
    tag: 'provisioning',
    access: 'read',
    responses: {
      200: {
        description: 'the provisioning state',
        schema: open(
          {
            state: { type: 'string', enum: ['standalone', 'announcing', 'provisioned', 'decommissioned'] },
            message: str(1000),
            fleet: { type: 'string' },
            deviceId: { type: 'string' },
            appliedVersion: { type: 'integer', minimum: 0 },
            broker: {},
            pending: {},
            lastResult: {},
            rejected: { type: 'integer', minimum: 0 },
            dropped: { type: 'integer', minimum: 0 },
          },
          ['state', 'message'],
        ),
      },
    },
    handler: ({ api, caller }) => api.provisioning.status(caller),
  },
]);
