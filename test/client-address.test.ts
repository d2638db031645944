import t from 'tap';
import { TrustList, clientAddress, normalizeAddress } from '../src/http/client-address';

t.test('normalizes IPv4-mapped addresses', async (t) => {
  t.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1');
  t.equal(normalizeAddress('0000:0000:0000:0000:0000:ffff:7f00:0001'), '127.0.0.1');
  t.equal(normalizeAddress('0000:0000:0000:0000:0000:ffff:127.0.0.2'), '127.0.0.2');
  t.equal(normalizeAddress('::1'), '::1');
});

t.test('X-Forwarded-For is ignored without a trusted peer', async (t) => {
  const none = new TrustList([]);
  t.equal(clientAddress(none, '127.0.0.1', '203.0.113.9'), '127.0.0.1');
  const trust = new TrustList(['10.0.0.0/8']);
  t.equal(clientAddress(trust, '192.0.2.1', '203.0.113.9'), '192.0.2.1', 'untrusted peer');
});

t.test('trusted proxies: rightmost untrusted hop wins', async (t) => {
  const trust = new TrustList(['127.0.0.1', '10.0.0.0/8', '::1']);
  t.equal(clientAddress(trust, '127.0.0.1', '203.0.113.9'), '203.0.113.9');
  t.equal(clientAddress(trust, '::1', '198.51.100.1, 203.0.113.9, 10.1.2.3'), '203.0.113.9', 'spoofed leftmost ignored');
  t.equal(clientAddress(trust, '127.0.0.1', '10.0.0.1, 10.0.0.2'), '10.0.0.1', 'all trusted: leftmost');
  t.equal(clientAddress(trust, '127.0.0.1', 'garbage'), '127.0.0.1', 'nothing parseable: the peer');
  t.ok(trust.has('::ffff:10.9.9.9'));
});
