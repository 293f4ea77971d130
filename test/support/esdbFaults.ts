// Faults for the EventStoreDB engine tests, simulated at the level the engine
// talks to: the network under the official client, and the client's calls.
//
// - Listeners on 127.0.0.1 that are not a working server: one that accepts
//   TCP and never answers, one that answers garbage, one that resets, and an
//   HTTP/2 server that speaks just enough gRPC to answer the client's
//   server-features call and then never answers anything else (a hung
//   server). The last one counts open calls and connections, so tests can
//   see that cancelled calls and closed stores really let go.
// - `faultyClient` wraps a client (the real EventStoreDBClient when
//   EVENTSTORE_URL is set, else the simulation) and injects faults into its
//   calls: an append that lands but whose answer is lost, a subscription that
//   drops mid-stream, a read that fails, a refused user.
import http2 from 'node:http2';
import net from 'node:net';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import {
  AccessDeniedError,
  UnavailableError,
  type AppendResult,
  type EventData,
  type EventStoreDBClient,
} from '@eventstore/db-client';

// ---- listeners ----------------------------------------------------------------------

export interface Listener {
  readonly port: number;
  readonly url: string;
  /** TCP connections currently open. */
  openSockets(): number;
  close(): Promise<void>;
}

type Behaviour = 'silent' | 'garbage' | 'reset';

/** A TCP listener on 127.0.0.1 that accepts and then stays silent, answers garbage, or resets. */
export async function startBrokenListener(behaviour: Behaviour): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', () => {
      if (behaviour === 'garbage') socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 4\r\n\r\nnope');
      if (behaviour === 'reset') socket.resetAndDestroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `esdb://127.0.0.1:${port}?tls=false`,
    openSockets: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface HungGrpcServer extends Listener {
  /** Calls (HTTP/2 streams) still open, by gRPC method name (`Read`, `BatchAppend`, …). */
  openCalls(method?: string): number;
  /** Calls received so far, by method name. */
  calls(method: string): number;
  /** HTTP/2 connections open. */
  openSessions(): number;
}

export type FeaturesAnswer = 'batch-append' | 'unimplemented' | 'hang';

export interface HungGrpcOptions {
  /** How to answer the server-features call. Default 'batch-append'. */
  readonly features?: FeaturesAnswer;
  /** Answer reads of a single stream with "stream not found" (so a registration gets as far as its append). */
  readonly streamsNotFound?: boolean;
}

const require = createRequire(import.meta.url);
// The client's own generated protobuf classes, to answer its server-features call.
const serverFeaturesPb = require('@eventstore/db-client/generated/serverfeatures_pb.js') as {
  SupportedMethods: new () => {
    setEventStoreServerVersion(v: string): void;
    addMethods(m: unknown): void;
    serializeBinary(): Uint8Array;
  };
  SupportedMethod: new () => { setServiceName(v: string): void; setMethodName(v: string): void };
};
const streamsPb = require('@eventstore/db-client/generated/streams_pb.js') as {
  ReadReq: { deserializeBinary(bytes: Uint8Array): { getOptions(): { hasStream(): boolean } | undefined } };
  ReadResp: (new () => { setStreamNotFound(v: unknown): void; serializeBinary(): Uint8Array }) & {
    StreamNotFound: new () => unknown;
  };
};

/** One gRPC message: a 5-byte header (uncompressed, length) and the protobuf bytes. */
function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(frame, 5);
  return frame;
}

function answer(stream: http2.ServerHttp2Stream, message: Uint8Array): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.end(grpcFrame(message));
}

/**
 * An HTTP/2 server that accepts gRPC calls and never answers them, except the
 * server-features call: answered listing batch append (what EventStoreDB
 * 21.10+ says), answered UNIMPLEMENTED (older servers: the client then uses
 * the plain append), or left hanging too.
 */
export async function startHungGrpcServer(options: FeaturesAnswer | HungGrpcOptions = {}): Promise<HungGrpcServer> {
  const { features = 'batch-append', streamsNotFound = false } = typeof options === 'string' ? { features: options } : options;
  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<net.Socket>();
  const open = new Map<http2.ServerHttp2Stream, string>();
  const received = new Map<string, number>();
  const server = http2.createServer();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  server.on('stream', (stream, headers) => {
    const method = String(headers[':path']).split('/').pop() ?? '';
    received.set(method, (received.get(method) ?? 0) + 1);
    stream.on('error', () => undefined);
    if (method === 'GetSupportedMethods' && features !== 'hang') {
      if (features === 'unimplemented') {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true });
        return;
      }
      const methods = new serverFeaturesPb.SupportedMethods();
      methods.setEventStoreServerVersion('24.10.0');
      const batchAppend = new serverFeaturesPb.SupportedMethod();
      batchAppend.setServiceName('event_store.client.streams.streams');
      batchAppend.setMethodName('batchappend');
      methods.addMethods(batchAppend);
      answer(stream, methods.serializeBinary());
      return;
    }
    open.set(stream, method);
    stream.on('close', () => open.delete(stream));
    if (method === 'Read' && streamsNotFound) {
      let received = Buffer.alloc(0);
      stream.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 5 || received.length < 5 + received.readUInt32BE(1)) return;
        const request = streamsPb.ReadReq.deserializeBinary(received.subarray(5, 5 + received.readUInt32BE(1)));
        if (!request.getOptions()?.hasStream()) return; // a read of $all: hang
        const notFound = new streamsPb.ReadResp();
        notFound.setStreamNotFound(new streamsPb.ReadResp.StreamNotFound());
        answer(stream, notFound.serializeBinary());
      });
      return;
    }
    stream.resume(); // read and drop whatever the client sends
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `esdb://127.0.0.1:${port}?tls=false`,
    openSockets: () => sockets.size,
    openSessions: () => sessions.size,
    openCalls: (method) => [...open.values()].filter((m) => method === undefined || m === method).length,
    calls: (method) => received.get(method) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---- faults in the client's calls ----------------------------------------------------

