// Probes for the orchestrator, public like /metrics (in-cluster callers carry
// no token):
// - GET /health/live: the process answers HTTP.
// - GET /health/ready: both stores answer a ping, and the projector is less
//   than PROJECTOR_MAX_LAG_SECONDS behind the log (age of the oldest event not
//   yet in the read model). Otherwise 503 problem+json naming what failed.
// While the server shuts down every request, these included, gets 503.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { PROBLEM_BASE } from '../errors.ts';
import {
  comparePositions,
  decodePosition,
  encodePosition,
  StoreAccessDeniedError,
  type EventStore,
} from '../stores/eventStore.ts';
import type { ReadModel } from '../stores/readModel.ts';
import { problem } from './schemas.ts';

export interface HealthDeps {
  readonly store: EventStore;
  readonly readModel: ReadModel;
  readonly maxProjectorLagSeconds: number;
  readonly now: () => Date;
  /** How long one check may take before it counts as down. */
  readonly checkTimeoutMs?: number;
}

const dependencyCheck = z.object({
  status: z.enum(['up', 'down']),
  detail: z.string().optional(),
});

const projectorCheck = z.object({
  status: z.enum(['up', 'down']),
  detail: z.string().optional(),
  lagSeconds: z.number().meta({ description: 'Age of the oldest event not yet applied to the read model (0 when caught up).' }),
  maxLagSeconds: z.number(),
  checkpoint: z.string().nullable().meta({ description: 'Position of the last event applied to the read model.' }),
  head: z.string().nullable().meta({ description: 'Position of the newest event in the log.' }),
});

const checks = z.object({ eventStore: dependencyCheck, readModel: dependencyCheck, projector: projectorCheck });

export const readinessResponse = z.object({ status: z.literal('ready'), checks }).meta({ id: 'Readiness' });

export const notReadyProblem = problem.extend({ checks }).meta({ id: 'NotReadyProblem' });

const liveResponse = z.object({ status: z.literal('ok') }).meta({ id: 'Liveness' });

type Checks = z.output<typeof checks>;

class CheckTimeoutError extends Error {}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CheckTimeoutError(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Concurrent probes share the one check in flight: a store that hangs cannot
 * make every probe start another call to it (they would pile up).
 */
function singleFlight<T>(work: () => Promise<T>): () => Promise<T> {
  let inflight: Promise<T> | undefined;
  return () =>
    (inflight ??= work().finally(() => {
      inflight = undefined;
    }));
}

export function registerHealthRoutes(app: FastifyInstance, deps: HealthDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const timeoutMs = deps.checkTimeoutMs ?? 2000;
  const pingStore = singleFlight(() => deps.store.ping());
  const pingReadModel = singleFlight(() => deps.readModel.ping());

  r.get('/health/live', {
    schema: {
      summary: 'Liveness: the process answers.',
      operationId: 'getLiveness',
      tags: ['operations'],
      response: { 200: liveResponse },
    },
    handler: async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }),
  });

  // Details of a failure go to the log; the public answer only says what is down.
  const ping = async (request: FastifyRequest, name: string, work: () => Promise<void>) => {
    try {
      await withTimeout(work(), timeoutMs);
      return { status: 'up' as const };
    } catch (error) {
      request.log.warn({ err: error, check: name }, 'readiness check failed');
      return {
        status: 'down' as const,
        detail:
          error instanceof CheckTimeoutError
            ? `no answer within ${timeoutMs} ms`
            : error instanceof StoreAccessDeniedError
              ? 'access denied'
              : 'cannot be reached',
      };
    }
  };

  const max = deps.maxProjectorLagSeconds;
  // Head, checkpoint and the oldest pending event's age; shared by concurrent probes like the pings.
  const measureLag = singleFlight(async (): Promise<Checks['projector']> => {
    const [head, checkpoint] = await Promise.all([deps.store.headPosition(), deps.readModel.checkpoint()]);
    const applied = checkpoint === null ? undefined : decodePosition(checkpoint);
    let lagSeconds = 0;
    if (head !== undefined && (applied === undefined || comparePositions(applied, head) < 0)) {
      const [oldestPending] = await deps.store.readAll({ after: applied, limit: 1 });
      const occurred = oldestPending ? Date.parse(oldestPending.metadata.occurredAt) : NaN;
      if (Number.isFinite(occurred)) lagSeconds = Math.max(0, (deps.now().getTime() - occurred) / 1000);
    }
    const up = lagSeconds < max;
    return {
      status: up ? ('up' as const) : ('down' as const),
      ...(up ? {} : { detail: `the read model is ${lagSeconds.toFixed(1)} s behind the log (limit ${max} s)` }),
      lagSeconds,
      maxLagSeconds: max,
      checkpoint,
      head: head === undefined ? null : encodePosition(head),
    };
  });

  const projectorLag = async (request: FastifyRequest): Promise<Checks['projector']> => {
    try {
      return await withTimeout(measureLag(), timeoutMs);
    } catch (error) {
      request.log.warn({ err: error, check: 'projector' }, 'readiness check failed');
      return {
        status: 'down',
        detail: 'the projector lag could not be determined',
        lagSeconds: 0,
        maxLagSeconds: max,
        checkpoint: null,
        head: null,
      };
    }
  };

  r.get('/health/ready', {
    schema: {
      summary: 'Readiness: the stores answer and the read model is no more than PROJECTOR_MAX_LAG_SECONDS behind the log.',
      operationId: 'getReadiness',
      tags: ['operations'],
      response: { 200: readinessResponse, 503: notReadyProblem },
    },
    handler: async (request, reply) => {
      const [eventStore, readModel] = await Promise.all([
        ping(request, 'eventStore', pingStore),
        ping(request, 'readModel', pingReadModel),
      ]);
      const projector = await projectorLag(request);
      const result: Checks = { eventStore, readModel, projector };
      void reply.header('cache-control', 'no-store');
      const failing = Object.entries(result).filter(([, c]) => c.status === 'down');
      if (failing.length === 0) return reply.send({ status: 'ready', checks: result });
      return reply
        .code(503)
        .header('retry-after', '5')
        .type('application/problem+json')
        .serializer(JSON.stringify)
        .send({
          type: `${PROBLEM_BASE}not-ready`,
          title: 'The service is not ready',
          status: 503,
          detail: failing.map(([name, c]) => `${name}: ${c.detail ?? 'down'}`).join('; '),
          instance: '/health/ready',
          requestId: request.id,
          checks: result,
        });
    },
  });
}
