/* The console's VNC side: libvncserver renders the VGA text screen and turns the
 * viewer's keys into PS/2 scan codes. It never listens on a socket of its own: each
 * viewer arrives as one end of a socketpair whose other end the console server relays
 * through the owner's TLS session (RFB_* frames). */
#ifndef SEALVM_CONSOLE_VNC_H
#define SEALVM_CONSOLE_VNC_H

#include <stdbool.h>

#include "util/err.h"

struct machine;
struct console_vnc;

/* Starts the rendering thread; the font comes from FONT_DEFAULT (or $SEALVM_CONSOLE_FONT). */
int console_vnc_start(struct machine *m, struct console_vnc **out, struct err *e);
/* Hands a connected socket to libvncserver; view_only viewers cannot type. Takes fd. */
int console_vnc_add_client(struct console_vnc *v, int fd, bool view_only);
void console_vnc_stop(struct console_vnc *v);

#endif
