/* Control socket: JSON lines over a UNIX stream socket.
 *
 * Request:  one line holding a JSON object {"cmd":"NAME", ...args}\n
 * Response: one line, {"ok":true, ...result fields}\n or {"ok":false,"error":"message"}\n
 *
 * Server: one listening thread, one thread per connection (at most
 * CTL_MAX_CONNS; further connections get an error line and are closed).
 * Requests on one connection are handled in order; different connections run
 * concurrently, so the handler must be thread-safe. Lines longer than
 * CTL_MAX_LINE bytes get an error response and the connection is closed; a
 * malformed line gets an error response and the connection stays usable.
 * Empty lines are ignored; a trailing "\r" is stripped; an unterminated last
 * line (client disconnected mid-line) is discarded, never executed. */
#ifndef SEALVM_CONTROL_CONTROL_H
#define SEALVM_CONTROL_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

#include "util/err.h"

#define CTL_MAX_LINE  65536   /* bytes per request line, newline excluded */
#define CTL_MAX_CONNS 8       /* concurrent connections */

/* Who is on the other end of a control connection: the kernel's SO_PEERCRED,
 * taken when the connection was accepted (known = false if that failed). The
 * trust policy names local principals by this uid. */
struct ctl_peer {
	bool known;
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/* Called on a connection thread; may block (a migration can take seconds).
 * peer is the connection's credentials (never NULL). req is the whole request object (borrowed: do not decref; cmd points into
 * it). Returns a new reference to a JSON object with the result fields (the
 * server adds "ok"; a result key "ok" is ignored), or NULL with e set (the
 * message becomes "error"). Handlers must be thread-safe (the VMM side locks)
 * and must never call ctl_server_stop (it joins the calling thread). */
typedef json_t *(*ctl_handler_fn)(void *opaque, const struct ctl_peer *peer, const char *cmd, json_t *req,
				  struct err *e);

struct ctl_server;

/* Creates the socket at path with mode 0600 and starts serving. A stale
 * socket at path (nothing listening) is replaced; a live one is an error
 * ("control socket PATH is in use", -EADDRINUSE); a non-socket file at path
 * is never removed (-EEXIST). */
int ctl_server_start(const char *path, ctl_handler_fn fn, void *opaque,
		     struct ctl_server **out, struct err *e);

/* Closes the listener and all connections, joins all threads and unlinks path
 * (only if it is still our socket). Idle connections are dropped promptly; a
 * handler already running is waited for and its response is still sent, so a
 * "quit" handler can just signal the main loop, which then calls this. NULL is
 * a no-op. */
void ctl_server_stop(struct ctl_server *s);

/* Parses one request line (no newline; a trailing "\r" is tolerated; the
 * buffer need not be NUL-terminated). Returns a new json object holding a
 * string "cmd", or NULL with e set: "request is not valid JSON at line 1
 * column 5: ...", "request is not a JSON object", "request has no \"cmd\"
 * string", "request too long (more than 65536 bytes)". */
json_t *ctl_parse_request(const char *line, size_t len, struct err *e);

/* Client side ("sealvm ctl"): argv[0]="ctl", then [--timeout SEC] SOCKET
 * [--timeout SEC] COMMAND [ARGS...]. Builds the request, sends it, waits for
 * the response (no timeout unless --timeout), prints the response JSON to
 * stdout. Returns the process exit code: 0 ok, 1 the server answered an error
 * (also printed to stderr as "sealvm: <message>"), 2 usage/connection/timeout
 * errors. Never exits. */
int ctl_client_main(int argc, char **argv);

#endif
