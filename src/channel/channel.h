/* Network channel: one connected, mutually authenticated byte stream between two
 * sealvm hosts (DESIGN.md §1 property 3, §3 phase 1).
 *
 * tls://HOST:PORT  TLS 1.3 only, both sides present a certificate signed by the cluster
 *                  CA (tls_dir/ca.pem); the client also checks that the server's
 *                  certificate names HOST (DNS or IP SAN; the subject CN is never used).
 * tcp://HOST:PORT  plain TCP, no authentication, no encryption: the explicitly insecure
 *                  mode that exists to measure what encryption costs.
 *
 * tls_dir holds ca.pem (cluster CA), cert.pem (this host's certificate, optionally
 * followed by intermediates), key.pem (its private key, which must be mode 0600: a
 * key readable by others is refused, as ssh does) and optionally crl.pem (revoked
 * certificates, checked for every peer); see scripts/mkcerts.sh.
 * A peer's own certificate must be a host certificate for its role: CA:FALSE, and an
 * extended key usage with serverAuth (the listening side) or clientAuth (the
 * connecting side); a CA certificate or a certificate for the other role is refused.
 *
 * Semantics common to all calls:
 *  - Every function returns 0 or a negative errno and fills e with a message naming
 *    the cause. Codes: -EINVAL bad URI/argument, -ETIMEDOUT timeout, -ENODATA peer
 *    closed the connection, -EACCES peer not authenticated (certificate untrusted,
 *    expired, wrong name, missing), -EPROTO other TLS failure, -ECANCELED the channel
 *    was chan_shutdown(), other -errno from the socket.
 *  - After any error on a connected channel it is unusable: later calls fail with the
 *    same code ("channel unusable after earlier error: ..."). Close it.
 *  - Writes are buffered (TLS: up to 64 KiB of plaintext + 128 KiB of records; TCP:
 *    256 KiB): call chan_flush() when the peer must see the bytes. chan_read_full()
 *    flushes pending writes itself before it waits for the peer, so a request/response
 *    exchange cannot deadlock. chan_close() does NOT flush; if unflushed bytes are
 *    dropped it also skips the TLS close_notify, so the peer sees an unclean end.
 *  - Timeouts: chan_connect/chan_accept take a deadline for connecting and the whole
 *    handshake (timeout_ms <= 0: no limit). chan_set_timeout() bounds each socket wait
 *    during reads/writes (no progress for timeout_ms → -ETIMEDOUT "... timed out").
 *  - One channel is used by one thread at a time; only chan_shutdown() (and the byte
 *    counters) may be called from another thread.
 *  - SIGPIPE: never raised. Plain TCP uses MSG_NOSIGNAL; TLS runs over an internal
 *    OpenSSL BIO that also sends with MSG_NOSIGNAL. No global signal state is touched.
 *  - Handshake: after the TLS handshake the server sends a one-byte confirmation that
 *    the client waits for in chan_connect(); so when the server rejects the client's
 *    certificate, chan_connect() fails with a clear error instead of the first read.
 */
#ifndef SEALVM_CHANNEL_CHANNEL_H
#define SEALVM_CHANNEL_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/bstream.h"
#include "util/err.h"

struct chan;            /* one connected, authenticated byte channel */
struct chan_listener;
enum chan_kind { CHAN_TLS, CHAN_TCP };

/* uri: "tls://HOST:PORT" or "tcp://HOST:PORT". HOST may be an IPv4 literal, [IPv6]
 * (returned without brackets), or a DNS name; PORT is decimal 0..65535. */
int chan_parse_uri(const char *uri, enum chan_kind *kind, char *host, size_t hostlen,
		   char *port, size_t portlen, struct err *e);

/* Listens on HOST:PORT (port 0: any free port). For tls:// the credentials in tls_dir
 * are loaded now, so a missing or bad file is reported here. tls_dir is unused for tcp://. */
int chan_listen(const char *uri, const char *tls_dir, struct chan_listener **out, struct err *e);
int chan_listener_fd(struct chan_listener *l);      /* for poll(): readable = a client is waiting */
int chan_listener_port(struct chan_listener *l);    /* actual port (URI may say port 0) */
enum chan_kind chan_listener_kind(struct chan_listener *l);
/* Accepts one connection and completes the handshake within timeout_ms (<= 0: no limit).
 * A client that fails authentication gives an error here (the listener stays usable). */
