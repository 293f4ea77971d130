// The web console's own logic (console/src/format.ts): how problems become
// words next to form fields, how typed lists and instants are read and shown.
import { describe, expect, it } from 'vitest';
import {
  changeLines,
  describePattern,
  eventTitle,
  fieldErrors,
  formatInstant,
  instantOf,
  partnersText,
  splitList,
  verificationSummary,
  type Verification,
} from '../../console/src/format.ts';

describe('console: problems next to the fields they name', () => {
  it('puts each pointer under its field, saying which entry of a list', () => {
    const result = fieldErrors({
      status: 400,
      detail: 'The request body is invalid.',
      errors: [
        { pointer: '/url', detail: 'must use https' },
        { pointer: '/events/1', detail: 'matches no known event type (see GET /v1/event-types)' },
        { pointer: '/events/2', detail: 'is repeated' },
      ],
    });
    expect(result.fields).toEqual({
      url: 'Must use https.',
      events: 'Entry 2 matches no known event type (see GET /v1/event-types). Entry 3 is repeated.',
    });
    expect(result.general).toBeUndefined();
  });

  it('keeps what names no field in the general message, with the problem detail', () => {
    expect(fieldErrors({ status: 400, detail: 'Bad request.', errors: [{ pointer: '/query/limit', detail: 'must be between 1 and 100' }] })).toEqual({
      fields: {},
      general: 'Bad request. /query/limit: must be between 1 and 100.',
    });
    expect(fieldErrors({ status: 422, title: 'Idempotency-Key reused' }).general).toBe('Idempotency-Key reused');
    expect(fieldErrors({ status: 503 }).general).toBe('The registry answered 503.');
    expect(fieldErrors({}).general).toBe('The request failed.');
  });

  it('maps header pointers and the list filters to their field', () => {
    expect(fieldErrors({ errors: [{ pointer: '/headers/idempotency-key', detail: 'is required' }] }).fields).toEqual({ idempotencyKey: 'Is required.' });
    expect(fieldErrors({ errors: [{ pointer: '/query/event', detail: 'must be an event type or a segment wildcard' }] }).fields).toEqual({
      events: 'Must be an event type or a segment wildcard.',
    });
  });
});

describe('console: reading and showing values', () => {
  it('splits typed lists on commas and spaces, once each', () => {
    expect(splitList(' kyc.*, compliance.case.opened  kyc.* ,,')).toEqual(['kyc.*', 'compliance.case.opened']);
    expect(splitList('   ')).toEqual([]);
  });

  it('shows instants in a given zone and leaves what is not one as it is', () => {
    expect(formatInstant('2026-12-03T08:37:00.000Z', 'en-GB', 'UTC')).toBe('3 Dec 2026, 08:37');
    expect(formatInstant('2026-12-03T08:37:00.000Z', 'en-US', 'America/New_York')).toBe('Dec 3, 2026, 3:37 AM');
    expect(formatInstant('not a date')).toBe('not a date');
  });

  it('says what an event pattern covers in the catalog', () => {
    const catalog = ['kyc.verification.approved', 'kyc.verification.rejected', 'kyc.document.uploaded', 'compliance.case.opened'];
    expect(describePattern('kyc.*', catalog)).toBe('3 event types');
    expect(describePattern('kyc.verification.*', catalog)).toBe('2 event types');
    expect(describePattern('compliance.*', catalog)).toBe('1 event type');
    expect(describePattern('compliance.case.opened', catalog)).toBe('one event type');
    expect(describePattern('trading.order.filled', catalog)).toBe('not in the catalog');
  });

  it('names the partner filter', () => {
    const base = { id: 'w', url: 'https://x.example.com', events: ['kyc.*'], status: 'ACTIVE', createdAt: '2026-12-03T00:00:00.000Z' };
    expect(partnersText(base)).toBe('all authorized partners');
    expect(partnersText({ ...base, partnerIds: ['a', 'b'] })).toBe('a, b');
  });
});

