import { describe, expect, it } from 'vitest';
import { checkWebhookUrl, MAX_URL_LENGTH } from '../../src/domain/urlPolicy.ts';

const strict = { allowInsecure: false };
const insecure = { allowInsecure: true };

describe('URL policy (production)', () => {
  it.each([
    'https://hooks.example.com/nt24',
    'https://hooks.example.com:8443/a/b?c=d#e',
    'https://HOOKS.EXAMPLE.COM/',
    'https://hooks.example.com./trailing-dot',
    'https://8.8.8.8/hook',
    'https://1.1.1.1/',
    'https://[2606:4700:4700::1111]/hook',
    'https://[2001:4860:4860::8888]/',
    'https://[::ffff:8.8.8.8]/',
    'https://xn--bcher-kva.example/',
  ])('accepts %s', (url) => {
    expect(checkWebhookUrl(url, strict)).toBeUndefined();
  });

  it.each([
    ['not a URL', 'hooks.example.com/path'],
    ['relative', '/v1/hook'],
    ['http', 'http://hooks.example.com/'],
    ['ftp', 'ftp://hooks.example.com/'],
    ['javascript', 'javascript:alert(1)'],
    ['userinfo (user)', 'https://user@hooks.example.com/'],
    ['userinfo (user:password)', 'https://user:pw@hooks.example.com/'],
    ['userinfo (password only)', 'https://:pw@hooks.example.com/'],
    ['localhost', 'https://localhost/'],
    ['LOCALHOST', 'https://LOCALHOST:8443/'],
    ['localhost with trailing dot', 'https://localhost./'],
    ['*.localhost', 'https://sub.localhost/'],
    ['GCP metadata', 'https://metadata.google.internal/computeMetadata/v1/'],
    ['GCP metadata, trailing dot', 'https://metadata.google.internal./'],
    ['metadata (short)', 'https://metadata/'],
    ['metadata.goog', 'https://metadata.goog/'],
    ['Azure metadata', 'https://metadata.azure.com/'],
    ['EC2 instance-data', 'https://instance-data.ec2.internal/'],
    ['single-label host', 'https://intranet/'],
  ])('refuses %s', (_label, url) => {
    expect(checkWebhookUrl(url, strict)).toEqual(expect.any(String));
  });

  it('refuses URLs longer than 2048 characters and accepts exactly 2048', () => {
    const base = 'https://hooks.example.com/';
    expect(checkWebhookUrl(base + 'a'.repeat(MAX_URL_LENGTH - base.length), strict)).toBeUndefined();
    expect(checkWebhookUrl(base + 'a'.repeat(MAX_URL_LENGTH - base.length + 1), strict)).toMatch(/2048/);
  });

  describe('IPv4 literals', () => {
    it.each([
      ['loopback', '127.0.0.1'],
      ['loopback (other)', '127.255.255.254'],
      ['private 10/8', '10.0.0.1'],
      ['private 172.16/12', '172.16.0.1'],
      ['private 172.31', '172.31.255.255'],
      ['private 192.168/16', '192.168.1.1'],
      ['link-local / cloud metadata', '169.254.169.254'],
      ['CGNAT', '100.64.0.1'],
      ['CGNAT (top)', '100.127.255.254'],
      ['documentation TEST-NET-1', '192.0.2.1'],
      ['documentation TEST-NET-2', '198.51.100.7'],
      ['documentation TEST-NET-3', '203.0.113.9'],
      ['benchmarking', '198.18.0.1'],
      ['IETF protocol assignments', '192.0.0.8'],
      ['6to4 relay anycast', '192.88.99.1'],
      ['reserved 240/4', '240.0.0.1'],
      ['broadcast', '255.255.255.255'],
      ['unspecified', '0.0.0.0'],
      ['"this network"', '0.1.2.3'],
      ['multicast', '224.0.0.1'],
      ['multicast (top)', '239.255.255.250'],
    ])('refuses %s (%s)', (_label, ip) => {
      expect(checkWebhookUrl(`https://${ip}/hook`, strict)).toEqual(expect.any(String));
    });

    it.each([
      ['hex', 'https://0x7f.0.0.1/'],
      ['short form', 'https://127.1/'],
      ['integer', 'https://2130706433/'],
      ['octal', 'https://0177.0.0.1/'],
      ['hex integer, private', 'https://0x0a000001/'],
    ])('refuses a non-canonical spelling of a non-public address (%s)', (_label, url) => {
      expect(checkWebhookUrl(url, strict)).toEqual(expect.any(String));
    });

    it('names the range in its answer', () => {
      expect(checkWebhookUrl('https://127.0.0.1/', strict)).toMatch(/loopback/);
      expect(checkWebhookUrl('https://10.0.0.1/', strict)).toMatch(/private/);
      expect(checkWebhookUrl('https://169.254.169.254/', strict)).toMatch(/link-local/);
      expect(checkWebhookUrl('https://100.64.0.1/', strict)).toMatch(/carrier-grade NAT/);
      expect(checkWebhookUrl('https://224.0.0.1/', strict)).toMatch(/multicast/);
    });
  });

  describe('IPv6 literals', () => {
    it.each([
      ['loopback', '::1'],
      ['unspecified', '::'],
      ['unique local fd00::/8', 'fd00::1'],
      ['unique local fc00::/8', 'fc00::1'],
      ['link-local', 'fe80::1'],
      ['multicast (link scope)', 'ff02::1'],
      ['multicast (global scope)', 'ff0e::1'],
      ['documentation 2001:db8::/32', '2001:db8::1'],
      ['documentation 3fff::/20', '3fff::1'],
      ['IPv4-mapped loopback', '::ffff:127.0.0.1'],
      ['IPv4-mapped private', '::ffff:10.0.0.1'],
      ['IPv4-mapped link-local', '::ffff:169.254.169.254'],
      ['IPv4-mapped CGNAT', '::ffff:100.64.0.1'],
      ['IPv4-mapped, hex spelling', '::ffff:7f00:1'],
      ['IPv4-compatible (deprecated) loopback', '::127.0.0.1'],
      ['IPv4-compatible (deprecated) public', '::8.8.8.8'],
      ['IPv4-translated', '::ffff:0:7f00:1'],
      ['NAT64', '64:ff9b::a00:1'],
      ['6to4', '2002:7f00:1::1'],
      ['Teredo', '2001::1'],
      ['discard-only', '100::1'],
      ['ORCHIDv2', '2001:20::1'],
      ['benchmarking', '2001:2::1'],
      ['site-local (deprecated)', 'fec0::1'],
      ['reserved ::/8', '0:0:0:0:1::1'],
      ['unassigned 4000::/3', '4000::1'],
    ])('refuses %s ([%s])', (_label, ip) => {
      expect(checkWebhookUrl(`https://[${ip}]/hook`, strict)).toEqual(expect.any(String));
    });

    it('names the range in its answer', () => {
      expect(checkWebhookUrl('https://[::1]/', strict)).toMatch(/loopback/);
      expect(checkWebhookUrl('https://[fd00::1]/', strict)).toMatch(/private/);
      expect(checkWebhookUrl('https://[::ffff:127.0.0.1]/', strict)).toMatch(/loopback/);
      expect(checkWebhookUrl('https://[ff02::1]/', strict)).toMatch(/multicast/);
    });
  });
});

describe('URL policy with ALLOW_INSECURE_URLS (development only)', () => {
  it.each(['http://localhost:8080/hook', 'http://127.0.0.1:3000/', 'https://localhost/', 'http://10.0.0.1/', 'http://[::1]:8080/'])(
    'accepts %s',
    (url) => {
      expect(checkWebhookUrl(url, insecure)).toBeUndefined();
    },
  );

  it('still refuses userinfo, other schemes, non-URLs and over-long URLs', () => {
    expect(checkWebhookUrl('http://user:pw@localhost:8080/', insecure)).toEqual(expect.any(String));
    expect(checkWebhookUrl('ftp://localhost/', insecure)).toEqual(expect.any(String));
    expect(checkWebhookUrl('file:///etc/passwd', insecure)).toEqual(expect.any(String));
    expect(checkWebhookUrl('localhost:8080', insecure)).toEqual(expect.any(String));
    expect(checkWebhookUrl(`http://localhost/${'a'.repeat(MAX_URL_LENGTH)}`, insecure)).toEqual(expect.any(String));
  });

  it('is what lets http://localhost through: without it the same URL is refused', () => {
    expect(checkWebhookUrl('http://localhost:8080/hook', strict)).toEqual(expect.any(String));
  });
});
