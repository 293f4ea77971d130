// `audit replay` and `audit verify`: the compliance tools (DESIGN.md §5).
import type Database from 'better-sqlite3';
import type { Config } from '../config.ts';
import { checkInstant, LogDamagedError, replayAsOf, ReplayAbortedError, type AuditWebhook } from '../audit/replay.ts';
import {
  verifyAudit,
  type BrokenChain,
  type ReadModelMismatch,
  type VerifyDiagnosis,
  type VerifyReport,
} from '../audit/verify.ts';
import { closeCore, openStores, type Stores } from '../runtime.ts';
import { SqliteEventStore } from '../stores/sqlite/sqliteEventStore.ts';
import { SqliteReadModel } from '../stores/sqlite/sqliteReadModel.ts';
import { AtomicFile } from './atomicFile.ts';
import { PAGE_SIZE_PROBLEM, parseCommandOptions, parsePageSize, usageError } from './options.ts';
import { createProgressBar } from './progress.ts';

export const AUDIT_REPLAY_HELP = `usage: audit replay --as-of <instant> [--org <id>] [--out <file>] [--progress] [--page-size <n>]

Prints the state of every webhook at <instant>, rebuilt from the event log
alone (the read model is not consulted), as JSON lines ordered by id:
  id, organizationId, url, events, partnerIds (null = all authorized partners),
  effectivePartnerIds, status, disabledReason, previousSecretExpiresAt,
  previousSecretExpiries (each previous secret's expiry, newest first),
  createdAt, updatedAt, deleted, revision, position
Signing secrets are never printed, not even encrypted.

A webhook's state at <instant> folds its events whose metadata.occurredAt is at
or before <instant> (a stream stops at its first later event). Webhooks deleted
by then are listed with "deleted": true. Before the first event: no lines.

  --as-of <instant>  RFC 3339 date-time with a time zone, e.g. 2024-05-01T12:00:00Z
                     (not in the future)
  --org <id>         only this organization's webhooks
  --out <file>       write to <file> instead of stdout: written to a temporary file
                     beside it and renamed into place when complete, so an
                     interrupted run leaves no partial <file>; run again to restart
  --progress         progress on stderr even when it is not a terminal
                     (a bar is drawn by default when stderr is a terminal)
  --page-size <n>    events read per page (default 2000)

Uses the same environment as the server (DATA_DIR, EVENTSTORE_URL, MONGODB_URL).
Exit status: 0 done, 1 the log cannot be replayed (run "audit verify"),
2 bad usage, 130 interrupted.`;

export const AUDIT_VERIFY_HELP = `usage: audit verify [--json] [--progress] [--page-size <n>]

Checks that the history is intact:
  - recomputes every stream's hash chain: each event's hash over its type, data
    and metadata, linked to the previous event's hash; an altered, removed or
    reordered event breaks its stream's chain at that revision;
  - folds the whole log afresh and compares every webhook's view with the read
    model; a read-model row that differs, or an event missing from the end of
    a stream, shows up here. The comparison is anchored at the read model's
    checkpoint, so it can run while the service serves and projects.
Prints every damaged stream with its first broken revision, every webhook whose
read-model view differs (with the fields), then the first of each kind.

  --json             print the report as one JSON object on stdout
  --progress         progress on stderr even when it is not a terminal
  --page-size <n>    events read per page (default 2000)

Uses the same environment as the server (DATA_DIR, EVENTSTORE_URL, MONGODB_URL).
Exit status: 0 intact, 1 damage found, 2 bad usage.`;

const EXIT_DAMAGE = 1;
const EXIT_INTERRUPTED = 130;

function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

/** JSON lines in chunks, so a large replay is not one giant string. */
async function writeLines(
  webhooks: readonly AuditWebhook[],
  sink: (text: string) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  const CHUNK = 1000;
  for (let i = 0; i < webhooks.length; i += CHUNK) {
    if (signal.aborted) throw new ReplayAbortedError();
    await sink(
      webhooks
        .slice(i, i + CHUNK)
        .map((w) => `${JSON.stringify(w)}\n`)
        .join(''),
    );
  }
}