/** What one intercepted append sent. */
export interface SentAppend {
  readonly streamName: string;
  readonly eventIds: readonly string[];
}

export interface Faults {
  /**
   * For the n-th append (0-based): 'lose-answer' lets it reach the server and
   * then fails it with UnavailableError, as a connection dropped after the
   * write would; 'hang-after-write' lets it land and never answers.
   */
  append?(n: number): 'lose-answer' | 'hang-after-write' | undefined;
  /** For the n-th subscription: drop it with UnavailableError after this many events. */
  dropSubscriptionAfter?(n: number): number | undefined;
  /** For the n-th subscription: fail it with UnavailableError before the server confirms it. */
  failSubscription?(n: number): boolean;
  /** For the n-th readStream: fail it with UnavailableError. */
  failReadStream?(n: number): boolean;
  /** Every call fails with AccessDeniedError (the server refuses the user). */
  accessDenied?: boolean;
}

export interface FaultLog {
  readonly appends: SentAppend[];
  readonly subscriptions: number;
  readonly droppedSubscriptions: number;
}

/**
 * The client with faults injected into its calls; everything else (dispose,
 * the internals the engine reads) goes to the wrapped client unchanged.
 */
export function faultyClient(base: EventStoreDBClient, faults: Faults, log: FaultLog = newFaultLog()): EventStoreDBClient {
  const mutable = log as { appends: SentAppend[]; subscriptions: number; droppedSubscriptions: number };
  let reads = 0;
  const denied = (): AccessDeniedError => new AccessDeniedError(undefined, 'Access denied.');
  const overrides: Partial<Record<keyof EventStoreDBClient, unknown>> = {
    appendToStream: async (streamName: string, events: EventData | EventData[], options?: object): Promise<AppendResult> => {
      if (faults.accessDenied) throw denied();
      const list = Array.isArray(events) ? events : [events];
      const n = mutable.appends.length;
      mutable.appends.push({ streamName, eventIds: list.map((e) => e.id) });
      const result = await base.appendToStream(streamName, list, options);
      const fault = faults.append?.(n);
      if (fault === 'lose-answer') throw new UnavailableError(undefined, 'the connection dropped before the answer arrived');
      if (fault === 'hang-after-write') return new Promise<never>(() => undefined);
      return result;
    },
    readStream: (...args: Parameters<EventStoreDBClient['readStream']>) => {
      if (faults.accessDenied) return failedCall(denied());
      if (faults.failReadStream?.(reads++)) return failedCall(new UnavailableError(undefined, 'read failed'));
      return base.readStream(...args);
    },
    readAll: (...args: Parameters<EventStoreDBClient['readAll']>) => {
      if (faults.accessDenied) return failedCall(denied());
      return base.readAll(...args);
    },
    subscribeToAll: (...args: Parameters<EventStoreDBClient['subscribeToAll']>) => {
      const n = mutable.subscriptions++;
      if (faults.accessDenied) return failedCall(denied());
      if (faults.failSubscription?.(n)) {
        return failedCall(new UnavailableError(undefined, 'the server went away before confirming the subscription'));
      }
      const subscription = base.subscribeToAll(...args);
      const dropAfter = faults.dropSubscriptionAfter?.(n);
      if (dropAfter !== undefined) {
        let seen = 0;
        subscription.on('data', () => {
          seen += 1;
          if (seen === dropAfter) {
            mutable.droppedSubscriptions += 1;
            subscription.destroy(new UnavailableError(undefined, 'subscription dropped mid-stream'));
          }
        });
      }
      return subscription;
    },
  };
  return new Proxy(base, {
    get(target, property, _receiver) {
      if (typeof property === 'string' && property in overrides) return overrides[property as keyof EventStoreDBClient];
      // The real client keeps private fields: its members must see the real object as `this`.
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * A read or subscription that fails with `error` before the server sent
 * anything (no event, no confirmation), in the shape the engine consumes.
 */
function failedCall<T>(error: Error): T {
  const stream = new Readable({ objectMode: true, read: () => undefined });
  setImmediate(() => stream.destroy(error));
  const fake: unknown = Object.assign(stream, {
    cancel: () => Promise.resolve(void stream.destroy()),
    unsubscribe: () => Promise.resolve(void stream.destroy()),
  });
  return fake as T;
}

export function newFaultLog(): FaultLog {
  return { appends: [], subscriptions: 0, droppedSubscriptions: 0 };
}
