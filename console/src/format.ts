// What the console shows, as pure functions of API data (no DOM): tested in
// Node (test/unit/consoleFormat.unit.test.ts).

/** An RFC 9457 problem as the registry answers it (application/problem+json). */
export interface Problem {
  readonly type?: string;
  readonly title?: string;
  readonly status?: number;
  readonly detail?: string;
  readonly requestId?: string;
  readonly errors?: readonly { readonly pointer: string; readonly detail: string }[];
}

/** The form fields a problem's pointers can name. */
export type Field = 'url' | 'events' | 'partnerIds' | 'status' | 'idempotencyKey';

/** Field errors by form field, in words, and what belongs to no field. */
export interface FieldErrors {
  readonly fields: Partial<Record<Field, string>>;
  readonly general: string | undefined;
}

const FIELD_OF_POINTER: Readonly<Record<string, Field>> = {
  url: 'url',
  events: 'events',
  partnerIds: 'partnerIds',
  status: 'status',
  'idempotency-key': 'idempotencyKey',
};
/** The list's filters: `/query/event` belongs next to the event-pattern filter. */
const FIELD_OF_QUERY: Readonly<Record<string, Field>> = { event: 'events', status: 'status' };

/** "/events/1" → the events field, saying which entry ("entry 2: …"). */
export function fieldErrors(problem: Problem): FieldErrors {
  const fields: Partial<Record<Field, string>> = {};
  const rest: string[] = [];
  for (const error of problem.errors ?? []) {
    const parts = error.pointer.split('/').slice(1);
    const nested = parts[0] === 'headers' || parts[0] === 'query';
    const name = nested ? parts[1] : parts[0];
    const field = name === undefined ? undefined : (parts[0] === 'query' ? FIELD_OF_QUERY : FIELD_OF_POINTER)[name];
    if (field === undefined) {
      rest.push(error.pointer === '' || error.pointer === '/' ? error.detail : `${error.pointer}: ${error.detail}`);
      continue;
    }
    const index = nested ? undefined : parts[1];
    const words = index !== undefined && /^\d+$/.test(index) ? `entry ${Number(index) + 1} ${error.detail}` : error.detail;
    fields[field] = fields[field] === undefined ? sentence(words) : `${fields[field]} ${sentence(words)}`;
  }
  const summary = problem.detail ?? problem.title ?? (problem.status ? `The registry answered ${problem.status}.` : 'The request failed.');
  const general = Object.keys(fields).length === 0 || rest.length > 0 ? [summary, ...rest.map(sentence)].join(' ') : undefined;
  return { fields, general };
}

function sentence(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return trimmed;
  const first = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?…]$/.test(first) ? first : `${first}.`;
}

/** A list typed by a person ("kyc.*, compliance.case.opened"): trimmed, empty entries dropped, each once. */
export function splitList(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter((item) => item !== ''))];
}

/** RFC 3339 UTC instants as people read them, in their time zone, to the minute. */
export function formatInstant(iso: string, locale?: string, timeZone?: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short', ...(timeZone ? { timeZone } : {}) }).format(date);
}

/** What an event-type pattern covers, for the help next to the events field. */
export function describePattern(pattern: string, catalog: readonly string[]): string {
  if (!pattern.endsWith('.*')) return catalog.includes(pattern) ? 'one event type' : 'not in the catalog';
  const prefix = pattern.slice(0, -1);
  const covered = catalog.filter((name) => name.startsWith(prefix)).length;
  return covered === 1 ? '1 event type' : `${covered} event types`;
}

export interface WebhookSummary {
  readonly id: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly status: string;
  readonly partnerIds?: readonly string[];
  readonly createdAt: string;
}

/** The partner column: the partners named, or what an absent filter means. */
export function partnersText(webhook: WebhookSummary): string {
  return webhook.partnerIds === undefined ? 'all authorized partners' : webhook.partnerIds.join(', ');
}

/** One changed field of a history entry, as a line of a diff. */
export interface ChangeLine {
  readonly field: string;
  readonly from: string;
  readonly to: string;
}

