#include "console/proto.h"

#include <string.h>

int cproto_parse(const uint8_t *buf, size_t len, struct cproto_frame *f, size_t *used, struct err *e)
{
	uint32_t n;

	if (len < CPROTO_HDR)
		return 0;
	if (buf[1] || buf[2] || buf[3])
		return err_set(e, -EPROTO, "console frame: reserved header bytes are not zero");
	n = get_be32(buf + 4);
	if (n > CPROTO_MAX)
		return err_set(e, -EPROTO, "console frame of %u bytes (at most %u)", n, CPROTO_MAX);
	if (len - CPROTO_HDR < n)
		return 0;
	f->type = buf[0];
	f->len = n;
	f->payload = buf + CPROTO_HDR;
	*used = CPROTO_HDR + n;
	return 1;
}

void cproto_header(uint8_t hdr[CPROTO_HDR], uint8_t type, uint32_t len)
{
	hdr[0] = type;
	hdr[1] = hdr[2] = hdr[3] = 0;
	put_be32(hdr + 4, len);
}

static int want_len(const struct cproto_frame *f, uint32_t n, const char *what, struct err *e)
{
	if (f->len != n)
		return err_set(e, -EPROTO, "console %s: %u bytes, expected %u", what, f->len, n);
	return 0;
}

int cp_decode_hello(const struct cproto_frame *f, struct cp_hello *h, struct err *e)
{
	if (want_len(f, 16, "HELLO", e))
		return -EPROTO;
	h->version = get_be32(f->payload);
	h->flags = get_be32(f->payload + 4);
	h->from = get_be64(f->payload + 8);
	if (h->version != CPROTO_VERSION)
		return err_set(e, -EPROTO, "console protocol version %u not supported (this sealvm speaks %u)",
			       h->version, CPROTO_VERSION);
	if (h->flags & ~(CP_HELLO_RW | CP_HELLO_SCREEN))
		return err_set(e, -EPROTO, "console HELLO: unknown flags 0x%x", h->flags);
	return 0;
}

int cp_decode_input(const struct cproto_frame *f, struct err *e)
{
	if (f->len == 0 || f->len > CPROTO_INPUT_MAX)
		return err_set(e, -EPROTO, "console INPUT of %u bytes (1 to %u)", f->len, CPROTO_INPUT_MAX);
	return 0;
}

int cp_decode_key(const struct cproto_frame *f, struct cp_key *k, struct err *e)
{
	if (want_len(f, 5, "KEY", e))
		return -EPROTO;
	k->keysym = get_be32(f->payload);
	if (f->payload[4] > 1)
		return err_set(e, -EPROTO, "console KEY: down flag %u", f->payload[4]);
	k->down = f->payload[4];
	return 0;
}

