// One place that turns every failure — ours, zod's and fastify's own — into
// application/problem+json. 5xx details are hidden and logged instead; no
// detail ever echoes request content (a body may hold a secret).
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import {
  IdempotencyKeyInvalidError,
  InternalError,
  MalformedRequestError,
  NotFoundError,
  PayloadTooLargeError,
  ProblemError,
  ServiceUnavailableError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
  ValidationError,
  type FieldError,
} from '../errors.ts';
import { IdentityProviderUnavailableError, InvalidTokenError } from '../identity/principal.ts';
import { BEARER_REALM } from './auth.ts';
import { AppendOutcomeUnknownError, StoreUnavailableError } from '../stores/eventStore.ts';
import { WebhookNotFoundError } from '../domain/webhook.ts';

/** What our validator compiler returns for a request that fails its zod schema. */
export class RequestValidationError extends Error {
  override readonly name = 'RequestValidationError';
  validationContext?: string;
  constructor(readonly issues: readonly z.core.$ZodIssue[]) {
    super('request validation failed');
  }
}

const CONTEXT_PREFIX: Record<string, string> = { body: '', querystring: '/query', params: '/params', headers: '/headers' };

export function issuesToFieldErrors(issues: readonly z.core.$ZodIssue[], prefix: string): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of issues) {
    const base = prefix + issue.path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ pointer: `${base}/${key}`, detail: 'is not a known field' });
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      out.push({ pointer: base, detail: 'is required' });
    } else {
      out.push({ pointer: base, detail: issue.message });
    }
  }
  return out;
}

/** Maps any thrown value to a ProblemError; unknown errors become a 500. */
export function toProblem(error: unknown): ProblemError {
  if (error instanceof ProblemError) return error;
  if (error instanceof RequestValidationError) {
    const prefix = CONTEXT_PREFIX[error.validationContext ?? 'body'] ?? '';
    const where = error.validationContext === 'querystring' ? 'query parameters' : 'request body';
    return new ValidationError(`The ${where} did not pass validation.`, {
      errors: issuesToFieldErrors(error.issues, prefix),
    });
  }
  if (error instanceof InvalidTokenError) {
    return new UnauthorizedError(error.message, {
      headers: { 'www-authenticate': `${BEARER_REALM}, error="invalid_token", error_description="${error.message}"` },
    });
  }
  if (error instanceof IdentityProviderUnavailableError) {
    // An outage, never a 401: the token may be fine.
    return new ServiceUnavailableError('The identity provider cannot be reached to verify the token; retry shortly.', {
      headers: { 'retry-after': String(error.retryAfterSeconds) },
    });
  }
  if (error instanceof AppendOutcomeUnknownError) {
    // The write may have landed: the client must retry with the same key, which finds it or makes it.
    return new ServiceUnavailableError(
      'The write got no answer from the store and may or may not have been applied; retry with the same Idempotency-Key.',
      { headers: { 'retry-after': '2' } },
    );
  }
  if (error instanceof StoreUnavailableError) {
    return new ServiceUnavailableError('A store cannot be reached; retry shortly.', { headers: { 'retry-after': '2' } });
  }
  if (error instanceof WebhookNotFoundError) return new NotFoundError('webhook not found');
  const code = (error as FastifyError | undefined)?.code;
  switch (code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      // Never the parser's message: it quotes the body, which may hold a secret.
      return new MalformedRequestError('The request body is not valid JSON.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError('The request body exceeds the size limit.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? new UnsupportedMediaTypeError('Send the body as application/json.')
        : new MalformedRequestError('The Content-Length header does not match the body.');
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_CTP_INVALID_PARSE_TYPE':
      return new MalformedRequestError('The request could not be read.');
    default:
      break;
  }
  const status = (error as FastifyError | undefined)?.statusCode;
  if (error instanceof SyntaxError || (status !== undefined && status >= 400 && status < 500)) {
    // fastify's own 4xx (e.g. prototype poisoning): keep the status, not the message.
    return new MalformedRequestError('The request could not be read.');
  }
  return new InternalError('An unexpected error occurred.');
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: ProblemError): FastifyReply {
  for (const [name, value] of Object.entries(problem.headers)) void reply.header(name, value);
  return reply
    .code(problem.status)
    .type('application/problem+json')
    .serializer(JSON.stringify)
    .send({
      type: problem.type,
      title: problem.title,
      status: problem.status,
      detail: problem.message,
      instance: request.url.split('?')[0],
      requestId: request.id,
      ...(problem.errors ? { errors: problem.errors } : {}),
    });
}

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const problem = toProblem(error);
    if (error instanceof IdentityProviderUnavailableError) {
      // Expected during an outage: the cause (never the token) at warn level.
      request.log.warn({ err: error.cause ?? error }, error.message);
    } else if (problem.status >= 500) request.log.error({ err: error }, 'request failed');
    else if (problem instanceof MalformedRequestError || problem instanceof IdempotencyKeyInvalidError)
      request.log.info({ code: (error as FastifyError).code, status: problem.status }, problem.message);
    return sendProblem(request, reply, problem);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, new NotFoundError(`No route for ${request.method} ${request.url.split('?')[0]}.`)),
  );
}
