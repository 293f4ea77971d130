// The benchmark's synthetic world: organizations, their authorized partners,
// and registration bodies drawn from the catalog, all from a seeded generator
// so every run (and every size) sees the same distribution.
//
// Shape, chosen so a dispatch lookup at 100 000 registrations returns about
// a dozen targets (a partner is followed by one or two integrating
// organizations, each with a few webhooks for that event):
// - ORGANIZATIONS organizations, each authorized for 1–3 of PARTNERS partners;
// - a webhook lists one partner (85 %), two (5 %) or omits partnerIds (10 %);
// - it subscribes to one pattern (80 %) or two, mostly exact types (85 %),
//   some sub-namespaces like `kyc.verification.*` (10 %) and a few
//   namespaces like `kyc.*` (5 %).
import { createHash } from 'node:crypto';
import { loadCatalog } from '../src/catalog.ts';

export const ORGANIZATIONS = 1000;
export const PARTNERS = 1000;

/** mulberry32: small, fast, good enough for workload shapes. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Random = () => number;

export function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function uuidFrom(text: string): string {
  const h = createHash('sha256').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface Organization {
  readonly id: string;
  readonly partnerIds: readonly string[];
}

export interface RegistrationBody {
  url: string;
  events: string[];
  partnerIds?: string[];
}

export interface Workload {
  readonly organizations: readonly Organization[];
  readonly partnerIds: readonly string[];
  readonly eventTypes: readonly string[];
  /** A valid registration body for this organization. */
  registration(random: Random, org: Organization, n: number): RegistrationBody;
}

export function createWorkload(seed = 2024): Workload {
  const random = rng(seed);
  const eventTypes = loadCatalog().types.map((t) => t.name);
  const namespaces = new Set<string>();
  const subNamespaces = new Set<string>();
  for (const t of eventTypes) {
    const s = t.split('.');
    namespaces.add(`${s[0]}.*`);
    if (s.length > 2) subNamespaces.add(`${s[0]}.${s[1]}.*`);
  }
  const ns = [...namespaces];
  const sub = [...subNamespaces];
  const partnerIds = Array.from({ length: PARTNERS }, (_, i) => uuidFrom(`partner-${i}`));
  const organizations = Array.from({ length: ORGANIZATIONS }, (_, i) => {
    const count = 1 + Math.floor(random() * 3);
    const set = new Set<string>();
    while (set.size < count) set.add(pick(random, partnerIds));
    return { id: `org-${String(i).padStart(4, '0')}`, partnerIds: [...set] };
  });

  const pattern = (r: Random): string => {
    const x = r();
    return x < 0.85 ? pick(r, eventTypes) : x < 0.95 ? pick(r, sub) : pick(r, ns);
  };

  return {
    organizations,
    partnerIds,
    eventTypes,
    registration(r, org, n) {
      const x = r();
      const patternCount = x < 0.8 ? 1 : 2;
      const events = new Set<string>();
      while (events.size < patternCount) events.add(pattern(r));
      const body: RegistrationBody = { url: `https://hooks.${org.id}.example.com/webhooks/${n}`, events: [...events] };
      const y = r();
      if (y < 0.85) body.partnerIds = [pick(r, org.partnerIds)];
      else if (y < 0.9 && org.partnerIds.length >= 2) body.partnerIds = org.partnerIds.slice(0, 2);
      return body;
    },
  };
}
