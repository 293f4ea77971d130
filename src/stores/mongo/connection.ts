// How the MongoDB read model connects: the driver settings it pins whatever
// MONGODB_URL says, its timeouts, and how it tells whether the deployment can
// run multi-document transactions. No I/O here except building the client
// (the driver connects lazily), so all of it is testable without a server.
import { MongoClient, type Document, type MongoClientOptions } from 'mongodb';

export interface MongoTimeouts {
  /** How long an operation (and open) waits to find a usable server. Default 5 s. */
  readonly serverSelectionTimeoutMS?: number;
  /** TCP connect plus the MongoDB handshake of a new connection. Default 5 s. */
  readonly connectTimeoutMS?: number;
  /**
   * How long a request waits for the server's answer on an open connection
   * before the connection is closed and the operation fails. Bounds every
   * call against a server that accepted it and went silent. Default 10 s.
   */
  readonly socketTimeoutMS?: number;
}

export const DEFAULT_TIMEOUTS = Object.freeze({
  serverSelectionTimeoutMS: 5_000,
  connectTimeoutMS: 5_000,
  socketTimeoutMS: 10_000,
});

/**
 * Read and write settings that override MONGODB_URL. The read model is read
 * right after it is written (read-your-writes waits for the checkpoint, then
 * lists), and the checkpoint decides what the projector applies next, so
 * reads must see what the projector's acknowledged writes put there: reads go
 * to the primary (a `readPreference=secondary` in the URL would serve lists
 * and dispatch lookups that lag, and a checkpoint behind the documents), with
 * read concern "majority" (nothing a failover can roll back), and writes are
 * acknowledged by a majority. Scale reads with more API replicas, not with
 * secondaries.
 */
export const PINNED_SETTINGS = Object.freeze({
  readPreference: 'primary',
  readConcern: Object.freeze({ level: 'majority' }),
  writeConcern: Object.freeze({ w: 'majority' }),
} as const);

/** The driver client for MONGODB_URL with the pinned settings and the timeouts. */
export function createMongoClient(
  url: string,
  timeouts: MongoTimeouts = {},
  /** Further driver options (e.g. `monitorCommands` in tests); the pinned settings and timeouts win. */
  extra: MongoClientOptions = {},
): MongoClient {
  const options: MongoClientOptions = {
    ...extra,
    appName: 'webhook-registry',
    serverSelectionTimeoutMS: timeouts.serverSelectionTimeoutMS ?? DEFAULT_TIMEOUTS.serverSelectionTimeoutMS,
    connectTimeoutMS: timeouts.connectTimeoutMS ?? DEFAULT_TIMEOUTS.connectTimeoutMS,
    socketTimeoutMS: timeouts.socketTimeoutMS ?? DEFAULT_TIMEOUTS.socketTimeoutMS,
    // A connection checked out of a saturated pool waits no longer than a server selection.
    waitQueueTimeoutMS: timeouts.serverSelectionTimeoutMS ?? DEFAULT_TIMEOUTS.serverSelectionTimeoutMS,
    readPreference: PINNED_SETTINGS.readPreference,
    // Both spellings: a `readConcernLevel` in the URL would otherwise win over `readConcern`.
    readConcern: { level: PINNED_SETTINGS.readConcern.level },
    readConcernLevel: PINNED_SETTINGS.readConcern.level,
    writeConcern: { w: PINNED_SETTINGS.writeConcern.w },
  };
  try {
    return new MongoClient(url, options);
  } catch (error) {
    // The parser's message may quote the URL, which can hold credentials.
    throw new Error(`MONGODB_URL is not a valid MongoDB connection string (${redactUrl(url)})`, { cause: error });
  }
}

/**
 * Replica-set members (`setName`) and mongos routers (`msg: 'isdbgrid'`)
 * run multi-document transactions; a standalone server answers neither.
 * Both also need sessions (`logicalSessionTimeoutMinutes`).
 */
export function helloSupportsTransactions(hello: Document): boolean {
  const clustered = typeof hello.setName === 'string' || hello.msg === 'isdbgrid';
  return clustered && hello.logicalSessionTimeoutMinutes != null;
}

/** A short description of the deployment from its hello answer, for messages. */
export function describeDeployment(hello: Document): string {
  if (hello.msg === 'isdbgrid') return 'a sharded cluster (mongos)';
  if (typeof hello.setName === 'string') return `replica set "${hello.setName}"`;
  return 'a standalone server';
}

export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/?#]*@/, '//***@');
}
