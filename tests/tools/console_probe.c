/* Test and measurement tool for the owner's console.
 *
 *   console_probe latency URI OWNERDIR N    types N keys over the console protocol and times
 *                                           each echo on serial and on the text screen
 *   console_probe vnc HOST:PORT [TEXT]       connects as a VNC viewer (libvncclient), types TEXT
 *                                           as key events if given, then prints the text read
 *                                           back from the framebuffer pixels
 *   console_probe vnc-follow HOST:PORT TEXT1 FILE TEXT2
 *                                           one viewer connection throughout: types TEXT1, prints
 *                                           the screen, waits (up to 120 s) until FILE exists (the
 *                                           VM has moved), types TEXT2 and prints the screen again;
 *                                           fails if the viewer's connection breaks meanwhile
 *   console_probe ppm FILE                   finds the 640x400 text screen in a P6 image (a
 *                                           browser screenshot) and prints its text
 * Text is read back by exact glyph match against the console font (console/render.h). */
#include <openssl/ssl.h>
#include <poll.h>
#include <rfb/rfbclient.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "console/font.h"
#include "console/proto.h"
#include "console/render.h"
#include "console/tls.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int load_font(struct font *f)
{
	struct err e = { 0 };
	const char *p = getenv("SEALVM_CONSOLE_FONT");
	if (font_load(p && *p ? p : FONT_DEFAULT, f, &e) < 0) {
		fprintf(stderr, "console_probe: %s\n", e.msg);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- latency */

static uint8_t in[CPROTO_HDR + CPROTO_MAX];
static size_t inlen;

static int next_frame(SSL *ssl, struct cproto_frame *f, size_t *used, int timeout_ms)
{
	struct err e = { 0 };
	for (;;) {
		int r;
		if (*used) {
			memmove(in, in + *used, inlen - *used);
			inlen -= *used;
			*used = 0;
		}
		if (cproto_parse(in, inlen, f, used, &e) == 1)
			return 0;
		if (!SSL_pending(ssl)) {
			struct pollfd p = { .fd = SSL_get_fd(ssl), .events = POLLIN };
			if (poll(&p, 1, timeout_ms) <= 0)
				return -1;
		}
		r = SSL_read(ssl, in + inlen, (int)(sizeof(in) - inlen));
		if (r <= 0)
			return -1;
		inlen += (size_t)r;
	}
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int latency(const char *uri, const char *dir, int n)
{
	char host[256], port[16];
	struct err e = { 0 };
	SSL_CTX *ctx;
	SSL *ssl;
	double *ser = calloc((size_t)n, sizeof(double)), *scr = calloc((size_t)n, sizeof(double));
	uint8_t fr[64];
	size_t used = 0;
	struct cproto_frame f;
	int i;

	if (ctls_parse_uri(uri, host, sizeof(host), port, sizeof(port), &e) < 0 || !(ctx = ctls_client_ctx(dir, &e)) ||
	    ctls_connect(ctx, host, port, 10000, &ssl, &e) < 0) {
		fprintf(stderr, "console_probe: %s\n", e.msg);
		return 1;
	}
	struct cp_hello h = { CPROTO_VERSION, CP_HELLO_RW, UINT64_MAX };
	SSL_write(ssl, fr, (int)cp_encode_hello(fr, &h));
	if (next_frame(ssl, &f, &used, 5000) < 0 || f.type != CP_WELCOME) {
		fprintf(stderr, "console_probe: no WELCOME\n");
		return 1;
	}
	for (i = 0; i < n; i++) {
		char key = (char)('a' + i % 26);
		double t0, t_ser = -1, t_scr = -1;
		bool asked = false;

		usleep(100000);
		cproto_header(fr, CP_INPUT, 1);
		fr[CPROTO_HDR] = (uint8_t)key;
		t0 = now_ms();
		SSL_write(ssl, fr, CPROTO_HDR + 1);
		while ((t_ser < 0 || t_scr < 0) && now_ms() - t0 < 5000) {
			if (t_ser >= 0 && !asked) {
				cproto_header(fr, CP_SCREEN_REQ, 0);
				SSL_write(ssl, fr, CPROTO_HDR);
				asked = true;
			}
			if (next_frame(ssl, &f, &used, 5000) < 0)
				break;
			if (f.type == CP_OUTPUT && t_ser < 0 && memchr(f.payload + 8, key, f.len - 8))
				t_ser = now_ms() - t0;
			if (f.type == CP_SCREEN) {
				struct cp_screen s;
				asked = false;
				if (cp_decode_screen(&f, &s, &e) == 0 && s.cursor_col > 0) {
					uint8_t ch = s.cells[2 * (s.cursor_row * s.cols + s.cursor_col - 1)];
					if (ch == (uint8_t)key)
						t_scr = now_ms() - t0;
				}
			}
		}
		if (t_ser < 0 || t_scr < 0) {
			fprintf(stderr, "console_probe: key %d ('%c') not echoed within 5 s (serial %.1f, screen %.1f)\n",
				i, key, t_ser, t_scr);
			return 1;
		}
		ser[i] = t_ser;
		scr[i] = t_scr;
	}
	qsort(ser, (size_t)n, sizeof(double), cmp);
	qsort(scr, (size_t)n, sizeof(double), cmp);
	printf("keystroke-to-echo over %d keys: serial p50 %.2f ms p90 %.2f ms max %.2f ms; "
	       "screen p50 %.2f ms p90 %.2f ms max %.2f ms\n",
	       n, ser[n / 2], ser[n * 9 / 10], ser[n - 1], scr[n / 2], scr[n * 9 / 10], scr[n - 1]);
	return 0;
}

/* ---------------------------------------------------------------- VNC viewer */

static bool got_update;

static void quiet(const char *fmt, ...)
{
	(void)fmt;
}

static void on_update(rfbClient *cl, int x, int y, int w, int h)
{
	got_update = true;
}

static uint32_t *to_rgb(const uint8_t *fb, int w, int h)
{
	uint32_t *img = malloc((size_t)w * h * 4);
	int i;
	for (i = 0; i < w * h; i++)
		img[i] = (uint32_t)fb[4 * i] << 16 | (uint32_t)fb[4 * i + 1] << 8 | fb[4 * i + 2];
	return img;
}

static bool vnc_broken;

static void pump(rfbClient *cl, int ms)
{
	double end = now_ms() + ms;
	while (now_ms() < end && !vnc_broken) {
		int r = WaitForMessage(cl, 20000);
		if (r < 0 || (r > 0 && !HandleRFBServerMessage(cl)))
			vnc_broken = true;
	}
}

static void type_text(rfbClient *cl, const char *text)
{
	for (const char *p = text; *p; p++) {
		uint32_t sym = *p == '\n' ? 0xff0d : (uint8_t)*p;
		bool shift = (*p >= 'A' && *p <= 'Z');
		if (shift)
			SendKeyEvent(cl, 0xffe1, TRUE);
		SendKeyEvent(cl, sym, TRUE);
		SendKeyEvent(cl, sym, FALSE);
		if (shift)
			SendKeyEvent(cl, 0xffe1, FALSE);
		pump(cl, 30);
	}
	pump(cl, 1500);
}

static int print_fb(rfbClient *cl, const struct font *font)
{
	static char text_out[VGA_ROWS * (VGA_COLS + 1) + 1];

	if (!got_update || cl->width != RENDER_W || cl->height != RENDER_H) {
		fprintf(stderr, "console_probe: no %dx%d framebuffer (got %dx%d, update %d)\n", RENDER_W, RENDER_H,
			cl->width, cl->height, got_update);
		return 1;
	}
	uint32_t *img = to_rgb(cl->frameBuffer, cl->width, cl->height);
	int ok = render_decode_screen(font, img, cl->width, 0, 0, text_out);
	fputs(text_out, stdout);
	printf("cells matched: %d of %d\n", ok, VGA_ROWS * VGA_COLS);
	fflush(stdout);
	free(img);
	return 0;
}

static int vnc(const char *hostport, const char *text, const char *wait_file, const char *text2)
{
	struct font font;
	rfbClient *cl;
	char host[128], *colon;
	int argc = 0, rc;

	if (load_font(&font) < 0)
		return 1;
	snprintf(host, sizeof(host), "%s", hostport);
	colon = strrchr(host, ':');
	if (!colon)
		return 2;
	*colon = 0;
	rfbClientLog = rfbClientErr = quiet;
	cl = rfbGetClient(8, 3, 4);
	cl->serverHost = strdup(host);
	cl->serverPort = atoi(colon + 1);
	cl->GotFrameBufferUpdate = on_update;
	if (!rfbInitClient(cl, &argc, NULL)) {
		fprintf(stderr, "console_probe: VNC connection to %s failed\n", hostport);
		return 1;
	}
	pump(cl, 1500);
	if (text)
		type_text(cl, text);
	rc = print_fb(cl, &font);
	if (rc == 0 && wait_file) {
		double end = now_ms() + 120000;
		while (access(wait_file, F_OK) && now_ms() < end && !vnc_broken)
			pump(cl, 100);
		pump(cl, 1500);
		printf("== after %s\n", access(wait_file, F_OK) ? "(timed out)" : wait_file);
		if (text2)
			type_text(cl, text2);
		rc = print_fb(cl, &font);
	}
	if (vnc_broken) {
		fprintf(stderr, "console_probe: the VNC connection broke\n");
		rc = 1;
	}
	rfbClientCleanup(cl);
	return rc;
}

/* ---------------------------------------------------------------- screenshot */

static int ppm(const char *path)
{
	static char text_out[VGA_ROWS * (VGA_COLS + 1) + 1];
	struct font font;
	FILE *f = fopen(path, "rb");
	int w, h, maxv, x, y, best = -1, bx = 0, by = 0;
	uint8_t *raw;
	uint32_t *img;

	if (!f || fscanf(f, "P6 %d %d %d", &w, &h, &maxv) != 3 || maxv != 255 || w < RENDER_W || h < RENDER_H ||
	    w > 8192 || h > 8192) {
		fprintf(stderr, "console_probe: %s is not a P6 image of at least %dx%d\n", path, RENDER_W, RENDER_H);
		return 1;
	}
	fgetc(f);
	raw = malloc((size_t)w * h * 3);
	if (fread(raw, 3, (size_t)w * h, f) != (size_t)w * h) {
		fprintf(stderr, "console_probe: %s is cut short\n", path);
		return 1;
	}
	fclose(f);
	img = malloc((size_t)w * h * 4);
	for (int i = 0; i < w * h; i++)
		img[i] = (uint32_t)raw[3 * i] << 16 | (uint32_t)raw[3 * i + 1] << 8 | raw[3 * i + 2];
	if (load_font(&font) < 0)
		return 1;
	/* The screen's origin: the position where the first row's 80 cells all read as glyphs. */
	for (y = 0; y + RENDER_H <= h && best < VGA_COLS; y++)
		for (x = 0; x + RENDER_W <= w; x++) {
			int c, ok = 0;
			for (c = 0; c < VGA_COLS; c++) {
				if (render_decode_cell(&font, img, w, x + c * FONT_W, y) < 0)
					break;
				ok++;
			}
			/* a row of blanks matches anywhere in a flat area: ask for some ink too */
			if (ok == VGA_COLS) {
				int ink = 0;
				for (c = 0; c < VGA_COLS; c++)
					ink += render_decode_cell(&font, img, w, x + c * FONT_W, y) != ' ';
				if (!ink)
					continue;
			}
			if (ok > best) {
				best = ok, bx = x, by = y;
				if (ok == VGA_COLS)
					break;
			}
		}
	if (best < VGA_COLS) {
		fprintf(stderr, "console_probe: no 80-column text row found in %s\n", path);
		return 1;
	}
	int ok = render_decode_screen(&font, img, w, bx, by, text_out);
	fputs(text_out, stdout);
	printf("screen at %d,%d; cells matched: %d of %d\n", bx, by, ok, VGA_ROWS * VGA_COLS);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "latency"))
		return latency(argv[2], argv[3], atoi(argv[4]));
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "vnc"))
		return vnc(argv[2], argc == 4 ? argv[3] : NULL, NULL, NULL);
	if (argc == 6 && !strcmp(argv[1], "vnc-follow"))
		return vnc(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 3 && !strcmp(argv[1], "ppm"))
		return ppm(argv[2]);
	fprintf(stderr, "usage: console_probe latency URI OWNERDIR N | vnc HOST:PORT [TEXT] |\n"
			"       vnc-follow HOST:PORT TEXT1 FILE TEXT2 | ppm FILE\n");
	return 2;
}
