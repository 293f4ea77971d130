// canonicalJson is what every event hash and request fingerprint is computed
// over, so its output must never change: it is checked here against the
// first implementation (kept below as the reference) on generated values.
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/domain/canonicalJson.ts';

function reference(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (value === undefined) return 'null';
    if (typeof value === 'bigint') return JSON.stringify(value.toString());
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${reference(v)}`).join(',')}}`;
}

// A small deterministic generator (no flaky seeds).
function* values(): Generator<unknown> {
  let state = 12345;
  const next = (n: number): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
  const keys = ['a', 'B', 'z', '', 'é', 'Ω', '日', '🦄', '\uff01', 'hash', 'data', 'a b', '"q"', '10', '9'];
  const scalars = [null, true, false, 0, -0, 1.5, -7, 1e21, 'x', '', 'ü\n"\\', '🦄', '\ud800', undefined];
  const gen = (depth: number): unknown => {
    const kind = depth > 3 ? 0 : next(3);
    if (kind === 0) return scalars[next(scalars.length)];
    if (kind === 1) return Array.from({ length: next(5) }, () => gen(depth + 1));
    const object: Record<string, unknown> = {};
    for (let i = next(6); i > 0; i--) object[keys[next(keys.length)]!] = gen(depth + 1);
    return object;
  };
  for (let i = 0; i < 3000; i++) yield gen(0);
}

describe('canonicalJson', () => {
  it('encodes exactly as the reference implementation', () => {
    for (const value of values()) expect(canonicalJson(value)).toBe(reference(value));
  });

  it('orders keys by UTF-16 code units (an astral key before U+FF01) and drops undefined members', () => {
    expect(canonicalJson({ '\uff01': 1, '🦄': 2, b: undefined, a: [undefined, 1n] })).toBe('{"a":[null,"1"],"🦄":2,"！":1}');
  });
});