export async function auditReplayCommand(config: Config, argv: string[]): Promise<number> {
  const parsed = parseCommandOptions('audit replay', AUDIT_REPLAY_HELP, argv, {
    'as-of': { type: 'string' },
    org: { type: 'string' },
    out: { type: 'string' },
    progress: { type: 'boolean' },
    'page-size': { type: 'string' },
  });
  if ('exit' in parsed) return parsed.exit;
  const { values } = parsed;
  if (values['as-of'] === undefined) return usageError('audit replay', '--as-of is required', AUDIT_REPLAY_HELP);
  const checked = checkInstant(values['as-of'], new Date());
  if ('problem' in checked) return usageError('audit replay', `--as-of ${checked.message}`, AUDIT_REPLAY_HELP);
  const pageSize = parsePageSize(values['page-size']);
  if (pageSize === 'invalid') return usageError('audit replay', PAGE_SIZE_PROBLEM, AUDIT_REPLAY_HELP);
  if (values.org === '') return usageError('audit replay', '--org must not be empty', AUDIT_REPLAY_HELP);

  const controller = new AbortController();
  const interrupt = (): void => controller.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let output: AtomicFile | undefined;
  let stores: Stores | undefined;
  const bar = createProgressBar({ label: 'replay', unit: 'events', forced: values.progress === true });
  try {
    if (values.out !== undefined) output = await AtomicFile.create(values.out);
    stores = await openStores(config);
    let started = false;
    const result = await replayAsOf(stores.store, {
      asOf: checked.instant,
      organizationId: values.org,
      pageSize,
      signal: controller.signal,
      onProgress: (p) => {
        if (!started) {
          started = true;
          bar.start(Number(p.until.commit));
        }
        bar.update(Number(p.position.commit), p.events);
      },
    });
    bar.stop();
    const file = output;
    await writeLines(result.webhooks, file ? (text) => file.write(text) : (text) => write(process.stdout, text), controller.signal);
    await output?.commit();
    const scope = values.org === undefined ? '' : ` of organization ${values.org}`;
    const before =
      result.webhooks.length === 0 && result.earliestEventAt !== null && Date.parse(result.earliestEventAt) > checked.instant.getTime()
        ? ` (the log starts at ${result.earliestEventAt}, after that instant)`
        : '';
    process.stderr.write(
      `audit replay: ${result.webhooks.length} webhooks${scope} as of ${checked.instant.toISOString()}${before}, from ${result.events} events${output ? `, written to ${output.target}` : ''}\n`,
    );
    return 0;
  } catch (error) {
    bar.stop();
    await output?.discard();
    if (error instanceof ReplayAbortedError) {
      process.stderr.write(`audit replay: interrupted${output ? `; ${output.target} was not written` : ''}\n`);
      return EXIT_INTERRUPTED;
    }
    if (error instanceof LogDamagedError) {
      process.stderr.write(`audit replay: ${error.message}\n`);
      return EXIT_DAMAGE;
    }
    throw error;
  } finally {
    process.removeListener('SIGINT', interrupt);
    process.removeListener('SIGTERM', interrupt);
    if (stores) await closeCore(stores);
  }
}

export async function auditVerifyCommand(config: Config, argv: string[]): Promise<number> {
  const parsed = parseCommandOptions('audit verify', AUDIT_VERIFY_HELP, argv, {
    json: { type: 'boolean' },
    progress: { type: 'boolean' },
    'page-size': { type: 'string' },
  });
  if ('exit' in parsed) return parsed.exit;
  const { values } = parsed;
  const pageSize = parsePageSize(values['page-size']);
  if (pageSize === 'invalid') return usageError('audit verify', PAGE_SIZE_PROBLEM, AUDIT_VERIFY_HELP);

  const stores = await openStores(config);
  const forced = values.progress === true;
  const logBar = createProgressBar({ label: 'verify: log   ', unit: 'events', forced });
  const chainBar = createProgressBar({ label: 'verify: chains', unit: 'streams', forced });
  let phase: 'none' | 'log' | 'chains' = 'none';
  try {
    const report = await verifyAudit(stores.store, stores.readModel, {
      pageSize,
      diagnose: sqliteDiagnosis(stores),
      onProgress: (p) => {
        if (p.phase === 'log') {
          if (phase !== 'log') {
            phase = 'log';
            logBar.start(Number(p.until.commit));
          }
          logBar.update(Number(p.position.commit), p.events);
        } else {
          if (phase !== 'chains') {
            logBar.stop();
            phase = 'chains';
            chainBar.start(p.total);
          }
          chainBar.update(p.streams, p.streams);
        }
      },
    });
    logBar.stop();
    chainBar.stop();
    if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(formatReport(report));
    return report.ok ? 0 : EXIT_DAMAGE;
  } finally {
    logBar.stop();
    chainBar.stop();
    await closeCore(stores);
  }
}

const MAX_LISTED = 100;

