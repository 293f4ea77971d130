// The baseline the registry is measured against: a bare fastify app on the
// same machine answering the same requests with bodies of the same shape and
// size, but doing none of the work (no auth, validation, crypto or storage).
// Runs as a child of bench/run.ts and talks to it over the IPC channel.
import { randomBytes, randomUUID } from 'node:crypto';
import Fastify from 'fastify';

interface DispatchBody {
  data: unknown[];
}

let dispatchBody: DispatchBody = { data: [] };

const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });

app.post('/v1/webhooks', async (request, reply) => {
  const body = request.body as { url?: string; events?: string[]; partnerIds?: string[] };
  const now = new Date().toISOString();
  const id = randomUUID();
  return reply
    .code(201)
    .header('location', `/v1/webhooks/${id}`)
    .header('etag', '"0"')
    .header('cache-control', 'no-store')
    .send({
      id,
      url: body.url,
      events: body.events,
      status: 'ACTIVE',
      createdAt: now,
      ...(body.partnerIds ? { partnerIds: body.partnerIds } : {}),
      secret: `whsec_${randomBytes(32).toString('base64')}`,
      updatedAt: now,
    });
});

app.get('/internal/v1/dispatch-targets', async (_request, reply) => {
  return reply.header('cache-control', 'no-store').send(dispatchBody);
});

process.on('message', (message: { type: string; body?: DispatchBody }) => {
  if (message.type === 'dispatch-body' && message.body) {
    dispatchBody = message.body;
    process.send?.({ type: 'ok' });
  } else if (message.type === 'stop') {
    void app.close().then(() => process.exit(0));
  }
});
// The parent is gone (crashed or killed): do not linger.
process.on('disconnect', () => process.exit(0));

const url = await app.listen({ port: 0, host: '127.0.0.1' });
process.send?.({ type: 'ready', url });
