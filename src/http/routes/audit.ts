// Compliance over HTTP (DESIGN.md §2, §5):
//  - GET /v1/webhooks/{id}/history: the audit trail of one webhook, for its own
//    organization (webhooks:read) or any auditor (webhooks:audit);
//  - GET /internal/v1/audit/webhooks: the state of every webhook at a past
//    instant, rebuilt from the log alone (webhooks:audit);
//  - GET /internal/v1/audit/verification: the tamper check of `audit verify`
//    (every stream's hash chain, the read model against a fresh fold of the
//    log), naming the first broken link of each damaged stream (webhooks:audit).
// Neither ever shows a signing secret, not even its ciphertext.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { webhookHistory } from '../../audit/history.ts';
import { checkInstant, LogDamagedError, replayAsOf } from '../../audit/replay.ts';
import { verifyAudit, type VerifyReport } from '../../audit/verify.ts';
import type { ReadModel } from '../../stores/readModel.ts';
import { InternalError, NotFoundError, ValidationError } from '../../errors.ts';
import { SCOPES } from '../../identity/principal.ts';
import { decodePosition, encodePosition, webhookStreamName, type EventStore, type Position } from '../../stores/eventStore.ts';
import { principalOf } from '../auth.ts';
import { openCursor, signCursor } from '../cursor.ts';
import { problem, timestamp, webhookIdParams, webhookStatus } from '../schemas.ts';

export interface AuditRouteDeps {
  readonly store: EventStore;
  /** What the verification compares with the log. */
  readonly readModel: ReadModel;
  /** Signs audit cursors (the same key as list cursors, domain-separated). */
  readonly cursorKey: Buffer;
  readonly now: () => Date;
}

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, problem]));

export const MAX_HISTORY_PAGE = 1000;
export const MAX_AUDIT_PAGE = 1000;

const pageLimit = (max: number, fallback: number) =>
  z.coerce
    .number({ message: 'must be a number' })
    .int({ message: 'must be a whole number' })
    .min(1, { message: `must be between 1 and ${max}` })
    .max(max, { message: `must be between 1 and ${max}` })
    .default(fallback);

const historyQuery = z.strictObject({
  limit: pageLimit(MAX_HISTORY_PAGE, 100),
  cursor: z
    .string()
    .regex(/^\d{1,15}$/, { message: 'is not a cursor this server issued' })
    .optional()
    .meta({ description: 'nextCursor of the previous page.' }),
});

const fieldChange = z.object({ from: z.unknown(), to: z.unknown() });

export const historyResponse = z
  .object({
    webhookId: z.string(),
    organizationId: z.string().nullable(),
    chain: z
      .object({ intact: z.boolean(), revision: z.number().int().optional(), problem: z.string().optional() })
      .meta({ description: 'The stream’s hash chain, verified while reading it; where it first breaks, if it does.' }),
    data: z.array(
      z.object({
        revision: z.number().int(),
        position: z.string(),
        type: z.string(),
        occurredAt: timestamp,
        actor: z.object({ clientId: z.string(), subject: z.string() }),
        requestId: z.string(),
        changes: z.record(z.string(), fieldChange).meta({
          description: 'Public fields this event changed, as {from, to}; a secret change shows only "[redacted]".',
        }),
        previousHash: z.string().nullable(),
        hash: z.string(),
      }),
    ),
    nextCursor: z.string().nullable(),
  })
  .meta({ id: 'WebhookHistory' });

export const auditWebhook = z
  .object({
    id: z.string(),
    organizationId: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    partnerIds: z.array(z.string()).nullable().meta({ description: 'null: all partners the organization is authorized for.' }),
    effectivePartnerIds: z.array(z.string()),
    status: webhookStatus,
    disabledReason: z.string().nullable(),
    previousSecretExpiresAt: timestamp
      .nullable()
      .meta({ description: 'Until when a previous secret may still sign: the latest of previousSecretExpiries; null when none.' }),
    previousSecretExpiries: z.array(timestamp).meta({
      description:
        'The expiry of each previous secret kept at the last rotation, newest first (at most 3; never the secrets themselves).',
    }),
    createdAt: timestamp,
    updatedAt: timestamp,
    deleted: z.boolean(),
    revision: z.number().int(),
    position: z.string(),
  })
  .meta({ id: 'AuditWebhook' });

