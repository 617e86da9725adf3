/**
 * `json.query` and `csv.parse`: pure functions over the input, no grant needed, read-only and
 * idempotent.
 *
 * json.query speaks JSONPath through jsonpath-plus with script evaluation switched off
 * (`eval: false`): filter and script expressions (`[?(…)]`, `[(…)]`) are refused, since they
 * would run model-written code in the kernel (jsonpath-plus's own "safe" evaluator has had
 * escapes: CVE-2024-21534, CVE-2025-1302). Paths, wildcards, recursive descent, slices,
 * unions and the `~` (property names) and `^` (parent) extensions work.
 *
 * csv.parse reads RFC 4180 text (quotes, escaped quotes, separators and newlines inside quotes,
 * a BOM, ragged rows) with csv-parse's sync API.
 */
// loaded at a tool's first call, not at the kernel's start (image/bundle.ts keeps them in vendor files)
const jsonPathLib = (): Promise<typeof import('jsonpath-plus')> => import('jsonpath-plus');
const csvLib = (): Promise<typeof import('csv-parse/sync')> => import('csv-parse/sync');
import { TalonError } from '../../core/errors.ts';
import type { ToolDefinition } from '../types.ts';

export interface JsonQueryInput {
  data: unknown;
  path: string;
  language?: 'jsonpath';
}

export interface JsonQueryOutput {
  count: number;
  /** the matched values, in document order */
  results: unknown[];
  /** where each match is, as a JSONPath (`$['a'][0]`) */
  paths: string[];
}

export interface CsvParseInput {
  text: string;
  delimiter?: string;
  header?: boolean;
  limit?: number;
}

export interface CsvParseOutput {
  /** the first row's cells when `header` (default); [] without a header */
  columns: string[];
  /** the rows (the header row not among them), each an array of cells in column order */
  rows: string[][];
  /** rows in the text (without the header) */
  total: number;
  /** `limit` cut the rows */
  truncated: boolean;
}

function badInput(tool: string, path: string, message: string): TalonError {
  return new TalonError('TOOL_BAD_INPUT', `${tool}: ${message}`, { details: { errors: [{ path, message }] } });
}

export function dataTools(): ToolDefinition[] {
  const query: ToolDefinition<JsonQueryInput, JsonQueryOutput> = {
    name: 'json.query',
    description:
      'Pick values out of JSON with a JSONPath (`$.items[*].name`, `$..price`, `$.list[0:3]`, `$.a["b","c"]`). ' +
      '`data` is the JSON value itself or JSON text. Filter and script expressions ([?(…)]) are not supported. ' +
      'Returns the matches, their count and their paths.',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['data', 'path'],
      properties: {
        data: { description: 'the JSON to query: a value, or a string of JSON text' },
        path: { type: 'string', minLength: 1, maxLength: 4096, description: 'a JSONPath starting with $' },
        language: { enum: ['jsonpath'], description: 'the query language (only jsonpath)' },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['count', 'results', 'paths'],
      properties: {
        count: { type: 'integer' },
        results: { type: 'array' },
        paths: { type: 'array', items: { type: 'string' } },
      },
    },
    annotations: { title: 'Query JSON', readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    capability: 'none',
    async run(input) {
      let json: unknown = input.data;
      if (typeof json === 'string') {
        try {
          json = JSON.parse(json);
        } catch (err) {
          throw badInput('json.query', '/data', `data is a string but not JSON text (${(err as Error).message})`);
        }
      }
      if (json === null || typeof json !== 'object') {
        // JSONPath over a bare scalar: only `$` matches it
        return input.path.trim() === '$'
          ? { count: 1, results: [json], paths: ['$'] }
          : { count: 0, results: [], paths: [] };
      }
      const { JSONPath } = await jsonPathLib();
      let found: Array<{ value: unknown; path: string }>;
      try {
        found = JSONPath({
          path: input.path,
          json: json as object,
          eval: false,
          resultType: 'all',
          wrap: true,
        }) as Array<{
          value: unknown;
          path: string;
        }>;
      } catch (err) {
        const msg = (err as Error).message;
        throw badInput(
          'json.query',
          '/path',
          /prevented/i.test(msg)
            ? `"${input.path}": filter and script expressions ([?(…)], [(…)]) are not supported; select with paths, then filter the results`
            : `"${input.path}" is not a JSONPath this tool can run: ${msg}`,
        );
      }
      const list = Array.isArray(found) ? found : [];
      return { count: list.length, results: list.map((m) => m.value), paths: list.map((m) => m.path) };
    },
  };

  const csv: ToolDefinition<CsvParseInput, CsvParseOutput> = {
    name: 'csv.parse',
    description:
      'Parse CSV text (quoted cells, commas and newlines inside quotes, a BOM, rows of uneven length) into ' +
      '`columns` (the header row, unless header: false) and `rows` (arrays of cells as strings). `delimiter` ' +
      'defaults to a comma; `limit` keeps the first rows (total says how many there were).',
    inputSchema: {
      type: 'object',
      additionalProperties: false,
      required: ['text'],
      properties: {
        text: { type: 'string', description: 'the CSV text' },
        delimiter: { type: 'string', minLength: 1, maxLength: 8, description: 'the cell separator (default ",")' },
        header: { type: 'boolean', description: 'the first row names the columns (default true)' },
        limit: { type: 'integer', minimum: 0, description: 'rows to return at most (default: all)' },
      },
    },
    outputSchema: {
      type: 'object',
      required: ['columns', 'rows', 'total', 'truncated'],
      properties: {
        columns: { type: 'array', items: { type: 'string' } },
        rows: { type: 'array', items: { type: 'array', items: { type: 'string' } } },
        total: { type: 'integer' },
        truncated: { type: 'boolean' },
      },
    },
    annotations: { title: 'Parse CSV', readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    capability: 'none',
    async run(input) {
      const { parse: parseCsv } = await csvLib();
      let records: string[][];
      try {
        records = parseCsv(input.text, {
          delimiter: input.delimiter ?? ',',
          bom: true,
          // files glued together from several sources mix line ends
          record_delimiter: ['\r\n', '\n', '\r'],
          relax_column_count: true,
          skip_empty_lines: true,
        }) as string[][];
      } catch (err) {
        throw badInput('csv.parse', '/text', `the text is not valid CSV: ${(err as Error).message}`);
      }
      const header = input.header ?? true;
      const columns = header ? (records[0] ?? []) : [];
      const body = header ? records.slice(1) : records;
      const limit = input.limit ?? body.length;
      return { columns, rows: body.slice(0, limit), total: body.length, truncated: body.length > limit };
    },
  };

  return [query, csv] as ToolDefinition[];
}
