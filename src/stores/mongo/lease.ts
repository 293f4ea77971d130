// The rebuild lease of the MongoDB read model, as pure decisions.
//
// Which collection set is live, and who may replace it, is one document:
//   meta {_id:'active', version, lastAllocated, lease?: {owner, version, purpose, expiresAt}}
// A rebuild or reset first takes the lease with a compare-and-set on that
// document (allocating its version in the same update), renews it while it
// works, and switches `version` with a second compare-and-set that also
// checks it still holds the lease and that the live version is the one it
// started from. Single-document updates are atomic without transactions, so
// this holds on a standalone server too. The engine does the I/O; these
// functions decide, so the rules are unit-tested without a server.

export type LeasePurpose = 'rebuild' | 'reset';

export interface Lease {
  /** Random per rebuild/reset, never reused. */
  readonly owner: string;
  /** The collection set being built under this lease. */
  readonly version: number;
  readonly purpose: LeasePurpose;
  /** Wall clock of the holder's process when it last renewed, plus the TTL. */
  readonly expiresAt: Date;
}

export interface ActiveDoc {
  readonly version: number;
  readonly lastAllocated: number;
  readonly lease?: Lease | null | undefined;
}

/** Another rebuild or reset holds the lease: one replacement of the live set at a time. */
export class ReadModelBusyError extends Error {
  override readonly name = 'ReadModelBusyError';
  constructor(readonly holder: Lease) {
    super(
      `another ${holder.purpose} of the MongoDB read model is in progress (collection set v${holder.version}, ` +
        `lease held until ${holder.expiresAt.toISOString()}); try again when it has finished`,
    );
  }
}

/** This rebuild lost its lease (it stalled past the TTL and another process took over) or the live set moved. */
export class RebuildLeaseLostError extends Error {
  override readonly name = 'RebuildLeaseLostError';
}

export function isLive(lease: Lease | null | undefined, now: Date): lease is Lease {
  return lease != null && lease.expiresAt.getTime() > now.getTime();
}

export type LeaseDecision =
  | {
      readonly kind: 'acquire';
      /** The version to build: never used before. */
      readonly version: number;
      /** The live version the switch must replace (compare-and-set). */
      readonly live: number;
      /** An expired lease being taken over (its set is garbage now), or null. */
      readonly takesOver: Lease | null;
    }
  | { readonly kind: 'busy'; readonly holder: Lease };

/** Whether a new rebuild/reset may start now, and with which version. */
export function decideLease(active: ActiveDoc, now: Date): LeaseDecision {
  if (isLive(active.lease, now)) return { kind: 'busy', holder: active.lease };
  return {
    kind: 'acquire',
    version: active.lastAllocated + 1,
    live: active.version,
    takesOver: active.lease ?? null,
  };
}

/**
 * Leftover collection sets the lease holder may drop: aborted or crashed
 * rebuilds, and sets replaced earlier. Never the live set, never the holder's
 * own, never one built under someone else's live lease, and never one newer
 * than the holder's own (only a later lease holder can have allocated it).
 */
export function versionsToDrop(
  existing: Iterable<number>,
  context: { readonly active: ActiveDoc; readonly owner: string; readonly own: number; readonly now: Date },
): number[] {
  const { active, owner, own, now } = context;
  const foreign = isLive(active.lease, now) && active.lease.owner !== owner ? active.lease.version : undefined;
  const out = new Set<number>();
  for (const version of existing) {
    if (version === active.version || version === foreign || version >= own) continue;
    out.add(version);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * After a failed or abandoned rebuild/reset: drop the own set unless it became
 * live (a switch whose answer was lost did land), and release the lease if it
 * is still ours.
 */
export function abandonPlan(
  active: ActiveDoc,
  own: { readonly owner: string; readonly version: number },
): { readonly dropOwn: boolean; readonly release: boolean } {
  return { dropOwn: active.version !== own.version, release: active.lease?.owner === own.owner };
}

/** Why the switch's compare-and-set matched nothing, for the error message. */
export function explainFailedSwitch(
  active: ActiveDoc,
  own: { readonly owner: string; readonly version: number; readonly live: number },
): string {
  if (active.version === own.version) return 'the switch already happened';
  if (active.lease?.owner !== own.owner) {
    return active.lease
      ? `the lease was taken over by another ${active.lease.purpose} (set v${active.lease.version}) after this one stalled past its expiry`
      : 'the lease expired and was released by another process';
  }
  return `the live set moved from v${own.live} to v${active.version} meanwhile`;
}
