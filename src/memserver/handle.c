/* One memory server request: checked whole, applied to the stores, answered. */
#include <stdio.h>
#include <string.h>

#include "memserver/server.h"

static size_t answer(uint8_t *ans, uint16_t op, uint64_t tag, const void *body, uint32_t len)
{
	struct ms_hdr h = { .op = op, .len = len, .tag = tag };

	memcpy(ans, &h, sizeof(h));
	if (len && body != ans + MS_HDR_SIZE)
		memcpy(ans + MS_HDR_SIZE, body, len);
	return MS_HDR_SIZE + len;
}

static size_t error_answer(uint8_t *ans, uint64_t tag, int status, const char *msg)
{
	struct ms_error er;

	memset(&er, 0, sizeof(er));
	er.status = status;
	snprintf(er.msg, sizeof(er.msg), "%s", msg);
	return answer(ans, MS_ERROR, tag, &er, sizeof(er));
}

int ms_handle(struct ms_stores *st, const struct ms_who *w, uint64_t now_s, const struct ms_hdr *h,
	      const uint8_t *p, uint8_t *ans, size_t *anslen)
{
	uint8_t *body = ans + MS_HDR_SIZE;
	struct err e = { 0 };
	uint32_t len = 0;
	int r;

	if (h->op == MS_HELLO || h->flags || !ms_req_len_ok(h->op, h->len)) {
		char why[160];
		if (h->op == MS_HELLO)
			snprintf(why, sizeof(why), "a second HELLO");
		else if (h->op < 1 || h->op > MS_OP_MAX)
			snprintf(why, sizeof(why), "unknown request %u", h->op);
		else if (h->flags)
			snprintf(why, sizeof(why), "%s with unknown flags 0x%x", ms_op_name(h->op), h->flags);
		else
			snprintf(why, sizeof(why), "%s of %u bytes", ms_op_name(h->op), h->len);
		*anslen = error_answer(ans, h->tag, -EPROTO, why);
		return 1;
	}
	switch (h->op) {
	case MS_CREATE:
		r = ms_store_create(st, w, (const struct ms_create *)p, (struct ms_create_reply *)body, &e);
		len = sizeof(struct ms_create_reply);
		break;
	case MS_PUT: {
		struct ms_put_view v;
		if (ms_parse_put(p, h->len, &v, &e) < 0) {
			*anslen = error_answer(ans, h->tag, -EPROTO, e.msg);
			return 1;
		}
		r = ms_store_put(st, w, &v, (struct ms_put_reply *)body, &e);
		len = sizeof(struct ms_put_reply);
		break;
	}
	case MS_GET: {
		struct ms_get_reply *g = (struct ms_get_reply *)body;
		uint32_t blen = 0;
		r = ms_store_get(st, w, (const struct ms_key_req *)p, body + sizeof(*g), &blen, &e);
		if (r == 0) {
			*g = (struct ms_get_reply){ .key = ((const struct ms_key_req *)p)->key, .len = blen };
			len = (uint32_t)sizeof(*g) + blen;
		}
		break;
	}
	case MS_FREE:
		r = ms_store_drop(st, w, p, (struct ms_free_reply *)body, &e);
		len = sizeof(struct ms_free_reply);
		break;
	case MS_STAT:
		r = ms_store_stat(st, w, p, now_s, (struct ms_stat_reply *)body, &e);
		len = sizeof(struct ms_stat_reply);
		break;
	case MS_GRANT:
		r = ms_store_grant(st, w, (const struct ms_grant *)p, now_s, (struct ms_stat_reply *)body, &e);
		len = sizeof(struct ms_stat_reply);
		break;
	case MS_ADOPT:
		r = ms_store_adopt(st, w, p, now_s, (struct ms_stat_reply *)body, &e);
		len = sizeof(struct ms_stat_reply);
		break;
	case MS_DECLINE:
		r = ms_store_decline(st, w, p, &e);
		break;
	default: /* MS_PING */
		memcpy(body, p, sizeof(struct ms_ping));
		r = 0;
		len = sizeof(struct ms_ping);
		break;
	}
	if (r < 0) {
		*anslen = error_answer(ans, h->tag, r, e.msg);
		return r;
	}
	*anslen = answer(ans, h->op | MS_REPLY, h->tag, body, len);
	return 0;
}
