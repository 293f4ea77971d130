// A MongoDB *simulation* on 127.0.0.1: a TCP server speaking the wire protocol
// (OP_QUERY handshake, OP_MSG commands) for the subset of commands the
// MongoDB read model sends, so the official driver, unmodified, runs against
// it where no MongoDB server can be installed. It can pose as a replica-set
// member (hello with setName: sessions, retryable writes and transactions)
// or as a standalone server (no setName: transaction numbers are refused,
// as a real standalone refuses them), and it can go silent (`hang`).
//
// It checks the engine's logic — filters, guarded upserts, the checkpoint and
// lease compare-and-sets, transaction boundaries, error handling — under
// assumptions about the server. It proves nothing about MongoDB itself:
// transactions are serialized by one lock instead of snapshot isolation with
// write conflicts, and only the query and update operators the engine uses
// exist. The real server runs the same tests when MONGODB_URL is set.
import { once } from 'node:events';
import net from 'node:net';
import { BSON, type Document } from 'mongodb';

const OP_REPLY = 1;
const OP_QUERY = 2004;
const OP_MSG = 2013;

export interface MongoSimulatorOptions {
  /** Pose as a member of this replica set; omitted: a standalone server. */
  readonly replicaSet?: string;
}

interface Collection {
  docs: Map<string, Document>;
  unique: { name: string; fields: string[] }[];
}

type Databases = Map<string, Map<string, Collection>>;

interface Transaction {
  readonly lsid: string;
  readonly txnNumber: number;
  /** The committed state when the transaction began (reads outside it see this). */
  readonly before: Databases;
  state: 'active' | 'aborted' | 'committed';
}

class CommandError extends Error {
  constructor(
    readonly code: number,
    readonly codeName: string,
    message: string,
    readonly labels: string[] = [],
  ) {
    super(message);
  }
}

export class MongoSimulator {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private databases: Databases = new Map();
  private txn: Transaction | undefined;
  private readonly waiting: (() => void)[] = [];
  private connectionIds = 0;
  /** While true, the server reads requests and never answers (new connections included). */
  hang = false;
  /** Every command received, by name (for assertions such as "a transaction was committed"). */
  readonly commands: string[] = [];

  constructor(private readonly options: MongoSimulatorOptions = {}) {}

  async start(): Promise<string> {
    const server = net.createServer((socket) => this.serve(socket));
    this.server = server;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return this.url();
  }

  get port(): number {
    const address = this.server?.address();
    if (address === null || address === undefined || typeof address === 'string') throw new Error('not started');
    return address.port;
  }

