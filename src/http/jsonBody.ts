// JSON request bodies: fastify's own parser (prototype poisoning refused,
// errors that never quote the body), then one rule it does not have: every
// string must be well-formed UTF-16. A JSON escape like "\ud800" decodes to a
// lone surrogate that no UTF-8 store can hold: SQLite writes U+FFFD instead,
// so the read model would disagree with the log, and strict JSON parsers
// reject the answers that echo it. Such bodies are refused with a pointer.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isWellFormedText } from '../domain/text.ts';
import { pointerToken } from './problems.ts';
import { ValidationError, type FieldError } from '../errors.ts';

export const JSON_MEDIA_TYPES = ['application/json', 'application/merge-patch+json'];

// Only an escape can produce a surrogate: raw UTF-8 input decodes to U+FFFD instead.
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/** JSON Pointers of every string (or object key) in `value` that is not well-formed UTF-16. */
export function malformedTextPointers(value: unknown, pointer = '', out: string[] = []): string[] {
  if (typeof value === 'string') {
    if (!isWellFormedText(value)) out.push(pointer);
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => malformedTextPointers(item, `${pointer}/${i}`, out));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const child = `${pointer}/${pointerToken(key)}`;
      if (!isWellFormedText(key)) out.push(child);
      else malformedTextPointers(item, child, out);
    }
  }
  return out;
}

export function registerJsonBodyParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    JSON_MEDIA_TYPES,
    { parseAs: 'string' },
    (request: FastifyRequest, body: string | Buffer, done: (error: Error | null, value?: unknown) => void) => {
      // parseAs 'string' always hands over text.
      const text = typeof body === 'string' ? body : body.toString('utf8');
      void parse(request, text, (error, value) => {
        if (error) return done(error);
        if (SURROGATE_ESCAPE.test(text)) {
          const pointers = malformedTextPointers(value);
          if (pointers.length > 0) {
            const errors: FieldError[] = pointers.map((p) => ({
              // A key itself can be the bad text; its pointer is then not printable either.
              pointer: isWellFormedText(p) ? p : '',
              detail: 'must be well-formed Unicode text (no unpaired surrogate escapes such as \\ud800)',
            }));
            return done(new ValidationError('The request body contains text that is not well-formed Unicode.', { errors }));
          }
        }
        done(null, value);
      });
    },
  );
}
