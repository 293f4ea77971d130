// Where a delivery may connect. A webhook's host name is judged by name at
// registration (src/domain/urlPolicy.ts), but names such as `localtest.me`,
// `*.nip.io` or `kubernetes.default.svc` resolve to internal addresses, and a
// name can be re-pointed after it was registered (DNS rebinding). So the
// address must be checked when the dispatcher connects, on the very address
// the socket uses: a `lookup` function for Node's `http`/`https`/`net`
// requests that resolves with `dns.lookup` and refuses every non-public
// address (the same ranges the registration policy refuses for literals).
// Because the socket connects to what this function returns, there is no
// window between the check and the connection. Node calls no lookup for a
// host that is already an IP address, so `checkDeliveryUrl` covers those:
// call it on every URL before connecting (a redirect target included).
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import { checkIp } from '../domain/urlPolicy.ts';

/** The error a refused address gives: `code` is `ERR_DELIVERY_ADDRESS_REFUSED`. */
export class DeliveryAddressRefusedError extends Error {
  override readonly name = 'DeliveryAddressRefusedError';
  readonly code = 'ERR_DELIVERY_ADDRESS_REFUSED';
  constructor(
    readonly hostname: string,
    readonly address: string,
    reason: string,
  ) {
    super(`${hostname} resolves to ${address}, which ${reason.replace(/^must not/, 'must not be reached:')}`);
  }
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

export interface DeliveryLookupOptions {
  /** Development only, like ALLOW_INSECURE_URLS: every address is allowed. */
  readonly allowInsecure?: boolean;
  /** The resolver (default `dns.lookup`); tests give their own instead of resolving names. */
  readonly resolve?: typeof dnsLookup;
}

/**
 * A `lookup` for `https.request(url, { lookup })` (and `http`, `net`, `tls`,
 * or an `https.Agent`): resolves the host and fails the request with
 * DeliveryAddressRefusedError when any address it would use is not public.
 * All addresses are checked, not only the first, so a name that answers one
 * public and one internal address is refused whichever the socket would try.
 */
export function deliveryLookup(options: DeliveryLookupOptions = {}) {
  const resolve = options.resolve ?? dnsLookup;
  return function lookup(hostname: string, lookupOptions: LookupOptions, callback: LookupCallback): void {
    resolve(hostname, { ...lookupOptions, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      const list: LookupAddress[] = addresses;
      if (!options.allowInsecure) {
        for (const { address } of list) {
          const reason = checkIp(address);
          if (reason !== undefined) return callback(new DeliveryAddressRefusedError(hostname, address, reason), []);
        }
      }
      if (lookupOptions.all === true) return callback(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      return callback(null, first.address, first.family);
    });
  };
}

/**
 * Throws DeliveryAddressRefusedError when `url`'s host is an IP literal
 * outside the public ranges (`https://10.0.0.1/`, `https://[::ffff:127.0.0.1]/`):
 * Node connects to those without calling any lookup. Host names pass here and
 * are checked by `deliveryLookup` when the socket resolves them.
 */
export function checkDeliveryUrl(url: string | URL, options: Pick<DeliveryLookupOptions, 'allowInsecure'> = {}): void {
  if (options.allowInsecure) return;
  const hostname = (typeof url === 'string' ? new URL(url) : url).hostname;
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (isIP(host) === 0) return;
  const reason = checkIp(host);
  if (reason !== undefined) throw new DeliveryAddressRefusedError(hostname, host, reason);
}
