// `audit verify`: is the history intact?
//  1. Every stream's hash chain is recomputed (domain/hashChain.ts verifyChain
//     over the stream as stored): an altered, deleted or reordered event breaks
//     the chain at its revision.
//  2. The read model is compared with a fresh fold of the log through the same
//     `nextView` the projector uses: a row altered in the read model, or an
//     event missing at the end of a stream (which no chain can show on its
//     own), makes a webhook's view differ.
// Safe while the service runs: the comparison is anchored at the read model's
// checkpoint, so projection lag or a concurrent batch is not reported as damage.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { canonicalJson } from '../domain/canonicalJson.ts';
import { verifyChain, type ChainBreak } from '../domain/hashChain.ts';
import { nextView, type WebhookView } from '../projections/webhookView.ts';
import {
  comparePositions,
  decodePosition,
  encodePosition,
  StoreUnavailableError,
  type EventStore,
  type Position,
  type RecordedEvent,
} from '../stores/eventStore.ts';
import type { ReadModel } from '../stores/readModel.ts';
import { logPages, ReplayAbortedError, webhookIdOf } from './replay.ts';

export type ChainProblem = ChainBreak['problem'] | 'unreadable';

export interface BrokenChain {
  readonly streamId: string;
  /** The first revision at which the chain does not hold. */
  readonly revision: number;
  readonly problem: ChainProblem;
  readonly detail: string;
}

export type MismatchProblem = 'differs' | 'missing-from-read-model' | 'not-in-log' | 'unreadable';

export interface ReadModelMismatch {
  readonly webhookId: string;
  readonly problem: MismatchProblem;
  /** The view fields whose values differ (empty when the whole webhook is missing on one side). */
  readonly fields: readonly string[];
  readonly readModelRevision: number | null;
  readonly logRevision: number | null;
}

export interface VerifyReport {
  readonly ok: boolean;
  /** Events read from the log, and the streams they belong to. */
  readonly events: number;
  readonly streams: number;
  readonly readModelWebhooks: number;
  /** Encoded position of the log's last event at the start (null: empty log). */
  readonly logHead: string | null;
  readonly readModelCheckpoint: string | null;
  /** One entry per damaged stream, in log order: its first broken link. */
  readonly brokenChains: BrokenChain[];
  /** One entry per webhook whose read-model view is not what the log says, by id. */
  readonly readModelMismatches: ReadModelMismatch[];
  /** Damage that belongs to no single stream or webhook (e.g. an unreadable store, a truncated log). */
  readonly otherProblems: string[];
}

export type VerifyProgress =
  | { readonly phase: 'log'; readonly events: number; readonly position: Position; readonly until: Position }
  | { readonly phase: 'chains'; readonly streams: number; readonly total: number };

export interface VerifyOptions {
  readonly pageSize?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((progress: VerifyProgress) => void) | undefined;
  readonly diagnose?: VerifyDiagnosis | undefined;
}

/**
 * Engine-specific help when a store cannot even be decoded (e.g. an event's
 * JSON was overwritten with garbage): name the damaged rows.
 */
export interface VerifyDiagnosis {
  readonly undecodableEvents?: () => BrokenChain[];
  readonly undecodableViews?: () => ReadModelMismatch[];
}

const CHAIN_DETAIL: Record<ChainProblem, string> = {
  'hash-mismatch': "the event's type, data or metadata no longer match the hash recorded when it was written",
  'previous-hash-mismatch': 'the event does not link to the hash of the event before it (events removed, inserted or reordered)',
  'revision-gap': 'a revision is missing from the stream (an event was removed)',
  unreadable: 'the stored event cannot be read back',
};

interface Fold {
  /** The view after every event up to the read model's checkpoint (as the checkpoint was before the snapshot). */
  atCheckpoint: WebhookView | null;
  /** Views after events the projector may have applied while the snapshot was taken. */
  window: WebhookView[];
  current: WebhookView | null;
  /** nextView refused an event: the rest of the stream is not folded. */
  broken: boolean;
}

/**
 * Stored data that cannot be decoded is damage to report; anything else (an
 * outage, a cancelled run) is not a finding and ends the verification.
 */
function isCorruption(error: unknown): boolean {
  if (error instanceof StoreUnavailableError || error instanceof ReplayAbortedError) return false;
  return error instanceof SyntaxError || (error instanceof Error && error.name === 'CorruptEventError');
}

/** verifyChain over a stream, first checking that every event's metadata is an object at all. */
function checkStream(events: readonly RecordedEvent[]): { revision: number; problem: ChainProblem } | undefined {
  for (const e of events) {
    const m = e.metadata as unknown;
    if (m === null || typeof m !== 'object') return { revision: e.revision, problem: 'unreadable' };
  }
  return verifyChain(events);
}

