/**
 * Connections per client address that are not core sockets (http.maxConnectionsPerAddress),
 * shared by both transports: a connection counts from the moment it is accepted — before its
 * TLS handshake — until it closes or becomes a core socket, which core.maxSocketsPerAddress
 * counts from then on. Past the limit a new connection is closed at once, so one host cannot
 * take a process's file descriptors with connections that each stay just short of the idle
 * timeout. Counted by TCP peer (X-Forwarded-For is not read yet), per IPv4 address or IPv6
 * /64; peers in server.trustProxy are not counted, since every client behind them shares
 * their address (the proxy is where to cap its clients).
 */
import client from 'prom-client';
import { AddressSockets } from '../core/address-sockets';
import type { TrustList } from '../http/client-address';

/** One per process. */
export class ConnectionLimit {
  private readonly open = new AddressSockets();
  private readonly refusals: client.Counter | undefined;

  /**
   * @param max connections per address (http.maxConnectionsPerAddress)
   * @param registry where the open-connections gauge and the refusal counter go
   */
  constructor(
    private readonly max: number,
    private readonly trust: TrustList,
    registry?: client.Registry,
  ) {
    if (!registry) return;
    const open = this.open;
    new client.Gauge({ name: 'coordinator_http_connections', help: 'Connections counted against http.maxConnectionsPerAddress: accepted, not yet closed or core sockets (trusted proxies not counted).', registers: [registry], collect() { this.set(open.total); } });
    this.refusals = new client.Counter({ name: 'coordinator_http_connections_refused_total', help: 'Connections closed as they were accepted, their address being at http.maxConnectionsPerAddress.', registers: [registry] });
  }

  /**
   * A connection from `peer` (the TCP peer's textual address) was accepted: true when it may
   * stay (counted until {@link release}), false when it must be closed at once (not counted).
   */
  admit(peer: string): boolean {
    // Once per connection: one key computed (addressKey normalises the address).
    if (this.trust.has(peer) || this.open.addIfUnder(peer, this.max)) return true;
    this.refusals?.inc();
    return false;
  }

  /** An admitted connection closed or became a core socket. */
  release(peer: string): void {
    if (!this.trust.has(peer)) this.open.remove(peer);
  }
}