export function formatReport(report: VerifyReport): string {
  const lines: string[] = [];
  lines.push(
    `audit verify: ${report.events} events in ${report.streams} streams (log head ${report.logHead ?? 'none'}); ` +
      `read model: ${report.readModelWebhooks} webhooks at checkpoint ${report.readModelCheckpoint ?? 'none'}`,
  );
  for (const b of report.brokenChains.slice(0, MAX_LISTED)) {
    lines.push(`broken chain: stream ${b.streamId} at revision ${b.revision}: ${b.problem} (${b.detail})`);
  }
  if (report.brokenChains.length > MAX_LISTED) lines.push(`  … and ${report.brokenChains.length - MAX_LISTED} more broken chains (see --json)`);
  for (const m of report.readModelMismatches.slice(0, MAX_LISTED)) lines.push(`read model mismatch: ${describeMismatch(m)}`);
  if (report.readModelMismatches.length > MAX_LISTED) {
    lines.push(`  … and ${report.readModelMismatches.length - MAX_LISTED} more read-model mismatches (see --json)`);
  }
  for (const p of report.otherProblems) lines.push(`damage: ${p}`);
  if (report.readModelCheckpoint !== report.logHead && report.otherProblems.length === 0) {
    lines.push(
      `note: the read model has applied the log up to ${report.readModelCheckpoint ?? 'nothing'}; it was compared with the log as of that point`,
    );
  }
  if (report.ok) {
    lines.push('OK: every stream\'s hash chain is intact and the read model matches the log.');
    return `${lines.join('\n')}\n`;
  }
  // The first of each kind of damage, for a quick read.
  const firstChain = new Map<string, BrokenChain>();
  for (const b of report.brokenChains) if (!firstChain.has(b.problem)) firstChain.set(b.problem, b);
  for (const [problem, b] of firstChain) lines.push(`first ${problem}: stream ${b.streamId} revision ${b.revision}`);
  const firstMismatch = new Map<string, ReadModelMismatch>();
  for (const m of report.readModelMismatches) if (!firstMismatch.has(m.problem)) firstMismatch.set(m.problem, m);
  for (const [problem, m] of firstMismatch) {
    lines.push(
      `first read model ${problem}: webhook ${m.webhookId}${m.fields.length > 0 ? ` (${m.fields.join(', ')})` : ''}`,
    );
  }
  lines.push(
    `DAMAGED: ${report.brokenChains.length} broken chain(s), ${report.readModelMismatches.length} read-model mismatch(es), ${report.otherProblems.length} other problem(s)`,
  );
  return `${lines.join('\n')}\n`;
}

function describeMismatch(m: ReadModelMismatch): string {
  switch (m.problem) {
    case 'differs':
      return `webhook ${m.webhookId} differs from the log (read model revision ${String(m.readModelRevision)}, log revision ${String(m.logRevision)}): ${m.fields.join(', ')}`;
    case 'missing-from-read-model':
      return `webhook ${m.webhookId} is in the log (revision ${String(m.logRevision)}) but missing from the read model`;
    case 'not-in-log':
      return `webhook ${m.webhookId} is in the read model (revision ${String(m.readModelRevision)}) but not in the log`;
    case 'unreadable':
      return `webhook ${m.webhookId}: its read-model row cannot be decoded`;
  }
}

/** On the embedded engine, name the rows whose JSON cannot even be decoded. */
function sqliteDiagnosis(stores: Stores): VerifyDiagnosis {
  const events = stores.store instanceof SqliteEventStore ? stores.store.database : undefined;
  const views = stores.readModel instanceof SqliteReadModel ? stores.readModel.database : undefined;
  return {
    ...(events ? { undecodableEvents: () => undecodableEvents(events) } : {}),
    ...(views ? { undecodableViews: () => undecodableViews(views) } : {}),
  };
}

function decodes(text: string): boolean {
  try {
    const value = JSON.parse(text) as unknown;
    return value !== null && typeof value === 'object';
  } catch {
    return false;
  }
}

function undecodableEvents(db: Database.Database): BrokenChain[] {
  const out = new Map<string, BrokenChain>();
  const rows = db
    .prepare<[], { stream_id: string; revision: number; data: string; metadata: string }>(
      'SELECT stream_id, revision, data, metadata FROM events ORDER BY position',
    )
    .iterate();
  for (const row of rows) {
    if (out.has(row.stream_id) || (decodes(row.data) && decodes(row.metadata))) continue;
    out.set(row.stream_id, {
      streamId: row.stream_id,
      revision: row.revision,
      problem: 'unreadable',
      detail: 'the stored event is not valid JSON',
    });
  }
  return [...out.values()];
}

function undecodableViews(db: Database.Database): ReadModelMismatch[] {
  // The JSON columns of the typed view rows (arrays); the other columns are plain values.
  const rows = db
    .prepare<[], { id: string }>(
      `SELECT id FROM webhooks
       WHERE NOT (json_valid(events) AND json_valid(authorized_partner_ids)
         AND (partner_ids IS NULL OR json_valid(partner_ids)) AND (previous_secrets IS NULL OR json_valid(previous_secrets)))
       ORDER BY id`,
    )
    .all();
  return rows.map((r) => ({ webhookId: r.id, problem: 'unreadable' as const, fields: [], readModelRevision: null, logRevision: null }));
}
