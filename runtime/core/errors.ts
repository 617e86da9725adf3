/**
 * Every error Talon raises on purpose is a TalonError: a stable `code` that callers and
 * tests match on, a message a person can act on, an HTTP status for the REST layer and an
 * exit code for the CLI (2 = the operator's input was wrong, 1 = runtime failure).
 *
 * A code is declared once, in `ERRORS`, with its status and its exit code: the type
 * `ErrorCode` is the table's keys, so a new code cannot be used without both (there used to
 * be a union, a status map and an exit-code set, and a code missing from the map was a 500).
 */

/** What a code means to the two front ends: the REST layer's status and the CLI's exit code. */
export interface ErrorSpec {
  /** the HTTP status the REST layer answers with (a 4xx or 5xx; 500 is a fault inside Talon) */
  readonly status: number;
  /** the CLI's exit code: 2 = the operator's input was wrong, 1 = a runtime failure */
  readonly exit: 1 | 2;
}

export const ERRORS = {
  USAGE: { status: 400, exit: 2 },
  CONFIG_INVALID: { status: 400, exit: 2 },
  CONFIG_NOT_FOUND: { status: 404, exit: 2 },
  CONFIG_PARSE: { status: 400, exit: 2 },
  MANIFEST_INVALID: { status: 400, exit: 2 },
  STORE_LOCKED: { status: 500, exit: 2 },
  STORE_READONLY: { status: 500, exit: 2 },
  STORE_FULL: { status: 500, exit: 1 },
  STORE_OPEN_FAILED: { status: 500, exit: 1 },
  STORE_LIMIT: { status: 413, exit: 1 },
  PORT_IN_USE: { status: 500, exit: 2 },
  LISTEN_FAILED: { status: 500, exit: 1 },
  BUS_DOWN: { status: 503, exit: 1 },
  BUS_PAYLOAD_TOO_LARGE: { status: 413, exit: 1 },
  BUS_PAYLOAD_INVALID: { status: 400, exit: 1 },
  BUS_TOPIC_INVALID: { status: 400, exit: 1 },
  CAPABILITY_DENIED: { status: 403, exit: 1 },
  QUOTA_EXCEEDED: { status: 429, exit: 1 },
  HAND_NOT_FOUND: { status: 404, exit: 2 },
  HAND_STATE: { status: 409, exit: 1 },
  HAND_START_FAILED: { status: 500, exit: 1 },
  HAND_CRASHED: { status: 500, exit: 1 },
  /** a Hand did not answer in time (a typed request through its surface: a gateway timeout), or hung */
  HAND_TIMEOUT: { status: 504, exit: 1 },
  HAND_STOPPED: { status: 500, exit: 1 },
  /** the Hand a request needs is not running */
  HAND_NOT_RUNNING: { status: 503, exit: 1 },
  UNAUTHORIZED: { status: 401, exit: 1 },
  FORBIDDEN: { status: 403, exit: 1 },
  NOT_FOUND: { status: 404, exit: 1 },
  METHOD_NOT_ALLOWED: { status: 405, exit: 1 },
  /** the state changed under the request (a stale config baseGeneration) */
  CONFLICT: { status: 409, exit: 1 },
  PAYLOAD_TOO_LARGE: { status: 413, exit: 1 },
  SENSOR_NOT_FOUND: { status: 404, exit: 1 },
  /** ctx.fetch: the host name did not resolve */
  NET_DNS: { status: 502, exit: 1 },
  /** ctx.fetch: the connection failed (refused, reset, unreachable, TLS) */
  NET_CONNECT: { status: 502, exit: 1 },
  /** ctx.fetch: the request (body included) took longer than the grant's timeoutMs */
  NET_TIMEOUT: { status: 504, exit: 1 },
  /** ctx.fetch: the response body passed the grant's maxResponseBytes */
  NET_TOO_LARGE: { status: 502, exit: 1 },
  /** ctx.fetch: too many redirects, or a redirect when the request said redirect: 'error' */
  NET_REDIRECT: { status: 502, exit: 1 },
  LLM_UNAVAILABLE: { status: 503, exit: 1 },
  LLM_RATE_LIMITED: { status: 429, exit: 1 },
  LLM_AUTH: { status: 502, exit: 1 },
  LLM_BILLING: { status: 502, exit: 1 },
  LLM_BAD_RESPONSE: { status: 502, exit: 1 },
  LLM_TIMEOUT: { status: 504, exit: 1 },
  LLM_BAD_REQUEST: { status: 400, exit: 1 },
  LLM_BUDGET: { status: 429, exit: 1 },
  LLM_PARTIAL: { status: 502, exit: 1 },
  SENSOR_FAULT: { status: 502, exit: 1 },
  SENSOR_TIMEOUT: { status: 504, exit: 1 },
  SENSOR_UNAVAILABLE: { status: 503, exit: 1 },
  ACTUATOR_NOT_FOUND: { status: 404, exit: 1 },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, exit: 1 },
  /** tools (runtime/tools): no tool of that name (or a tool of a stopped MCP server that is gone) */
  TOOL_NOT_FOUND: { status: 404, exit: 2 },
  /** a tool's input failed its JSON Schema (details.errors name the fields) */
  TOOL_BAD_INPUT: { status: 400, exit: 2 },
  /** a tool's answer failed its output schema (a fault of the tool, not the caller) */
  TOOL_BAD_OUTPUT: { status: 502, exit: 1 },
  /** a tool ran out of its time (the shell's process group killed, an MCP call cancelled) */
  TOOL_TIMEOUT: { status: 504, exit: 1 },
  /** a tool ran and failed (a command's non-zero exit is not this: it is a result) */
  TOOL_FAILED: { status: 502, exit: 1 },
  /** a shell command line the kernel cannot check (command substitution, a subshell, bad quoting) */
  SHELL_SYNTAX: { status: 400, exit: 2 },
  /** a person denied the action, or nobody answered within the approval's timeout (never an allow) */
  APPROVAL_DENIED: { status: 403, exit: 1 },
  APPROVAL_NOT_FOUND: { status: 404, exit: 1 },
  /** the agent loop ended before an answer: steps, tokens, a repeated call (details.transcript holds the partial run) */
  AGENT_BUDGET: { status: 429, exit: 1 },
  AGENT_DEADLINE: { status: 504, exit: 1 },
  AGENT_LOOP: { status: 508, exit: 1 },
  /** the model's tool call could not be read even after one repair */
  AGENT_BAD_CALL: { status: 502, exit: 1 },
  RUN_NOT_FOUND: { status: 404, exit: 1 },
  /** an MCP server is not connected (starting, died, reconnecting) */
  MCP_UNAVAILABLE: { status: 503, exit: 1 },
  /** an MCP server answered with an error or garbage */
  MCP_ERROR: { status: 502, exit: 1 },
  BAD_REQUEST: { status: 400, exit: 2 },
  NOT_RUNNING: { status: 503, exit: 1 },
  /** the audit log failed verification or cannot be written */
  AUDIT_BROKEN: { status: 500, exit: 1 },
  /** an audit event, an exported line or a key is not in the v1 format */
  AUDIT_FORMAT: { status: 400, exit: 1 },
  /** the audit log cannot be written (a full disk, an I/O error): privileged actions are refused until it can */
  AUDIT_UNAVAILABLE: { status: 503, exit: 1 },
  /** web admin auth: a wrong username or password */
  BAD_CREDENTIALS: { status: 401, exit: 1 },
  /** a cookie-authenticated write without the session's x-csrf-token */
  CSRF: { status: 403, exit: 1 },
  /** too many failed logins for this account: wait (Retry-After) */
  LOCKED_OUT: { status: 429, exit: 1 },
  /** too many requests from this address: wait (Retry-After) */
  RATE_LIMITED: { status: 429, exit: 1 },
  /** a token or user tried to grant a scope or role it does not hold itself */
  SCOPE_ESCALATION: { status: 403, exit: 1 },
  /** the request's Host is not one of this device's names or addresses (DNS rebinding) */
  HOST_NOT_ALLOWED: { status: 421, exit: 1 },
  /** a write from a page on another site (its Origin or Referer is not this device) */
  ORIGIN_NOT_ALLOWED: { status: 403, exit: 1 },
  /** first-run setup was already done (an account exists) */
  SETUP_DONE: { status: 409, exit: 1 },
  /** deleting or demoting the last admin would lock everyone out */
  LAST_ADMIN: { status: 409, exit: 1 },
  USER_EXISTS: { status: 409, exit: 1 },
  USER_NOT_FOUND: { status: 404, exit: 1 },
  TOKEN_NOT_FOUND: { status: 404, exit: 1 },
  /** the web page was not built (npm run build) */
  PAGE_NOT_BUILT: { status: 503, exit: 1 },
  /** provisioning: a message that is not JSON or not in the v1 shape */
  PROVISION_MALFORMED: { status: 400, exit: 1 },
  /** provisioning: the signature does not verify against the key it must come from */
  PROVISION_BAD_SIGNATURE: { status: 403, exit: 1 },
  /** provisioning: the message names another fleet */
  PROVISION_WRONG_FLEET: { status: 403, exit: 1 },
  /** provisioning: the message names another device */
  PROVISION_WRONG_DEVICE: { status: 403, exit: 1 },
  /** provisioning: the version is not above the one already applied (replay or downgrade) */
  PROVISION_REPLAY: { status: 409, exit: 1 },
  /** provisioning: the bundle's expiry has passed */
  PROVISION_EXPIRED: { status: 410, exit: 1 },
  /** provisioning: a sealed value cannot be opened with this device's key */
  PROVISION_SEAL: { status: 400, exit: 1 },
  /** provisioning: a bundle in the old v1 format, its config and admin account in clear (only sealed v2 bundles are taken) */
  PROVISION_UNSEALED: { status: 400, exit: 1 },
  /** provisioning: the new config did not stay healthy for the health window and was rolled back */
  PROVISION_UNHEALTHY: { status: 503, exit: 1 },
  /** the fleet folder (talon fleet init --out DIR) is missing or incomplete */
  FLEET_NOT_FOUND: { status: 404, exit: 1 },
  /** no device with that id announced itself to the fleet */
  DEVICE_NOT_FOUND: { status: 404, exit: 1 },
  /** the device did not acknowledge a bundle in time */
  ACK_TIMEOUT: { status: 504, exit: 1 },
  /** talon image: a build step failed (its output says why) */
  IMAGE_BUILD: { status: 500, exit: 1 },
  /** talon image: no Talon binary for the board's architecture */
  IMAGE_BINARY_MISSING: { status: 500, exit: 1 },
  /** talon image: this machine cannot run arm64 programs (binfmt_misc + qemu-user-static) */
  IMAGE_NO_BINFMT: { status: 500, exit: 1 },
  /** talon image: not enough free disk space for the build */
  IMAGE_NO_SPACE: { status: 500, exit: 1 },
  /** talon image: a build tool is not installed */
  IMAGE_TOOL_MISSING: { status: 500, exit: 1 },
  /** talon image: the build needs root */
  IMAGE_NEEDS_ROOT: { status: 500, exit: 1 },
  INTERNAL: { status: 500, exit: 1 },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Every declared code, in declaration order. */
