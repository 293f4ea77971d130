// Faults injected at the level of the official driver's calls, so the same
// cases run against the simulator (test/support/mongoSimulator.ts) and
// against a real server (MONGODB_URL). The wrapper is a Proxy over a real
// MongoClient built by the engine's own createMongoClient: every call goes to
// the driver unchanged unless a rule matches it. Our own store is never
// replaced — only what the driver answers it.
import { MongoNetworkError, type ClientSession, type Collection, type Db, type MongoClient } from 'mongodb';
import { createMongoClient, type MongoTimeouts } from '../../src/stores/mongo/connection.ts';

export interface FaultRule {
  /** Collection name (exact or pattern); omitted: any. Ignored for `commitTransaction`. */
  readonly collection?: string | RegExp;
  /** Driver method, e.g. `updateOne`, `bulkWrite`, `listCollections`, `commitTransaction`. */
  readonly method: string;
  /** Only calls whose arguments satisfy this. */
  readonly when?: (args: readonly unknown[]) => boolean;
  /**
   * - `lose-answer`: the call runs on the server, then the caller gets a network error (unknown outcome)
   * - `fail`: the caller gets a network error and nothing is sent
   * - `skip`: nothing is sent; the caller gets `result` (e.g. a renewal that silently does nothing)
   * - `before`: awaits `before()` and then runs the call (to interleave two processes)
   */
  readonly effect: 'lose-answer' | 'fail' | 'skip' | 'before';
  readonly result?: unknown;
  readonly before?: () => Promise<void>;
  /** How many matching calls it applies to. Default 1. */
  times?: number;
}

export interface FaultyClient {
  readonly client: MongoClient;
  /** Calls a rule applied to, by method. */
  readonly hits: string[];
  add(rule: FaultRule): void;
}

export function faultyClient(url: string, timeouts: MongoTimeouts = {}): FaultyClient {
  const real = createMongoClient(url, timeouts);
  const rules: FaultRule[] = [];
  const hits: string[] = [];

  const take = (method: string, collection: string | undefined, args: readonly unknown[]): FaultRule | undefined => {
    const rule = rules.find(
      (r) =>
        r.method === method &&
        (r.times ?? 1) > 0 &&
        (r.collection === undefined ||
          collection === undefined ||
          (typeof r.collection === 'string' ? r.collection === collection : r.collection.test(collection))) &&
        (r.when === undefined || r.when(args)),
    );
    if (rule) {
      rule.times = (rule.times ?? 1) - 1;
      hits.push(method);
    }
    return rule;
  };

  const run = async (rule: FaultRule | undefined, call: () => unknown): Promise<unknown> => {
    if (rule === undefined) return call();
    switch (rule.effect) {
      case 'fail':
        throw new MongoNetworkError(`simulated: connection lost before ${rule.method} was sent`);
      case 'skip':
        return rule.result;
      case 'before':
        await rule.before?.();
        return call();
      case 'lose-answer':
        await call();
        throw new MongoNetworkError(`simulated: the answer to ${rule.method} was lost`);
    }
  };

  const wrapCollection = (collection: Collection): Collection =>
    new Proxy(collection, {
      get(target, property, receiver) {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function' || typeof property !== 'string') return value;
        const method = value as (...args: unknown[]) => unknown;
        // Cursor-returning calls (find) pass through; faults apply to promise-returning calls.
        if (property === 'find' || property === 'aggregate') return method.bind(target);
        return (...args: unknown[]) => run(take(property, target.collectionName, args), () => method.apply(target, args));
      },
    });

  const wrapDb = (db: Db): Db =>
    new Proxy(db, {
      get(target, property, receiver) {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== 'function' || typeof property !== 'string') return value;
        const method = value as (...args: unknown[]) => unknown;
        if (property === 'collection') {
          return (...args: unknown[]) => wrapCollection(method.apply(target, args) as Collection);
        }
        if (property === 'listCollections') {
          // Returns a cursor: a `before` rule delays its toArray().
          return (...args: unknown[]) => {
            const cursor = method.apply(target, args) as { toArray(): Promise<unknown[]> };
            const rule = take('listCollections', undefined, args);
            const toArray = cursor.toArray.bind(cursor);
            cursor.toArray = () => run(rule, toArray) as Promise<unknown[]>;
            return cursor;
          };
        }
        if (property === 'dropCollection' || property === 'command') {
          return (...args: unknown[]) => run(take(property, undefined, args), () => method.apply(target, args));
        }
        return method.bind(target);
      },
    });

  const client = new Proxy(real, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (property === 'db') return (...args: unknown[]) => wrapDb(method.apply(target, args) as Db);
      if (property === 'startSession') {
        return (...args: unknown[]) => {
          const session = method.apply(target, args) as ClientSession;
          const commit = session.commitTransaction.bind(session);
          session.commitTransaction = async () => {
            await run(take('commitTransaction', undefined, []), commit);
          };
          return session;
        };
      }
      return method.bind(target);
    },
  });

  return { client, hits, add: (rule) => rules.push(rule) };
}
