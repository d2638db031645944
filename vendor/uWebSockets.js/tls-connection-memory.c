// How much malloc'd memory one BoringSSL server connection keeps after its TLS handshake, a
// request and a 270 KiB reply (an assignment's size), with and without
// SSL_set_shed_handshake_config (patches/uSockets-shed-handshake-config.patch). The server's
// options are uSockets' (read-ahead, moving write buffer, release buffers, TLS 1.2 minimum);
// its connections end on one shared BIO, as uSockets' do. glibc's mallinfo2 counts the bytes.
//
// Build against the BoringSSL of this build (BUILD.md), with an EC P-256 cert.pem/key.pem:
//   gcc -O2 -c tls-connection-memory.c -I <boringssl>/include
//   g++ tls-connection-memory.o <boringssl>/x64/libssl.a <boringssl>/x64/libcrypto.a -lpthread -o tls-connection-memory
//   ./tls-connection-memory <connections> <shed 0|1> <session tickets 0|1> [<session cache 0|1>]
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
int main(int argc, char **argv) {
  int n = atoi(argv[1]), shed = atoi(argv[2]), tickets = atoi(argv[3]), cache = argc > 4 ? atoi(argv[4]) : 1;
  SSL_CTX *sctx = SSL_CTX_new(TLS_method());
  SSL_CTX_set_read_ahead(sctx, 1);
  SSL_CTX_set_mode(sctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(sctx, "cert.pem") != 1 || SSL_CTX_use_PrivateKey_file(sctx, "key.pem", SSL_FILETYPE_PEM) != 1) { ERR_print_errors_fp(stderr); return 1; }
  SSL_CTX_set_cipher_list(sctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
  if (!tickets) SSL_CTX_set_num_tickets(sctx, 0);
  if (!cache) SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
  SSL_CTX *cctx = SSL_CTX_new(TLS_method());
  BIO *shared = BIO_new(BIO_s_mem());
  SSL **servers = calloc(n, sizeof *servers);
  static char big[270 * 1024];
  memset(big, 'a', sizeof big);
  size_t before = used();
  struct timespec t0, t1; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
  for (int i = 0; i < n; i++) {
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    if (shed) SSL_set_shed_handshake_config(s, 1);
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem()), *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    SSL_set_bio(s, s_in, s_out); SSL_set_bio(c, c_in, c_out);
    SSL_set_accept_state(s); SSL_set_connect_state(c);
    for (int k = 0; k < 10 && !(SSL_is_init_finished(s) && SSL_is_init_finished(c)); k++) {
      SSL_do_handshake(c); pump(c_out, s_in); SSL_do_handshake(s); pump(s_out, c_in);
    }
    if (!SSL_is_init_finished(s)) { fprintf(stderr, "handshake %d failed\n", i); ERR_print_errors_fp(stderr); return 1; }
    char buf[65536];
    SSL_write(c, "GET /core/v1 HTTP/1.1\r\n\r\n", 25); pump(c_out, s_in);
    if (SSL_read(s, buf, sizeof buf) <= 0) { fprintf(stderr, "read failed\n"); return 1; }
    // The assignment: 270 KiB from server to client, read by the client.
    int off = 0; while (off < (int) sizeof big) { int w = SSL_write(s, big + off, sizeof big - off); if (w <= 0) break; off += w; pump(s_out, c_in); while (SSL_read(c, buf, sizeof buf) > 0) {} }
    // As uSockets does: every server SSL reads and writes through the loop's shared BIOs.
    BIO_up_ref(shared); BIO_up_ref(shared);
    SSL_set_bio(s, shared, shared);
    SSL_free(c);
    servers[i] = s;
  }
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
  malloc_trim(0);
  size_t after = used();
  printf("n=%d shed=%d tickets=%d cache=%d: %.0f bytes per server connection; %.1f us CPU per handshake+exchange (both ends)\n", n, shed, tickets, cache, (double) (after - before) / n,
         ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);
  return 0;
}