/** A history entry's changes as diff lines, field by field in name order; values as compact JSON ("—" for none). */
export function changeLines(changes: Readonly<Record<string, { readonly from: unknown; readonly to: unknown }>>): ChangeLine[] {
  const show = (value: unknown): string => (value === undefined || value === null ? '—' : typeof value === 'string' ? value : JSON.stringify(value));
  return Object.keys(changes)
    .sort()
    .map((field) => ({ field, from: show(changes[field]!.from), to: show(changes[field]!.to) }));
}

/** Event type names as a timeline says them: "WebhookSecretRotated" → "Secret rotated". */
export function eventTitle(type: string): string {
  const words = type.replace(/^Webhook/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
  return words === '' ? type : words.charAt(0).toUpperCase() + words.slice(1);
}

/** An instant typed by a person: RFC 3339 as the API wants it, or undefined when it is not one. */
export function instantOf(text: string): string | undefined {
  const trimmed = text.trim();
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(trimmed)) return undefined;
  // Date() rolls 2026-02-30 over into March: the calendar date must exist as written.
  const [year, month, day] = trimmed.slice(0, 10).split('-').map(Number) as [number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return undefined;
  const date = new Date(trimmed);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** GET /internal/v1/audit/verification: the tamper check over the whole log and the read model. */
export interface Verification {
  readonly ok: boolean;
  readonly events: number;
  readonly streams: number;
  readonly readModelWebhooks: number;
  readonly logHead: string | null;
  readonly brokenChains: readonly { readonly streamId: string; readonly revision: number; readonly problem: string; readonly detail: string }[];
  readonly readModelMismatches: readonly {
    readonly webhookId: string;
    readonly problem: string;
    readonly fields: readonly string[];
    readonly readModelRevision: number | null;
    readonly logRevision: number | null;
  }[];
  readonly otherProblems: readonly string[];
}

const CHAIN_PROBLEMS: Readonly<Record<string, string>> = {
  'hash-mismatch': 'the event is not the one that was written (its hash differs)',
  'previous-hash-mismatch': 'the event does not follow the one before it (its link to the previous hash differs)',
  'revision-gap': 'an event is missing before it',
  unreadable: 'the event cannot be read',
};
const VIEW_PROBLEMS: Readonly<Record<string, string>> = {
  differs: 'differs from the log',
  'missing-from-read-model': 'is in the log but missing from the read model',
  'not-in-log': 'is in the read model but not in the log',
  unreadable: 'cannot be read from the read model',
};

/** The tamper check in words: a headline, then one line per finding, the first broken stream first. */
export function verificationSummary(report: Verification): { readonly ok: boolean; readonly headline: string; readonly findings: readonly string[] } {
  const counted = `${count(report.events, 'event')} in ${count(report.streams, 'stream')}`;
  if (report.ok) {
    return {
      ok: true,
      headline: `No damage found: ${counted} checked, and the read model matches the log for ${count(report.readModelWebhooks, 'webhook')}.`,
      findings: [],
    };
  }
  const findings = [
    ...report.brokenChains.map((b) => `Stream ${b.streamId}: broken at revision ${b.revision}: ${CHAIN_PROBLEMS[b.problem] ?? b.problem}. ${sentence(b.detail)}`.trim()),
    ...report.readModelMismatches.map((m) => {
      const fields = m.fields.length > 0 ? ` (${m.fields.join(', ')})` : '';
      return `Webhook ${m.webhookId} ${VIEW_PROBLEMS[m.problem] ?? m.problem}${fields}.`;
    }),
    ...report.otherProblems.map(sentence),
  ];
  const first = report.brokenChains[0];
  const headline =
    first !== undefined
      ? `Damage found: ${count(report.brokenChains.length, 'stream')} altered, the first is ${first.streamId} at revision ${first.revision}.`
      : report.readModelMismatches.length > 0
        ? `Damage found after checking ${counted}: the read model does not match the log.`
        : `The check found problems after reading ${counted}: see below.`;
  return { ok: false, headline, findings };
}

function count(n: number, noun: string): string {
  return `${n.toLocaleString('en')} ${noun}${n === 1 ? '' : 's'}`;
}
