/**
 * Every error Talon raises on purpose is a TalonError: a stable `code` that callers and
 * tests match on, a message a person can act on, an HTTP status for the REST layer and an
 * exit code for the CLI (2 = the operator's input was wrong, 1 = runtime failure).
 */
export type ErrorCode =
  | 'USAGE'
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_PARSE'
  | 'MANIFEST_INVALID'
  | 'STORE_LOCKED'
  | 'STORE_READONLY'
  | 'STORE_FULL'
  | 'STORE_OPEN_FAILED'
  | 'STORE_LIMIT'
  | 'PORT_IN_USE'
  | 'LISTEN_FAILED'
  | 'BUS_DOWN'
  | 'BUS_PAYLOAD_TOO_LARGE'
  | 'BUS_PAYLOAD_INVALID'
  | 'BUS_TOPIC_INVALID'
  | 'CAPABILITY_DENIED'
  | 'QUOTA_EXCEEDED'
  | 'HAND_NOT_FOUND'
  | 'HAND_STATE'
  | 'HAND_START_FAILED'
  | 'HAND_CRASHED'
  | 'HAND_TIMEOUT'
  | 'HAND_STOPPED'
  /** the Hand a request needs is not running */
  | 'HAND_NOT_RUNNING'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  /** the state changed under the request (a stale config baseGeneration) */
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'SENSOR_NOT_FOUND'
  /** ctx.fetch: the host name did not resolve */
  | 'NET_DNS'
  /** ctx.fetch: the connection failed (refused, reset, unreachable, TLS) */
  | 'NET_CONNECT'
  /** ctx.fetch: the request (body included) took longer than the grant's timeoutMs */
  | 'NET_TIMEOUT'
  /** ctx.fetch: the response body passed the grant's maxResponseBytes */
  | 'NET_TOO_LARGE'
  /** ctx.fetch: too many redirects, or a redirect when the request said redirect: 'error' */
  | 'NET_REDIRECT'
  | 'LLM_UNAVAILABLE'
  | 'LLM_RATE_LIMITED'
  | 'LLM_AUTH'
  | 'LLM_BILLING'
  | 'LLM_BAD_RESPONSE'
  | 'LLM_TIMEOUT'
  | 'LLM_BAD_REQUEST'
  | 'LLM_BUDGET'
  | 'LLM_PARTIAL'
  | 'SENSOR_FAULT'
  | 'SENSOR_TIMEOUT'
  | 'SENSOR_UNAVAILABLE'
  | 'ACTUATOR_NOT_FOUND'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'BAD_REQUEST'
  | 'NOT_RUNNING'
  /** the audit log failed verification or cannot be written */
  | 'AUDIT_BROKEN'
  /** an audit event, an exported line or a key is not in the v1 format */
  | 'AUDIT_FORMAT'
  /** the audit log cannot be written (a full disk, an I/O error): privileged actions are refused until it can */
  | 'AUDIT_UNAVAILABLE'
  /** web admin auth: a wrong username or password */
  | 'BAD_CREDENTIALS'
  /** a cookie-authenticated write without the session's x-csrf-token */
  | 'CSRF'
  /** too many failed logins for this account: wait (Retry-After) */
  | 'LOCKED_OUT'
  /** too many requests from this address: wait (Retry-After) */
  | 'RATE_LIMITED'
  /** a token or user tried to grant a scope or role it does not hold itself */
  | 'SCOPE_ESCALATION'
  /** the request's Host is not one of this device's names or addresses (DNS rebinding) */
  | 'HOST_NOT_ALLOWED'
  /** a write from a page on another site (its Origin or Referer is not this device) */
  | 'ORIGIN_NOT_ALLOWED'
  /** first-run setup was already done (an account exists) */
  | 'SETUP_DONE'
  /** deleting or demoting the last admin would lock everyone out */
  | 'LAST_ADMIN'
  | 'USER_EXISTS'
  | 'USER_NOT_FOUND'
  | 'TOKEN_NOT_FOUND'
  /** the web page was not built (npm run build) */
  | 'PAGE_NOT_BUILT'
  /** provisioning: a message that is not JSON or not in the v1 shape */
  | 'PROVISION_MALFORMED'
  /** provisioning: the signature does not verify against the key it must come from */
  | 'PROVISION_BAD_SIGNATURE'
  /** provisioning: the message names another fleet */
  | 'PROVISION_WRONG_FLEET'
  /** provisioning: the message names another device */
  | 'PROVISION_WRONG_DEVICE'
  /** provisioning: the version is not above the one already applied (replay or downgrade) */
  | 'PROVISION_REPLAY'
  /** provisioning: the bundle's expiry has passed */
  | 'PROVISION_EXPIRED'
  /** provisioning: a sealed value cannot be opened with this device's key */
  | 'PROVISION_SEAL'
  /** provisioning: a bundle in the old v1 format, its config and admin account in clear (only sealed v2 bundles are taken) */
  | 'PROVISION_UNSEALED'
  /** provisioning: the new config did not stay healthy for the health window and was rolled back */
  | 'PROVISION_UNHEALTHY'
  /** the fleet folder (talon fleet init --out DIR) is missing or incomplete */
  | 'FLEET_NOT_FOUND'
  /** no device with that id announced itself to the fleet */
  | 'DEVICE_NOT_FOUND'
  /** the device did not acknowledge a bundle in time */
  | 'ACK_TIMEOUT'
  /** talon image: a build step failed (its output says why) */
  | 'IMAGE_BUILD'
  /** talon image: no Talon binary for the board's architecture */
  | 'IMAGE_BINARY_MISSING'
  /** talon image: this machine cannot run arm64 programs (binfmt_misc + qemu-user-static) */
  | 'IMAGE_NO_BINFMT'
  /** talon image: not enough free disk space for the build */
  | 'IMAGE_NO_SPACE'
  /** talon image: a build tool is not installed */
  | 'IMAGE_TOOL_MISSING'
  /** talon image: the build needs root */
  | 'IMAGE_NEEDS_ROOT'
  | 'INTERNAL';

