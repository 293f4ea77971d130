// Opaque, tamper-evident list cursors: the (createdAt, id) of the last item
// of a page, signed with HMAC so a client cannot forge a position.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ValidationError } from '../errors.ts';

export interface CursorPosition {
  readonly createdAt: string;
  readonly id: string;
}

export class CursorCodec {
  constructor(private readonly key: Buffer) {}

  encode(position: CursorPosition): string {
    const body = Buffer.from(JSON.stringify([position.createdAt, position.id])).toString('base64url');
    return `${body}.${this.sign(body)}`;
  }

  decode(cursor: string): CursorPosition {
    const [body, mac, extra] = cursor.split('.');
    if (body && mac && extra === undefined) {
      const expected = Buffer.from(this.sign(body));
      const given = Buffer.from(mac);
      if (expected.length === given.length && timingSafeEqual(expected, given)) {
        const value = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as unknown;
        if (Array.isArray(value) && typeof value[0] === 'string' && typeof value[1] === 'string') {
          return { createdAt: value[0], id: value[1] };
        }
      }
    }
    throw new ValidationError('The cursor is not valid; start again without one.', {
      errors: [{ pointer: '/query/cursor', detail: 'is not a cursor this server issued' }],
    });
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url').slice(0, 22);
  }
}
