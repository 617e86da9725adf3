/**
 * The names Talon puts into MQTT topics, file names and URLs, each rule declared once.
 *
 * A Hand instance name becomes a topic level (`talon/hands/<name>/…`), a folder under the
 * data directory and a URL segment (`/api/v1/hands/<name>`), so it is lowercase ASCII
 * letters, digits and "-" only: no "/", "+", "#" or "." that mean something in those
 * places, and no case, so two names cannot differ only in case on a case-insensitive disk.
 * The config schema, the supervisor, the runtime API, the REST routes, the chat targets and
 * the CLI all take their pattern from here (there were five copies, and the supervisor's
 * also took "_" and upper case).
 *
 * The patterns are exported as strings too, for JSON Schemas (`pattern` is a string there).
 */
import { TalonError, type ErrorCode } from './errors.ts';

/** A Hand instance name: 1-63 lowercase letters, digits or "-", starting with a letter or digit. */
export const HAND_NAME_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
export const HAND_NAME = new RegExp(HAND_NAME_PATTERN);
/** The rule in words, for a JSON Schema's `x-hint` and error messages. */
export const HAND_NAME_HINT = 'must be 1-63 lowercase letters, digits or "-", starting with a letter or digit';

/**
 * A Hand module id (a manifest's `id`, a built-in's name in `module:`): 1-63 lowercase letters,
 * digits or "-", starting with a letter, so an id never reads as a number or a path.
 */
export const HAND_ID_PATTERN = '^[a-z][a-z0-9-]{0,62}$';
export const HAND_ID = new RegExp(HAND_ID_PATTERN);

/** A sensor id: 1-128 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit. */
export const SENSOR_ID_PATTERN = '^[a-z0-9][a-z0-9._-]{0,127}$';
export const SENSOR_ID = new RegExp(SENSOR_ID_PATTERN);

/**
 * A data pipeline's or one of its stages' name: 1-63 lowercase letters, digits, "-" or "_", starting with a letter or
 * digit (not HAND_NAME: "_" is common in stage names; not SENSOR_ID: no "." — the names go into store keys, metric
 * labels and URL segments).
 */
export const STAGE_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';
export const STAGE_NAME = new RegExp(STAGE_NAME_PATTERN);

/** A sealed secret's name (`talon secrets set NAME`): 1-64 letters, digits, ".", "_" or "-". */
export const SECRET_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const SECRET_NAME = new RegExp(SECRET_NAME_PATTERN);

/** A web admin user name (also a provisioned admin account's): 1-32 lowercase letters, digits, ".", "_" or "-", starting with a letter. */
export const USER_NAME_PATTERN = '^[a-z][a-z0-9._-]{0,31}$';
export const USER_NAME = new RegExp(USER_NAME_PATTERN);

/** A chat target: "router" (the LLM router) or "hand:<name>". */
export const CHAT_TARGET_PATTERN = `^(router|hand:${HAND_NAME_PATTERN.slice(1, -1)})$`;
export const CHAT_TARGET = new RegExp(CHAT_TARGET_PATTERN);

export function isHandName(v: unknown): v is string {
  return typeof v === 'string' && HAND_NAME.test(v);
}

export function isSensorId(v: unknown): v is string {
  return typeof v === 'string' && SENSOR_ID.test(v);
}

/** What a check reports when a name is wrong. */
export interface NameCheck {
  /** the error code (default BAD_REQUEST: a request named something that cannot exist) */
  code?: ErrorCode;
  /** where the name came from, leading the message (default: the name itself, quoted) */
  where?: string;
}

/** At most this much of a bad name is quoted back, so a megabyte of junk is not echoed. */
const QUOTE_MAX = 80;

function quote(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v.slice(0, QUOTE_MAX)) : String(v);
}

/**
 * Throws a TalonError (BAD_REQUEST unless `opts.code`) unless `name` is a valid Hand name.
 * The message says what a Hand name may hold, so the caller can fix it.
 */
export function checkHandName(name: unknown, opts: NameCheck = {}): asserts name is string {
  if (isHandName(name)) return;
  const what = opts.where ? `${opts.where} ${quote(name)}` : quote(name);
  throw new TalonError(
    opts.code ?? 'BAD_REQUEST',
    `${what} is not a Hand name: a Hand name ${HAND_NAME_HINT} (it becomes a topic level, a folder and a URL segment)`,
  );
}

/** Throws a TalonError (BAD_REQUEST unless `opts.code`) unless `id` is a valid sensor id. */
export function checkSensorId(id: unknown, opts: NameCheck = {}): asserts id is string {
  if (isSensorId(id)) return;
  const what = opts.where ? `${opts.where} ${quote(id)}` : quote(id);
  throw new TalonError(
    opts.code ?? 'BAD_REQUEST',
    `${what} is not a sensor id (1-128 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit)`,
  );
}