/* A console address as this protocol carries it: tls://HOST:PORT, printable, bounded. */
static int check_uri(const uint8_t *p, size_t n, struct err *e)
{
	size_t i;

	if (n < 8 || n > CPROTO_URI_MAX || memcmp(p, "tls://", 6))
		return err_set(e, -EPROTO, "console address of %zu bytes is not tls://HOST:PORT", n);
	for (i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return err_set(e, -EPROTO, "console address has a non-printable byte");
	return 0;
}

int cp_decode_redirect(const struct cproto_frame *f, struct cp_redirect *r, struct err *e)
{
	if (f->len < 16)
		return err_set(e, -EPROTO, "console REDIRECT of %u bytes", f->len);
	r->total = get_be64(f->payload);
	r->input_frames = get_be64(f->payload + 8);
	if (check_uri(f->payload + 16, f->len - 16, e) < 0)
		return -EPROTO;
	memcpy(r->uri, f->payload + 16, f->len - 16);
	r->uri[f->len - 16] = 0;
	return 0;
}

int cp_decode_prepare(const struct cproto_frame *f, char *uri, struct err *e)
{
	if (check_uri(f->payload, f->len, e) < 0)
		return -EPROTO;
	memcpy(uri, f->payload, f->len);
	uri[f->len] = 0;
	return 0;
}

int cp_decode_unlock(const struct cproto_frame *f, uint8_t key[CPROTO_KEY_LEN], struct err *e)
{
	if (want_len(f, CPROTO_KEY_LEN, "UNLOCK", e))
		return -EPROTO;
	memcpy(key, f->payload, CPROTO_KEY_LEN);
	return 0;
}

int cp_decode_welcome(const struct cproto_frame *f, struct cp_welcome *w, struct err *e)
{
	if (want_len(f, 24, "WELCOME", e))
		return -EPROTO;
	w->version = get_be32(f->payload);
	w->mode = get_be32(f->payload + 4);
	w->from = get_be64(f->payload + 8);
	w->total = get_be64(f->payload + 16);
	if (w->version != CPROTO_VERSION || (w->mode != CP_MODE_RW && w->mode != CP_MODE_RO) ||
	    w->from > w->total)
		return err_set(e, -EPROTO, "console WELCOME: version %u, mode %u, offsets %llu/%llu invalid",
			       w->version, w->mode, (unsigned long long)w->from, (unsigned long long)w->total);
	return 0;
}

int cp_decode_output(const struct cproto_frame *f, struct cp_output *o, struct err *e)
{
	if (f->len <= 8)
		return err_set(e, -EPROTO, "console OUTPUT of %u bytes", f->len);
	o->offset = get_be64(f->payload);
	o->data = f->payload + 8;
	o->len = f->len - 8;
	return 0;
}

int cp_decode_screen(const struct cproto_frame *f, struct cp_screen *s, struct err *e)
{
	const uint8_t *p = f->payload;

	if (f->len < 12)
		return err_set(e, -EPROTO, "console SCREEN of %u bytes", f->len);
	s->rows = (uint16_t)(p[0] << 8 | p[1]);
	s->cols = (uint16_t)(p[2] << 8 | p[3]);
	s->cursor_row = (uint16_t)(p[4] << 8 | p[5]);
	s->cursor_col = (uint16_t)(p[6] << 8 | p[7]);
	s->cursor_on = p[8];
	if (!s->rows || !s->cols || s->rows > 256 || s->cols > 256 ||
	    f->len != 12 + 2u * s->rows * s->cols || s->cursor_row >= s->rows || s->cursor_col >= s->cols)
		return err_set(e, -EPROTO, "console SCREEN: %ux%u cells, cursor %u,%u in %u bytes", s->rows,
			       s->cols, s->cursor_row, s->cursor_col, f->len);
	s->cells = p + 12;
	return 0;
}

void cp_decode_error(const struct cproto_frame *f, char *buf, size_t len)
{
	size_t i, n = 0;

	if (!len)
		return;
	for (i = 0; i < f->len && n + 1 < len; i++) {
		uint8_t c = f->payload[i];
		buf[n++] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
	}
	buf[n] = 0;
}

size_t cp_encode_hello(uint8_t *buf, const struct cp_hello *h)
{
	cproto_header(buf, CP_HELLO, 16);
	put_be32(buf + 8, h->version);
	put_be32(buf + 12, h->flags);
	put_be64(buf + 16, h->from);
	return CPROTO_HDR + 16;
}

size_t cp_encode_welcome(uint8_t *buf, const struct cp_welcome *w)
{
	cproto_header(buf, CP_WELCOME, 24);
	put_be32(buf + 8, w->version);
	put_be32(buf + 12, w->mode);
	put_be64(buf + 16, w->from);
	put_be64(buf + 24, w->total);
	return CPROTO_HDR + 24;
}

size_t cp_encode_key(uint8_t *buf, const struct cp_key *k)
{
	cproto_header(buf, CP_KEY, 5);
	put_be32(buf + 8, k->keysym);
	buf[12] = k->down;
	return CPROTO_HDR + 5;
}

size_t cp_encode_redirect(uint8_t *buf, const struct cp_redirect *r)
{
	size_t n = strnlen(r->uri, CPROTO_URI_MAX);

	cproto_header(buf, CP_REDIRECT, (uint32_t)(16 + n));
	put_be64(buf + 8, r->total);
	put_be64(buf + 16, r->input_frames);
	memcpy(buf + 24, r->uri, n);
	return CPROTO_HDR + 16 + n;
}

size_t cp_encode_prepare(uint8_t *buf, const char *uri)
{
	size_t n = strnlen(uri, CPROTO_URI_MAX);

	cproto_header(buf, CP_PREPARE, (uint32_t)n);
	memcpy(buf + CPROTO_HDR, uri, n);
	return CPROTO_HDR + n;
}
