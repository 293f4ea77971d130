// Process entry for `npm start`: parse configuration, start the service,
// print a banner with a ready-to-run curl, and shut down gracefully on
// SIGTERM/SIGINT.
import { ConfigError, loadConfig } from './config.ts';
import { applyHeapGrowth } from './heapGrowth.ts';
import { startServer } from './server.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  applyHeapGrowth(config.HEAP_GROWTH_PERCENT);
  let server;
  try {
    server = await startServer(config);
  } catch (error) {
    process.stderr.write(`start-up failed: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const { url, identity, core } = server;
  const lines = [
    '',
    `webhook registry listening on ${url}`,
    `  event log:   ${core.engines.log}`,
    `  read model:  ${core.engines.readModel}`,
    `  projector:   ${server.projector ? 'in this process' : 'separate process (PROJECTOR=off)'}`,
    `  identity:    ${identity.development ? 'DEVELOPMENT issuer (keys in the data folder) — not for production' : identity.issuer}`,
  ];
  if (core.generatedEncryptionKey) lines.push('  secrets:     encrypted with a DEVELOPMENT key generated into the data folder');
  if (config.ALLOW_INSECURE_URLS) lines.push('  url policy:  ALLOW_INSECURE_URLS is on — http and private hosts accepted');
  if (identity.development) {
    const dataDirEnv = process.env.DATA_DIR ? `DATA_DIR=${process.env.DATA_DIR} ` : '';
    lines.push(
      '',
      'try it:',
      `  TOKEN=$(${dataDirEnv}npm run --silent token -- --org acme --partners 3c90c3cc-0d44-4b50-8888-8dd25736052a)`,
      `  curl -i ${url}/v1/webhooks \\`,
      `    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\`,
      `    -H "Idempotency-Key: $(node -e 'console.log(crypto.randomUUID())')" \\`,
      `    -d '{"url":"https://hooks.example.com/nt24","events":["kyc.*","compliance.case.opened"],"partnerIds":["3c90c3cc-0d44-4b50-8888-8dd25736052a"]}'`,
    );
  }
  process.stderr.write(`${lines.join('\n')}\n\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      server.app.log.error('graceful shutdown timed out');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        server.app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

await main();