  /** A connection string for this simulator (direct connection, so no replica-set discovery). */
  url(database = ''): string {
    const rs = this.options.replicaSet !== undefined ? `&replicaSet=${this.options.replicaSet}` : '';
    return `mongodb://127.0.0.1:${this.port}/${database}?directConnection=true${rs}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The names of the collections of a database (for assertions). */
  collectionNames(database: string): string[] {
    return [...(this.databases.get(database)?.keys() ?? [])].sort();
  }

  /** One collection's documents, as stored (committed or in the open transaction). */
  documents(database: string, collection: string): Document[] {
    return [...(this.databases.get(database)?.get(collection)?.docs.values() ?? [])].map(clone);
  }

  // ---- wire protocol -----------------------------------------------------------------

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    const connectionId = ++this.connectionIds;
    let buffered = Buffer.alloc(0);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4) {
        const length = buffered.readInt32LE(0);
        if (buffered.length < length) break;
        const message = buffered.subarray(0, length);
        buffered = buffered.subarray(length);
        if (this.hang) continue;
        void this.handle(socket, message, connectionId);
      }
    });
  }

  private async handle(socket: net.Socket, message: Buffer, connectionId: number): Promise<void> {
    const requestId = message.readInt32LE(4);
    const opCode = message.readInt32LE(12);
    if (opCode === OP_QUERY) {
      // Only the handshake comes this way: flags, "admin.$cmd", skip, return, query.
      let offset = 20;
      while (message[offset] !== 0) offset++;
      offset += 1 + 8;
      const query = BSON.deserialize(message.subarray(offset, offset + message.readInt32LE(offset)));
      const reply = this.hello(query, connectionId);
      if (this.hang) return;
      write(socket, OP_REPLY, requestId, Buffer.concat([replyPrefix(), BSON.serialize(reply)]));
      return;
    }
    if (opCode !== OP_MSG) {
      socket.destroy();
      return;
    }
    const flags = message.readUInt32LE(16);
    let offset = 20;
    let body: Document = {};
    const end = flags & 1 ? message.length - 4 : message.length;
    while (offset < end) {
      const kind = message[offset]!;
      offset += 1;
      const size = message.readInt32LE(offset);
      if (kind === 0) {
        body = { ...BSON.deserialize(message.subarray(offset, offset + size)), ...body };
      } else {
        let p = offset + 4;
        let id = '';
        while (message[p] !== 0) id += String.fromCharCode(message[p++]!);
        p += 1;
        const docs: Document[] = [];
        while (p < offset + size) {
          const docSize = message.readInt32LE(p);
          docs.push(BSON.deserialize(message.subarray(p, p + docSize)));
          p += docSize;
        }
        body[id] = docs;
      }
      offset += size;
    }
    let response: Document;
    try {
      response = { ...(await this.command(body, connectionId)), ok: 1 };
    } catch (error) {
      response =
        error instanceof CommandError
          ? {
              ok: 0,
              code: error.code,
              codeName: error.codeName,
              errmsg: error.message,
              ...(error.labels.length > 0 ? { errorLabels: error.labels } : {}),
            }
          : { ok: 0, code: 1, codeName: 'InternalError', errmsg: String(error) };
    }
    if (this.hang || socket.destroyed) return;
    const flagBits = Buffer.alloc(5); // flagBits 0, then section kind 0
    write(socket, OP_MSG, requestId, Buffer.concat([flagBits, BSON.serialize(response)]));
  }

  private hello(_command: Document, connectionId: number): Document {
    const me = `127.0.0.1:${this.port}`;
    return {
      helloOk: true,
      ismaster: true,
      isWritablePrimary: true,
      maxBsonObjectSize: 16 * 1024 * 1024,
      maxMessageSizeBytes: 48_000_000,
      maxWriteBatchSize: 100_000,
      localTime: new Date(),
      logicalSessionTimeoutMinutes: 30,
      connectionId,
      minWireVersion: 0,
      maxWireVersion: 21,
      readOnly: false,
      ...(this.options.replicaSet !== undefined
        ? { setName: this.options.replicaSet, setVersion: 1, hosts: [me], primary: me, me, secondary: false }
        : {}),
      ok: 1,
    };
  }

  // ---- commands ----------------------------------------------------------------------

  private async command(body: Document, connectionId: number): Promise<Document> {
    const name = Object.keys(body)[0] ?? '';
    this.commands.push(name);
    if (name === 'hello' || name === 'ismaster' || name === 'isMaster') return this.hello(body, connectionId);
    if (name === 'ping' || name === 'endSessions' || name === 'killCursors') {
      if (name === 'endSessions') this.endSessions(body);
      return {};
    }
    const inTxn = body.txnNumber !== undefined && body.autocommit === false;
    if (body.txnNumber !== undefined && this.options.replicaSet === undefined) {
      throw new CommandError(20, 'IllegalOperation', 'Transaction numbers are only allowed on a replica set member or mongos');
    }
    if (name === 'commitTransaction' || name === 'abortTransaction') return this.finishTransaction(name, body);
    const writes = new Set(['update', 'insert', 'delete', 'drop', 'createIndexes', 'dropDatabase']);
    const lsid = sessionId(body);
    if (inTxn) {
      await this.enterTransaction(lsid, Number(body.txnNumber), body.startTransaction === true);
    } else if (writes.has(name)) {
      await this.waitForLock();
    }
    // Reads outside the open transaction see the committed state.
    const readOnly = !inTxn && this.txn !== undefined ? this.txn.before : this.databases;
    const database = String(body.$db);
    try {
      switch (name) {
        case 'find':
          return this.find(readOnly, database, body);
        case 'listCollections':
          return this.listCollections(readOnly, database);
        case 'update':
          return this.update(database, body);
        case 'insert':
          return this.insert(database, body);
        case 'delete':
          return this.remove(database, body);
        case 'createIndexes':
          return this.createIndexes(database, body);
        case 'drop':
          return this.drop(database, body);
        case 'dropDatabase':
          this.databases.delete(database);
          return {};
        default:
          throw new CommandError(59, 'CommandNotFound', `no such command: '${name}'`);
      }
    } catch (error) {
      // An error inside a transaction aborts it, as on a real server.
      if (inTxn && this.txn?.lsid === lsid) this.abort();
      throw error;
    }
  }

  private async enterTransaction(lsid: string, txnNumber: number, starting: boolean): Promise<void> {
    if (this.txn?.lsid === lsid && this.txn.txnNumber === txnNumber) {
      if (this.txn.state !== 'active') {
        throw new CommandError(251, 'NoSuchTransaction', 'Transaction has been aborted.', ['TransientTransactionError']);
      }
      return;
    }
    if (!starting) {
      throw new CommandError(251, 'NoSuchTransaction', 'Given transaction number does not match any in-progress transactions.', [
        'TransientTransactionError',
      ]);
    }
    await this.waitForLock();
    this.txn = { lsid, txnNumber, before: cloneDatabases(this.databases), state: 'active' };
  }

  private finishTransaction(name: string, body: Document): Document {
    const lsid = sessionId(body);
    const txn = this.txn;
    if (txn === undefined || txn.lsid !== lsid || txn.txnNumber !== Number(body.txnNumber)) {
      // A retried commit of a transaction that already committed answers ok, like a real server.
      if (name === 'commitTransaction' && this.committed.has(`${lsid}:${Number(body.txnNumber)}`)) return {};
      if (name === 'abortTransaction') return {};
      throw new CommandError(251, 'NoSuchTransaction', 'no such transaction', ['TransientTransactionError']);
    }
    if (name === 'abortTransaction') {
      this.abort();
      return {};
    }
    if (txn.state !== 'active') {
      throw new CommandError(251, 'NoSuchTransaction', 'Transaction has been aborted.', ['TransientTransactionError']);
    }
    txn.state = 'committed';
    this.committed.add(`${lsid}:${txn.txnNumber}`);
    this.release();
    return {};
  }

  private readonly committed = new Set<string>();

  private abort(): void {
    const txn = this.txn;
    if (txn === undefined || txn.state !== 'active') return;
    txn.state = 'aborted';
    this.databases = txn.before;
    this.release();
  }

  private endSessions(body: Document): void {
    const ids = (body.endSessions as Document[]).map((s) => Buffer.from((s.id as BSON.Binary).buffer).toString('hex'));
    if (this.txn !== undefined && ids.includes(this.txn.lsid)) this.abort();
  }

  private async waitForLock(): Promise<void> {
    while (this.txn !== undefined && this.txn.state === 'active') {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private release(): void {
    this.txn = undefined;
    for (const wake of this.waiting.splice(0)) wake();
  }

  private collection(database: string, name: string, create: boolean, from: Databases = this.databases): Collection | undefined {
    let db = from.get(database);
    if (db === undefined) {
      if (!create) return undefined;
      db = new Map();
      from.set(database, db);
    }
    let coll = db.get(name);
    if (coll === undefined && create) {
      coll = { docs: new Map(), unique: [] };
      db.set(name, coll);
    }
    return coll;
  }

  private find(from: Databases, database: string, body: Document): Document {
    const coll = this.collection(database, String(body.find), false, from);
    const filter = (body.filter ?? {}) as Document;
    let docs = [...(coll?.docs.values() ?? [])].filter((doc) => matches(doc, filter));
    if (body.sort !== undefined) docs.sort(sorter(body.sort as Document));
    const limit = Math.abs(Number(body.limit ?? 0));
    if (limit > 0) docs = docs.slice(0, limit);
    return { cursor: { id: BSON.Long.fromNumber(0), ns: `${database}.${String(body.find)}`, firstBatch: docs.map(clone) } };
  }

  private listCollections(from: Databases, database: string): Document {
    const names = [...(from.get(database)?.keys() ?? [])];
    return {
      cursor: {
        id: BSON.Long.fromNumber(0),
        ns: `${database}.$cmd.listCollections`,
        firstBatch: names.map((name) => ({ name, type: 'collection' })),
      },
    };
  }

  private update(database: string, body: Document): Document {
    const coll = this.collection(database, String(body.update), true)!;
    let n = 0;
    let nModified = 0;
    const upserted: Document[] = [];
    const writeErrors: Document[] = [];
    const statements = body.updates as Document[];
    for (const [index, statement] of statements.entries()) {
      try {
        const q = statement.q as Document;
        const u = statement.u as Document;
        const hit = [...coll.docs.values()].find((doc) => matches(doc, q));
        if (hit !== undefined) {
          const next = applyUpdate(hit, u, false);
          this.checkUnique(coll, next, hit);
          coll.docs.set(idKey(next._id), next);
          n += 1;
          nModified += 1;
        } else if (statement.upsert === true) {
          const base = isReplacement(u) ? { ...(q._id !== undefined ? { _id: q._id as unknown } : {}) } : equalityFields(q);
          const doc = applyUpdate(base, u, true);
          if (doc._id === undefined) doc._id = new BSON.ObjectId();
          this.checkUnique(coll, doc, undefined);
          coll.docs.set(idKey(doc._id), doc);
          n += 1;
          upserted.push({ index, _id: doc._id as unknown });
        }
      } catch (error) {
        if (!(error instanceof CommandError)) throw error;
        writeErrors.push({ index, code: error.code, errmsg: error.message });
        if (body.ordered !== false) break;
      }
    }
    if (writeErrors.length > 0 && body.txnNumber !== undefined && body.autocommit === false) {
      // A failed write aborts its transaction.
      throw new CommandError(writeErrors[0]!.code as number, 'DuplicateKey', String(writeErrors[0]!.errmsg));
    }
    return { n, nModified, ...(upserted.length > 0 ? { upserted } : {}), ...(writeErrors.length > 0 ? { writeErrors } : {}) };
  }

  private insert(database: string, body: Document): Document {
    const coll = this.collection(database, String(body.insert), true)!;
    let n = 0;
    for (const raw of body.documents as Document[]) {
      const doc = clone(raw);
      if (doc._id === undefined) doc._id = new BSON.ObjectId();
      this.checkUnique(coll, doc, undefined);
      coll.docs.set(idKey(doc._id), doc);
      n += 1;
    }
    return { n };
  }

  private remove(database: string, body: Document): Document {
    const coll = this.collection(database, String(body.delete), false);
    let n = 0;
    for (const statement of body.deletes as Document[]) {
      for (const [key, doc] of [...(coll?.docs.entries() ?? [])]) {
        if (!matches(doc, statement.q as Document)) continue;
        coll!.docs.delete(key);
        n += 1;
        if (Number(statement.limit) === 1) break;
      }
    }
    return { n };
  }

  private createIndexes(database: string, body: Document): Document {
    const coll = this.collection(database, String(body.createIndexes), true)!;
    for (const index of body.indexes as Document[]) {
      if (index.unique === true && !coll.unique.some((u) => u.name === index.name)) {
        coll.unique.push({ name: String(index.name), fields: Object.keys(index.key as Document) });
      }
    }
    return { numIndexesAfter: coll.unique.length + 1 };
  }

  private drop(database: string, body: Document): Document {
    const db = this.databases.get(database);
    if (db?.delete(String(body.drop)) !== true) throw new CommandError(26, 'NamespaceNotFound', 'ns not found');
    return {};
  }

  private checkUnique(coll: Collection, doc: Document, replacing: Document | undefined): void {
    const key = idKey(doc._id);
    const existing = coll.docs.get(key);
    if (existing !== undefined && existing !== replacing) {
      throw new CommandError(11000, 'DuplicateKey', `E11000 duplicate key error dup key: { _id: ${key} }`);
    }
    for (const index of coll.unique) {
      const values = index.fields.map((f) => canonical(getPath(doc, f)));
      for (const other of coll.docs.values()) {
        if (other === replacing || idKey(other._id) === key) continue;
        if (index.fields.every((f, i) => canonical(getPath(other, f)) === values[i])) {
          throw new CommandError(11000, 'DuplicateKey', `E11000 duplicate key error index: ${index.name}`);
        }
      }
    }
  }
}

/** A TCP listener that accepts connections and never answers: a hung server. */
export async function startSilentListener(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // read and discard everything
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `mongodb://127.0.0.1:${port}/?directConnection=true`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- the query and update language (the subset the engine uses) ---------------------

function write(socket: net.Socket, opCode: number, responseTo: number, payload: Buffer): void {
  const header = Buffer.alloc(16);
  header.writeInt32LE(16 + payload.length, 0);
  header.writeInt32LE(0, 4);
  header.writeInt32LE(responseTo, 8);
  header.writeInt32LE(opCode, 12);
  socket.write(Buffer.concat([header, payload]));
}

function replyPrefix(): Buffer {
  const prefix = Buffer.alloc(20); // responseFlags, cursorID (int64), startingFrom
  prefix.writeInt32LE(1, 16); // numberReturned
  return prefix;
}

function sessionId(body: Document): string {
  const lsid = body.lsid as { id?: BSON.Binary } | undefined;
  return lsid?.id ? Buffer.from(lsid.id.buffer).toString('hex') : '';
}

function clone(doc: Document): Document {
  return BSON.deserialize(BSON.serialize(doc));
}

function cloneDatabases(databases: Databases): Databases {
  const out: Databases = new Map();
  for (const [name, db] of databases) {
    const copy = new Map<string, Collection>();
    for (const [collName, coll] of db) {
      copy.set(collName, {
        docs: new Map([...coll.docs].map(([k, d]) => [k, clone(d)])),
        unique: coll.unique.map((u) => ({ ...u, fields: [...u.fields] })),
      });
    }
    out.set(name, copy);
  }
  return out;
}

function idKey(id: unknown): string {
  return canonical(id);
}

/** A string that is equal for equal BSON values. */
function canonical(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (value instanceof Date) return `date:${value.getTime()}`;
  if (value instanceof BSON.ObjectId) return `oid:${value.toHexString()}`;
  if (typeof value === 'string') return `s:${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value}:${String(value)}`;
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object') {
    return `{${Object.entries(value as Document)
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(',')}}`;
  }
  return `${typeof value}:?`;
}

function getPath(doc: Document, path: string): unknown {
  let value: unknown = doc;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Document)[part];
  }
  return value;
}

