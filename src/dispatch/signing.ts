// Standard Webhooks signatures for dispatchers: `webhook-id`,
// `webhook-timestamp` and `webhook-signature` with one `v1,<base64 HMAC-SHA256>`
// per valid secret, so receivers verify during a rotation with either secret.
//
// Before sending a signed payload, check where it goes: a webhook's host name
// was judged by its text at registration, not by what it resolves to now.
// Call `checkDeliveryUrl(url)` and connect with `lookup: deliveryLookup()`
// (./deliveryLookup.ts): together they refuse internal addresses, literal or
// resolved, on the address the socket uses. Follow no redirects.
import { createHmac } from 'node:crypto';
import { secretKeyBytes } from '../domain/secret.ts';

export interface StandardWebhookHeaders {
  readonly 'webhook-id': string;
  readonly 'webhook-timestamp': string;
  readonly 'webhook-signature': string;
}

export function signPayload(input: {
  readonly messageId: string;
  readonly timestamp: Date;
  readonly payload: string;
  readonly secrets: readonly string[];
}): StandardWebhookHeaders {
  if (input.secrets.length === 0) throw new Error('at least one secret is needed to sign');
  const seconds = Math.floor(input.timestamp.getTime() / 1000).toString();
  const content = `${input.messageId}.${seconds}.${input.payload}`;
  const signatures = input.secrets.map(
    (secret) => `v1,${createHmac('sha256', secretKeyBytes(secret)).update(content).digest('base64')}`,
  );
  return { 'webhook-id': input.messageId, 'webhook-timestamp': seconds, 'webhook-signature': signatures.join(' ') };
}
