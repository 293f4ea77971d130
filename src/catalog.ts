// Loads the event-type catalog: the shipped catalog/event-types.json, or the
// file named by EVENT_TYPES_FILE.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { createCatalog, type EventTypeCatalog } from './domain/eventTypes.ts';

export const DEFAULT_CATALOG_FILE = fileURLToPath(new URL('../catalog/event-types.json', import.meta.url));

const catalogFile = z.object({
  eventTypes: z.array(z.object({ name: z.string(), description: z.string().default('') })).min(1),
});

export function loadCatalog(file: string = DEFAULT_CATALOG_FILE): EventTypeCatalog {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`EVENT_TYPES_FILE: cannot read ${file}: ${(error as Error).message}`);
  }
  const result = catalogFile.safeParse(parsed);
  if (!result.success) throw new Error(`EVENT_TYPES_FILE: ${file} is not a catalog: ${result.error.message}`);
  try {
    return createCatalog(result.data.eventTypes);
  } catch (error) {
    throw new Error(`EVENT_TYPES_FILE: ${(error as Error).message}`);
  }
}
