// Response serialization from the same zod schemas the API document shows.
// Each response schema is turned into JSON Schema once and compiled with
// fast-json-stringify (what fastify itself uses for JSON Schema routes): it
// writes only the declared properties, so a field that is not in the
// contract (a secret on a read, an internal column) can never leak, and it
// is several times cheaper than validating with zod and then calling
// JSON.stringify. A schema JSON Schema cannot express falls back to
// fastify-type-provider-zod's serializer (zod encode + JSON.stringify).
import fastJsonStringify from 'fast-json-stringify';
import type { FastifySerializerCompiler } from 'fastify/types/schema.js';
import { createSerializerCompiler } from 'fastify-type-provider-zod';
import { z, type ZodType } from 'zod';

type Serializer = (data: unknown) => string;

const zodSerializer = createSerializerCompiler();

/**
 * One compiled serializer per schema object: the problem schema alone answers
 * a handful of status codes on every route, and apps are built once per test.
 */
const compiledBySchema = new WeakMap<ZodType, Serializer | null>();

export const serializerCompiler: FastifySerializerCompiler<ZodType> = (route) => {
  let compiled = compiledBySchema.get(route.schema);
  if (compiled === undefined) {
    compiled = compile(route.schema) ?? null;
    compiledBySchema.set(route.schema, compiled);
  }
  return compiled ?? zodSerializer(route);
};

function compile(schema: ZodType): Serializer | undefined {
  try {
    const json = z.toJSONSchema(schema, { io: 'output', target: 'draft-7', unrepresentable: 'throw' });
    return fastJsonStringify(json as Parameters<typeof fastJsonStringify>[0]);
  } catch {
    return undefined;
  }
}
