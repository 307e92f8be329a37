/* Inside the console server: what server.c (sessions and the I/O thread) and
 * carry.c (binding a machine; its state in snapshots and migrations; unlocking a
 * restored console; following a migrated VM) share. Not for other parts. */
#ifndef SEALVM_CONSOLE_SERVER_IMPL_H
#define SEALVM_CONSOLE_SERVER_IMPL_H

#include <openssl/ssl.h>
#include <pthread.h>

#include "channel/tls_ctx.h"
#include "console/proto.h"
#include "console/scrollback.h"
#include "console/server.h"
#include "console/state.h"
#include "vmm/machine.h"

#define MAX_SESSIONS 8
#define RESERVE_NS (30ull * 1000000000ull)   /* the read-write session waits this long for its owner */

struct buf {
	uint8_t *p;
	size_t off, len, cap;     /* data is p[off .. off+len) */
};

/* HANDSHAKE -> HELLO -> WAIT (until a VM is bound and its console unlocked) -> OPEN -> CLOSING */
enum sess_state { SS_HANDSHAKE, SS_HELLO, SS_WAIT, SS_OPEN, SS_CLOSING };

struct session {
	bool used;
	int fd;
	SSL *ssl;
	struct tls_vfy vfy;       /* why the client's certificate was refused */
	enum sess_state st;
	int mode;                 /* CP_MODE_RW / CP_MODE_RO once open */
	struct cp_hello hello;
	uint64_t next;            /* next serial offset to send */
	uint64_t in_frames;       /* INPUT and KEY frames taken (a REDIRECT says how many) */
	uint64_t scr_sent;        /* screen generation last sent to a subscriber */
	bool locked_sent;
	bool prepared;            /* told where the VM is about to go */
	uint64_t deadline_ns;
	uint8_t in[CPROTO_HDR + CPROTO_MAX];
	size_t inlen;
	struct buf out;
	uint8_t fp[32];           /* SHA-256 of the client's certificate */
	uint8_t spki[CONSOLE_SPKI_MAX];
	size_t spki_len;          /* its public key (DER) */
};

struct console_server {
	struct console_opts o;
	SSL_CTX *ctx;
	int lfd, port, evfd;
	char uri[CPROTO_URI_MAX + 1];   /* where it listens, port resolved */
	pthread_t thread;
	volatile int stop;
	struct scrollback sb;

	pthread_mutex_t lock;     /* all below; lock order: lock, then a device's */
	struct machine *m;        /* NULL until bound */
	bool frozen;              /* a save took the state: no input into the devices */
	uint8_t inq[CONSOLE_INPUT_MAX];
	size_t inq_len;           /* typed input taken from the owner, not yet in the UART */
	bool locked;              /* a restored console waiting for its owner's key */
	struct machine_ext_sec sealed, wrap;
	uint8_t reserve_fp[32];   /* the read-write owner before a migration... */
	uint64_t reserve_until;   /* ...gets the read-write session back until then */
	uint8_t owner_spki[CONSOLE_SPKI_MAX];
	uint32_t owner_spki_len;  /* the last read-write owner's public key (snapshots are wrapped for it) */
	char moving_to[CPROTO_URI_MAX + 1];   /* where the VM is about to go ("" if nowhere) */
	bool moved;               /* the VM runs elsewhere now: every client is sent there */
	char moved_to[CPROTO_URI_MAX + 1];
	struct session sess[MAX_SESSIONS];
	uint64_t accepted, refused;
	bool draining;

	/* I/O thread only */
	struct vga_screen scr;
	uint64_t scr_gen, scr_next_ns;
};

void console_wake(struct console_server *cs);
/* Queues a frame for a session (the I/O thread sends it). */
int console_send_frame(struct session *s, uint8_t type, const void *p, size_t len);
void console_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* carry.c */
extern const struct machine_ext_ops console_ext_ops;
/* Loads a state into the bound machine's devices and the console (lock held). */
int console_load_locked(struct console_server *cs, const struct console_state *st, struct err *e);
/* A client sent the key of a locked console: opens and loads it, resumes the VM. */
int console_unlock(struct console_server *cs, const uint8_t key[CPROTO_KEY_LEN], struct err *e);

#endif