export async function verifyAudit(store: EventStore, readModel: ReadModel, options: VerifyOptions = {}): Promise<VerifyReport> {
  const brokenChains: BrokenChain[] = [];
  const mismatches: ReadModelMismatch[] = [];
  const otherProblems: string[] = [];

  // 1. The read model, bracketed by its checkpoint before (c0) and after (c1).
  const c0 = await readModel.checkpoint();
  let snapshot: Map<string, WebhookView> | undefined = new Map();
  try {
    for await (const view of readModel.allWebhooks()) snapshot.set(view.id, view);
  } catch (error) {
    if (!isCorruption(error)) throw error;
    snapshot = undefined;
    otherProblems.push(`the read model cannot be read: ${(error as Error).message}`);
    mismatches.push(...(options.diagnose?.undecodableViews?.() ?? []));
  }
  const c1 = await readModel.checkpoint();
  const before = c0 === null ? undefined : decodePosition(c0);
  const after = c1 === null ? undefined : decodePosition(c1);
  const head = await store.headPosition();
  if (after !== undefined && (head === undefined || comparePositions(after, head) > 0)) {
    otherProblems.push(
      `the read model has applied events up to ${c1} but the log ends at ${head === undefined ? 'nothing (it is empty)' : encodePosition(head)}: events at the end of the log are missing`,
    );
  }

  // 2. One pass over the log: find every stream, fold views up to c1.
  const streams = new Set<string>();
  const folds = new Map<string, Fold>();
  let events = 0;
  let logReadable = true;
  if (head !== undefined) {
    try {
      for await (const page of logPages(store, { until: head, pageSize: options.pageSize, signal: options.signal })) {
        for (const event of page) {
          events++;
          streams.add(event.streamId);
          const zone =
            before !== undefined && comparePositions(event.position, before) <= 0
              ? 'checkpoint'
              : after !== undefined && comparePositions(event.position, after) <= 0
                ? 'window'
                : 'later';
          if (zone === 'later') continue;
          const id = webhookIdOf(event);
          let fold = folds.get(id);
          if (fold === undefined) {
            fold = { atCheckpoint: null, window: [], current: null, broken: false };
            folds.set(id, fold);
          }
          if (fold.broken) continue;
          let change;
          try {
            change = nextView(fold.current, event);
          } catch {
            fold.broken = true;
            continue;
          }
          if (change.kind === 'skip') continue;
          fold.current = change.view;
          if (zone === 'checkpoint') fold.atCheckpoint = change.view;
          else fold.window.push(change.view);
        }
        const last = page[page.length - 1]!;
        options.onProgress?.({ phase: 'log', events, position: last.position, until: head });
      }
    } catch (error) {
      if (!isCorruption(error)) throw error;
      logReadable = false;
      otherProblems.push(`the event log cannot be read after ${events} events: ${(error as Error).message}`);
      brokenChains.push(...(options.diagnose?.undecodableEvents?.() ?? []));
    }
  }

  // 3. Every stream's hash chain, as stored (revision order).
  let checked = 0;
  for (const streamId of streams) {
    if (options.signal?.aborted) throw new ReplayAbortedError();
    let broken: { revision: number; problem: ChainProblem } | undefined;
    try {
      broken = checkStream(await store.readStream(streamId));
    } catch (error) {
      if (!isCorruption(error)) throw error;
      broken = { revision: 0, problem: 'unreadable' };
    }
    if (broken !== undefined && !brokenChains.some((b) => b.streamId === streamId)) {
      brokenChains.push({ streamId, revision: broken.revision, problem: broken.problem, detail: CHAIN_DETAIL[broken.problem] });
    }
    checked++;
    if (checked % 256 === 0 || checked === streams.size) {
      options.onProgress?.({ phase: 'chains', streams: checked, total: streams.size });
      await yieldToEventLoop();
    }
  }

  // 4. The read model against the fold, webhook by webhook.
  if (snapshot !== undefined && logReadable) {
    for (const [id, view] of snapshot) {
      const fold = folds.get(id);
      const candidates = fold ? [fold.atCheckpoint, ...fold.window].filter((v): v is WebhookView => v !== null) : [];
      const stored = canonicalJson(view);
      if (candidates.some((c) => canonicalJson(c) === stored)) continue;
      if (candidates.length === 0) {
        mismatches.push({ webhookId: id, problem: 'not-in-log', fields: [], readModelRevision: revisionOf(view), logRevision: null });
        continue;
      }
      const expected = candidates.find((c) => c.revision === view.revision) ?? candidates[0]!;
      mismatches.push({
        webhookId: id,
        problem: 'differs',
        fields: differingFields(expected, view),
        readModelRevision: revisionOf(view),
        logRevision: expected.revision,
      });
    }
    for (const [id, fold] of folds) {
      if (fold.atCheckpoint !== null && !snapshot.has(id)) {
        mismatches.push({
          webhookId: id,
          problem: 'missing-from-read-model',
          fields: [],
          readModelRevision: null,
          logRevision: fold.atCheckpoint.revision,
        });
      }
    }
    mismatches.sort((a, b) => (a.webhookId < b.webhookId ? -1 : a.webhookId > b.webhookId ? 1 : 0));
  }

  return {
    ok: brokenChains.length === 0 && mismatches.length === 0 && otherProblems.length === 0,
    events,
    streams: streams.size,
    readModelWebhooks: snapshot?.size ?? 0,
    logHead: head === undefined ? null : encodePosition(head),
    readModelCheckpoint: c1,
    brokenChains,
    readModelMismatches: mismatches,
    otherProblems,
  };
}

function revisionOf(view: WebhookView): number | null {
  return typeof view.revision === 'number' ? view.revision : null;
}

/** Fields of the two views whose values differ, in the order of the expected view. */
export function differingFields(expected: object, actual: object): string[] {
  const a = expected as Record<string, unknown>;
  const b = actual as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((k) => canonicalJson(a[k]) !== canonicalJson(b[k]));
}
