/**
 * A form built from a JSON Schema: objects, strings, numbers, integers, booleans, enums and
 * arrays of those; anything else is a JSON textarea. Errors are shown next to the field whose
 * path (`/a/b`, `a.b`, `settings.a.b` or `/settings/a/b`) they name.
 */
import { useState } from 'preact/hooks';

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  title?: string;
  description?: string;
  default?: unknown;
  required?: string[];
  minimum?: number;
  maximum?: number;
};

/** `/settings/a/0/b`, `settings.a[0].b` and `a.0.b` all become `a/0/b` */
export function normalizePath(path: string, drop = 'settings'): string {
  const parts = path
    .replace(/\[(\d+)\]/g, '.$1')
    .split(/[/.]/)
    .filter(Boolean);
  if (parts[0] === drop) parts.shift();
  return parts.join('/');
}

const typeOf = (s: JsonSchema): string | undefined => {
  if (Array.isArray(s.type)) return s.type.find((t) => t !== 'null');
  if (s.type) return s.type;
  if (s.properties) return 'object';
  if (s.enum) return 'enum';
  return undefined;
};

const PRIMITIVE = new Set(['string', 'number', 'integer', 'boolean']);

export interface FormProps {
  schema: JsonSchema;
  value: unknown;
  onChange: (v: unknown) => void;
  /** normalized path → message */
  errors: Record<string, string>;
  path?: string;
  label?: string;
}

export function SchemaField({ schema, value, onChange, errors, path = '', label }: FormProps) {
  const t = schema.enum ? 'enum' : typeOf(schema);
  const id = `setting-${path || 'root'}`;
  const err = errors[path];
  const title = label ?? schema.title ?? path.split('/').pop() ?? '';
  const help = schema.description ? <small class="muted">{schema.description}</small> : null;
  const errorEl = err ? (
    <span class="field-error" data-testid={`setting-error-${path || 'root'}`}>
      {err}
    </span>
  ) : null;

  if (t === 'object' && schema.properties) {
    const obj = (typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {}) as Record<
      string,
      unknown
    >;
    const body = Object.entries(schema.properties).map(([k, s]) => (
      <SchemaField
        key={k}
        schema={s}
        value={obj[k]}
        errors={errors}
        path={path ? `${path}/${k}` : k}
        label={`${s.title ?? k}${schema.required?.includes(k) ? ' *' : ''}`}
        onChange={(v) => {
          const next = { ...obj };
          if (v === undefined) delete next[k];
          else next[k] = v;
          onChange(next);
        }}
      />
    ));
    return path ? (
      <fieldset data-testid={id}>
        <legend>{title}</legend>
        {help}
        {errorEl}
        {body}
      </fieldset>
    ) : (
      <div data-testid={id}>
        {errorEl}
        {body}
      </div>
    );
  }
  if (t === 'enum' && schema.enum) {
    const opts = schema.enum;
    const idx = opts.findIndex((o) => JSON.stringify(o) === JSON.stringify(value));
    return (
      <label class="field">
        {title}
        <select
          data-testid={id}
          value={idx < 0 ? '' : String(idx)}
          onChange={(e) => {
            const i = (e.target as HTMLSelectElement).value;
            onChange(i === '' ? undefined : opts[Number(i)]);
          }}
        >
          <option value="">
            {schema.default !== undefined
              ? `(default: ${typeof schema.default === 'string' ? schema.default : JSON.stringify(schema.default)})`
              : '(not set)'}
          </option>
          {opts.map((o, i) => (
            <option key={i} value={String(i)}>
              {typeof o === 'string' ? o : JSON.stringify(o)}
            </option>
          ))}
        </select>
        {help}
        {errorEl}
      </label>
    );
  }
  if (t === 'boolean') {
    return (
      <label class="field check">
        <input
          type="checkbox"
          data-testid={id}
          checked={value === true || (value === undefined && schema.default === true)}
          onChange={(e) => onChange((e.target as HTMLInputElement).checked)}
        />{' '}
        {title}
        {value === undefined && typeof schema.default === 'boolean' && <small class="muted"> (default)</small>}
        {help}
        {errorEl}
      </label>
    );
  }
  if (t === 'string' || t === 'number' || t === 'integer') {
    return (
      <label class="field">
        {title}
        <PrimitiveInput type={t} value={value} testid={id} schema={schema} onChange={onChange} />
        {help}
        {errorEl}
      </label>
    );
  }
  if (t === 'array' && schema.items && PRIMITIVE.has(typeOf(schema.items) ?? '') && !schema.items.enum) {
    const arr = Array.isArray(value) ? value : [];
    const it = typeOf(schema.items)!;
    return (
      <fieldset data-testid={id}>
        <legend>{title}</legend>
        {help}
        {errorEl}
        {arr.map((v, i) => (
          <div class="row" key={i}>
            {it === 'boolean' ? (
              <input
                type="checkbox"
                checked={v === true}
                onChange={(e) => onChange(arr.map((x, j) => (j === i ? (e.target as HTMLInputElement).checked : x)))}
              />
            ) : (
              <PrimitiveInput
                type={it}
                value={v}
                testid={`${id}-${i}`}
                schema={schema.items!}
                onChange={(nv) => onChange(arr.map((x, j) => (j === i ? nv : x)))}
              />
            )}
            <button type="button" class="small" onClick={() => onChange(arr.filter((_, j) => j !== i))}>
              Remove
            </button>
            {errors[`${path}/${i}`] && <span class="field-error">{errors[`${path}/${i}`]}</span>}
          </div>
        ))}
        <button
          type="button"
          class="small"
          data-testid={`${id}-add`}
          onClick={() => onChange([...arr, it === 'boolean' ? false : it === 'string' ? '' : 0])}
        >
          Add
        </button>
      </fieldset>
    );
  }
  return (
    <JsonField
      title={title}
      value={value}
      testid={id}
      onChange={onChange}
      help={help}
      errorEl={errorEl}
      placeholder={schema.default === undefined ? undefined : JSON.stringify(schema.default)}
    />
  );
}

