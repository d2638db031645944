// How much malloc'd memory one BoringSSL server connection keeps after its TLS handshake, a
// request and a 270 KiB reply (an assignment's size), with and without
// SSL_set_shed_handshake_config (patches/uSockets-shed-handshake-config.patch) and
// SSL_set_shed_established_session (patches/boringssl-shed-established-session.patch). The
// first connection then goes on: the client asks for a KeyUpdate, both ends exchange a message
// under the new keys, and both export keying material, which must agree. The server's
// options are uSockets' (read-ahead, moving write buffer, release buffers, TLS 1.2 minimum);
// its connections end on one shared BIO, as uSockets' do. glibc's mallinfo2 counts the bytes.
//
// Build against the BoringSSL of this build (BUILD.md), with an EC P-256 cert.pem/key.pem:
//   gcc -O2 -c tls-connection-memory.c -I <boringssl>/include
//   g++ tls-connection-memory.o <boringssl>/x64/libssl.a <boringssl>/x64/libcrypto.a -lpthread -o tls-connection-memory
//   ./tls-connection-memory <connections> <shed config 0|1> <session tickets 0|1> [<session cache 0|1>] [<shed session 0|1>]
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t used(void) { struct mallinfo2 m = mallinfo2(); return m.uordblks + m.hblkhd; }
static void pump(BIO *from, BIO *to) {
  char buf[65536]; int n;
  while ((n = BIO_read(from, buf, sizeof buf)) > 0) BIO_write(to, buf, n);
}
// A KeyUpdate asked for by the client, a message each way under the new keys, and exported
// keying material that both ends agree on: what a server connection still does after its
// handshake, whichever session it reports.
// The client's newest session ticket: TLS 1.3 delivers them after the handshake, to this callback.
static SSL_SESSION *ticket;
static int on_ticket(SSL *c, SSL_SESSION *session) { (void) c; SSL_SESSION_free(ticket); ticket = session; return 1; }
static int handshake(SSL *s, SSL *c) {
  for (int k = 0; k < 10 && !(SSL_is_init_finished(s) && SSL_is_init_finished(c)); k++) {
    SSL_do_handshake(c); pump(SSL_get_wbio(c), SSL_get_rbio(s)); SSL_do_handshake(s); pump(SSL_get_wbio(s), SSL_get_rbio(c));
  }
  return SSL_is_init_finished(s) && SSL_is_init_finished(c);
}
static void attach(SSL *s, SSL *c) {
  SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem())); SSL_set_bio(c, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  SSL_set_accept_state(s); SSL_set_connect_state(c);
}
static int check_after_handshake(SSL *s, SSL *c, char *buf) {
  if (!SSL_key_update(c, SSL_KEY_UPDATE_REQUESTED) || SSL_write(c, "ping", 4) != 4) { fprintf(stderr, "key update failed\n"); return 1; }
  pump(SSL_get_wbio(c), SSL_get_rbio(s));
  if (SSL_read(s, buf, 4) != 4 || memcmp(buf, "ping", 4) != 0) { fprintf(stderr, "server read after key update failed\n"); ERR_print_errors_fp(stderr); return 1; }
  if (SSL_write(s, "pong", 4) != 4) { fprintf(stderr, "server write after key update failed\n"); return 1; }
  pump(SSL_get_wbio(s), SSL_get_rbio(c));
  if (SSL_read(c, buf, 4) != 4 || memcmp(buf, "pong", 4) != 0) { fprintf(stderr, "client read after key update failed\n"); ERR_print_errors_fp(stderr); return 1; }
  uint8_t ks[32], kc[32];
  if (!SSL_export_keying_material(s, ks, sizeof ks, "EXPORTER-check", 14, NULL, 0, 0) ||
      !SSL_export_keying_material(c, kc, sizeof kc, "EXPORTER-check", 14, NULL, 0, 0) || memcmp(ks, kc, sizeof ks) != 0) {
    fprintf(stderr, "exported keying material differs\n"); return 1;
  }
  // The ticket the client got resumes a new connection to the same server context.
  if (ticket == NULL) { printf("no session ticket to check\n"); return 0; }
  SSL *s2 = SSL_new(SSL_get_SSL_CTX(s)), *c2 = SSL_new(SSL_get_SSL_CTX(c));
  attach(s2, c2);
  SSL_set_session(c2, ticket);
  int resumed = handshake(s2, c2) && SSL_session_reused(s2);
  SSL_free(s2); SSL_free(c2);
  const SSL_CIPHER *cipher = SSL_get_current_cipher(s);
  printf("after the handshake: %s, %s, key update and exporter agree, ticket %s\n", SSL_get_version(s), cipher ? SSL_CIPHER_get_name(cipher) : "(no cipher)",
         resumed ? "resumes" : "does not resume");
  return cipher == NULL;
}