const STATUS: Partial<Record<ErrorCode, number>> = {
  USAGE: 400,
  CONFIG_INVALID: 400,
  CONFIG_PARSE: 400,
  CONFIG_NOT_FOUND: 404,
  MANIFEST_INVALID: 400,
  BUS_PAYLOAD_TOO_LARGE: 413,
  STORE_LIMIT: 413,
  BUS_PAYLOAD_INVALID: 400,
  BUS_TOPIC_INVALID: 400,
  CAPABILITY_DENIED: 403,
  QUOTA_EXCEEDED: 429,
  HAND_NOT_FOUND: 404,
  HAND_STATE: 409,
  HAND_NOT_RUNNING: 503,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  SENSOR_NOT_FOUND: 404,
  NET_DNS: 502,
  NET_CONNECT: 502,
  NET_TIMEOUT: 504,
  NET_TOO_LARGE: 502,
  NET_REDIRECT: 502,
  LLM_UNAVAILABLE: 503,
  LLM_RATE_LIMITED: 429,
  LLM_AUTH: 502,
  LLM_BILLING: 502,
  LLM_BAD_RESPONSE: 502,
  LLM_TIMEOUT: 504,
  LLM_BAD_REQUEST: 400,
  LLM_BUDGET: 429,
  LLM_PARTIAL: 502,
  ACTUATOR_NOT_FOUND: 404,
  SENSOR_UNAVAILABLE: 503,
  SENSOR_TIMEOUT: 504,
  SENSOR_FAULT: 502,
  UNSUPPORTED_MEDIA_TYPE: 415,
  BAD_REQUEST: 400,
  NOT_RUNNING: 503,
  BUS_DOWN: 503,
  AUDIT_FORMAT: 400,
  AUDIT_UNAVAILABLE: 503,
  SCOPE_ESCALATION: 403,
  HOST_NOT_ALLOWED: 421,
  ORIGIN_NOT_ALLOWED: 403,
  BAD_CREDENTIALS: 401,
  CSRF: 403,
  LOCKED_OUT: 429,
  RATE_LIMITED: 429,
  SETUP_DONE: 409,
  LAST_ADMIN: 409,
  USER_EXISTS: 409,
  USER_NOT_FOUND: 404,
  TOKEN_NOT_FOUND: 404,
  PAGE_NOT_BUILT: 503,
  PROVISION_MALFORMED: 400,
  PROVISION_BAD_SIGNATURE: 403,
  PROVISION_WRONG_FLEET: 403,
  PROVISION_WRONG_DEVICE: 403,
  PROVISION_REPLAY: 409,
  PROVISION_EXPIRED: 410,
  PROVISION_SEAL: 400,
  PROVISION_UNSEALED: 400,
  PROVISION_UNHEALTHY: 503,
  FLEET_NOT_FOUND: 404,
  DEVICE_NOT_FOUND: 404,
  ACK_TIMEOUT: 504,
};

/** Codes that mean "the operator's input was wrong": the CLI exits 2 for these. */
const OPERATOR_CODES = new Set<ErrorCode>([
  'USAGE', 'CONFIG_INVALID', 'CONFIG_NOT_FOUND', 'CONFIG_PARSE', 'MANIFEST_INVALID',
  'STORE_LOCKED', 'STORE_READONLY', 'PORT_IN_USE', 'HAND_NOT_FOUND', 'BAD_REQUEST',
]);

export interface ErrorJSON {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

export class TalonError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  override readonly cause: unknown;

  constructor(code: ErrorCode, message: string, opts: { details?: unknown; cause?: unknown } = {}) {
    super(message);
    this.name = 'TalonError';
    this.code = code;
    this.details = opts.details;
    this.cause = opts.cause;
  }

  get status(): number {
    return STATUS[this.code] ?? 500;
  }

  get exitCode(): 1 | 2 {
    return OPERATOR_CODES.has(this.code) ? 2 : 1;
  }

  toJSON(): ErrorJSON {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  static from(err: unknown): TalonError {
    if (err instanceof TalonError) return err;
    if (isErrorJSON(err)) return new TalonError(err.code, err.message, { details: err.details });
    const message = err instanceof Error ? err.message : String(err);
    return new TalonError('INTERNAL', message, { cause: err });
  }
}

export function isErrorJSON(v: unknown): v is ErrorJSON {
  return typeof v === 'object' && v !== null && typeof (v as ErrorJSON).code === 'string'
    && typeof (v as ErrorJSON).message === 'string';
}
