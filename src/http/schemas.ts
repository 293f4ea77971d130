// The HTTP contract as zod schemas: routes validate requests and serialize
// responses with them, and /openapi.json is generated from them, so the
// documentation cannot drift from what the server does.
import { z } from 'zod';
import { checkPattern, isValidEventType, patternsMatching, type EventTypeCatalog } from '../domain/eventTypes.ts';
import { isValidSecret } from '../domain/secret.ts';
import { checkWebhookUrl, MAX_URL_LENGTH, normalizeWebhookUrl } from '../domain/urlPolicy.ts';

export const MAX_EVENTS = 50;
export const MAX_PARTNERS = 100;
export const MAX_GRACE_PERIOD_SECONDS = 7 * 24 * 3600;
export const DEFAULT_GRACE_PERIOD_SECONDS = 24 * 3600;

const UUID_TEXT = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export const uuid = z
  .string()
  .regex(UUID_TEXT, { message: 'must be a UUID' })
  .transform((v) => v.toLowerCase())
  .meta({ format: 'uuid', example: '3c90c3cc-0d44-4b50-8888-8dd25736052a' });

export const timestamp = z.string().meta({ format: 'date-time', example: '2023-11-07T05:31:56Z' });

export const webhookStatus = z.enum(['ACTIVE', 'PAUSED', 'DISABLED']);

// Documentation only (the refinements below are what the server enforces):
// patterns a client generator or a schema faker can satisfy, and that the
// server accepts. The OpenAPI contract test sends bodies generated from them.

/** An exact event type: lowercase segments joined by dots (isValidEventType). */
export const EVENT_TYPE_PATTERN = '^[a-z][a-z0-9_]*(?:\\.[a-z][a-z0-9_]*)*$';
/** An event type or a segment wildcard ending in `.*` (the syntax checkPattern accepts). */
export const EVENT_PATTERN_PATTERN = '^[a-z][a-z0-9_]*(?:\\.[a-z][a-z0-9_]*)*(?:\\.\\*)?$';
/**
 * `whsec_` + standard base64 of 24–64 bytes (isValidSecret): 8–21 whole
 * groups of four characters, the last one possibly padded, never beyond 64 bytes.
 */
export const SECRET_PATTERN =
  '^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,21}(?:[A-Za-z0-9+/]{2}==)?|(?:[A-Za-z0-9+/]{4}){8,20}[A-Za-z0-9+/]{3}=)$';
/** A valid secret for examples (the Standard Webhooks specification's own, 24 bytes). */
export const SECRET_EXAMPLE = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

const EVENT_DESCRIPTION =
  'Event type or segment wildcard (compliance.*, kyc.*, self_service_invitation.*). Root * is not supported.';

export interface SchemaOptions {
  readonly catalog: EventTypeCatalog;
  readonly allowInsecureUrls: boolean;
}

