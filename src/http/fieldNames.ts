// Which field and query-parameter names an error body or a log line may
// repeat. A client can put a secret or a token where a name goes
// (`?whsec_…`, `{"eyJhbGci…": 1}`), and DESIGN §2 says neither may come
// back in an answer or reach a log. A name is repeated only if the API
// itself declares it (any request schema's property, collected as routes are
// registered), or if it is short and shaped like a field name and carries
// none of the common secret and token prefixes; anything else is named
// `[redacted]` in logs and not named at all in errors (the pointer stops at
// its parent).
import type { ZodType } from 'zod';
import { z } from 'zod';

const declared = new Set<string>();

/** Adds every property name of a request schema (body, query, headers, params) to the names that may be repeated. */
export function declareFieldNames(schema: unknown): void {
  if (schema === undefined || schema === null || typeof schema !== 'object') return;
  let json: unknown;
  try {
    json = z.toJSONSchema(schema as ZodType, { io: 'input', unrepresentable: 'any' });
  } catch {
    return;
  }
  const walk = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach(walk);
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      if (key === 'properties' && value !== null && typeof value === 'object') {
        for (const name of Object.keys(value)) declared.add(name);
      }
      walk(value);
    }
  };
  walk(json);
}

const FIELD_SHAPE = /^[A-Za-z][A-Za-z0-9]*(?:[_.-][A-Za-z0-9]+)*$/;
const MAX_UNDECLARED_LENGTH = 24;
/** Prefixes of widely used secrets and tokens (Standard Webhooks, GitHub, Stripe, Slack, AWS, JWTs). */
const SECRET_PREFIXES = /^(?:whsec_|ghp_|gho_|ghu_|ghs_|github_pat_|sk_|rk_|pk_|xox|AKIA|ASIA|eyJ)/;

/** Whether `name` may appear in an error pointer or a log line. */
export function isRepeatableName(name: string): boolean {
  if (declared.has(name)) return true;
  return name.length <= MAX_UNDECLARED_LENGTH && FIELD_SHAPE.test(name) && !SECRET_PREFIXES.test(name);
}
