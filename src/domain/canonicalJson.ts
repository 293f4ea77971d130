// Canonical JSON (sorted object keys, no whitespace): the one encoding that
// request fingerprints and the event hash chain are computed over, so the same
// value always hashes the same whatever order its keys were written in.

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (value === undefined) return 'null';
    if (typeof value === 'bigint') return JSON.stringify(value.toString());
    return JSON.stringify(value);
  }
  // Loops and one growing string, not entries/filter/sort/map/join: every
  // write hashes its events and fingerprints its request with this.
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + canonicalJson(value[i]);
    return `${out}]`;
  }
  // The default sort orders strings by UTF-16 code units, as `<` does.
  const keys = Object.keys(value).sort();
  let out = '{';
  for (const key of keys) {
    const v = (value as Record<string, unknown>)[key];
    if (v === undefined) continue;
    out += (out.length === 1 ? '' : ',') + JSON.stringify(key) + ':' + canonicalJson(v);
  }
  return `${out}}`;
}