describe('console: the auditor\u2019s timeline and instants', () => {
  it('turns a history entry\u2019s changes into diff lines, by field name', () => {
    expect(
      changeLines({
        url: { from: 'https://a.example.com', to: 'https://b.example.com' },
        events: { from: ['kyc.*'], to: ['kyc.*', 'compliance.case.opened'] },
        secret: { from: '[redacted]', to: '[redacted]' },
        disabledReason: { from: null, to: 'too many failures' },
      }),
    ).toEqual([
      { field: 'disabledReason', from: '—', to: 'too many failures' },
      { field: 'events', from: '["kyc.*"]', to: '["kyc.*","compliance.case.opened"]' },
      { field: 'secret', from: '[redacted]', to: '[redacted]' },
      { field: 'url', from: 'https://a.example.com', to: 'https://b.example.com' },
    ]);
  });

  it('names event types as a timeline says them', () => {
    expect(eventTitle('WebhookSecretRotated')).toBe('Secret rotated');
    expect(eventTitle('WebhookRegistered')).toBe('Registered');
    expect(eventTitle('Webhook')).toBe('Webhook');
  });

  it('reads RFC 3339 instants with their zone, and nothing else', () => {
    expect(instantOf(' 2026-12-03T08:00:00Z ')).toBe('2026-12-03T08:00:00.000Z');
    expect(instantOf('2026-12-03T09:00:00+01:00')).toBe('2026-12-03T08:00:00.000Z');
    expect(instantOf('2026-12-03T08:00Z')).toBe('2026-12-03T08:00:00.000Z');
    expect(instantOf('2026-12-03 08:00')).toBeUndefined();
    expect(instantOf('2026-12-03T08:00:00')).toBeUndefined();
    expect(instantOf('2026-02-30T08:00:00Z')).toBeUndefined();
  });
});


describe('console: the tamper check in words', () => {
  const healthy: Verification = {
    ok: true,
    events: 1234,
    streams: 1,
    readModelWebhooks: 1,
    logHead: '1233',
    brokenChains: [],
    readModelMismatches: [],
    otherProblems: [],
  };

  it('says what was checked when nothing is damaged', () => {
    expect(verificationSummary(healthy)).toEqual({
      ok: true,
      headline: 'No damage found: 1,234 events in 1 stream checked, and the read model matches the log for 1 webhook.',
      findings: [],
    });
  });

  it('names the first broken stream and its revision, then every finding', () => {
    const summary = verificationSummary({
      ...healthy,
      ok: false,
      streams: 3,
      brokenChains: [
        { streamId: 'webhook-a', revision: 1, problem: 'hash-mismatch', detail: 'stored hash ab…, computed cd…' },
        { streamId: 'webhook-b', revision: 4, problem: 'revision-gap', detail: 'revision 3 is missing' },
      ],
      readModelMismatches: [{ webhookId: 'c', problem: 'differs', fields: ['url', 'status'], readModelRevision: 2, logRevision: 3 }],
      otherProblems: ['the read model is ahead of the log'],
    });
    expect(summary.ok).toBe(false);
    expect(summary.headline).toBe('Damage found: 2 streams altered, the first is webhook-a at revision 1.');
    expect(summary.findings).toEqual([
      'Stream webhook-a: broken at revision 1: the event is not the one that was written (its hash differs). Stored hash ab…, computed cd…',
      'Stream webhook-b: broken at revision 4: an event is missing before it. Revision 3 is missing.',
      'Webhook c differs from the log (url, status).',
      'The read model is ahead of the log.',
    ]);
  });

  it('says the read model is off when every chain holds', () => {
    const summary = verificationSummary({
      ...healthy,
      ok: false,
      readModelMismatches: [{ webhookId: 'd', problem: 'missing-from-read-model', fields: [], readModelRevision: null, logRevision: 0 }],
    });
    expect(summary.headline).toBe('Damage found after checking 1,234 events in 1 stream: the read model does not match the log.');
    expect(summary.findings).toEqual(['Webhook d is in the log but missing from the read model.']);
  });

  it('blames neither chains nor the read model when only other problems were found', () => {
    const summary = verificationSummary({ ...healthy, ok: false, otherProblems: ['the log could not be read past position 1200'] });
    expect(summary.headline).toBe('The check found problems after reading 1,234 events in 1 stream: see below.');
    expect(summary.findings).toEqual(['The log could not be read past position 1200.']);
  });
});
