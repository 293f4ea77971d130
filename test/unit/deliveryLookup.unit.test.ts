// The dispatcher's connect-time address check: names that resolve inside the
// network are refused on the address the socket would use, whatever the name
// looked like at registration.
import type { lookup as dnsLookup, LookupAddress, LookupOptions } from 'node:dns';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDeliveryUrl, DeliveryAddressRefusedError, deliveryLookup } from '../../src/dispatch/deliveryLookup.ts';

/** A resolver answering from a table, so no test resolves a real name. */
function table(entries: Record<string, string[]>) {
  return ((hostname: string, _options: LookupOptions, callback: (e: NodeJS.ErrnoException | null, a: LookupAddress[]) => void) => {
    const addresses = entries[hostname];
    if (!addresses) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
    callback(
      null,
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  }) as unknown as typeof dnsLookup;
}

function resolveWith(lookup: ReturnType<typeof deliveryLookup>, hostname: string, all = false) {
  return new Promise<{ error: Error | null; address: string | LookupAddress[] }>((resolve) => {
    lookup(hostname, { all }, (error, address) => resolve({ error, address }));
  });
}

describe('deliveryLookup', () => {
  const resolve = table({
    'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
    'localtest.me': ['127.0.0.1'],
    'metadata.nip.io': ['169.254.169.254'],
    'kubernetes.default.svc': ['10.96.0.1'],
    'split.example.com': ['93.184.215.14', '192.168.1.10'],
    'mapped.example.com': ['::ffff:10.0.0.1'],
  });
  const lookup = deliveryLookup({ resolve });

  it('passes a name that resolves to public addresses, in the form the caller asked for', async () => {
    expect(await resolveWith(lookup, 'hooks.example.com')).toEqual({ error: null, address: '93.184.215.14' });
    const all = await resolveWith(lookup, 'hooks.example.com', true);
    expect(all.error).toBeNull();
    expect(all.address).toHaveLength(2);
  });

  it.each([
    ['localtest.me', '127.0.0.1', /loopback/],
    ['metadata.nip.io', '169.254.169.254', /link-local/],
    ['kubernetes.default.svc', '10.96.0.1', /private/],
    ['split.example.com', '192.168.1.10', /private/],
    ['mapped.example.com', '::ffff:10.0.0.1', /private/],
  ])('refuses %s, which resolves to %s', async (hostname, address, reason) => {
    const { error } = await resolveWith(lookup, hostname);
    expect(error).toBeInstanceOf(DeliveryAddressRefusedError);
    expect(error).toMatchObject({ code: 'ERR_DELIVERY_ADDRESS_REFUSED', hostname, address });
    expect(error!.message).toMatch(reason);
  });

  it('passes resolver errors through', async () => {
    const { error } = await resolveWith(lookup, 'unknown.example.com');
    expect(error).toMatchObject({ code: 'ENOTFOUND' });
  });

  it.each(['https://127.0.0.1/x', 'https://[::ffff:127.0.0.1]/x', 'https://[::ffff:a00:1]/', 'https://169.254.169.254/latest', 'https://[fd00::1]/'])(
    'checkDeliveryUrl refuses the IP literal in %s, which Node connects to without a lookup',
    (url) => {
      expect(() => checkDeliveryUrl(url)).toThrow(DeliveryAddressRefusedError);
      expect(() => checkDeliveryUrl(url, { allowInsecure: true })).not.toThrow();
    },
  );

  it('checkDeliveryUrl passes public literals and host names (those are the lookup\'s to judge)', () => {
    expect(() => checkDeliveryUrl('https://93.184.215.14/hook')).not.toThrow();
    expect(() => checkDeliveryUrl(new URL('https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/'))).not.toThrow();
    expect(() => checkDeliveryUrl('https://localtest.me/')).not.toThrow();
  });

  describe('on a real request', () => {
    let server: Server;
    let port: number;
    let received = 0;
    beforeAll(async () => {
      server = createServer((_req, res) => {
        received++;
        res.end('reached');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(async () => {
      await new Promise((r) => server.close(r));
    });

    const fetchWith = (lookup: ReturnType<typeof deliveryLookup>) =>
      new Promise<{ status?: number; error?: NodeJS.ErrnoException }>((resolve) => {
        const req = get({ host: 'localtest.me', port, path: '/', lookup }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode! }));
        });
        req.on('error', (error) => resolve({ error }));
      });

    it('never connects to the internal address: the request fails before a byte is sent', async () => {
      const before = received;
      const answer = await fetchWith(deliveryLookup({ resolve }));
      expect(answer.error?.code).toBe('ERR_DELIVERY_ADDRESS_REFUSED');
      expect(received).toBe(before);
    });

    it('connects when insecure addresses are allowed (development)', async () => {
      const answer = await fetchWith(deliveryLookup({ resolve, allowInsecure: true }));
      expect(answer.status).toBe(200);
    });
  });
});
