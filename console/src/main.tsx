// The web console: sign-in, then an integration developer's endpoints (list
// with filters and paging; create, with the secret shown once; manage one),
// or a compliance officer's pages (every webhook at an instant, a webhook's
// timeline, the tamper check). It talks only to the registry's API, on the
// same origin.
import './console.css';
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Api, ApiError, type AuditPage, type History, type HistoryEntry, type Registered, type WebhookList } from './api.ts';
import { Auth, type ConsoleConfig, type SignedIn } from './auth.ts';
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
  type FieldErrors,
  type WebhookSummary,
} from './format.ts';

function App({ auth }: { auth: Auth }) {
  const [user, setUser] = useState<SignedIn | undefined>(auth.signedIn());
  const [failure, setFailure] = useState<string | undefined>();
  const [checking, setChecking] = useState(true);
  const [managing, setManaging] = useState<string | undefined>();
  // The session ended while signed in: the page stays as it is (a secret shown once stays readable) until sign-in.
  const [ended, setEnded] = useState(false);
  useEffect(() => {
    auth.onEnded = () => setEnded(true);
  }, []);

  useEffect(() => {
    auth
      .completeSignIn()
      .then((signedIn) => signedIn && setUser(signedIn))
      .catch((error: unknown) => setFailure(`Sign-in failed: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => setChecking(false));
  }, []);

  if (checking) return <p>Signing in…</p>;
  if (user === undefined) {
    return (
      <main>
        <h1>Webhook console</h1>
        {auth.config.development && (
          <p class="warning" role="note">
            Development server: sign-in goes to the development sign-in page, where anyone can sign in as anyone.
          </p>
        )}
        {failure && <p class="error" role="alert">{failure}</p>}
        <button type="button" onClick={() => void auth.signIn()}>
          Sign in
        </button>
      </main>
    );
  }
  const api = new Api({
    token: () => auth.token(),
    renew: () => auth.renew(),
    ended: () => {
      void auth.forget();
      setEnded(true);
    },
  });
  return (
    <>
      <header>
        <span>
          Signed in as <strong>{user.name}</strong>
          {user.organizationId && <> · organization <strong>{user.organizationId}</strong></>}
        </span>
        {ended ? (
          <button type="button" onClick={() => void auth.signIn()}>
            Sign in again
          </button>
        ) : (
          <button
            type="button"
            onClick={() => {
              void auth.signOut().then(() => setUser(undefined));
            }}
          >
            Sign out
          </button>
        )}
      </header>
      {ended && (
        <p class="session-ended" role="alert">
          Your session has ended: sign in again. What is on this page stays until you do.
        </p>
      )}
      {user.scopes.includes('webhooks:audit') ? (
        <main>
          <h1>Compliance</h1>
          <AuditPages api={api} />
        </main>
      ) : (
        <main>
          <h1>Webhook endpoints</h1>
          {user.scopes.includes('webhooks:write') && <CreateEndpoint api={api} />}
          {managing !== undefined && <ManageEndpoint key={managing} api={api} id={managing} onClose={() => setManaging(undefined)} />}
          <EndpointList api={api} onManage={setManaging} />
        </main>
      )}
    </>
  );
}

/** Told on window whenever this page changed a webhook, so the list reads again. */
const CHANGED = 'webhooks-changed';
const STATUSES = ['ACTIVE', 'PAUSED', 'DISABLED'] as const;
const COLUMNS = ['URL', 'Events', 'Partners', 'Status', 'Created', 'Actions'] as const;
const GRACE_PERIODS = [
  { seconds: 0, label: 'none: the old secret stops now' },
  { seconds: 3600, label: '1 hour' },
  { seconds: 86_400, label: '24 hours' },
  { seconds: 604_800, label: '7 days' },
] as const;

function EndpointList({ api, onManage }: { api: Api; onManage: (id: string) => void }) {
  const [status, setStatus] = useState('');
  const [event, setEvent] = useState('');
  const [cursors, setCursors] = useState<string[]>([]);
  const [page, setPage] = useState<WebhookList | undefined>();
  const [problem, setProblem] = useState<FieldErrors | undefined>();
  const [reload, setReload] = useState(0);
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    const refresh = () => setReload((n) => n + 1);
    window.addEventListener(CHANGED, refresh);
    return () => window.removeEventListener(CHANGED, refresh);
  }, []);

  useEffect(() => {
    let current = true;
    api
      .listWebhooks({ status, event, limit: 20, ...(cursor === undefined ? {} : { cursor }) })
      .then((answer) => {
        if (!current) return;
        setPage(answer);
        setProblem(undefined);
      })
      .catch((error: unknown) => current && setProblem(problemOf(error)));
    return () => {
      current = false;
    };
  }, [status, event, cursor, reload]);

  return (
    <section aria-labelledby="list-heading">
      <h2 id="list-heading" tabIndex={-1}>
        Your endpoints
      </h2>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.currentTarget.value);
              setCursors([]);
            }}
          >
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Event pattern
          <input
            value={event}
            placeholder="e.g. kyc.*"
            {...invalid('filter-event', problem?.fields.events)}
            onChange={(e) => {
              // On Enter or leaving the field, not per keystroke: "kyc." on the way to "kyc.*" is not a pattern.
              setEvent(e.currentTarget.value.trim());
              setCursors([]);
            }}
          />
        </label>
      </form>
      {problem?.fields.events && (
        <p class="error" id="filter-event-error" role="alert">
          {problem.fields.events}
        </p>
      )}
      {problem?.general && (
        <p class="error" role="alert">
          {problem.general}
        </p>
      )}
      {page && page.data.length === 0 && <p>No endpoints{status || event ? ' match these filters' : ' yet'}.</p>}
      {page && page.data.length > 0 && (
        <table>
          <caption class="visually-hidden">Webhook endpoints</caption>
          <TableHead columns={COLUMNS} />
          <tbody>
            {page.data.map((w) => (
              <tr key={w.id} data-webhook-id={w.id}>
                <td class="url">{w.url}</td>
                <td>{w.events.join(', ')}</td>
                <td>{partnersText(w)}</td>
                <td>
                  <span class={`status status-${w.status.toLowerCase()}`}>{w.status}</span>
                </td>
                <td>
                  <time dateTime={w.createdAt}>{formatInstant(w.createdAt)}</time>
                </td>
                <td>
                  <button type="button" aria-label={`Manage ${w.url}`} onClick={() => onManage(w.id)}>
                    Manage
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav class="paging" aria-label="Pages">
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
          Previous page
        </button>
        <button type="button" disabled={!page?.nextCursor} onClick={() => page?.nextCursor && setCursors([...cursors, page.nextCursor])}>
          Next page
        </button>
      </nav>
    </section>
  );
}

function CreateEndpoint({ api }: { api: Api }) {
  const draft = useEndpointDraft();
  const [errors, setErrors] = useState<FieldErrors | undefined>();
  const [created, setCreated] = useState<Registered | undefined>();
  const [busy, setBusy] = useState(false);
  // One key per form content: a retry of the same entries is a replay, not a second endpoint.
  const attempt = useRef<{ body: string; key: string } | undefined>(undefined);
  const fields = useEndpointFieldRefs();
  const secretHeading = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    if (created) secretHeading.current?.focus();
  }, [created]);

  const submit = async (e: Event) => {
    e.preventDefault();
    const { url, events, partnerIds } = draft.entries();
    const body = { url, events, ...(partnerIds.length > 0 ? { partnerIds } : {}) };
    const text = JSON.stringify(body);
    if (attempt.current?.body !== text) attempt.current = { body: text, key: crypto.randomUUID() };
    setBusy(true);
    try {
      const registered = await api.register(body, attempt.current.key);
      attempt.current = undefined;
      setErrors(undefined);
      setCreated(registered);
      draft.fill(undefined);
      window.dispatchEvent(new Event(CHANGED));
    } catch (error) {
      const found = problemOf(error);
      setErrors(found);
      fields.focusFirstError(found);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="create-heading">
      <h2 id="create-heading">Register an endpoint</h2>
      {created && <SecretOnce registered={created} heading={secretHeading} onDone={() => setCreated(undefined)} />}
      <form onSubmit={(e) => void submit(e)} noValidate>
        <EndpointFields
          prefix="new"
          draft={draft}
          refs={fields.refs}
          errors={errors}
          api={api}
          partnersLabel="Partners (optional)"
        />
        {errors?.general && (
          <p class="error" role="alert">
            {errors.general}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Registering…' : 'Register'}
        </button>
      </form>
    </section>
  );
}

/** The event-type catalog's names, read once per page (empty until it arrives, or if it cannot be read). */
let catalogRead: Promise<string[]> | undefined;
function useCatalog(api: Api): string[] {
  const [names, setNames] = useState<string[]>([]);
  useEffect(() => {
    catalogRead ??= api.eventTypes().then(
      (types) => types.map((t) => t.name),
      () => {
        catalogRead = undefined; // try again next time
        return [];
      },
    );
    void catalogRead.then(setNames);
  }, []);
  return names;
}

type EndpointField = 'url' | 'events' | 'partners';

/** What the endpoint form holds as typed, and the entries it means. */
interface EndpointDraft {
  readonly values: Readonly<Record<EndpointField, string>>;
  readonly set: Readonly<Record<EndpointField, (value: string) => void>>;
  /** Shows a webhook's values, or empties the form. */
  fill(webhook: WebhookSummary | undefined): void;
  entries(): { url: string; events: string[]; partnerIds: string[] };
}

function useEndpointDraft(): EndpointDraft {
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState('');
  const [partners, setPartners] = useState('');
  return {
    values: { url, events, partners },
    set: { url: setUrl, events: setEvents, partners: setPartners },
    fill: (webhook) => {
      setUrl(webhook?.url ?? '');
      setEvents(webhook?.events.join(', ') ?? '');
      setPartners(webhook?.partnerIds?.join(', ') ?? '');
    },
    entries: () => ({ url: url.trim(), events: splitList(events), partnerIds: splitList(partners) }),
  };
}
type EndpointInputs = Readonly<Record<'url' | 'events' | 'partnerIds', preact.RefObject<HTMLInputElement | null>>>;

/** The endpoint form's inputs, and the focus moved to the first one an API problem names (false: it named none). */
function useEndpointFieldRefs(): { refs: EndpointInputs; focusFirstError: (found: FieldErrors) => boolean } {
  const refs = { url: useRef<HTMLInputElement>(null), events: useRef<HTMLInputElement>(null), partnerIds: useRef<HTMLInputElement>(null) };
  return {
    refs,
    focusFirstError: (found) => {
      const first = (['url', 'events', 'partnerIds'] as const).find((f) => found.fields[f] !== undefined);
      if (first !== undefined) refs[first].current?.focus();
      return first !== undefined;
    },
  };
}

/**
 * The URL, events and partners of an endpoint, as the create and the edit
 * form both ask for them: labels, hints, each API error next to its field,
 * the catalog offered for events, and what each typed pattern covers.
 */
function EndpointFields({
  prefix,
  draft: { values, set },
  refs,
  errors,
  api,
  partnersLabel,
}: {
  prefix: 'new' | 'edit';
  draft: EndpointDraft;
  refs: EndpointInputs;
  errors: FieldErrors | undefined;
  /** Where the event-type catalog comes from. */
  api: Api;
  partnersLabel: string;
}) {
  const catalog = useCatalog(api);
  const patterns = splitList(values.events);
  const field = (name: EndpointField) => `${prefix}-${name}`;
  const listId = `${prefix}-catalog`;
  return (
    <>
      <Labelled id={field('url')} label="Endpoint URL (https)" error={errors?.fields.url}>
        <input
          id={field('url')}
          ref={refs.url}
          type="url"
          value={values.url}
          required
          onInput={(e) => set.url(e.currentTarget.value)}
          {...invalid(field('url'), errors?.fields.url)}
        />
      </Labelled>
      <Labelled id={field('events')} label="Event types" hint="Comma-separated; a pattern such as kyc.* takes every type under kyc." error={errors?.fields.events}>
        <input
          id={field('events')}
          ref={refs.events}
          list={listId}
          value={values.events}
          required
          onInput={(e) => set.events(e.currentTarget.value)}
          {...invalid(field('events'), errors?.fields.events)}
        />
      </Labelled>
      <datalist id={listId}>
        {catalog.map((name) => (
          <option key={name} value={name} />
        ))}
      </datalist>
      {patterns.length > 0 && catalog.length > 0 && (
        <ul class="pattern-help" aria-live="polite">
          {patterns.map((p) => (
            <li key={p}>
              <code>{p}</code>: {describePattern(p, catalog)}
            </li>
          ))}
        </ul>
      )}
      <Labelled
        id={field('partners')}
        label={partnersLabel}
        hint="Partner UUIDs, comma-separated; empty means every partner your organization is authorized for."
        error={errors?.fields.partnerIds}
      >
        <input
          id={field('partners')}
          ref={refs.partnerIds}
          value={values.partners}
          onInput={(e) => set.partners(e.currentTarget.value)}
          {...invalid(field('partners'), errors?.fields.partnerIds)}
        />
      </Labelled>
    </>
  );
}

function SecretOnce({
  registered,
  heading,
  onDone,
  title,
}: {
  registered: Pick<Registered, 'url' | 'secret'>;
  heading: { current: HTMLHeadingElement | null };
  onDone: () => void;
  title?: string;
}) {
  const [copied, setCopied] = useState<string | undefined>();
  return (
    <div class="secret" role="region" aria-labelledby="secret-heading">
      <h3 id="secret-heading" tabIndex={-1} ref={heading}>
        {title ?? `Signing secret for ${registered.url}`}
      </h3>
      <p class="warning">
        <strong>Copy it now: it is shown only this once.</strong> The registry keeps it encrypted and will not show it again; if it is lost,
        rotate the secret.
      </p>
      <p>
        <code data-testid="secret">{registered.secret}</code>
      </p>
      <button
        type="button"
        onClick={() => {
          navigator.clipboard.writeText(registered.secret).then(
            () => setCopied('Copied to the clipboard.'),
            () => setCopied('The browser refused the clipboard: select the secret and copy it.'),
          );
        }}
      >
        Copy secret
      </button>
      <span role="status">{copied}</span>
      <button type="button" onClick={onDone}>
        I have stored it
      </button>
    </div>
  );
}

/** One endpoint: edit, pause or resume, rotate its secret, delete it (after a confirmation). */
function ManageEndpoint({ api, id, onClose }: { api: Api; id: string; onClose: () => void }) {
  const [loaded, setLoaded] = useState<{ webhook: WebhookSummary; etag: string | null } | undefined>();
  const draft = useEndpointDraft();
  const [errors, setErrors] = useState<FieldErrors | undefined>();
  const [said, setSaid] = useState<string | undefined>();
  const [grace, setGrace] = useState(86_400);
  const [rotated, setRotated] = useState<{ url: string; secret: string; until: string } | undefined>();
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  const secretHeading = useRef<HTMLHeadingElement>(null);
  const status = useRef<HTMLParagraphElement>(null);
  const fields = useEndpointFieldRefs();

  const show = (answer: { webhook: WebhookSummary; etag: string | null }) => {
    setLoaded(answer);
    draft.fill(answer.webhook);
  };
  useEffect(() => {
    api.webhook(id).then(show, (error: unknown) => setErrors(problemOf(error)));
  }, [id]);
  // Once it is shown (the heading exists from then on), the focus moves to it.
  const shown = loaded !== undefined;
  useEffect(() => {
    if (shown) heading.current?.focus();
  }, [shown]);
  useEffect(() => {
    if (rotated) secretHeading.current?.focus();
  }, [rotated]);

  /** Runs one write; its outcome in words goes to the status line, which takes the focus unless something else shown should. */
  const act = async (work: () => Promise<string>, focusStatus = true) => {
    setBusy(true);
    setSaid(undefined);
    try {
      const words = await work();
      setErrors(undefined);
      setSaid(words);
      window.dispatchEvent(new Event(CHANGED));
      if (focusStatus) requestAnimationFrame(() => status.current?.focus());
    } catch (error) {
      const found = problemOf(error);
      setErrors(found);
      if (!fields.focusFirstError(found)) requestAnimationFrame(() => status.current?.focus());
    } finally {
      setBusy(false);
    }
  };

  if (loaded === undefined) {
    return (
      <section aria-labelledby="manage-heading">
        <h2 id="manage-heading">Endpoint</h2>
        {errors ? <p class="error" role="alert">{errors.general}</p> : <p>Loading…</p>}
      </section>
    );
  }
  const { webhook, etag } = loaded;
  // A paused or disabled endpoint is resumed; an active one paused.
  const resumable = webhook.status === 'PAUSED' || webhook.status === 'DISABLED';
  return (
    <section aria-labelledby="manage-heading">
      <h2 id="manage-heading" tabIndex={-1} ref={heading}>
        Endpoint {webhook.url}
      </h2>
      <p>
        Status: <span class={`status status-${webhook.status.toLowerCase()}`}>{webhook.status}</span>
      </p>
      <p class="status-line" role="status" tabIndex={-1} ref={status}>
        {said}
      </p>
      {errors?.general && (
        <p class="error" role="alert">
          {errors.general}
        </p>
      )}
      {rotated && (
        <SecretOnce
          registered={rotated}
          heading={secretHeading}
          title={`New signing secret (the previous one is valid until ${formatInstant(rotated.until)})`}
          onDone={() => setRotated(undefined)}
        />
      )}
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          const { url, events, partnerIds } = draft.entries();
          void act(async () => {
            show(await api.update(webhook.id, { url, events, partnerIds: partnerIds.length > 0 ? partnerIds : null }, etag));
            return 'Saved.';
          });
        }}
      >
        <EndpointFields
          prefix="edit"
          draft={draft}
          refs={fields.refs}
          errors={errors}
          api={api}
          partnersLabel="Partners"
        />
        <div class="actions">
          <button type="submit" disabled={busy}>
            Save changes
          </button>
          <button
            type="button"
            disabled={busy}
            onClick={() =>
              void act(async () => {
                show(await api.update(webhook.id, { status: resumable ? 'ACTIVE' : 'PAUSED' }, etag));
                return resumable ? 'Resumed: deliveries start again.' : 'Paused: nothing is delivered until it is resumed.';
              })
            }
          >
            {resumable ? 'Resume' : 'Pause'}
          </button>
        </div>
      </form>
      <div class="field">
        <label for="grace">Grace period for the current secret</label>
        <select id="grace" value={String(grace)} onChange={(e) => setGrace(Number(e.currentTarget.value))}>
          {GRACE_PERIODS.map((g) => (
            <option key={g.seconds} value={String(g.seconds)}>
              {g.label}
            </option>
          ))}
        </select>
        <button
          type="button"
          disabled={busy}
          onClick={() =>
            void act(async () => {
              const answer = await api.rotate(webhook.id, grace);
              show(await api.webhook(webhook.id));
              setRotated({ url: webhook.url, secret: answer.secret, until: answer.previousSecretExpiresAt });
              return 'Secret rotated.';
            }, false)
          }
        >
          Rotate secret
        </button>
      </div>
      <div class="actions">
        {confirming ? (
          <div role="group" aria-labelledby="confirm-delete">
            <p id="confirm-delete" class="warning">
              Delete {webhook.url}? Nothing is delivered to it any more; its history stays for the audit trail.
            </p>
            <button
              type="button"
              class="danger"
              disabled={busy}
              onClick={() =>
                void act(async () => {
                  await api.remove(webhook.id, etag);
                  onClose();
                  // The panel is gone: the focus goes back to the list it was opened from.
                  requestAnimationFrame(() => document.getElementById('list-heading')?.focus());
                  return 'Deleted.';
                })
              }
            >
              Yes, delete it
            </button>
            <button type="button" onClick={() => setConfirming(false)}>
              Keep it
            </button>
          </div>
        ) : (
          <button type="button" class="danger" onClick={() => setConfirming(true)}>
            Delete…
          </button>
        )}
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </section>
  );
}

/** A compliance officer's pages: every webhook's state at an instant, and one webhook's history. */
function AuditPages({ api }: { api: Api }) {
  const [instant, setInstant] = useState(() => new Date().toISOString());
  const [org, setOrg] = useState('');
  const [query, setQuery] = useState<{ asOf: string; org: string; cursor?: string } | undefined>();
  const [page, setPage] = useState<AuditPage | undefined>();
  const [problem, setProblem] = useState<string | undefined>();
  const [timeline, setTimeline] = useState<string | undefined>();

  useEffect(() => {
    if (query === undefined) return;
    api.auditAt(query.asOf, query.org || undefined, query.cursor).then(
      (answer) => {
        setPage(answer);
        setProblem(undefined);
      },
      (error: unknown) => setProblem(problemOf(error).general ?? 'The query failed.'),
    );
  }, [query]);

  return (
    <>
      <section aria-labelledby="asof-heading">
        <h2 id="asof-heading">Every webhook at an instant</h2>
        <form
          class="filters"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            const asOf = instantOf(instant);
            if (asOf === undefined) {
              setProblem('Enter an instant as 2026-12-03T08:00:00Z (RFC 3339, with its zone).');
              return;
            }
            setQuery({ asOf, org: org.trim() });
          }}
        >
          <label>
            Instant (RFC 3339)
            <input value={instant} onInput={(e) => setInstant(e.currentTarget.value)} {...invalid('asof', problem)} />
          </label>
          <label>
            Organization (optional)
            <input value={org} onInput={(e) => setOrg(e.currentTarget.value)} />
          </label>
          <button type="submit">Show the state</button>
        </form>
        {problem && (
          <p class="error" id="asof-error" role="alert">
            {problem}
          </p>
        )}
        {page && (
          <>
            <p role="status">
              {page.data.length === 0 ? 'No webhook existed then.' : `State at ${formatInstant(page.asOf)} (${page.asOf}), rebuilt from the log.`}
            </p>
            {page.data.length > 0 && (
              <table>
                <caption class="visually-hidden">Webhooks at {page.asOf}</caption>
                <TableHead columns={['URL', 'Organization', 'Events', 'Status', 'Version', 'History']} />
                <tbody>
                  {page.data.map((w) => (
                    <tr key={w.id}>
                      <td class="url">{w.url}</td>
                      <td>{w.organizationId}</td>
                      <td>{w.events.join(', ')}</td>
                      <td>
                        <span class={`status status-${w.status.toLowerCase()}`}>{w.deleted ? 'DELETED' : w.status}</span>
                      </td>
                      <td>{w.revision}</td>
                      <td>
                        <button type="button" aria-label={`History of ${w.url}`} onClick={() => setTimeline(w.id)}>
                          History
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            {page.nextCursor && query && (
              <button type="button" onClick={() => setQuery({ ...query, cursor: page.nextCursor! })}>
                Next page
              </button>
            )}
          </>
        )}
      </section>
      {timeline !== undefined && <Timeline key={timeline} api={api} id={timeline} />}
      <TamperCheck api={api} />
    </>
  );
}

/** The tamper check over every stream and the read model, with the first broken stream named. */
function TamperCheck({ api }: { api: Api }) {
  const [running, setRunning] = useState(false);
  const [report, setReport] = useState<ReturnType<typeof verificationSummary> | undefined>();
  const [problem, setProblem] = useState<string | undefined>();
  const result = useRef<HTMLParagraphElement>(null);
  useEffect(() => {
    if (report !== undefined || problem !== undefined) result.current?.focus();
  }, [report, problem]);

  const run = () => {
    setRunning(true);
    setReport(undefined);
    setProblem(undefined);
    api
      .verification()
      .then(
        (answer) => setReport(verificationSummary(answer)),
        (error: unknown) => setProblem(problemOf(error).general ?? 'The check could not run.'),
      )
      .finally(() => setRunning(false));
  };

  return (
    <section aria-labelledby="verify-heading">
      <h2 id="verify-heading">Tamper check</h2>
      <p class="hint">Reads every event of the log, checks each stream's hash chain, and compares the read model with the log.</p>
      <p>
        <button type="button" onClick={run} disabled={running}>
          {running ? 'Checking…' : 'Run the tamper check'}
        </button>
      </p>
      <div>
        {problem && (
          <p class="error" role="alert" tabIndex={-1} ref={result}>
            {problem}
          </p>
        )}
        {report && (
          <>
            <p id="verify-result" class={report.ok ? 'chain-intact' : 'error'} tabIndex={-1} ref={result}>
              {report.headline}
            </p>
            {report.findings.length > 0 && (
              <ul class="findings">
                {report.findings.map((line, index) => (
                  // Two findings may read the same; their order is theirs.
                  <li key={index}>{line}</li>
                ))}
              </ul>
            )}
          </>
        )}
      </div>
    </section>
  );
}

/** One webhook's history as a timeline: who, when, what changed (secrets redacted by the API), and its hash chain. */
function Timeline({ api, id }: { api: Api; id: string }) {
  const [entries, setEntries] = useState<HistoryEntry[]>([]);
  const [history, setHistory] = useState<History | undefined>();
  const [problem, setProblem] = useState<string | undefined>();
  const heading = useRef<HTMLHeadingElement>(null);

  const load = (cursor?: string) =>
    api.history(id, cursor).then(
      (answer) => {
        setHistory(answer);
        setEntries((before) => [...(cursor === undefined ? [] : before), ...answer.data]);
      },
      (error: unknown) => setProblem(problemOf(error).general ?? 'The history could not be read.'),
    );
  useEffect(() => {
    void load();
  }, [id]);
  const shown = history !== undefined;
  useEffect(() => {
    if (shown) heading.current?.focus();
  }, [shown]);

  return (
    <section aria-labelledby="timeline-heading">
      <h2 id="timeline-heading" tabIndex={-1} ref={heading}>
        History of {id}
      </h2>
      {problem && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
      {history && (
        <p class={history.chain.intact ? 'chain-intact' : 'error'} role="status">
          {history.chain.intact
            ? 'Hash chain intact: every event is as it was written.'
            : `Hash chain broken at revision ${history.chain.revision ?? '?'}: ${history.chain.problem ?? 'an event was altered'}.`}
        </p>
      )}
      <ol class="timeline">
        {entries.map((entry) => (
          <li key={entry.revision}>
            <p class="when">
              <time dateTime={entry.occurredAt}>{formatInstant(entry.occurredAt)}</time> · <strong>{eventTitle(entry.type)}</strong> by{' '}
              {entry.actor.clientId} ({entry.actor.subject})
            </p>
            {Object.keys(entry.changes).length > 0 && (
              <table class="diff">
                <caption class="visually-hidden">Changes at revision {entry.revision}</caption>
                <TableHead columns={['Field', 'Before', 'After']} />
                <tbody>
                  {changeLines(entry.changes).map((line) => (
                    <tr key={line.field}>
                      <th scope="row">{line.field}</th>
                      <td class="from">{line.from}</td>
                      <td class="to">{line.to}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </li>
        ))}
      </ol>
      {history?.nextCursor && (
        <button type="button" onClick={() => void load(history.nextCursor!)}>
          Older entries
        </button>
      )}
    </section>
  );
}

function TableHead({ columns }: { columns: readonly string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c) => (
          <th key={c} scope="col">
            {c}
          </th>
        ))}
      </tr>
    </thead>
  );
}

function Labelled({ id, label, hint, error, children }: { id: string; label: string; hint?: string; error: string | undefined; children: preact.ComponentChildren }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {children}
      {error && (
        <p class="error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}

function invalid(id: string, error: string | undefined): Record<string, string> {
  return error === undefined ? {} : { 'aria-invalid': 'true', 'aria-describedby': `${id}-error` };
}

function problemOf(error: unknown): FieldErrors {
  if (error instanceof ApiError) return fieldErrors(error.problem);
  return { fields: {}, general: error instanceof Error ? error.message : String(error) };
}

async function start(): Promise<void> {
  const root = document.getElementById('app')!;
  const response = await fetch('./config.json');
  const config = (await response.json()) as ConsoleConfig;
  render(<App auth={new Auth(config)} />, root);
}

void start();
