// Test support: the registry's own OpenAPI document as an oracle.
// - ApiDocument resolves the document's references, validates values against
//   its schemas with ajv (OpenAPI 3.1 schemas are JSON Schema 2020-12), and
//   checks an HTTP answer against what the document declares for that
//   operation: the status, the media type, the body, the headers.
// - Sampler generates values from the document's schemas (a seeded schema
//   walker; patterns through randexp), and mutations that the document itself
//   says are invalid (each one is checked with ajv before it is used).
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsPlugin from 'ajv-formats';
import RandExpModule from 'randexp';

export type Json = Record<string, unknown>;

// Both are CommonJS modules whose `module.exports` is the function itself.
const addFormats = addFormatsPlugin as unknown as (ajv: Ajv2020) => void;
const RandExp = RandExpModule as unknown as new (pattern: string) => {
  max: number;
  randInt: (a: number, b: number) => number;
  gen(): string;
};

const ROOT = 'https://registry.test/openapi.json';

export interface Operation {
  readonly id: string;
  readonly method: string;
  /** The path template, e.g. `/v1/webhooks/{id}`. */
  readonly path: string;
  readonly spec: Json;
}

export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly text: string;
}

/** Response headers the registry sets: each one it sends must be documented for that answer. */
const KNOWN_RESPONSE_HEADERS = [
  'etag',
  'location',
  'retry-after',
  'idempotent-replayed',
  'cache-control',
  'www-authenticate',
  'ratelimit-limit',
  'ratelimit-remaining',
  'ratelimit-reset',
  'x-request-id',
];

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Rewrites `#/…` references to absolute ones, so any inline schema compiles on its own. */
function absolutize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(absolutize);
  if (!isObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? ROOT + v : absolutize(v)]),
  );
}

export class ApiDocument {
  readonly ajv: Ajv2020;
  readonly raw: Json;
  private readonly doc: Json;
  private readonly compiled = new WeakMap<object, ValidateFunction>();

