/**
 * Replaced at bundle time by ajv standalone code for every schema in ./registry.ts
 * (see image/bundle.ts, plugin `precompiled-schemas`). Empty when running from source.
 */
import type { ValidateFunction } from 'ajv';

export const precompiled: Record<string, ValidateFunction> = {};
