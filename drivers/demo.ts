/** The default drivers: the machine itself and a simulated greenhouse, so `npm start` shows live data anywhere. Pure data. */
import type { DriverConfig } from './index.ts';

/** What a fresh config runs on any laptop: the device's own health plus live simulated data. */
export const DEMO_DRIVERS: DriverConfig[] = [
  { type: 'system', name: 'system' },
  {
    type: 'sim',
    name: 'demo',
    seed: 1,
    sensors: [
      {
        id: 'demo.temperature',
        name: 'Greenhouse temperature',
        unit: '°C',
        deviceClass: 'temperature',
        pattern: 'temperature',
      },
      { id: 'demo.humidity', name: 'Greenhouse humidity', unit: '%', deviceClass: 'humidity', pattern: 'humidity' },
      { id: 'demo.load', name: 'Pump load', unit: '%', pattern: 'load' },
      { id: 'demo.door', name: 'Door contact', pattern: 'door', push: true, periodMs: 5000, decimals: 0 },
    ],
    actuators: [{ id: 'demo.fan', name: 'Greenhouse fan' }],
  },
];
