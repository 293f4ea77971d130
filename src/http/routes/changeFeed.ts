// The dispatcher change feed over HTTP (scope webhooks:dispatch only; the
// bodies hold signing secrets): the snapshot every dispatchable webhook at a
// position, streamed, and the changes after a position as Server-Sent Events
// or as a JSON long-poll. DESIGN.md §4b is the contract.
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { SecretBox } from '../../crypto/secretBox.ts';
import { changeData, dispatchableAt, feedTargetOf, targetJson, type ChangeFeed, type FeedChange } from '../../dispatch/changeFeed.ts';
import { GoneError, ServiceUnavailableError } from '../../errors.ts';
import { SCOPES } from '../../identity/principal.ts';
import { comparePositions, decodePosition, encodePosition, type EventStore, type Position } from '../../stores/eventStore.ts';
import type { ReadModel } from '../../stores/readModel.ts';
import { changeList, changesHeaders, changesQuery, dispatchSnapshot, problem } from '../schemas.ts';

export interface ChangeFeedRouteDeps {
  readonly feed: ChangeFeed;
  readonly store: EventStore;
  readonly readModel: ReadModel;
  readonly secrets: SecretBox;
  /** At most this long between two messages on an event stream. */
  readonly keepAliveMs: number;
  readonly now: () => Date;
}

/** Snapshot bytes are handed to the socket in pieces of about this size. */
const SNAPSHOT_CHUNK = 64 * 1024;
/** Changes written to an event stream per turn of the loop before yielding to other requests. */
const STREAM_BATCH = 500;

function notStarted(): ServiceUnavailableError {
  return new ServiceUnavailableError('The change feed is starting; retry shortly.', { headers: { 'retry-after': '1' } });
}

function gone(): GoneError {
  return new GoneError(
    'Changes after this position are no longer kept here (or it is not a position of this registry): take GET ' +
      '/internal/v1/dispatch-snapshot again and follow the changes after its position.',
  );
}

export function registerChangeFeedRoutes(app: FastifyInstance, deps: ChangeFeedRouteDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { feed } = deps;
  // Open event streams end when the server closes, so a graceful shutdown does not wait for them.
  const streams = new Set<() => void>();
  app.addHook('preClose', (done) => {
    for (const end of [...streams]) end();
    done();
  });

  r.get('/internal/v1/dispatch-snapshot', {
    config: { scopes: [SCOPES.dispatch] },
    schema: {
      summary: 'Every ACTIVE webhook as a dispatcher needs it, consistent at `position`; then follow the changes after it.',
      operationId: 'getDispatchSnapshot',
      tags: ['dispatch'],
      response: { 200: dispatchSnapshot, 400: problem, 401: problem, 403: problem, 503: problem },
    },
    handler: async (_request, reply) => {
      const origin = feed.origin;
      if (origin === undefined) throw notStarted();
      const checkpoint = await deps.readModel.checkpoint();
      const position = checkpoint === null ? origin : decodePosition(checkpoint);
      // The feed must hold every change after the snapshot (only a rebuild moves the checkpoint back).
      if (comparePositions(position, origin) < 0) throw notStarted();
      const body = Readable.from(snapshotText(deps, position), { objectMode: false });
      return reply.type('application/json; charset=utf-8').header('cache-control', 'no-store').send(body as never); // a stream: not serialized
    },
  });

  r.get('/internal/v1/changes', {
    config: { scopes: [SCOPES.dispatch] },
    schema: {
      summary:
        'The changes to the dispatch table after a position, in log order: Server-Sent Events with `Accept: ' +
        'text/event-stream`, else a JSON long-poll.',
      description:
        'As Server-Sent Events: one event per change (`id:` its position, `event: webhook.upserted` with a target or ' +
        '`event: webhook.removed` with `{id, organizationId}`), `: keep-alive` comments at least every 15 s; ' +
        '`Last-Event-ID` resumes like `after`. A position older than the changes kept here is 410: take the snapshot again.',
      operationId: 'getDispatchChanges',
      tags: ['dispatch'],
      querystring: changesQuery,
      headers: changesHeaders,
      response: { 200: changeList, 400: problem, 401: problem, 403: problem, 410: problem, 503: problem },
    },
    handler: async (request, reply) => {
      if (!feed.started) throw notStarted();
      const given = request.query.after ?? request.headers['last-event-id'];
      let after: Position = given === undefined ? feed.position! : decodePosition(given);
      if (given !== undefined) await checkKnown(deps, after);
      const wantsStream = (request.headers.accept ?? '').includes('text/event-stream');
      if (wantsStream) return streamChanges(request, reply, deps, after, streams);

      const limit = request.query.limit;
      let read = feed.read(after, limit);
      if (read.kind === 'changes' && read.changes.length === 0 && request.query.wait > 0) {
        const closed = new AbortController();
        const onClose = (): void => closed.abort();
        request.raw.on('close', onClose);
        streams.add(onClose);
        try {
          const deadline = Date.now() + request.query.wait * 1000;
          while (read.kind === 'changes' && read.changes.length === 0 && !closed.signal.aborted) {
            const left = deadline - Date.now();
            if (left <= 0) break;
            after = read.next;
            await feed.waitForAdvance(left, closed.signal);
            read = feed.read(after, limit);
          }
        } finally {
          request.raw.off('close', onClose);
          streams.delete(onClose);
        }
      }
      if (read.kind === 'gone') throw gone();
      const at = deps.now().getTime();
      const changes = read.changes.map((c) => ({ position: encodePosition(c.position), type: c.type, data: changeData(c, deps.secrets, at) }));
      // Written here rather than by the compiled serializer: it has one union per change to try.
      return reply
        .type('application/json; charset=utf-8')
        .header('cache-control', 'no-store')
        .serializer(JSON.stringify)
        .send({ changes, next: encodePosition(read.next) } as never); // typed by changeData, written by JSON.stringify
    },
  });
}

