/* A local VNC server for the owner's console client: libvncserver renders the VGA
 * text screen (console/render.h) that the console server sends, and hands the
 * viewer's keys back as keysyms for KEY frames. It runs in `sealvm console`, on the
 * owner's side: the RFB session never leaves the owner's machine, so it survives the
 * VM moving to another host (the client just follows), and no RFB parser runs in the
 * VMM. It never listens by itself: the client accepts viewers (loopback only) and
 * hands their sockets over. */
#ifndef SEALVM_CONSOLE_VNC_H
#define SEALVM_CONSOLE_VNC_H

#include <stdbool.h>
#include <stdint.h>

#include "dev/vga.h"
#include "util/err.h"

struct console_vnc;

struct console_vnc_src {
	/* The screen to show now; false: nothing yet (the framebuffer stays as it is). */
	bool (*screen)(void *opaque, struct vga_screen *out);
	/* A viewer's key (X11 keysym). */
	void (*key)(void *opaque, uint32_t keysym, bool down);
	void *opaque;
};

/* Starts the rendering thread; the font comes from FONT_DEFAULT (or $SEALVM_CONSOLE_FONT). */
int console_vnc_start(const struct console_vnc_src *src, struct console_vnc **out, struct err *e);
/* Hands a connected socket to libvncserver; view_only viewers cannot type. Takes fd. */
int console_vnc_add_client(struct console_vnc *v, int fd, bool view_only);
void console_vnc_stop(struct console_vnc *v);

#endif