/** Request and response schemas; built once per app because some rules depend on configuration. */
export function createSchemas(options: SchemaOptions) {
  const webhookUrl = z
    .string({ message: 'must be a string' })
    .max(MAX_URL_LENGTH, { message: `must be at most ${MAX_URL_LENGTH} characters` })
    .superRefine((value, ctx) => {
      if (value.length > MAX_URL_LENGTH) return; // already reported by max(), once
      const problem = checkWebhookUrl(value, { allowInsecure: options.allowInsecureUrls });
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    // Only the form the policy judged is stored and answered (see normalizeWebhookUrl).
    .transform(normalizeWebhookUrl)
    .meta({ format: 'uri', description: 'Absolute https URL of the endpoint.', example: 'https://hooks.example.com/nt24' });

  // The values the server accepts are finite: the catalog's types and the
  // wildcard of every proper prefix of one (a wildcard must match a type).
  const catalogTypes = options.catalog.types.map((t) => t.name);
  const catalogWildcards = [...new Set(catalogTypes.flatMap((name) => patternsMatching(name).slice(1)))].sort();
  const eventPattern = z
    .string({ message: 'must be a string' })
    .superRefine((value, ctx) => {
      const problem = checkPattern(value, options.catalog);
      if (problem === undefined) return;
      const message =
        problem.kind === 'root-wildcard'
          ? 'root wildcard "*" is not supported; subscribe to a namespace such as "kyc.*"'
          : problem.kind === 'malformed'
            ? 'must be an event type or a segment wildcard: lowercase segments joined by ".", optionally ending in ".*"'
            : 'matches no known event type (see GET /v1/event-types)';
      ctx.addIssue({ code: 'custom', message });
    })
    .meta({
      pattern: EVENT_PATTERN_PATTERN,
      anyOf: [
        { title: 'Event type', description: 'An event type of the catalog (GET /v1/event-types).', enum: catalogTypes },
        ...(catalogWildcards.length > 0
          ? [{ title: 'Segment wildcard', description: 'Every catalog type under this prefix, at any depth.', enum: catalogWildcards }]
          : []),
      ],
      example: 'kyc.*',
    });

  const events = z
    .array(eventPattern, { message: 'must be an array of event types' })
    .min(1, { message: 'must list at least one event type' })
    .max(MAX_EVENTS, { message: `must list at most ${MAX_EVENTS} event types` })
    .transform((list) => [...new Set(list)])
    .meta({ description: EVENT_DESCRIPTION, example: ['kyc.*', 'compliance.case.opened'] });

  const partnerIds = z
    .array(uuid, { message: 'must be an array of partner UUIDs' })
    .min(1, { message: 'must not be empty; omit partnerIds for all authorized partners' })
    .max(MAX_PARTNERS, { message: `must list at most ${MAX_PARTNERS} partners` })
    // Duplicates are removed by the route after the authorization check, so
    // its 403 pointers index the list as the client sent it.
    .meta({
      description: 'Optional filter — if set, only events for these partners fire on this endpoint. Omit for all authorized partners.',
    });

  // The message never contains the value: a secret must not be echoed.
  const secret = z
    .string({ message: 'must be a string' })
    .refine(isValidSecret, { message: 'must be "whsec_" followed by the base64 of 24 to 64 random bytes' })
    .meta({
      description:
        'Optional provided secret. If omitted, server generates. Standard Webhooks format: `whsec_` + base64 of 24–64 bytes.',
      pattern: SECRET_PATTERN,
      example: SECRET_EXAMPLE,
    });

  const registerBody = z
    .strictObject({ url: webhookUrl, events, partnerIds: partnerIds.optional(), secret: secret.optional() })
    .meta({ id: 'RegisterWebhookRequest' });

  const updateBody = z
    .strictObject({
      url: webhookUrl.optional(),
      events: events.optional(),
      partnerIds: partnerIds.nullable().optional(),
      status: z.enum(['ACTIVE', 'PAUSED'], { message: 'must be ACTIVE or PAUSED (DISABLED is set by dispatchers)' }).optional(),
    })
    .refine((b) => Object.keys(b).length > 0, { message: 'must change at least one of url, events, partnerIds, status' })
    .meta({ id: 'UpdateWebhookRequest', minProperties: 1 });

  const rotateBody = z
    .strictObject({
      secret: secret.optional(),
      gracePeriodSeconds: z
        .number({ message: 'must be a number of seconds' })
        .int({ message: 'must be a whole number of seconds' })
        .min(0, { message: 'must be between 0 and 604800 (7 days)' })
        .max(MAX_GRACE_PERIOD_SECONDS, { message: 'must be between 0 and 604800 (7 days)' })
        .optional(),
    })
    .meta({ id: 'RotateSecretRequest' });

  return { registerBody, updateBody, rotateBody };
}

export const webhookIdParams = z.object({ id: uuid.meta({ description: 'Webhook id' }) });

const webhookFields = {
  id: z.string().meta({ example: '0b5fd2a4-55c4-5d2b-9a43-6e3e0b9b2c10' }),
  url: z.string().meta({ format: 'uri' }),
  events: z.array(z.string().meta({ pattern: EVENT_PATTERN_PATTERN })).meta({ description: EVENT_DESCRIPTION }),
  status: webhookStatus,
  createdAt: timestamp,
  partnerIds: z
    .array(z.string().meta({ format: 'uuid' }))
    .optional()
    .meta({ description: 'Only events for these partners fire on this endpoint; absent: all authorized partners.' }),
  updatedAt: timestamp,
};

export const webhookResponse = z.object(webhookFields).meta({ id: 'Webhook' });

export const registeredResponse = z
  .object({
    ...webhookFields,
    // Always ACTIVE when registered; documented as the reference page does (an enum, not a constant).
    status: webhookStatus,
    secret: z.string().meta({
      description: 'Signing secret — returned only on the create response. Not included on GET / list.',
      pattern: SECRET_PATTERN,
      example: SECRET_EXAMPLE,
    }),
  })
  .meta({ id: 'RegisteredWebhook' });

export const webhookList = z
  .object({ data: z.array(webhookResponse), nextCursor: z.string().nullable() })
  .meta({ id: 'WebhookList' });

export const listQuery = z.strictObject({
  limit: z.coerce
    .number({ message: 'must be a number' })
    .int({ message: 'must be a whole number' })
    .min(1, { message: 'must be between 1 and 100' })
    .max(100, { message: 'must be between 1 and 100' })
    .default(20),
  cursor: z.string().max(512).optional(),
  status: webhookStatus.optional(),
  event: z
    .string()
    .refine((v) => isValidEventType(v.endsWith('.*') ? v.slice(0, -2) : v), {
      message: 'must be an event type or a segment wildcard',
    })
    .optional()
    .meta({ description: 'Only webhooks subscribed with exactly this pattern.', pattern: EVENT_PATTERN_PATTERN, example: 'kyc.*' }),
});

export const rotateResponse = z
  .object({
    secret: z.string().meta({
      description: 'The new signing secret — shown only in this response.',
      pattern: SECRET_PATTERN,
      example: SECRET_EXAMPLE,
    }),
    previousSecretExpiresAt: timestamp.meta({ description: 'The previous secret stays valid for signing until then.' }),
    retiredPreviousSecrets: z
      .array(
        z.object({
          expiresAt: timestamp.meta({
            description: 'The expiry it had been promised: the previousSecretExpiresAt of the rotation that replaced it.',
          }),
        }),
      )
      .optional()
      .meta({
        description:
          'Present only when this rotation retired earlier previous secrets before their expiry: at most 3 previous ' +
          'secrets (4 in all) sign at once, so the ones expiring soonest stop signing now.',
      }),
  })
  .meta({ id: 'RotatedSecret' });

export const eventTypeList = z
  .object({ data: z.array(z.object({ name: z.string(), description: z.string() })) })
  .meta({ id: 'EventTypeList' });

export const dispatchQuery = z.strictObject({
  eventType: z
    .string()
    .refine(isValidEventType, { message: 'must be an event type such as kyc.verification.approved' })
    .meta({ description: 'The event type being delivered.', pattern: EVENT_TYPE_PATTERN, example: 'kyc.verification.approved' }),
  partnerId: uuid,
});

export const dispatchTargets = z
  .object({
    data: z.array(
      z.object({
        id: z.string(),
        organizationId: z.string(),
        url: z.string(),
        events: z.array(z.string()),
        secrets: z.array(z.string()).meta({ description: 'Secrets valid for signing now, current first.' }),
      }),
    ),
  })
  .meta({ id: 'DispatchTargets' });

// ---- the dispatcher change feed (DESIGN.md §4b) ------------------------------------

/** An opaque, ordered log position (the feed's `id:` and `next`). */
export const feedPosition = z
  .string()
  .regex(/^\d{1,20}\/\d{1,20}$/, { message: 'must be a position the registry gave' })
  .meta({ description: 'A log position, opaque: as the registry gave it.', example: '00000000000000000042/00000000000000000042' });

export const feedTarget = z
  .object({
    id: z.string(),
    organizationId: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    partnerIds: z
      .array(z.string().meta({ format: 'uuid' }))
      .meta({ description: 'The partners whose events it receives: the given ones, or the authorized set when none were given.' }),
    status: z.enum(['ACTIVE']),
    secrets: z
      .array(
        z.object({
          secret: z.string().meta({ pattern: SECRET_PATTERN }),
          expiresAt: timestamp.nullable().meta({ description: 'null for the current secret; a previous one signs until then.' }),
        }),
      )
      .meta({ description: 'The current secret first, then previous ones inside their grace period, newest first.' }),
    revision: z.number().int(),
  })
  .meta({ id: 'DispatchFeedTarget' });

export const removedTarget = z.object({ id: z.string(), organizationId: z.string() }).meta({ id: 'DispatchFeedRemoval' });

export const dispatchSnapshot = z
  .object({ position: feedPosition, webhooks: z.array(feedTarget) })
  .meta({ id: 'DispatchSnapshot' });

export const MAX_FEED_WAIT_SECONDS = 30;
export const MAX_FEED_LIMIT = 10_000;

export const changesQuery = z.strictObject({
  after: feedPosition
    .optional()
    .meta({ description: 'Changes after this position (a snapshot\'s `position`, a change\'s, or `next`). Absent: from now on.' }),
  wait: z.coerce
    .number({ message: 'must be a number' })
    .int({ message: 'must be a whole number' })
    .min(0, { message: `must be between 0 and ${MAX_FEED_WAIT_SECONDS}` })
    .max(MAX_FEED_WAIT_SECONDS, { message: `must be between 0 and ${MAX_FEED_WAIT_SECONDS}` })
    .default(0)
    .meta({ description: 'Seconds to wait for a change when there is none yet (long-poll).' }),
  limit: z.coerce
    .number({ message: 'must be a number' })
    .int({ message: 'must be a whole number' })
    .min(1, { message: `must be between 1 and ${MAX_FEED_LIMIT}` })
    .max(MAX_FEED_LIMIT, { message: `must be between 1 and ${MAX_FEED_LIMIT}` })
    .default(1000),
});

export const changesHeaders = z.object({
  'last-event-id': feedPosition.optional().meta({ description: 'Resumes like `after` (what an EventSource sends on reconnect).' }),
});

export const changeList = z
  .object({
    changes: z.array(
      z.discriminatedUnion('type', [
        z.object({ position: feedPosition, type: z.literal('webhook.upserted'), data: feedTarget }),
        z.object({ position: feedPosition, type: z.literal('webhook.removed'), data: removedTarget }),
      ]),
    ),
    next: feedPosition.meta({ description: 'Where to resume: the `after` of the next request.' }),
  })
  .meta({ id: 'DispatchChanges' });

export const disableBody = z.strictObject({
  reason: z.string().min(1, { message: 'must not be empty' }).max(500, { message: 'must be at most 500 characters' }),
});

export const problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional(),
    requestId: z.string().optional(),
    errors: z.array(z.object({ pointer: z.string(), detail: z.string() })).optional(),
  })
  .meta({ id: 'Problem' });
