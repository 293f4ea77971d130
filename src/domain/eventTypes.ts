// Event-type patterns: the grammar clients subscribe with, the matcher the
// dispatch query relies on, and the catalog that says which types exist.
// Pure: the catalog is loaded elsewhere and passed in.

export interface EventTypeDefinition {
  readonly name: string;
  readonly description: string;
}

export interface EventTypeCatalog {
  readonly types: readonly EventTypeDefinition[];
  readonly names: ReadonlySet<string>;
}

const SEGMENT = /^[a-z][a-z0-9_]*$/;

export function createCatalog(types: readonly EventTypeDefinition[]): EventTypeCatalog {
  for (const t of types) {
    if (!isValidEventType(t.name)) throw new Error(`catalog entry "${t.name}" is not a valid event type`);
  }
  return { types, names: new Set(types.map((t) => t.name)) };
}

/** An exact event type: lowercase segments joined by dots. */
export function isValidEventType(value: string): boolean {
  const segments = value.split('.');
  return segments.length > 0 && segments.every((s) => SEGMENT.test(s));
}

export type PatternProblem =
  | { kind: 'root-wildcard' }
  | { kind: 'malformed' }
  | { kind: 'unknown' };

/**
 * Checks one subscription pattern: an exact type, or whole segments ending in
 * `.*`. Returns undefined when it is valid and matches at least one catalog type.
 */
export function checkPattern(pattern: string, catalog: EventTypeCatalog): PatternProblem | undefined {
  if (pattern === '*' || pattern === '**') return { kind: pattern === '*' ? 'root-wildcard' : 'malformed' };
  const wildcard = pattern.endsWith('.*');
  const prefix = wildcard ? pattern.slice(0, -2) : pattern;
  if (!isValidEventType(prefix)) return { kind: 'malformed' };
  for (const name of catalog.names) {
    if (matchesPattern(pattern, name)) return undefined;
  }
  return { kind: 'unknown' };
}

/** `kyc.*` matches every type below `kyc` at any depth; an exact pattern only itself. */
export function matchesPattern(pattern: string, eventType: string): boolean {
  if (pattern.endsWith('.*')) {
    const prefix = pattern.slice(0, -1); // keep the trailing dot
    return eventType.startsWith(prefix) && eventType.length > prefix.length;
  }
  return pattern === eventType;
}

/**
 * Every pattern that would match `eventType`: the type itself and a wildcard
 * for each proper prefix. The read models index patterns, so a dispatch
 * lookup is an `IN` over these keys instead of a scan.
 */
export function patternsMatching(eventType: string): string[] {
  const segments = eventType.split('.');
  const keys = [eventType];
  for (let i = 1; i < segments.length; i++) keys.push(`${segments.slice(0, i).join('.')}.*`);
  return keys;
}
