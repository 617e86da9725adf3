/** Talon's version and the build's commit, baked in by the bundler (image/bundle.ts). */
declare const __TALON_VERSION__: string | undefined;
declare const __TALON_COMMIT__: string | undefined;
declare const __TALON_BUILD_TIME__: number | undefined;

export const VERSION: string = typeof __TALON_VERSION__ === 'string' ? __TALON_VERSION__ : '0.0.0-dev';
export const COMMIT: string = typeof __TALON_COMMIT__ === 'string' ? __TALON_COMMIT__ : 'unknown';

/**
 * When this build was made (its commit's time, ms epoch): a wall clock earlier than this is wrong (a board without a
 * real-time clock boots in 1970 or at its last shutdown). Unbundled runs use the time this line was last changed.
 */
export const BUILD_TIME: number =
  typeof __TALON_BUILD_TIME__ === 'number' ? __TALON_BUILD_TIME__ : Date.parse('2026-12-01T00:00:00Z');
