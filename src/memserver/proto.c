#include "memserver/proto.h"

#include <stdio.h>
#include <string.h>

#include "util/hex.h"

const char *ms_op_name(uint32_t op)
{
	static const char *const names[] = {
		[MS_HELLO] = "HELLO", [MS_CREATE] = "CREATE", [MS_PUT] = "PUT",     [MS_GET] = "GET",
		[MS_FREE] = "FREE",   [MS_STAT] = "STAT",     [MS_GRANT] = "GRANT", [MS_ADOPT] = "ADOPT",
		[MS_DECLINE] = "DECLINE", [MS_PING] = "PING",
	};

	if (op == MS_ERROR)
		return "ERROR";
	op &= ~(uint32_t)MS_REPLY;
	return op >= 1 && op <= MS_OP_MAX ? names[op] : "unknown";
}

bool ms_req_len_ok(uint16_t op, uint32_t len)
{
	switch (op) {
	case MS_HELLO:
		return len == sizeof(struct ms_hello);
	case MS_CREATE:
		return len == sizeof(struct ms_create);
	case MS_PUT:
		return len > sizeof(struct ms_put_head) + sizeof(struct ms_put_ent) && len <= MS_PUT_LEN_MAX;
	case MS_GET:
		return len == sizeof(struct ms_key_req);
	case MS_FREE:
	case MS_STAT:
	case MS_ADOPT:
	case MS_DECLINE:
		return len == sizeof(struct ms_store_req);
	case MS_GRANT:
		return len == sizeof(struct ms_grant);
	case MS_PING:
		return len == sizeof(struct ms_ping);
	default:
		return false;
	}
}

bool ms_reply_len_ok(uint16_t req, uint16_t op, uint32_t len)
{
	if (op == MS_ERROR)
		return len == sizeof(struct ms_error);
	if (op != (uint16_t)(req | MS_REPLY))
		return false;
	switch (req) {
	case MS_HELLO:
		return len == sizeof(struct ms_hello_reply);
	case MS_CREATE:
		return len == sizeof(struct ms_create_reply);
	case MS_PUT:
		return len == sizeof(struct ms_put_reply);
	case MS_GET:
		return len > sizeof(struct ms_get_reply) && len <= MS_GET_REPLY_MAX;
	case MS_FREE:
		return len == sizeof(struct ms_free_reply);
	case MS_STAT:
	case MS_GRANT:
	case MS_ADOPT:
		return len == sizeof(struct ms_stat_reply);
	case MS_DECLINE:
		return len == 0;
	case MS_PING:
		return len == sizeof(struct ms_ping);
	default:
		return false;
	}
}

int ms_parse_put(const uint8_t *p, uint32_t len, struct ms_put_view *v, struct err *e)
{
	uint64_t need;
	uint32_t i, n;
	const uint8_t *b;

	if (len < sizeof(struct ms_put_head))
		return err_set(e, -EPROTO, "PUT of %u bytes is shorter than its head", len);
	v->head = (const struct ms_put_head *)p;
	n = v->head->count;
	if (n < 1 || n > MS_PUT_MAX)
		return err_set(e, -EPROTO, "PUT of %u blobs (1 to %u)", n, MS_PUT_MAX);
	need = sizeof(struct ms_put_head) + (uint64_t)n * sizeof(struct ms_put_ent);
	if (len < need)
		return err_set(e, -EPROTO, "PUT of %u blobs is cut short in its entries", n);
	v->ents = (const struct ms_put_ent *)(p + sizeof(struct ms_put_head));
	b = p + need;
	for (i = 0; i < n; i++) {
		uint32_t l = v->ents[i].len;
		if (l < 1 || l > MS_BLOB_MAX)
			return err_set(e, -EPROTO, "PUT blob %u is %u bytes (1 to %u)", i, l, MS_BLOB_MAX);
		need += l;
		if (need > len)
			return err_set(e, -EPROTO, "PUT is cut short in blob %u", i);
		v->blob[i] = b;
		b += l;
	}
	if (need != len)
		return err_set(e, -EPROTO, "PUT carries %llu bytes after its last blob", (unsigned long long)(len - need));
	for (i = 0; i < n; i++)
		for (uint32_t j = 0; j < i; j++)
			if (v->ents[i].key == v->ents[j].key)
				return err_set(e, -EPROTO, "PUT names key %llu twice", (unsigned long long)v->ents[i].key);
	return 0;
}

size_t ms_encode_put(uint8_t *buf, const uint8_t store[MS_STORE_ID_LEN], uint32_t n, const uint64_t *keys,
		     const uint8_t *const *blobs, const uint32_t *lens)
{
	struct ms_put_head h = { .count = n };
	size_t off = sizeof(h) + n * sizeof(struct ms_put_ent);
	uint32_t i;

	memcpy(h.store, store, MS_STORE_ID_LEN);
	memcpy(buf, &h, sizeof(h));
	for (i = 0; i < n; i++) {
		struct ms_put_ent en = { .key = keys[i], .len = lens[i] };
		memcpy(buf + sizeof(h) + i * sizeof(en), &en, sizeof(en));
		memcpy(buf + off, blobs[i], lens[i]);
		off += lens[i];
	}
	return off;
}

void ms_error_fix(struct ms_error *er)
{
	er->msg[MS_MSG_MAX - 1] = 0;
	for (char *c = er->msg; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?'; /* a peer's words go into our messages and logs */
}

void ms_store_hex(const uint8_t id[MS_STORE_ID_LEN], char out[33])
{
	hex_encode(id, MS_STORE_ID_LEN, out);
}