int chan_accept(struct chan_listener *l, int timeout_ms, struct chan **out, struct err *e);
void chan_listener_close(struct chan_listener *l);
/* The two halves of chan_accept, for servers that run handshakes concurrently:
 * takes one waiting TCP connection without waiting (-EAGAIN if none), giving its fd,
 * "host:port" of the peer and its bare address (for per-address limits)... */
int chan_accept_fd(struct chan_listener *l, int *fd, char *where, size_t len, char *addr, size_t alen,
		   struct err *e);
/* ...then the handshake on that fd (consumed, even on failure) within timeout_ms. */
int chan_handshake(struct chan_listener *l, int fd, const char *where, int timeout_ms, struct chan **out,
		   struct err *e);

/* Connects; for TLS verifies the peer certificate chains to tls_dir/ca.pem AND names
 * HOST (DNS SAN or IP SAN). Connecting and the handshake finish within timeout_ms. */
int chan_connect(const char *uri, const char *tls_dir, int timeout_ms, struct chan **out,
		 struct err *e);

int chan_writev(struct chan *c, const struct iovec *iov, int iovcnt, struct err *e);   /* all or error */
int chan_write(struct chan *c, const void *buf, size_t len, struct err *e);
int chan_flush(struct chan *c, struct err *e);
/* Reads exactly len bytes: -ENODATA "connection closed by peer" on EOF. */
int chan_read_full(struct chan *c, void *buf, size_t len, struct err *e);
/* Per read/write socket wait; 0 = none. Returns 0 or -errno. */
int chan_set_timeout(struct chan *c, int timeout_ms);
/* Bytes already received and buffered (poll() on chan_fd() does not see them). */
size_t chan_pending(struct chan *c);

const char *chan_peer_name(struct chan *c);  /* peer certificate subject CN ("" for tcp) */
const char *chan_cipher(struct chan *c);     /* negotiated TLS cipher suite ("none" for tcp) */
enum chan_kind chan_kind(struct chan *c);
int chan_fd(struct chan *c);
/* Abrupt: shuts the socket down so a reader or writer blocked in another thread returns
 * (-ECANCELED "channel shut down"). Safe from any thread while the channel is open;
 * the owner must still chan_close() it afterwards (not concurrently with this call). */
void chan_shutdown(struct chan *c);
/* Sends a TLS close_notify if possible (never blocks for long), closes, frees. NULL ok. */
void chan_close(struct chan *c);
/* The peer's certificate (an OpenSSL X509 *, owned by the channel; NULL for tcp).
 * Lets the trust layer check that an attestation is signed by the key the peer
 * authenticated with. */
struct x509_st;
struct x509_st *chan_peer_cert(struct chan *c);
/* True if the peer's certificate names name in a DNS SAN (exact, no wildcards). */
bool chan_peer_has_name(struct chan *c, const char *name);
/* True if it names one of the comma-separated names (at most 511 characters), as
 * --allow-from lists them. */
bool chan_peer_named_in(struct chan *c, const char *names);
/* SHA-256 of the peer certificate (DER), e.g. for the audit log. -ENOTSUP for tcp. */
int chan_peer_fingerprint(struct chan *c, unsigned char sha256[32], struct err *e);
/* TLS 1.3 exporter (RFC 8446 §7.5): a secret both ends of this very session derive
 * alike. Put it into signed attestation evidence to bind the evidence to the channel
 * (a relayed quote from another session will not match). -ENOTSUP for tcp. */
int chan_export_keying_material(struct chan *c, const char *label, const void *context,
				size_t context_len, void *out, size_t len, struct err *e);
/* A bstream view of the channel, valid until chan_close(); flush = chan_flush. */
struct bstream *chan_bstream(struct chan *c);

/* Byte counters for reports. bytes_sent/received count bytes on the wire (TLS record
 * overhead and handshake included); payload_* count application bytes that went
 * through chan_writev/chan_read_full. May be read from another thread. */
uint64_t chan_bytes_sent(struct chan *c);
uint64_t chan_bytes_received(struct chan *c);
uint64_t chan_payload_sent(struct chan *c);
uint64_t chan_payload_received(struct chan *c);

#endif