/** 410 for a position before what the feed keeps, or beyond the log's head (another registry's, or a log that was reset). */
async function checkKnown(deps: ChangeFeedRouteDeps, after: Position): Promise<void> {
  const { feed } = deps;
  if (comparePositions(after, feed.origin!) < 0) throw gone();
  if (comparePositions(after, feed.position!) <= 0) return;
  // Ahead of this follower: fine while the log has it (the follower is catching up), gone otherwise.
  const head = await deps.store.headPosition();
  if (head === undefined || comparePositions(after, head) > 0) throw gone();
}

async function* snapshotText(deps: ChangeFeedRouteDeps, position: Position): AsyncIterable<string> {
  const at = deps.now().getTime();
  // One target per line, so a client can parse the array as it arrives.
  let chunk = `{"position":"${encodePosition(position)}","webhooks":[`;
  let first = true;
  for await (const view of dispatchableAt(deps.store, deps.readModel, position)) {
    chunk += `${first ? '\n' : ',\n'}${JSON.stringify(targetJson(feedTargetOf(view), deps.secrets, at, false))}`;
    first = false;
    if (chunk.length >= SNAPSHOT_CHUNK) {
      yield chunk;
      chunk = '';
    }
  }
  yield `${chunk}\n]}\n`;
}

function eventText(change: FeedChange, deps: ChangeFeedRouteDeps, at: number): string {
  return `id: ${encodePosition(change.position)}\nevent: ${change.type}\ndata: ${JSON.stringify(changeData(change, deps.secrets, at))}\n\n`;
}

function streamChanges(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: ChangeFeedRouteDeps,
  from: Position,
  streams: Set<() => void>,
): FastifyReply {
  const { feed } = deps;
  const raw = reply.raw;
  reply.hijack();
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-request-id': request.id,
    // Proxies (nginx) must pass events on as they come.
    'x-accel-buffering': 'no',
  });
  raw.write(': keep-alive\n\n');
  let after = from;
  let ended = false;
  let pumping = false;
  let lastWrite = Date.now();

  const end = (): void => {
    if (ended) return;
    ended = true;
    clearInterval(keepAlive);
    unsubscribe();
    streams.delete(end);
    raw.end();
  };
  const pump = (): void => {
    if (pumping || ended) return;
    pumping = true;
    try {
      for (;;) {
        const read = feed.read(after, STREAM_BATCH);
        // Fell out of the ring while being sent: end, so the reconnect (Last-Event-ID) gets its 410.
        if (read.kind === 'gone') return end();
        if (read.changes.length === 0) return;
        const at = deps.now().getTime();
        let text = '';
        for (const change of read.changes) text += eventText(change, deps, at);
        // The resume point is the last change sent, which is what the client's Last-Event-ID says.
        after = read.changes[read.changes.length - 1]!.position;
        lastWrite = Date.now();
        if (!raw.write(text)) {
          raw.once('drain', () => {
            pumping = false;
            pump();
          });
          return;
        }
        if (read.changes.length < STREAM_BATCH) return;
      }
    } finally {
      // Still pumping only while waiting for 'drain'.
      if (raw.writableNeedDrain !== true) pumping = false;
    }
  };
  const keepAlive = setInterval(
    () => {
      if (Date.now() - lastWrite < deps.keepAliveMs / 2) return;
      lastWrite = Date.now();
      raw.write(': keep-alive\n\n');
    },
    Math.max(50, Math.floor(deps.keepAliveMs / 2)),
  );
  const unsubscribe = feed.onAdvance(pump);
  streams.add(end);
  raw.on('close', end);
  raw.on('error', end);
  pump();
  return reply;
}
