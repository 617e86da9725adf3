/** Talon's version and the build's commit, baked in by the bundler (image/bundle.ts). */
declare const __TALON_VERSION__: string | undefined;
declare const __TALON_COMMIT__: string | undefined;

export const VERSION: string = typeof __TALON_VERSION__ === 'string' ? __TALON_VERSION__ : '0.0.0-dev';
export const COMMIT: string = typeof __TALON_COMMIT__ === 'string' ? __TALON_COMMIT__ : 'unknown';
