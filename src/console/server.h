/* The owner's console server, inside sealvm and outside both the guest and the
 * operator's control plane (DESIGN.md §8).
 *
 * It listens on tls://ADDR:PORT with the host's certificate and admits only clients
 * whose certificate chains to the VM owner's CA (and that the policy hook allows).
 * The first client that asks for it gets the one read-write session; further clients
 * get read-only sessions or are refused, as the owner chose (--console-others).
 * While it runs, the guest's serial output goes only to its scrollback (sealvm
 * memory) and to attached clients; the text screen is device memory, not guest RAM.
 * Attached clients may also open VNC streams, rendered by libvncserver (console/vnc.h). */
#ifndef SEALVM_CONSOLE_SERVER_H
#define SEALVM_CONSOLE_SERVER_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

#include "console/seal.h"
#include "console/state.h"
#include "util/err.h"

struct machine;
struct console_server;

enum console_others { CONSOLE_OTHERS_RO, CONSOLE_OTHERS_REFUSE };

/* Policy hook: may this client (its certificate already verified against the owner
 * CA) attach, read-write or read-only? Return false and say why to refuse. The trust
 * work's policy plugs in here; without one, the owner CA decides alone. */
typedef bool (*console_policy_fn)(void *ctx, X509 *peer, bool read_write, char *why, size_t len);

struct console_opts {
	const char *uri;        /* tls://ADDR:PORT (port 0: any free port) */
	const char *host_dir;   /* this host's cert.pem and key.pem */
	const char *owner_ca;   /* the VM owner's CA: the only trust root for clients */
	enum console_others others;
	console_policy_fn policy;
	void *policy_ctx;
};

struct console_stats {
	unsigned rw, ro;         /* sessions attached now */
	uint64_t accepted, refused;
	uint64_t serial_bytes;   /* guest serial output so far */
};

int console_server_start(struct machine *m, const struct console_opts *o, struct console_server **out,
			 struct err *e);
int console_server_port(struct console_server *s);
void console_server_stats(struct console_server *s, struct console_stats *st);
/* Detaches everything and gives the serial port back to its file descriptor. */
void console_server_stop(struct console_server *s);

/* The whole console state (the machine must be paused), and its sealed form under
 * this console's key, for a snapshot or a migration. sealed needs
 * sizeof(struct console_state) + SEAL_OVERHEAD bytes. */
void console_server_save(struct console_server *s, struct console_state *out);
int console_server_load(struct console_server *s, const struct console_state *in, struct err *e);
int console_server_seal(struct console_server *s, uint8_t *sealed, size_t *len, struct err *e);
int console_server_unseal(struct console_server *s, const uint8_t *sealed, size_t len, struct err *e);

#endif
