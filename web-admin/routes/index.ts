/**
 * The kernel's route table: one file per area. The Hands' routes are added from their surfaces
 * (./surfaces.ts) by the server, and the OpenAPI document is built from the table it serves.
 */
import type { Route } from '../route.ts';
import meta from './meta.ts';
import session from './session.ts';
import users from './users.ts';
import tokens from './tokens.ts';
import system from './system.ts';
import hands from './hands.ts';
import sensors from './sensors.ts';
import audit from './audit.ts';
import config from './config.ts';
import llm from './llm.ts';
import chat from './chat.ts';
import bus from './bus.ts';
import provisioning from './provisioning.ts';
import secrets from './secrets.ts';
import tools from './tools.ts';

export const routes: Route[] = [
  ...meta,
  ...session,
  ...users,
  ...tokens,
  ...system,
  ...hands,
  ...sensors,
  ...audit,
  ...config,
  ...llm,
  ...chat,
  ...bus,
  ...provisioning,
  ...secrets,
  ...tools,
];
