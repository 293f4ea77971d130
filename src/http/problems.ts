// One place that turns every failure — ours, zod's and fastify's own — into
// application/problem+json. 5xx details are hidden and logged instead; no
// detail ever echoes request content (a body may hold a secret).
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { z } from 'zod';
import {
  ExpectationFailedError,
  HeaderFieldsTooLargeError,
  IdempotencyKeyInvalidError,
  InternalError,
  MalformedRequestError,
  NotFoundError,
  PayloadTooLargeError,
  ProblemError,
  RequestTimeoutError,
  ServiceUnavailableError,
  UnauthorizedError,
  UnsupportedMediaTypeError,
  UriTooLongError,
  ValidationError,
  type FieldError,
} from '../errors.ts';
import { IdentityProviderUnavailableError, InvalidTokenError } from '../identity/principal.ts';
import { BEARER_REALM } from './auth.ts';
import { isRepeatableName } from './fieldNames.ts';
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

/** One reference token of a JSON Pointer (RFC 6901: `~` → `~0`, `/` → `~1`). */
export function pointerToken(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function issuesToFieldErrors(issues: readonly z.core.$ZodIssue[], prefix: string): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of issues) {
    const base = prefix + issue.path.map((p) => `/${pointerToken(String(p))}`).join('');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        // A name that could be a secret is not repeated: the pointer stops at the object holding it.
        out.push(
          isRepeatableName(key)
            ? { pointer: `${base}/${pointerToken(key)}`, detail: 'is not a known field' }
            : { pointer: base, detail: 'holds a field that is not in the contract (its name is not repeated)' },
        );
      }
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
      return new MalformedRequestError('The request URL is malformed (invalid percent-encoding).');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new UriTooLongError('A path segment of the request URL is too long.');
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

/**
 * Sends `problem`. `instance` is the request's path (never its query string);
 * `withInstance: false` leaves it out, for requests whose URL itself was the
 * problem (unreadable, too long) and must not be echoed.
 */
export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  problem: ProblemError,
  { withInstance = true }: { withInstance?: boolean } = {},
): FastifyReply {
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
      ...(withInstance ? { instance: request.url.split('?')[0] } : {}),
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

// ---- problems answered before a route runs --------------------------------------------
//
// fastify and Node's HTTP server answer some requests themselves: URLs the
// router cannot take, bytes that are not HTTP, headers over `maxHeaderSize`,
// requests not received within the timeouts, `Expect` values other than
// 100-continue, HTTP/1.1 without Host. Their defaults are JSON or empty bodies
// that quote the URL (query string and all); these answer problem+json with
// nothing of the request in it, and log only the error code.

/** fastify's `frameworkErrors`: a URL the router cannot take (malformed percent-encoding, an over-long path parameter). */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const problem = toProblem(error);
  request.log.info({ code: error.code, status: problem.status }, problem.message);
  // This reply runs no hooks, so the request id header is set here.
  void reply.header('x-request-id', request.id);
  sendProblem(request, reply, problem, { withInstance: false });
}

function clientErrorProblem(code: string): ProblemError {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new RequestTimeoutError('The request was not received within the time limit.');
    case 'HPE_HEADER_OVERFLOW':
      return new HeaderFieldsTooLargeError('The request headers exceed the size limit.');
    default:
      return new MalformedRequestError('The request is not valid HTTP.');
  }
}

/** A problem+json response as raw HTTP/1.1 text, for sockets no ServerResponse owns. */
function rawProblemResponse(problem: ProblemError, requestId: string): string {
  const body = JSON.stringify({
    type: problem.type,
    title: problem.title,
    status: problem.status,
    detail: problem.message,
    requestId,
  });
  return (
    `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? ''}\r\n` +
    'Content-Type: application/problem+json\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `X-Request-Id: ${requestId}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/**
 * fastify's `clientErrorHandler` (Node's `clientError` event): the parser
 * failed, the headers overflowed, or a request or header timeout expired.
 * The error's `rawPacket` holds request bytes (tokens included) and is never
 * logged.
 */
export function answerClientError(this: FastifyInstance, error: ConnectionError, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const problem = clientErrorProblem(error.code);
  const requestId = randomUUID();
  this.log.info({ code: error.code, status: problem.status, requestId }, problem.message);
  // As Node does: write only if no response has started on this socket
  // (e.g. a 401 already sent before the rest of the body arrived).
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && inFlight?.headersSent !== true) {
    // end() sends the answer before the FIN; the timer covers a peer that never reads it.
    const giveUp = setTimeout(() => socket.destroy(), 1000).unref();
    socket.end(rawProblemResponse(problem, requestId), () => {
      clearTimeout(giveUp);
      socket.destroy();
    });
  } else {
    socket.destroy();
  }
}

/**
 * Node answers an unknown `Expect` with an empty 417 and an HTTP/1.1 request
 * without Host with an empty 400 (when `requireHostHeader` is on, so the
 * server is created with it off and the check is made here).
 */
export function registerTransportProblems(app: FastifyInstance): void {
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const requestId = randomUUID();
    const problem = new ExpectationFailedError('Only "Expect: 100-continue" is supported.');
    app.log.info({ status: problem.status, requestId }, problem.message);
    const body = JSON.stringify({ type: problem.type, title: problem.title, status: problem.status, detail: problem.message, requestId });
    res.writeHead(problem.status, {
      'content-type': 'application/problem+json',
      'content-length': Buffer.byteLength(body),
      'x-request-id': requestId,
      connection: 'close',
    });
    res.end(body);
    req.resume();
  });
  app.addHook('onRequest', async (request, reply) => {
    if (request.raw.httpVersion !== '1.1' || request.headers.host !== undefined) return;
    request.log.info({ status: 400 }, 'HTTP/1.1 request without a Host header');
    await sendProblem(request, reply, new MalformedRequestError('An HTTP/1.1 request needs a Host header.'), {
      withInstance: false,
    });
    return reply;
  });
}