function setPath(doc: Document, path: string, value: unknown): void {
  const parts = path.split('.');
  let target = doc;
  for (const part of parts.slice(0, -1)) {
    if (typeof target[part] !== 'object' || target[part] === null) target[part] = {};
    target = target[part] as Document;
  }
  target[parts[parts.length - 1]!] = value;
}

function unsetPath(doc: Document, path: string): void {
  const parts = path.split('.');
  const parent = parts.length === 1 ? doc : getPath(doc, parts.slice(0, -1).join('.'));
  if (parent !== null && typeof parent === 'object') delete (parent as Document)[parts[parts.length - 1]!];
}

function isOperatorObject(value: unknown): value is Document {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Date) return false;
  if (value instanceof BSON.ObjectId || value instanceof RegExp) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((k) => k.startsWith('$'));
}

function compare(a: unknown, b: unknown): number | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  return undefined;
}

function equalsValue(actual: unknown, expected: unknown): boolean {
  if (expected === null) return actual === null || actual === undefined;
  if (Array.isArray(actual) && !Array.isArray(expected)) return actual.some((a) => canonical(a) === canonical(expected));
  return canonical(actual) === canonical(expected);
}

function matchesCondition(actual: unknown, condition: unknown): boolean {
  if (condition instanceof RegExp) return typeof actual === 'string' && condition.test(actual);
  if (!isOperatorObject(condition)) return equalsValue(actual, condition);
  return Object.entries(condition).every(([op, operand]) => {
    const values = Array.isArray(actual) ? actual : [actual];
    switch (op) {
      case '$eq':
        return equalsValue(actual, operand);
      case '$ne':
        return !equalsValue(actual, operand);
      case '$in':
        return (operand as unknown[]).some((o) => equalsValue(actual, o));
      case '$exists':
        return (actual !== undefined) === Boolean(operand);
      case '$gt':
        return values.some((v) => (compare(v, operand) ?? 0) > 0 && compare(v, operand) !== undefined);
      case '$gte':
        return values.some((v) => compare(v, operand) !== undefined && compare(v, operand)! >= 0);
      case '$lt':
        return values.some((v) => compare(v, operand) !== undefined && compare(v, operand)! < 0);
      case '$lte':
        return values.some((v) => compare(v, operand) !== undefined && compare(v, operand)! <= 0);
      case '$regex': {
        const pattern = operand instanceof RegExp ? operand : new RegExp(String(operand));
        return typeof actual === 'string' && pattern.test(actual);
      }
      default:
        throw new CommandError(2, 'BadValue', `unknown operator: ${op}`);
    }
  });
}