function PrimitiveInput({
  type,
  value,
  testid,
  schema,
  onChange,
}: {
  type: string;
  value: unknown;
  testid: string;
  schema: JsonSchema;
  onChange: (v: unknown) => void;
}) {
  const numeric = type === 'number' || type === 'integer';
  return (
    <input
      type={(numeric ? 'number' : 'text') as 'text'}
      data-testid={testid}
      step={type === 'integer' ? 1 : 'any'}
      {...(schema.default !== undefined && schema.default !== null
        ? { placeholder: typeof schema.default === 'object' ? JSON.stringify(schema.default) : String(schema.default) }
        : {})}
      {...(schema.minimum !== undefined ? { min: schema.minimum } : {})}
      {...(schema.maximum !== undefined ? { max: schema.maximum } : {})}
      value={value === undefined || value === null ? '' : String(value)}
      onInput={(e) => {
        const raw = (e.target as HTMLInputElement).value;
        if (!numeric) return onChange(raw);
        if (raw === '') return onChange(undefined);
        const n = Number(raw);
        onChange(Number.isNaN(n) ? raw : n);
      }}
    />
  );
}

function JsonField({
  title,
  value,
  testid,
  onChange,
  help,
  errorEl,
  placeholder,
}: {
  title: string;
  value: unknown;
  testid: string;
  onChange: (v: unknown) => void;
  help: unknown;
  errorEl: unknown;
  placeholder?: string | undefined;
}) {
  const [text, setText] = useState(() => (value === undefined ? '' : JSON.stringify(value, null, 2)));
  const [bad, setBad] = useState('');
  return (
    <label class="field">
      {title} <small class="muted">(JSON)</small>
      <textarea
        data-testid={testid}
        rows={4}
        value={text}
        {...(placeholder ? { placeholder } : {})}
        onInput={(e) => {
          const t = (e.target as HTMLTextAreaElement).value;
          setText(t);
          if (t.trim() === '') {
            setBad('');
            return onChange(undefined);
          }
          try {
            onChange(JSON.parse(t));
            setBad('');
          } catch (err) {
            setBad((err as Error).message);
          }
        }}
      />
      {bad && <span class="field-error">{bad}</span>}
      {help as never}
      {errorEl as never}
    </label>
  );
}