export const auditList = z
  .object({
    asOf: timestamp,
    organizationId: z.string().nullable(),
    logPosition: z.string().nullable().meta({ description: 'The log was replayed up to here; every page of one query uses the same.' }),
    data: z.array(auditWebhook),
    nextCursor: z.string().nullable(),
  })
  .meta({ id: 'AuditWebhookList' });

export const verificationResponse = z
  .object({
    ok: z.boolean().meta({ description: 'true when no stream, view or store shows damage.' }),
    events: z.number().int().meta({ description: 'Events read from the log.' }),
    streams: z.number().int(),
    readModelWebhooks: z.number().int(),
    logHead: z.string().nullable().meta({ description: 'Position of the last event when the check started (null: empty log).' }),
    readModelCheckpoint: z.string().nullable(),
    brokenChains: z
      .array(
        z.object({
          streamId: z.string(),
          revision: z.number().int().meta({ description: 'The first revision at which the chain does not hold.' }),
          problem: z.enum(['hash-mismatch', 'previous-hash-mismatch', 'revision-gap', 'unreadable']),
          detail: z.string(),
        }),
      )
      .meta({ description: 'One entry per damaged stream, in log order: its first broken link.' }),
    readModelMismatches: z.array(
      z.object({
        webhookId: z.string(),
        problem: z.enum(['differs', 'missing-from-read-model', 'not-in-log', 'unreadable']),
        fields: z.array(z.string()),
        readModelRevision: z.number().int().nullable(),
        logRevision: z.number().int().nullable(),
      }),
    ),
    otherProblems: z.array(z.string()),
  })
  .meta({ id: 'AuditVerification' });

interface AuditCursor {
  readonly asOf: string;
  readonly org: string | null;
  readonly until: string;
  readonly afterId: string;
}

class AuditCursorCodec {
  constructor(private readonly key: Buffer) {}

  encode(c: AuditCursor): string {
    return signCursor(this.key, 'audit-cursor', [c.asOf, c.org, c.until, c.afterId]);
  }

  decode(text: string): AuditCursor {
    const v = openCursor(this.key, 'audit-cursor', text);
    if (
      v &&
      typeof v[0] === 'string' &&
      (v[1] === null || typeof v[1] === 'string') &&
      typeof v[2] === 'string' &&
      typeof v[3] === 'string'
    ) {
      return { asOf: v[0], org: v[1], until: v[2], afterId: v[3] };
    }
    throw invalidCursor('is not a cursor this server issued');
  }
}

function invalidCursor(detail: string): ValidationError {
  return new ValidationError('The cursor is not valid for this query; start again without one.', {
    errors: [{ pointer: '/query/cursor', detail }],
  });
}