  constructor(raw: Json) {
    this.raw = raw;
    this.doc = absolutize(raw) as Json;
    // strictTypes off: zod writes `format` beside `anyOf` branches that carry the type.
    this.ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, strictTypes: false });
    addFormats(this.ajv);
    // OpenAPI's own annotation keyword, and the wrapper the component schemas sit in.
    this.ajv.addVocabulary(['example', 'components']);
    const components = isObject(this.doc.components) ? this.doc.components : {};
    this.ajv.addSchema({ $id: ROOT, components: { schemas: components.schemas } });
  }

  operations(): Operation[] {
    const out: Operation[] = [];
    for (const [path, item] of Object.entries(this.doc.paths as Json)) {
      for (const [method, spec] of Object.entries(item as Json)) {
        if (!isObject(spec)) continue;
        out.push({ id: String(spec.operationId), method, path, spec });
      }
    }
    return out;
  }

  operation(id: string): Operation {
    const found = this.operations().find((o) => o.id === id);
    if (!found) throw new Error(`no operation ${id}`);
    return found;
  }

  /** Follows a `$ref` (of any component kind) until a non-reference object. */
  deref(value: unknown): Json {
    let current = value;
    for (let i = 0; i < 20 && isObject(current) && typeof current.$ref === 'string'; i++) {
      const ref = current.$ref;
      if (!ref.startsWith(`${ROOT}#/`)) throw new Error(`unsupported $ref ${ref}`);
      current = ref
        .slice(ROOT.length + 2)
        .split('/')
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), this.doc);
    }
    if (!isObject(current)) throw new Error(`cannot resolve ${JSON.stringify(value)}`);
    return current;
  }

  component(kind: string, name: string): Json {
    return this.deref({ $ref: `${ROOT}#/components/${kind}/${name}` });
  }

  /** Validation errors of `value` against `schema` (empty: valid). */
  errors(schema: unknown, value: unknown): string[] {
    const object = isObject(schema) ? schema : {};
    let validate = this.compiled.get(object);
    if (!validate) {
      validate = this.ajv.compile(object);
      this.compiled.set(object, validate);
    }
    return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
  }

  isValid(schema: unknown, value: unknown): boolean {
    return this.errors(schema, value).length === 0;
  }

  parameters(op: Operation, where: 'path' | 'query' | 'header'): { name: string; required: boolean; schema: Json }[] {
    const list = Array.isArray(op.spec.parameters) ? op.spec.parameters : [];
    return list
      .map((p) => this.deref(p))
      .filter((p) => p.in === where)
      .map((p) => ({ name: String(p.name), required: p.required === true, schema: p.schema as Json }));
  }

  /** The request body schema for application/json, if the operation takes one. */
  requestBody(op: Operation): { schema: Json; required: boolean; mediaTypes: string[] } | undefined {
    if (!isObject(op.spec.requestBody)) return undefined;
    const body = this.deref(op.spec.requestBody);
    const content = body.content as Record<string, { schema: Json }>;
    const json = content['application/json'];
    if (!json) return undefined;
    return { schema: json.schema, required: body.required === true, mediaTypes: Object.keys(content) };
  }

  /** What the document says about one answer; [] when it matches. */
  check(op: Operation, answer: Answer): string[] {
    const label = `${op.id} → ${answer.status}`;
    const responses = op.spec.responses as Json;
    const declared = responses[String(answer.status)];
    if (declared === undefined) {
      return [`${label}: status not documented (documented: ${Object.keys(responses).join(', ')}); body ${answer.text.slice(0, 200)}`];
    }
    return this.checkResponse(label, this.deref(declared), answer);
  }

  /** Checks an answer against one response object (e.g. components.responses.NotFound). */
  checkResponse(label: string, response: Json, answer: Answer): string[] {
    const problems: string[] = [];
    const contentType = String(answer.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    const content = isObject(response.content) ? (response.content as Record<string, { schema: Json }>) : undefined;
    if (content === undefined) {
      if (answer.text !== '') problems.push(`${label}: documented without a body, got ${contentType} ${answer.text.slice(0, 100)}`);
    } else {
      const media = content[contentType];
      if (media === undefined) {
        problems.push(`${label}: media type ${contentType || '(none)'} not documented (documented: ${Object.keys(content).join(', ')})`);
      } else {
        let body: unknown;
        try {
          body = JSON.parse(answer.text);
        } catch {
          problems.push(`${label}: body is not JSON: ${answer.text.slice(0, 100)}`);
        }
        if (body !== undefined) {
          for (const e of this.errors(media.schema, body)) problems.push(`${label}: body ${e}; body ${answer.text.slice(0, 300)}`);
        }
      }
    }
    const headers = isObject(response.headers) ? response.headers : {};
    const documented = new Map(Object.entries(headers).map(([name, h]) => [name.toLowerCase(), this.deref(h)]));
    for (const [name, h] of documented) {
      const value = answer.headers[name];
      if (value === undefined) {
        if (h.required === true) problems.push(`${label}: required header ${name} missing`);
        continue;
      }
      const schema = h.schema as Json;
      const text = Array.isArray(value) ? value.join(', ') : value;
      const typed = schema.type === 'integer' || schema.type === 'number' ? Number(text) : text;
      for (const e of this.errors(schema, typed)) problems.push(`${label}: header ${name}: ${JSON.stringify(text)} ${e}`);
    }
    for (const name of KNOWN_RESPONSE_HEADERS) {
      if (answer.headers[name] !== undefined && !documented.has(name)) {
        problems.push(`${label}: header ${name} sent but not documented`);
      }
    }
    return problems;
  }
}

/** mulberry32: a small seeded generator, so a failing run can be repeated. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Mutation {
  readonly label: string;
  readonly value: unknown;
}

/** Values the document's schemas cannot say (the token's partners): generated by property name instead. */
export type Overrides = Readonly<Record<string, (schema: Json) => unknown>>;

const ABSENT = Symbol('absent');

export class Sampler {
  constructor(
    private readonly api: ApiDocument,
    private readonly random: () => number,
  ) {}