export const ERROR_CODES = Object.keys(ERRORS) as readonly ErrorCode[];

export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === 'string' && Object.hasOwn(ERRORS, v);
}

/** The HTTP status for a code; 500 for a string that is not a declared code (from a newer peer). */
export function errorStatus(code: ErrorCode): number {
  return isErrorCode(code) ? ERRORS[code].status : 500;
}

/** The CLI exit code for a code; 1 for a string that is not a declared code. */
export function errorExit(code: ErrorCode): 1 | 2 {
  return isErrorCode(code) ? ERRORS[code].exit : 1;
}

/**
 * The CLI exit code for an error the daemon answered, by its HTTP status: 2 for a 4xx about
 * what the operator asked, 1 for the rest (401/403 mean the CLI's token is wrong, which is not
 * the command line's fault). By status, not by code, so a code this CLI does not know (from a
 * newer daemon) still exits right; it differs from a code's own `exit` where the REST status
 * says more than the code (HAND_STATE is 409, so 2, from the daemon; 1 when raised locally).
 */
export function exitForStatus(status: number): 1 | 2 {
  return status >= 400 && status < 500 && status !== 401 && status !== 403 ? 2 : 1;
}

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
    return errorStatus(this.code);
  }

  get exitCode(): 1 | 2 {
    return errorExit(this.code);
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
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as ErrorJSON).code === 'string' &&
    typeof (v as ErrorJSON).message === 'string'
  );
}
