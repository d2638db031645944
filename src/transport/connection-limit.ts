/**
 * Connections that are not core sockets, shared by both transports: per client address
 * (http.maxConnectionsPerAddress) and for the whole process (http.maxConnections). A
 * connection counts from the moment it is accepted — before its TLS handshake — until it
 * closes or becomes a core socket, which server.maxConnections and core.maxSocketsPerAddress
 * count from then on. Past either limit a new connection is closed at once: one host cannot
 * take a process's file descriptors with connections that each stay just short of the idle
 * timeout, and many hosts together cannot take the descriptors the process needs for its
 * store, Redis and files (preflight counts both limits). Counted by TCP peer
 * (X-Forwarded-For is not read yet), per IPv4 address or IPv6 /64; peers in
 * server.trustProxy are not counted per address, since every client behind them shares their
 * address (the proxy is where to cap its clients), but count in the process's total.
 */
import client from 'prom-client';
import { AddressSockets } from '../core/address-sockets';
import type { TrustList } from '../http/client-address';

/** Which limit closed a connection, as the refusal counter labels it. */
type Limit = 'address' | 'process';

/** One per process. */
export class ConnectionLimit {
  private readonly byAddress = new AddressSockets();
  /** Admitted connections of all peers, trusted ones included. */
  private open = 0;
  private readonly refusals: client.Counter<'limit'> | undefined;

  /**
   * @param perAddress connections per address (http.maxConnectionsPerAddress)
   * @param total connections of the process (http.maxConnections)
   * @param registry where the open-connections gauge and the refusal counter go
   */
  constructor(
    private readonly perAddress: number,
    private readonly total: number,
    private readonly trust: TrustList,
    registry?: client.Registry,
  ) {
    if (!registry) return;
    const self = this;
    new client.Gauge({ name: 'coordinator_http_connections', help: 'Connections that are not core sockets (accepted, not yet closed or upgraded), counted against http.maxConnections.', registers: [registry], collect() { this.set(self.open); } });
    this.refusals = new client.Counter({ name: 'coordinator_http_connections_refused_total', help: 'Connections closed as they were accepted, by the limit they met: address (http.maxConnectionsPerAddress) or process (http.maxConnections).', labelNames: ['limit'] as const, registers: [registry] });
  }

  /**
   * A connection from `peer` (the TCP peer's textual address) was accepted: true when it may
   * stay (counted until {@link release}), false when it must be closed at once (not counted).
   */
  admit(peer: string): boolean {
    if (this.open >= this.total) return this.refuse('process');
    // Once per connection: one key computed (addressKey normalises the address).
    if (!this.trust.has(peer) && !this.byAddress.addIfUnder(peer, this.perAddress)) return this.refuse('address');
    this.open++;
    return true;
  }

  /** An admitted connection closed or became a core socket. */
  release(peer: string): void {
    if (this.open > 0) this.open--;
    if (!this.trust.has(peer)) this.byAddress.remove(peer);
  }

  private refuse(limit: Limit): false {
    this.refusals?.inc({ limit });
    return false;
  }
}
