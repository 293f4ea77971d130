// Opaque, tamper-evident cursors: a JSON array of values, base64url-encoded
// and signed with HMAC (per purpose, so one kind of cursor is never accepted
// as another), so a client cannot forge a position.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ValidationError } from '../errors.ts';

export function signCursor(key: Buffer, purpose: string, values: readonly unknown[]): string {
  const body = Buffer.from(JSON.stringify(values)).toString('base64url');
  return `${body}.${cursorMac(key, purpose, body)}`;
}

/** The values of a cursor this server signed for `purpose`, or undefined for anything else. */
export function openCursor(key: Buffer, purpose: string, text: string): unknown[] | undefined {
  const [body, mac, extra] = text.split('.');
  if (!body || !mac || extra !== undefined) return undefined;
  const expected = Buffer.from(cursorMac(key, purpose, body));
  const given = Buffer.from(mac);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
  // Signed by us, so it is our own JSON.
  const values = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as unknown;
  return Array.isArray(values) ? values : undefined;
}

function cursorMac(key: Buffer, purpose: string, body: string): string {
  return createHmac('sha256', key).update(`${purpose}:`).update(body).digest('base64url').slice(0, 22);
}

export interface CursorPosition {
  readonly createdAt: string;
  readonly id: string;
}

/** List cursors: the (createdAt, id) of the last item of a page. */
export class CursorCodec {
  constructor(private readonly key: Buffer) {}

  encode(position: CursorPosition): string {
    return signCursor(this.key, 'list-cursor', [position.createdAt, position.id]);
  }

  decode(cursor: string): CursorPosition {
    const v = openCursor(this.key, 'list-cursor', cursor);
    if (v && typeof v[0] === 'string' && typeof v[1] === 'string') return { createdAt: v[0], id: v[1] };
    throw new ValidationError('The cursor is not valid; start again without one.', {
      errors: [{ pointer: '/query/cursor', detail: 'is not a cursor this server issued' }],
    });
  }
}
