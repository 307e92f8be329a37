#include "console/vnc.h"

#include <pthread.h>
#include <rfb/rfb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "console/render.h"

#define PENDING_MAX 8
#define REFRESH_US 20000   /* the screen is compared 50 times a second */

struct console_vnc {
	struct console_vnc_src src;
	rfbScreenInfoPtr screen;
	struct font font;
	pthread_t thread;
	pthread_mutex_t lock;
	struct { int fd; bool view_only; } pending[PENDING_MAX];
	int npending;
	volatile int stop;
	struct vga_screen shown;   /* what the framebuffer shows now */
	bool drawn;
};

static void on_key(rfbBool down, rfbKeySym sym, rfbClientPtr cl)
{
	struct console_vnc *v = cl->screen->screenData;

	/* libvncserver already drops keys of view-only clients. */
	v->src.key(v->src.opaque, (uint32_t)sym, down);
}

/* Redraws the cells that changed since the last look and tells libvncserver where. */
static void refresh(struct console_vnc *v)
{
	static struct vga_screen now;
	uint32_t *fb = (uint32_t *)v->screen->frameBuffer;
	int r, c;

	if (!v->src.screen(v->src.opaque, &now))
		return;
	for (r = 0; r < VGA_ROWS; r++) {
		int first = -1, last = -1;
		for (c = 0; c < VGA_COLS; c++) {
			int i = r * VGA_COLS + c;
			bool cur = now.cursor_on && now.cursor_row == r && now.cursor_col == c;
			bool was = v->shown.cursor_on && v->shown.cursor_row == r && v->shown.cursor_col == c;
			if (v->drawn && now.cells[i] == v->shown.cells[i] && cur == was)
				continue;
			render_cell(&v->font, fb, RENDER_W, r, c, now.cells[i], cur);
			if (first < 0)
				first = c;
			last = c;
		}
		if (first >= 0)
			rfbMarkRectAsModified(v->screen, first * FONT_W, r * FONT_H, (last + 1) * FONT_W,
					      (r + 1) * FONT_H);
	}
	v->shown = now;
	v->drawn = true;
}

static void *vnc_thread(void *arg)
{
	struct console_vnc *v = arg;

	while (!v->stop) {
		int i, n;
		struct { int fd; bool view_only; } take[PENDING_MAX];

		pthread_mutex_lock(&v->lock);
		n = v->npending;
		memcpy(take, v->pending, sizeof(take));
		v->npending = 0;
		pthread_mutex_unlock(&v->lock);
		for (i = 0; i < n; i++) {
			rfbClientPtr cl = rfbNewClient(v->screen, take[i].fd);
			if (cl)
				cl->viewOnly = take[i].view_only;
		}
		refresh(v);
		rfbProcessEvents(v->screen, REFRESH_US);
	}
	return NULL;
}

int console_vnc_start(const struct console_vnc_src *src, struct console_vnc **out, struct err *e)
{
	const char *font = getenv("SEALVM_CONSOLE_FONT");
	struct console_vnc *v = calloc(1, sizeof(*v));
	int argc = 0, r;

	if (!v)
		return err_set(e, -ENOMEM, "VNC");
	r = font_load(font && *font ? font : FONT_DEFAULT, &v->font, e);
	if (r < 0) {
		free(v);
		return r;
	}
	v->src = *src;
	pthread_mutex_init(&v->lock, NULL);
	rfbLogEnable(0);
	v->screen = rfbGetScreen(&argc, NULL, RENDER_W, RENDER_H, 8, 3, 4);
	if (!v->screen) {
		free(v);
		return err_set(e, -ENOMEM, "libvncserver screen");
	}
	v->screen->frameBuffer = calloc(RENDER_W * RENDER_H, 4);
	v->screen->desktopName = "sealvm console";
	v->screen->port = 0;          /* no listening socket: the client accepts viewers */
	v->screen->ipv6port = 0;
	v->screen->autoPort = FALSE;
	v->screen->httpDir = NULL;
	v->screen->alwaysShared = TRUE;
	v->screen->cursor = NULL;     /* no pointer drawn over the text */
	v->screen->kbdAddEvent = on_key;
	v->screen->screenData = v;
	rfbInitServer(v->screen);
	refresh(v);
	r = pthread_create(&v->thread, NULL, vnc_thread, v);
	if (r) {
		rfbScreenCleanup(v->screen);
		free(v);
		return err_set(e, -r, "cannot start the VNC thread");
	}
	*out = v;
	return 0;
}

int console_vnc_add_client(struct console_vnc *v, int fd, bool view_only)
{
	int r = 0;

	pthread_mutex_lock(&v->lock);
	if (v->npending < PENDING_MAX) {
		v->pending[v->npending].fd = fd;
		v->pending[v->npending].view_only = view_only;
		v->npending++;
	} else {
		r = -EBUSY;
	}
	pthread_mutex_unlock(&v->lock);
	return r;
}

void console_vnc_stop(struct console_vnc *v)
{
	void *fb;

	if (!v)
		return;
	v->stop = 1;
	pthread_join(v->thread, NULL);
	fb = v->screen->frameBuffer;
	rfbShutdownServer(v->screen, TRUE);
	rfbScreenCleanup(v->screen);
	if (fb)
		explicit_bzero(fb, RENDER_W * RENDER_H * 4);
	free(fb);
	while (v->npending)
		close(v->pending[--v->npending].fd);
	free(v);
}
