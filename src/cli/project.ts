// `project`: runs the projector as its own process (for PROJECTOR=off API
// replicas), until SIGTERM/SIGINT, stopping at a checkpoint.
import type { Config } from '../config.ts';
import { applyHeapGrowth } from '../heapGrowth.ts';
import { createLogger } from '../server.ts';
import { Projector } from '../projections/projector.ts';
import { closeCore, openStores } from '../runtime.ts';

export const PROJECT_HELP = `usage: project

Runs the projector alone: subscribes to the event log after the read model's
checkpoint and keeps the read model current until SIGTERM or SIGINT.
Uses the same environment as the server (DATA_DIR, EVENTSTORE_URL, MONGODB_URL).`;

export async function projectCommand(config: Config, argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${PROJECT_HELP}\n`);
    return 0;
  }
  applyHeapGrowth(config.HEAP_GROWTH_PERCENT);
  const logger = createLogger(config);
  const stores = await openStores(config);
  const projector = new Projector(stores.store, stores.readModel, { logger });
  projector.start();
  logger.info({ log: stores.engines.log, readModel: stores.engines.readModel }, 'projector running');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await projector.stop();
  await closeCore(stores);
  logger.info('projector stopped at a checkpoint');
  return 0;
}
