// The example realm docs/keycloak/nt24-idp-realm.json against what the
// registry and its console expect. No Keycloak runs here, so this cannot
// prove Keycloak imports it; it keeps the file in step with the code: the
// console's public client and the scopes it asks for, the claim names and
// audience the registry reads by default, the role that gates webhooks:audit,
// and user attributes that only administrators may change.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { CONSOLE_SCOPE } from '../../src/http/console.ts';
import { CONSOLE_CLIENT_ID } from '../../src/http/devSignIn.ts';
import { REPO_ROOT } from '../support/cli.ts';

interface Mapper {
  name: string;
  protocolMapper: string;
  config: Record<string, string>;
}
interface ClientScope {
  name: string;
  attributes: Record<string, string>;
  protocolMappers?: Mapper[];
}
interface Client {
  clientId: string;
  publicClient: boolean;
  standardFlowEnabled: boolean;
  implicitFlowEnabled: boolean;
  directAccessGrantsEnabled: boolean;
  serviceAccountsEnabled: boolean;
  redirectUris: string[];
  webOrigins: string[];
  attributes: Record<string, string>;
  protocolMappers?: Mapper[];
  defaultClientScopes: string[];
  optionalClientScopes: string[];
}
interface User {
  username: string;
  serviceAccountClientId?: string;
  realmRoles?: string[];
  attributes?: Record<string, string[]>;
}
interface Realm {
  realm: string;
  clientScopes: ClientScope[];
  scopeMappings: { clientScope: string; roles: string[] }[];
  roles: { realm: { name: string }[] };
  clients: Client[];
  users: User[];
  components: Record<string, { providerId: string; config: Record<string, string[]> }[]>;
}

const realm = JSON.parse(readFileSync(path.join(REPO_ROOT, 'docs', 'keycloak', 'nt24-idp-realm.json'), 'utf8')) as Realm;
const defaults = loadConfig({ NODE_ENV: 'test', OIDC_ISSUER: 'https://keycloak.example/realms/nt24-idp' });
const scope = (name: string): ClientScope => {
  const found = realm.clientScopes.find((s) => s.name === name);
  if (found === undefined) throw new Error(`no client scope ${name}`);
  return found;
};
const client = (id: string): Client => {
  const found = realm.clients.find((c) => c.clientId === id);
  if (found === undefined) throw new Error(`no client ${id}`);
  return found;
};
const scopesOf = (c: Client): string[] => [...c.defaultClientScopes, ...c.optionalClientScopes];
const mapper = (mappers: Mapper[] | undefined, claim: string): Mapper | undefined => mappers?.find((m) => m.config['claim.name'] === claim);