function matches(doc: Document, filter: Document): boolean {
  return Object.entries(filter).every(([key, condition]) => {
    if (key === '$or') return (condition as Document[]).some((f) => matches(doc, f));
    if (key === '$and') return (condition as Document[]).every((f) => matches(doc, f));
    if (key.startsWith('$')) throw new CommandError(2, 'BadValue', `unknown top level operator: ${key}`);
    return matchesCondition(getPath(doc, key), condition);
  });
}

function sorter(spec: Document): (a: Document, b: Document) => number {
  const fields = Object.entries(spec);
  return (a, b) => {
    for (const [field, direction] of fields) {
      const x = getPath(a, field);
      const y = getPath(b, field);
      const order = x === undefined ? (y === undefined ? 0 : -1) : y === undefined ? 1 : (compare(x, y) ?? 0);
      if (order !== 0) return order * (Number(direction) < 0 ? -1 : 1);
    }
    return 0;
  };
}

function isReplacement(update: Document): boolean {
  return !Object.keys(update).some((k) => k.startsWith('$'));
}

/** The fields an upsert takes from its filter: plain equalities (null ones too, as on a real server). */
function equalityFields(filter: Document): Document {
  const doc: Document = {};
  for (const [key, condition] of Object.entries(filter)) {
    if (key.startsWith('$') || isOperatorObject(condition) || condition instanceof RegExp) continue;
    setPath(doc, key, condition);
  }
  return doc;
}

function applyUpdate(current: Document, update: Document, inserting: boolean): Document {
  if (Array.isArray(update)) throw new CommandError(2, 'BadValue', 'pipeline updates are not simulated');
  if (isReplacement(update)) return { ...clone(update), _id: (current._id ?? update._id) as unknown };
  const doc = clone(current);
  for (const [op, fields] of Object.entries(update)) {
    for (const [path, value] of Object.entries(fields as Document)) {
      switch (op) {
        case '$set':
          setPath(doc, path, value);
          break;
        case '$setOnInsert':
          if (inserting) setPath(doc, path, value);
          break;
        case '$unset':
          unsetPath(doc, path);
          break;
        case '$inc':
          setPath(doc, path, Number(getPath(doc, path) ?? 0) + Number(value));
          break;
        default:
          throw new CommandError(2, 'BadValue', `unknown update operator: ${op}`);
      }
    }
  }
  return doc;
}
