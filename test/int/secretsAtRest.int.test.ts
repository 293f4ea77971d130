// The SQLite files never hold a signing secret in plaintext: register with a
// provided and a generated secret, then search the raw bytes of every file in
// the data folder (event log, read model, their WAL files) for them.
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, tempDataDir, VALID_REGISTRATION, type TestRegistry, SQLITE_ENGINES } from '../support/registry.ts';

/** Typed asymmetric matcher (expect.any returns `any`). */
const anyString: unknown = expect.any(String);

interface Registered {
  id: string;
  url: string;
  secret: string;
}

function filesIn(dir: string): string[] {
  return readdirSync(dir)
    .map((name) => path.join(dir, name))
    .filter((file) => statSync(file).isFile());
}

/** Every encoding of a secret an at-rest leak could take. */
function forms(secret: string): { label: string; bytes: Buffer }[] {
  const body = secret.slice('whsec_'.length);
  const raw = Buffer.from(body, 'base64');
  return [
    { label: 'secret', bytes: Buffer.from(secret, 'utf8') },
    { label: 'base64 body', bytes: Buffer.from(body, 'utf8') },
    { label: 'raw key bytes', bytes: raw },
    { label: 'hex of key bytes', bytes: Buffer.from(raw.toString('hex'), 'utf8') },
    { label: 'base64 of the whole secret', bytes: Buffer.from(Buffer.from(secret).toString('base64'), 'utf8') },
  ];
}

describe('secrets at rest', () => {
  const dataDir = tempDataDir();
  let registry: TestRegistry;
  let provided: Registered;
  let generated: Registered;
  const providedSecret = `whsec_${randomBytes(32).toString('base64')}`;
  const providedKey = randomUUID();
  const providedBody = { ...VALID_REGISTRATION, url: 'https://hooks.example.com/provided-secret', secret: providedSecret };

  beforeAll(async () => {
    registry = await startRegistry({ dataDir, env: SQLITE_ENGINES });
    const token = await registry.token();
    const a = await registry.request<Registered>('POST', '/v1/webhooks', {
      token,
      body: providedBody,
      headers: { 'idempotency-key': providedKey },
    });
    const b = await registry.request<Registered>('POST', '/v1/webhooks', {
      token,
      body: { ...VALID_REGISTRATION, url: 'https://hooks.example.com/generated-secret' },
      headers: { 'idempotency-key': randomUUID() },
    });
    expect(a.status, a.text).toBe(201);
    expect(b.status, b.text).toBe(201);
    expect(a.body.secret).toBe(providedSecret);
    provided = a.body;
    generated = b.body;
    // The list answers only after the projector has applied both: the read model holds them too.
    const list = await registry.request<{ data: { id: string }[] }>('GET', '/v1/webhooks', { token });
    expect(list.body.data.map((w) => w.id).sort()).toEqual([provided.id, generated.id].sort());
  });
  afterAll(async () => {
    await registry.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  function scan(label: string) {
    const files = filesIn(dataDir);
    const names = files.map((f) => path.basename(f));
    // The files the test is about exist (so the scan is not vacuous) …
    expect(names).toContain('events.sqlite');
    expect(names).toContain('readmodel.sqlite');
    const contents = files.map((file) => ({ file, bytes: readFileSync(file) }));
    const all = Buffer.concat(contents.map((c) => c.bytes));
    // … and hold the registrations (their urls and ids are stored in clear).
    for (const w of [provided, generated]) {
      expect(all.includes(Buffer.from(w.url)), `${label}: ${w.url} stored`).toBe(true);
      expect(all.includes(Buffer.from(w.id)), `${label}: ${w.id} stored`).toBe(true);
    }
    for (const { file, bytes } of contents) {
      for (const secret of [provided.secret, generated.secret]) {
        for (const form of forms(secret)) {
          expect(bytes.includes(form.bytes), `${label}: ${form.label} of a secret found in ${path.basename(file)}`).toBe(false);
        }
      }
    }
    return names;
  }

  it('no file in the data folder holds either secret while the registry runs (WAL files included)', () => {
    const names = scan('running');
    expect(names.some((n) => n.endsWith('-wal'))).toBe(true);
  });

  it('the secrets are stored encrypted and recoverable: a replay answers the same secret', async () => {
    const again = await registry.request<Registered>('POST', '/v1/webhooks', {
      token: await registry.token(),
      body: providedBody,
      headers: { 'idempotency-key': providedKey },
    });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.secret).toBe(providedSecret);
    const events = await registry.server.core.store.readStream(`webhook-${provided.id}`);
    const data = events[0]!.data as { secret: { keyId: string; iv: string; ciphertext: string } };
    expect(data.secret).toEqual({ keyId: anyString, iv: anyString, ciphertext: anyString });
    expect(JSON.stringify(events[0]!.data)).not.toContain(providedSecret.slice('whsec_'.length));
  });

  it('nor does any file after a clean shutdown checkpointed the WAL into the main files', async () => {
    await registry.stop();
    scan('stopped');
    expect(existsSync(path.join(dataDir, 'events.sqlite'))).toBe(true);
  });

  it('the server logs never held either secret', () => {
    expect(registry.logs.length).toBeGreaterThan(0);
    for (const line of registry.logs) {
      for (const secret of [provided.secret, generated.secret]) {
        expect(line).not.toContain(secret.slice('whsec_'.length));
      }
    }
  });
});