export function registerAuditRoutes(app: FastifyInstance, deps: AuditRouteDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const cursors = new AuditCursorCodec(deps.cursorKey);

  r.get('/v1/webhooks/:id/history', {
    config: { scopes: [SCOPES.read, SCOPES.audit] },
    schema: {
      summary: 'The audit trail of one webhook: every change with its time, actor, revision and position; never secrets.',
      operationId: 'getWebhookHistory',
      tags: ['webhooks'],
      params: webhookIdParams,
      querystring: historyQuery,
      response: { 200: historyResponse, ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (request, reply) => {
      const principal = principalOf(request);
      const recorded = await deps.store.readStream(webhookStreamName(request.params.id));
      const history = webhookHistory(recorded);
      // Auditors see every organization; everyone else only their own (deleted webhooks included:
      // the trail outlives the webhook). Other organizations' webhooks do not exist for them.
      const visible =
        recorded.length > 0 &&
        (principal.scopes.has(SCOPES.audit) ||
          (principal.organizationId !== null && principal.organizationId === history.organizationId));
      if (!visible) throw new NotFoundError('webhook not found');
      const after = request.query.cursor === undefined ? -1 : Number(request.query.cursor);
      const remaining = history.entries.filter((e) => e.revision > after);
      const page = remaining.slice(0, request.query.limit);
      const last = page[page.length - 1];
      return reply.header('cache-control', 'no-store').send({
        webhookId: request.params.id,
        organizationId: history.organizationId,
        chain: history.chain,
        data: page.map((e) => ({ ...e, changes: { ...e.changes } })),
        nextCursor: remaining.length > page.length && last ? String(last.revision) : null,
      });
    },
  });

  const auditQuery = z.strictObject({
    asOf: z
      .string({ message: 'is required: an RFC 3339 date-time such as 2024-05-01T12:00:00Z' })
      .transform((value, ctx) => {
        const checked = checkInstant(value, deps.now());
        if ('problem' in checked) {
          ctx.addIssue({ code: 'custom', message: checked.message });
          return z.NEVER;
        }
        return checked.instant;
      })
      .meta({ description: 'RFC 3339 instant, not in the future.', format: 'date-time', example: '2024-05-01T12:00:00Z' }),
    org: z.string().min(1).max(255).optional().meta({ description: 'Only this organization’s webhooks.' }),
    limit: pageLimit(MAX_AUDIT_PAGE, 100),
    cursor: z.string().max(1024).optional().meta({ description: 'nextCursor of the previous page.' }),
  });

  r.get('/internal/v1/audit/webhooks', {
    config: { scopes: [SCOPES.audit] },
    schema: {
      summary:
        'The state of every webhook at a past instant, rebuilt from the event log alone (deleted ones flagged). ' +
        'Before the first event: an empty list.',
      operationId: 'getWebhooksAsOf',
      tags: ['audit'],
      querystring: auditQuery,
      response: { 200: auditList, ...errors(400, 401, 403, 500, 503) },
    },
    handler: async (request, reply) => {
      const { asOf, org, limit } = request.query;
      const asOfText = asOf.toISOString();
      let until: Position | undefined;
      let afterId: string | undefined;
      if (request.query.cursor !== undefined) {
        const cursor = cursors.decode(request.query.cursor);
        if (cursor.asOf !== asOfText || cursor.org !== (org ?? null)) {
          throw invalidCursor('belongs to a query with a different asOf or org');
        }
        try {
          until = decodePosition(cursor.until);
        } catch {
          throw invalidCursor('is not a cursor this server issued');
        }
        afterId = cursor.afterId;
      }
      let result;
      try {
        result = await replayAsOf(deps.store, { asOf, organizationId: org, afterId, limit, until });
      } catch (error) {
        if (error instanceof LogDamagedError) {
          throw new InternalError(`The event log cannot be replayed: ${error.message}.`);
        }
        throw error;
      }
      const last = result.webhooks[result.webhooks.length - 1];
      const position = result.until === undefined ? null : encodePosition(result.until);
      return reply.header('cache-control', 'no-store').send({
        asOf: asOfText,
        organizationId: org ?? null,
        logPosition: position,
        data: result.webhooks.map((w) => ({
          ...w,
          events: [...w.events],
          partnerIds: w.partnerIds === null ? null : [...w.partnerIds],
          effectivePartnerIds: [...w.effectivePartnerIds],
        })),
        nextCursor:
          result.hasMore && last && position !== null
            ? cursors.encode({ asOf: asOfText, org: org ?? null, until: position, afterId: last.id })
            : null,
      });
    },
  });

  // One verification at a time per process: a request arriving while one runs gets that run's report.
  let running: Promise<VerifyReport> | undefined;
  r.get('/internal/v1/audit/verification', {
    config: { scopes: [SCOPES.audit] },
    schema: {
      summary:
        'The tamper check: every stream’s hash chain recomputed and the read model compared with a fresh fold of the log; names the first broken link of each damaged stream. Reads the whole log (seconds per 100 000 events).',
      operationId: 'verifyAuditTrail',
      tags: ['audit'],
      response: { 200: verificationResponse, ...errors(401, 403, 503) },
    },
    handler: async (_request, reply) => {
      running ??= verifyAudit(deps.store, deps.readModel).finally(() => (running = undefined));
      const report = await running;
      return reply.header('cache-control', 'no-store').send({
        ...report,
        brokenChains: report.brokenChains.map((b) => ({ ...b })),
        readModelMismatches: report.readModelMismatches.map((m) => ({ ...m, fields: [...m.fields] })),
      });
    },
  });
}