int main(int argc, char **argv) {
  int n = atoi(argv[1]), shed = atoi(argv[2]), tickets = atoi(argv[3]), cache = argc > 4 ? atoi(argv[4]) : 1,
      shed_session = argc > 5 ? atoi(argv[5]) : 0;
  SSL_CTX *sctx = SSL_CTX_new(TLS_method());
  SSL_CTX_set_read_ahead(sctx, 1);
  SSL_CTX_set_mode(sctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(sctx, "cert.pem") != 1 || SSL_CTX_use_PrivateKey_file(sctx, "key.pem", SSL_FILETYPE_PEM) != 1) { ERR_print_errors_fp(stderr); return 1; }
  SSL_CTX_set_cipher_list(sctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
  if (!tickets) SSL_CTX_set_num_tickets(sctx, 0);
  if (!cache) SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
  SSL_CTX *cctx = SSL_CTX_new(TLS_method());
  SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
  SSL_CTX_sess_set_new_cb(cctx, on_ticket);
  BIO *shared = BIO_new(BIO_s_mem());
  SSL **servers = calloc(n, sizeof *servers);
  static char big[270 * 1024];
  memset(big, 'a', sizeof big);
  size_t before = used();
  struct timespec t0, t1; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
  for (int i = 0; i < n; i++) {
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    if (shed) SSL_set_shed_handshake_config(s, 1);
    if (shed_session) SSL_set_shed_established_session(s, 1);
    attach(s, c);
    BIO *s_in = SSL_get_rbio(s), *c_in = SSL_get_rbio(c), *s_out = SSL_get_wbio(s), *c_out = SSL_get_wbio(c);
    if (!handshake(s, c)) { fprintf(stderr, "handshake %d failed\n", i); ERR_print_errors_fp(stderr); return 1; }
    char buf[65536];
    SSL_write(c, "GET /core/v1 HTTP/1.1\r\n\r\n", 25); pump(c_out, s_in);
    if (SSL_read(s, buf, sizeof buf) <= 0) { fprintf(stderr, "read failed\n"); return 1; }
    // The assignment: 270 KiB from server to client, read by the client.
    int off = 0; while (off < (int) sizeof big) { int w = SSL_write(s, big + off, sizeof big - off); if (w <= 0) break; off += w; pump(s_out, c_in); while (SSL_read(c, buf, sizeof buf) > 0) {} }
    if (i == 0 && check_after_handshake(s, c, buf)) return 1;
    // As uSockets does: every server SSL reads and writes through the loop's shared BIOs.
    BIO_up_ref(shared); BIO_up_ref(shared);
    SSL_set_bio(s, shared, shared);
    SSL_free(c);
    servers[i] = s;
  }
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
  if (n > 1) printf("the first two connections report %s session\n", SSL_get_session(servers[0]) == SSL_get_session(servers[1]) ? "one shared" : "each its own");
  malloc_trim(0);
  size_t after = used();
  printf("n=%d shed=%d tickets=%d cache=%d shed_session=%d: %.0f bytes per server connection; %.1f us CPU per handshake+exchange (both ends)\n", n, shed, tickets, cache, shed_session, (double) (after - before) / n,
         ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);
  return 0;
}
