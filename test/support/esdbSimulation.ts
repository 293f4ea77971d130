// An in-memory stand-in for the parts of EventStoreDBClient the engine uses,
// for the EventStoreDB tests that must run without a server. It checks the
// engine's own logic under stated assumptions about the server; it proves
// nothing about EventStoreDB itself (the same suites run against a real
// server when EVENTSTORE_URL is set).
//
// What it models: revisions and WrongExpectedVersion; idempotent appends (the
// same event ids at the expected revision succeed again without writing, as
// EventStoreDB documents); inclusive $all reads in both directions;
// StreamNotFound; filtered catch-up subscriptions that confirm, then go live;
// system and foreign events interleaved with ours; dropped subscriptions.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { StreamNotFoundError, UnavailableError, WrongExpectedVersionError, type EventStoreDBClient } from '@eventstore/db-client';
import { comparePositions, type Position } from '../../src/stores/eventStore.ts';

interface SimRecord {
  streamId: string;
  id: string;
  revision: bigint;
  type: string;
  data: unknown;
  metadata: unknown;
  isJson: true;
  created: Date;
  position: Position;
}

export interface SimOptions {
  /** Subscriptions fail with UnavailableError after delivering this many events (0: never). */
  readonly dropEvery?: number;
  /** A multi-event append reports its first event's position (the engine must read the last one back). */
  readonly reportFirstPosition?: boolean;
  /** Subscriptions also deliver the event at the start position (the engine must not repeat it). */
  readonly inclusiveSubscribe?: boolean;
}

type SimReadable = Readable & { cancel(): Promise<void>; unsubscribe(): Promise<void> };

interface SimEvent {
  id: string;
  type: string;
  data: unknown;
  metadata: unknown;
}

export class SimulatedServer {
  private readonly log: SimRecord[] = [];
  private position = 1_000n;
  private readonly live = new Set<(r: SimRecord) => void>();

  constructor(private readonly options: SimOptions = {}) {}

  private write(streamId: string, event: Omit<SimEvent, 'id'> & { id?: string }, revision: bigint): SimRecord {
    this.position += 40n + BigInt(Math.floor(Math.random() * 60));
    const record: SimRecord = {
      streamId,
      id: event.id ?? randomUUID(),
      revision,
      type: event.type,
      data: event.data,
      metadata: event.metadata,
      isJson: true,
      created: new Date(),
      position: { commit: this.position, prepare: this.position },
    };
    this.log.push(record);
    for (const deliver of this.live) deliver(record);
    return record;
  }

  private stream(streamId: string): SimRecord[] {
    return this.log.filter((r) => r.streamId === streamId);
  }

  /** The records of an earlier append with exactly these ids, where the expected revision puts them. */
  private earlierWrite(streamId: string, events: readonly SimEvent[], expected: 'any' | 'no_stream' | bigint): SimRecord[] | undefined {
    const records = this.stream(streamId);
    const starts =
      expected === 'any'
        ? records.map((_, i) => i)
        : [expected === 'no_stream' ? 0 : Number(expected) + 1];
    for (const start of starts) {
      const run = records.slice(start, start + events.length);
      if (run.length === events.length && run.every((r, i) => r.id === events[i]!.id)) return run;
    }
    return undefined;
  }

  private readable(): SimReadable {
    const stream = new Readable({ objectMode: true, read: () => undefined }) as SimReadable;
    stream.cancel = () => Promise.resolve(void stream.destroy());
    stream.unsubscribe = () => Promise.resolve(void stream.destroy());
    return stream;
  }

  client(): EventStoreDBClient {
    const client = {
      appendToStream: async (streamId: string, events: SimEvent[], options: { expectedRevision: 'any' | 'no_stream' | bigint }) => {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
        const expected = options.expectedRevision;
        const earlier = this.earlierWrite(streamId, events, expected);
        if (earlier) {
          const lastOfEarlier = earlier[earlier.length - 1]!;
          return { success: true, nextExpectedRevision: lastOfEarlier.revision, position: lastOfEarlier.position };
        }
        const records = this.stream(streamId);
        const current = records.length === 0 ? undefined : records[records.length - 1]!.revision;
        const ok = expected === 'any' || (expected === 'no_stream' ? current === undefined : current === expected);
        if (!ok) {
          throw new WrongExpectedVersionError(undefined, {
            streamName: streamId,
            expected,
            current: current ?? 'no_stream',
          });
        }
        if (Math.random() < 0.3) {
          this.write('$stats-127.0.0.1:2113', { type: '$statsCollected', data: {}, metadata: {} }, 0n);
          this.write('other-service-stream', { type: 'SomethingElse', data: {}, metadata: {} }, 0n);
        }
        let revision = current ?? -1n;
        const written = events.map((e) => this.write(streamId, e, (revision += 1n)));
        const reported = this.options.reportFirstPosition ? written[0]! : written[written.length - 1]!;
        return { success: true, nextExpectedRevision: revision, position: reported.position };
      },
      readStream: (streamId: string, options: { fromRevision?: 'start' | bigint; maxCount?: number }) => {
        const stream = this.readable();
        const all = this.stream(streamId);
        const from = typeof options.fromRevision === 'bigint' ? options.fromRevision : 0n;
        const selected = all.filter((r) => r.revision >= from).slice(0, options.maxCount ?? Infinity);
        setImmediate(() => {
          if (all.length === 0) {
            stream.destroy(new StreamNotFoundError(undefined, streamId));
            return;
          }
          for (const event of selected) stream.push({ event });
          stream.push(null);
        });
        return stream;
      },
      readAll: (options: { fromPosition?: 'start' | 'end' | Position; maxCount?: number; direction?: string }) => {
        const stream = this.readable();
        const backwards = options.direction === 'backwards';
        const from = options.fromPosition;
        let selected = backwards ? [...this.log].reverse() : [...this.log];
        if (typeof from === 'object') {
          selected = selected.filter((r) => {
            const c = comparePositions(r.position, from);
            return backwards ? c <= 0 : c >= 0; // inclusive, like the server
          });
        }
        selected = selected.slice(0, options.maxCount ?? Infinity);
        setImmediate(() => {
          for (const event of selected) stream.push({ event, commitPosition: event.position.commit });
          stream.push(null);
        });
        return stream;
      },
      subscribeToAll: (options: { fromPosition?: 'start' | Position; filter?: { prefixes?: string[] } }) => {
        const stream = this.readable();
        let delivered = 0;
        let dead = false;
        const prefixes = options.filter?.prefixes ?? [''];
        const deliver = (r: SimRecord): void => {
          if (dead || !prefixes.some((p) => r.streamId.startsWith(p))) return;
          if (this.options.dropEvery && delivered >= this.options.dropEvery) {
            dead = true;
            this.live.delete(deliver);
            stream.destroy(new UnavailableError(undefined, 'subscription dropped'));
            return;
          }
          delivered += 1;
          stream.push({ event: r });
        };
        stream.unsubscribe = () => {
          dead = true;
          this.live.delete(deliver);
          stream.destroy();
          return Promise.resolve();
        };
        setImmediate(() => {
          if (dead) return;
          stream.emit('confirmation');
          const from = options.fromPosition ?? 'start';
          for (const r of [...this.log]) {
            if (from === 'start') deliver(r);
            else {
              const c = comparePositions(r.position, from);
              if (c > 0 || (c === 0 && this.options.inclusiveSubscribe)) deliver(r);
            }
          }
          if (!dead) this.live.add(deliver);
        });
        return stream;
      },
      dispose: () => Promise.resolve(),
    };
    return client as unknown as EventStoreDBClient;
  }
}
