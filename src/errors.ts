// Application errors: each kind has a stable problem type URI and an HTTP
// status, and is rendered as application/problem+json in one place
// (src/http/problems.ts). Details never contain secrets or tokens.

export const PROBLEM_BASE = 'https://api.novatrade24.com/problems/';

export interface FieldError {
  /** JSON Pointer into the request body (or `/query/x`, `/headers/x`). */
  readonly pointer: string;
  readonly detail: string;
}

export abstract class ProblemError extends Error {
  abstract readonly status: number;
  abstract readonly kind: string;
  abstract readonly title: string;
  readonly errors: readonly FieldError[] | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(detail: string, options: { errors?: readonly FieldError[]; headers?: Record<string, string> } = {}) {
    super(detail);
    this.errors = options.errors;
    this.headers = options.headers ?? {};
  }

  get type(): string {
    return PROBLEM_BASE + this.kind;
  }
}

export class ValidationError extends ProblemError {
  readonly status = 400;
  readonly kind = 'validation';
  readonly title = 'The request is not valid';
}

export class MalformedRequestError extends ProblemError {
  readonly status = 400;
  readonly kind = 'malformed-request';
  readonly title = 'The request could not be read';
}

export class IdempotencyKeyInvalidError extends ProblemError {
  readonly status = 400;
  readonly kind = 'idempotency-key-invalid';
  readonly title = 'Idempotency-Key is missing or malformed';
}

export class UnauthorizedError extends ProblemError {
  readonly status = 401;
  readonly kind = 'unauthorized';
  readonly title = 'Authentication is required';
}

export class ForbiddenError extends ProblemError {
  readonly status = 403;
  readonly kind = 'forbidden';
  readonly title = 'The token does not allow this';
}

export class PartnersNotAuthorizedError extends ProblemError {
  readonly status = 403;
  readonly kind = 'partners-not-authorized';
  readonly title = 'Some partners are not authorized for this organization';
}

export class NotFoundError extends ProblemError {
  readonly status = 404;
  readonly kind = 'not-found';
  readonly title = 'Not found';
}

export class MethodNotAllowedError extends ProblemError {
  readonly status = 405;
  readonly kind = 'method-not-allowed';
  readonly title = 'Method not allowed';
}

export class ConcurrentWriteError extends ProblemError {
  readonly status = 409;
  readonly kind = 'concurrent-write';
  readonly title = 'The webhook is being changed by other requests';
}

export class PreconditionFailedError extends ProblemError {
  readonly status = 412;
  readonly kind = 'precondition-failed';
  readonly title = 'The webhook changed since it was read';
}

export class RequestTimeoutError extends ProblemError {
  readonly status = 408;
  readonly kind = 'request-timeout';
  readonly title = 'The request was not received in time';
}

export class PayloadTooLargeError extends ProblemError {
  readonly status = 413;
  readonly kind = 'payload-too-large';
  readonly title = 'The request body is too large';
}

export class UriTooLongError extends ProblemError {
  readonly status = 414;
  readonly kind = 'uri-too-long';
  readonly title = 'The request URL is too long';
}

export class ExpectationFailedError extends ProblemError {
  readonly status = 417;
  readonly kind = 'expectation-failed';
  readonly title = 'The Expect header cannot be met';
}

export class HeaderFieldsTooLargeError extends ProblemError {
  readonly status = 431;
  readonly kind = 'header-fields-too-large';
  readonly title = 'The request headers are too large';
}

export class UnsupportedMediaTypeError extends ProblemError {
  readonly status = 415;
  readonly kind = 'unsupported-media-type';
  readonly title = 'The request body must be application/json';
}

export class GoneError extends ProblemError {
  readonly status = 410;
  readonly kind = 'position-gone';
  readonly title = 'This position can no longer be resumed from';
}

export class IdempotencyKeyReusedError extends ProblemError {
  readonly status = 422;
  readonly kind = 'idempotency-key-reused';
  readonly title = 'This Idempotency-Key was used for a different request';
}

export class IdempotencyKeyExpiredError extends ProblemError {
  readonly status = 422;
  readonly kind = 'idempotency-key-expired';
  readonly title = 'This Idempotency-Key was first used more than 24 hours ago';
}

export class RateLimitedError extends ProblemError {
  readonly status = 429;
  readonly kind = 'rate-limited';
  readonly title = 'Too many requests';
}

export class ServiceUnavailableError extends ProblemError {
  readonly status = 503;
  readonly kind = 'service-unavailable';
  readonly title = 'A dependency is unavailable';
}

export class InternalError extends ProblemError {
  readonly status = 500;
  readonly kind = 'internal';
  readonly title = 'Internal server error';
}
