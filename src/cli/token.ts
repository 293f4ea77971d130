// `token`: mints a development access token from the dev issuer in DATA_DIR
// and prints only the token on stdout, so `$(npm run --silent token -- …)` works.
import { parseArgs } from 'node:util';
import type { Config } from '../config.ts';
import { loadDevIssuer } from '../identity/devIssuer.ts';
import { SCOPES } from '../identity/principal.ts';

export const TOKEN_HELP = `usage: token --org <id> [--partners <uuid,…>] [--scopes "<scope …>"] [--client <id>] [--ttl <seconds>]

Mints an access token from the local development issuer (keys in DATA_DIR)
and prints it on stdout. Default scopes: "${SCOPES.read} ${SCOPES.write}".
Omit --org for a dispatcher or auditor token (e.g. --scopes "${SCOPES.dispatch}").
Refused when OIDC_ISSUER is set or NODE_ENV=production: get real tokens from Keycloak.`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function tokenCommand(config: Config, argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      org: { type: 'string' },
      partners: { type: 'string' },
      scopes: { type: 'string' },
      client: { type: 'string' },
      ttl: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${TOKEN_HELP}\n`);
    return 0;
  }
  if (config.OIDC_ISSUER !== undefined) {
    process.stderr.write('token: OIDC_ISSUER is set, so the server does not accept development tokens\n');
    return 2;
  }
  const partners = values.partners === undefined ? undefined : values.partners.split(',').map((p) => p.trim()).filter(Boolean);
  if (partners?.some((p) => !UUID.test(p))) {
    process.stderr.write('token: --partners must be a comma-separated list of UUIDs\n');
    return 2;
  }
  const ttl = values.ttl === undefined ? 3600 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) {
    process.stderr.write('token: --ttl must be a positive number of seconds\n');
    return 2;
  }
  const issuer = await loadDevIssuer(config.dataDir);
  const token = await issuer.mint({
    audience: config.OIDC_AUDIENCE,
    orgClaim: config.ORG_CLAIM,
    partnersClaim: config.PARTNERS_CLAIM,
    organizationId: values.org,
    partnerIds: partners?.map((p) => p.toLowerCase()),
    scopes: (values.scopes ?? `${SCOPES.read} ${SCOPES.write}`).split(/[ ,]+/).filter(Boolean),
    clientId: values.client,
    ttlSeconds: ttl,
  });
  process.stdout.write(`${token}\n`);
  return 0;
}
