/* The owner's console server, inside sealvm and outside both the guest and the
 * operator's control plane (DESIGN.md §8).
 *
 * It listens on tls://ADDR:PORT with the host's certificate and admits only clients
 * whose certificate chains to the VM owner's CA (and that the policy hook allows).
 * The first client that asks for it gets the one read-write session; further clients
 * get read-only sessions or are refused, as the owner chose (--console-others).
 * Once a machine is bound, the guest's serial output goes only to its scrollback
 * (sealvm memory) and to attached clients; the text screen is device memory, not
 * guest RAM. Clients may subscribe to the screen and render it themselves (the
 * client's VNC and web bridges do).
 *
 * It may listen before there is a machine (a destination waiting for a migration):
 * clients then wait. Binding a machine takes the console state the machine brought
 * (console/carry.c): a migration's, opened with the key that came inside TLS, or a
 * snapshot's, which stays locked, its VM paused, until an owner's client unwraps the
 * key. When the VM is handed over to another host, every client is redirected there
 * inside its own TLS session and follows by itself. */
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
	const char *owner_crl;  /* optional: the owner's revocations (NULL: none) */
	enum console_others others;
	console_policy_fn policy;
	void *policy_ctx;
};

struct console_stats {
	unsigned rw, ro;         /* sessions attached now */
	uint64_t accepted, refused;
	uint64_t serial_bytes;   /* guest serial output so far */
	bool locked;             /* waiting for the owner's key */
};

/* Listens (no machine yet: clients wait for one). */
int console_server_start(const struct console_opts *o, struct console_server **out, struct err *e);
/* Where the bound machine came from: what console state it may bring along. */
enum console_origin {
	CONSOLE_BOOT,       /* booted here: none */
	CONSOLE_INCOMING,   /* migrated here: sealed state and its key (it came inside TLS) */
	CONSOLE_RESTORE,    /* restored from a snapshot: sealed state and its key wrapped for the owner */
};

/* Takes the machine's serial port, keyboard and screen, and the console state the
 * machine's load brought: a migration's is opened and loaded; a snapshot's stays
 * locked and holds the VM paused (PAUSE_CONSOLE) until the owner unlocks it.
 * Refuses state it cannot open, or that does not fit where the machine came from. */
int console_server_bind(struct console_server *s, struct machine *m, enum console_origin from, struct err *e);
/* Gives the machine back (an incoming VM that is discarded): clients are told. */
void console_server_unbind(struct console_server *s);
int console_server_port(struct console_server *s);
/* tls://HOST:PORT with the port it listens on ("tls://:PORT" for a wildcard address). */
const char *console_server_uri(struct console_server *s);
void console_server_stats(struct console_server *s, struct console_stats *st);
/* Sends clients what they are owed (a redirect) for up to a second, detaches
 * everything and gives the serial port back. */
void console_server_stop(struct console_server *s);

#endif