describe('the example Keycloak realm', () => {
  it('is the realm the registry names, and every client scope a client uses is declared', () => {
    expect(realm.realm).toBe('nt24-idp');
    const declared = new Set(realm.clientScopes.map((s) => s.name));
    for (const c of realm.clients) for (const name of scopesOf(c)) expect(declared, `${c.clientId} uses ${name}`).toContain(name);
    expect(scope('webhook-registry-audience').protocolMappers?.[0]?.config['included.custom.audience']).toBe(defaults.OIDC_AUDIENCE);
  });

  it('has the console as a public client with the authorization code flow, PKCE S256 and the console’s redirect', () => {
    const consoleClient = client(CONSOLE_CLIENT_ID);
    expect(consoleClient).toMatchObject({
      publicClient: true,
      standardFlowEnabled: true,
      implicitFlowEnabled: false,
      directAccessGrantsEnabled: false,
      serviceAccountsEnabled: false,
    });
    expect(consoleClient.attributes['pkce.code.challenge.method']).toBe('S256');
    expect(consoleClient.redirectUris.length).toBeGreaterThan(0);
    for (const uri of [...consoleClient.redirectUris, consoleClient.attributes['post.logout.redirect.uris']!]) expect(uri).toMatch(/^https:\/\/[^/]+\/console\/\*$/);
    // "+": the web origins of the redirect URIs, so the console may call the token endpoint.
    expect(consoleClient.webOrigins).toEqual(['+']);
    // Keycloak refuses a requested scope the client does not have; the console asks for these.
    for (const name of CONSOLE_SCOPE.split(' ').filter((s) => s !== 'openid')) expect(scopesOf(consoleClient)).toContain(name);
    expect(consoleClient.defaultClientScopes).toEqual(expect.arrayContaining(['basic', 'webhook-registry-audience', 'webhook-org-claims']));
    expect(scopesOf(consoleClient)).not.toContain('webhooks:dispatch');
  });

  it('maps a person’s organization and partners from user attributes to the claims the registry reads', () => {
    const mappers = scope('webhook-org-claims').protocolMappers;
    const org = mapper(mappers, defaults.ORG_CLAIM);
    const partners = mapper(mappers, defaults.PARTNERS_CLAIM);
    expect(org?.protocolMapper).toBe('oidc-usermodel-attribute-mapper');
    expect(org?.config).toMatchObject({ 'user.attribute': 'org_id', 'jsonType.label': 'String', multivalued: 'false', 'access.token.claim': 'true' });
    // Multivalued: always a JSON array, as PARTNERS_CLAIM must be.
    expect(partners?.config).toMatchObject({ 'user.attribute': 'partner_id', multivalued: 'true', 'access.token.claim': 'true' });
    for (const m of [org, partners]) expect(m?.config['lightweight.claim']).toBe('false');
  });

  it('lets only administrators set those attributes, so nobody can move themselves into another organization', () => {
    const provider = realm.components['org.keycloak.userprofile.UserProfileProvider']?.[0];
    const profile = JSON.parse(provider?.config['kc.user.profile.config']?.[0] ?? '{}') as {
      attributes: { name: string; multivalued?: boolean; permissions: { view: string[]; edit: string[] } }[];
    };
    for (const name of ['org_id', 'partner_id']) {
      const attribute = profile.attributes.find((a) => a.name === name);
      expect(attribute?.permissions.edit, name).toEqual(['admin']);
    }
    expect(profile.attributes.find((a) => a.name === 'partner_id')?.multivalued).toBe(true);
  });

  it('gates webhooks:audit on the auditor role, held by the compliance client and the example officer only', () => {
    expect(realm.roles.realm.map((r) => r.name)).toContain('webhook-auditor');
    expect(realm.scopeMappings).toContainEqual({ clientScope: 'webhooks:audit', roles: ['webhook-auditor'] });
    const auditors = realm.users.filter((u) => u.realmRoles?.includes('webhook-auditor')).map((u) => u.serviceAccountClientId ?? u.username);
    expect(auditors.sort()).toEqual(['compliance-auditor', 'grace']);
    // Every client credentials client with webhooks:audit has its service account among the role's holders.
    for (const c of realm.clients.filter((c) => c.serviceAccountsEnabled && scopesOf(c).includes('webhooks:audit'))) expect(auditors).toContain(c.clientId);
    // An auditor has no organization: cross-organization reads only through webhooks:audit.
    for (const u of realm.users.filter((u) => u.realmRoles?.includes('webhook-auditor'))) expect(u.attributes?.org_id).toBeUndefined();
  });

  it('gives no client that can carry an organization the cross-organization scopes, but through the auditor role', () => {
    const carriesOrg = (c: Client) =>
      mapper(c.protocolMappers, defaults.ORG_CLAIM) !== undefined || scopesOf(c).some((name) => mapper(scope(name).protocolMappers, defaults.ORG_CLAIM) !== undefined);
    const roleGated = new Set(realm.scopeMappings.map((m) => m.clientScope));
    const withOrg = realm.clients.filter(carriesOrg);
    expect(withOrg.map((c) => c.clientId)).toEqual(expect.arrayContaining(['acme-integration', CONSOLE_CLIENT_ID]));
    for (const c of withOrg) {
      expect(scopesOf(c), c.clientId).not.toContain('webhooks:dispatch');
      // The console has webhooks:audit, which only auditors get, and the realm gives auditors no organization.
      if (scopesOf(c).includes('webhooks:audit')) expect(roleGated, c.clientId).toContain('webhooks:audit');
    }
  });
});