  int(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(0, list.length - 1)]!;
  }

  uuid(): string {
    const hex = Array.from({ length: 32 }, () => this.int(0, 15).toString(16));
    hex[12] = '4';
    hex[16] = this.pick(['8', '9', 'a', 'b']);
    const h = hex.join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  word(min = 1, max = 12): string {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
    return Array.from({ length: this.int(min, max) }, () => this.pick([...alphabet])).join('');
  }

  /** A value valid against `schema` (checked with ajv; a few tries, then it throws). */
  valid(schema: unknown, overrides: Overrides = {}): unknown {
    for (let attempt = 0; attempt < 50; attempt++) {
      const value = this.generate(schema, overrides);
      if (this.api.isValid(schema, value)) return value;
    }
    throw new Error(`could not generate a valid value for ${JSON.stringify(schema).slice(0, 300)}`);
  }

  private generate(schemaOrRef: unknown, overrides: Overrides): unknown {
    const schema = this.api.deref(schemaOrRef);
    if ('const' in schema) return schema.const;
    if (Array.isArray(schema.enum)) return this.pick(schema.enum);
    const branches = (schema.anyOf ?? schema.oneOf) as unknown[] | undefined;
    if (Array.isArray(branches)) {
      const { anyOf: _a, oneOf: _o, ...rest } = schema;
      return this.generate({ ...rest, ...this.api.deref(this.pick(branches)) }, overrides);
    }
    const type = Array.isArray(schema.type) ? this.pick(schema.type as string[]) : schema.type;
    switch (type) {
      case 'null':
        return null;
      case 'boolean':
        return this.random() < 0.5;
      case 'integer':
      case 'number': {
        const min = typeof schema.minimum === 'number' ? Math.max(schema.minimum, -1e6) : 0;
        const max = typeof schema.maximum === 'number' ? Math.min(schema.maximum, min + 1e6) : min + 1000;
        return this.int(Math.ceil(min), Math.floor(max));
      }
      case 'string':
        return this.string(schema);
      case 'array': {
        const min = typeof schema.minItems === 'number' ? schema.minItems : 0;
        const max = typeof schema.maxItems === 'number' ? Math.min(schema.maxItems, min + 3) : min + 3;
        return Array.from({ length: this.int(min, max) }, () => this.generate(schema.items, overrides));
      }
      case 'object':
      case undefined: {
        const properties = isObject(schema.properties) ? schema.properties : {};
        const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
        const minProperties = typeof schema.minProperties === 'number' ? schema.minProperties : 0;
        const names = Object.keys(properties);
        const chosen = names.filter((n) => required.has(n) || this.random() < 0.5);
        for (const n of names) if (chosen.length < minProperties && !chosen.includes(n)) chosen.push(n);
        return Object.fromEntries(
          chosen.map((n) => {
            const override = overrides[n];
            return [n, override ? override(this.api.deref(properties[n])) : this.generate(properties[n], overrides)];
          }),
        );
      }
      default:
        throw new Error(`cannot generate type ${String(type)}`);
    }
  }

  private string(schema: Json): string {
    const minLength = typeof schema.minLength === 'number' ? schema.minLength : 0;
    const maxLength = typeof schema.maxLength === 'number' ? schema.maxLength : minLength + 24;
    if (typeof schema.pattern === 'string') {
      const generator = new RandExp(schema.pattern);
      generator.max = 8;
      generator.randInt = (a, b) => this.int(a, b);
      return generator.gen();
    }
    switch (schema.format) {
      case 'uuid':
        return this.uuid();
      case 'date-time': {
        // A past instant: the API refuses instants in the future (asOf).
        const ms = Date.UTC(2020, 0, 1) + Math.floor(this.random() * 5 * 365 * 86_400_000);
        return new Date(ms).toISOString();
      }
      case 'uri':
        return `https://${this.word(3, 10)}.example.com/${this.word(0, 12)}`;
      default:
        return this.word(Math.max(1, minLength), Math.max(Math.max(1, minLength), Math.min(maxLength, minLength + 24)));
    }
  }

  /**
   * Values that break one rule of `schema` each; only those ajv confirms are
   * invalid against it are returned. `base` is a valid value for objects.
   */
  invalid(schemaOrRef: unknown, base: unknown, overrides: Overrides = {}): Mutation[] {
    const schema = this.api.deref(schemaOrRef);
    const candidates: Mutation[] = [];
    if (isObject(base) && (schema.type === 'object' || isObject(schema.properties))) {
      const properties = isObject(schema.properties) ? schema.properties : {};
      for (const name of Array.isArray(schema.required) ? (schema.required as string[]) : []) {
        const { [name]: _dropped, ...rest } = base;
        candidates.push({ label: `missing required /${name}`, value: rest });
      }
      if (schema.additionalProperties === false) candidates.push({ label: 'unknown property', value: { ...base, unexpectedField: 1 } });
      if (typeof schema.minProperties === 'number' && schema.minProperties > 0) candidates.push({ label: 'no property', value: {} });
      for (const [name, propertySchema] of Object.entries(properties)) {
        const current = name in base ? base[name] : this.valid(propertySchema, overrides);
        for (const m of this.mutateValue(propertySchema, current)) {
          candidates.push({ label: `/${name}: ${m.label}`, value: { ...base, [name]: m.value } });
        }
      }
    } else {
      candidates.push(...this.mutateValue(schema, base));
    }
    return candidates.filter((c) => c.value !== ABSENT && !this.api.isValid(schema, c.value));
  }

  private mutateValue(schemaOrRef: unknown, current: unknown): Mutation[] {
    const schema = this.api.deref(schemaOrRef);
    const out: Mutation[] = [
      { label: 'a number instead', value: 12345 },
      { label: 'a string instead', value: 'not-of-this-type' },
      { label: 'null', value: null },
      { label: 'an object instead', value: { x: 1 } },
    ];
    const branches = (schema.anyOf ?? schema.oneOf) as unknown[] | undefined;
    const flat = Array.isArray(branches) ? branches.map((b) => ({ ...schema, ...this.api.deref(b) })) : [schema];
    for (const s of flat) {
      if (typeof s.maxLength === 'number') out.push({ label: `longer than ${s.maxLength}`, value: 'a'.repeat(s.maxLength + 1) });
      if (typeof s.minLength === 'number' && s.minLength > 0) out.push({ label: 'empty string', value: '' });
      if (typeof s.pattern === 'string') {
        out.push({ label: 'not matching the pattern', value: 'Not A Match *' }, { label: 'a lone wildcard', value: '*' });
      }
      if (Array.isArray(s.enum)) out.push({ label: 'not in the enum', value: 'NOT_IN_THE_ENUM' });
      if (s.format === 'uuid') out.push({ label: 'not a uuid', value: 'not-a-uuid' });
      if (s.format === 'date-time') out.push({ label: 'not a date-time', value: 'yesterday' });
      if (s.format === 'uri') out.push({ label: 'not a uri', value: 'not a uri' });
      if (typeof s.minimum === 'number') out.push({ label: `below ${s.minimum}`, value: s.minimum - 1 });
      if (typeof s.maximum === 'number') out.push({ label: `above ${s.maximum}`, value: s.maximum + 1 });
      if (s.type === 'integer') out.push({ label: 'a fraction', value: 1.5 });
      if (s.type === 'array') {
        const items: unknown[] = Array.isArray(current) ? (current as unknown[]) : [];
        if (typeof s.minItems === 'number' && s.minItems > 0) out.push({ label: 'empty array', value: [] });
        if (typeof s.maxItems === 'number') {
          out.push({ label: `more than ${s.maxItems} items`, value: Array.from({ length: s.maxItems + 1 }, (_, i) => items[i % Math.max(1, items.length)] ?? 'x') });
        }
        for (const m of this.mutateValue(s.items, items[0])) out.push({ label: `item 0 ${m.label}`, value: [m.value, ...items.slice(1)] });
      }
    }
    return out;
  }
}
