// Which endpoint URLs a webhook may point at. Dispatchers will POST to these
// URLs from inside our network, so anything that could reach internal hosts
// (SSRF) is refused: non-https, userinfo, local and metadata host names, and
// IP literals in non-public ranges. IP parsing is ipaddr.js, not a regex.
import ipaddr from 'ipaddr.js';
import { isWellFormedText } from './text.ts';

export const MAX_URL_LENGTH = 2048;

const METADATA_HOSTS = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'metadata.azure.com',
  'instance-data',
  'instance-data.ec2.internal',
]);

// ipaddr.js range names that are publicly routable; everything else is refused.
const PUBLIC_RANGES = new Set(['unicast']);

// IANA allocates global unicast IPv6 only from 2000::/3. ipaddr.js calls the rest
// of the space "unicast" too, including the IETF-reserved ::/8 with its deprecated
// IPv4-compatible form ::a.b.c.d (e.g. ::127.0.0.1), so IPv6 literals must also
// fall inside 2000::/3.
const GLOBAL_UNICAST_V6 = ipaddr.IPv6.parseCIDR('2000::/3');

export interface UrlPolicyOptions {
  /** Development only: lets http://localhost and private addresses through. */
  readonly allowInsecure: boolean;
}

// Characters that HTTP clients read differently: the WHATWG parser drops tabs
// and newlines and trims spaces and C0 controls, and treats a backslash as "/"
// in https URLs, while curl or Python's urlsplit keep them or split elsewhere
// (`https://evil.com\@169.254.169.254/` is evil.com to one, the metadata
// address to the other). Refused outright, so no stored URL is ambiguous.
// eslint-disable-next-line no-control-regex -- control characters are the point
const AMBIGUOUS = /[\u0000-\u0020\u007f\\]/;

/**
 * The one form of an accepted URL that is stored and handed to dispatchers:
 * the WHATWG serialization of what the policy checked (host lower-cased and
 * punycoded, path percent-encoded), so every client reads the host we judged.
 */
export function normalizeWebhookUrl(raw: string): string {
  return new URL(raw).href;
}

/** Returns a reason when the URL is not acceptable, undefined when it is. */
export function checkWebhookUrl(raw: string, options: UrlPolicyOptions): string | undefined {
  if (raw.length > MAX_URL_LENGTH) return `must be at most ${MAX_URL_LENGTH} characters`;
  if (!isWellFormedText(raw)) return 'must be well-formed Unicode text';
  if (AMBIGUOUS.test(raw)) return 'must not contain spaces, control characters or backslashes';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be an absolute URL';
  }
  if (url.href.length > MAX_URL_LENGTH) return `must be at most ${MAX_URL_LENGTH} characters once normalized`;
  if (url.username !== '' || url.password !== '') return 'must not contain userinfo';
  if (options.allowInsecure) {
    return url.protocol === 'https:' || url.protocol === 'http:' ? undefined : 'must use https';
  }
  if (url.protocol !== 'https:') return 'must use https';
  const host = url.hostname.toLowerCase().replace(/\.+$/, '');
  if (host === '') return 'must have a host';
  if (host.startsWith('[') && host.endsWith(']')) return checkIp(host.slice(1, -1));
  // ipaddr.js's IPv4 check is costly (it parses by trial), so only hosts made of
  // digits and dots reach it. WHATWG URL parsing already turns 0x7f.1, 2130706433
  // and friends into dotted quads; digits and dots in any other shape are no name.
  if (/^[0-9.]+$/.test(host)) {
    return ipaddr.IPv4.isValidFourPartDecimal(host) ? checkIp(host) : 'must not be a numeric host';
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return 'must not point at localhost';
  if (METADATA_HOSTS.has(host)) return 'must not point at a cloud metadata service';
  if (!host.includes('.')) return 'must use a fully qualified host name';
  return undefined;
}

/**
 * Why an IP address (v4 or v6, as text) must not be connected to, or
 * undefined when it is a public address. Dispatchers call it on the
 * addresses a host name resolves to at delivery time (`deliveryLookup`).
 */
export function checkIp(literal: string): string | undefined {
  if (!ipaddr.isValid(literal)) return 'must have a valid host';
  let address = ipaddr.parse(literal);
  if (address.kind() === 'ipv6') {
    const v6 = address as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) address = v6.toIPv4Address();
  }
  const range = address.range();
  if (!PUBLIC_RANGES.has(range)) return `must not point at a ${describeRange(range)} address`;
  if (address.kind() === 'ipv6' && !(address as ipaddr.IPv6).match(GLOBAL_UNICAST_V6)) {
    return `must not point at a ${describeRange('reserved')} address`;
  }
  return undefined;
}

function describeRange(range: string): string {
  switch (range) {
    case 'private':
    case 'uniqueLocal':
      return 'private';
    case 'loopback':
      return 'loopback';
    case 'linkLocal':
      return 'link-local';
    case 'carrierGradeNat':
      return 'carrier-grade NAT';
    case 'multicast':
      return 'multicast';
    case 'unspecified':
      return 'unspecified';
    default:
      return `non-public (${range})`;
  }
}
