/* libFuzzer target: the memory server's request handling (memserver/server.h ms_handle,
 * memserver/store.h) and its client's answer checks (memserver/client.h), as a sequence
 * of events from three identities over a small capacity:
 *   byte k: who = k & 3 (0..2; 3 = the tcp:// all-zero identity), event = (k >> 2) & 7:
 *     0-4  a request record: 16-byte header, then its payload (h.len bytes, if present)
 *     5    who's connection ends (its ephemeral stores go unless granted); a new one begins
 *     6    time passes: the next byte is seconds (grants expire)
 *     7    an answer record for the client to check: the next byte is the request op,
 *          then a header and (h.len bytes of) body
 * Checked: nothing crashes; every answer is a well-formed record for its request; the
 * capacity is never over-promised. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memserver/client.h"
#include "memserver/server.h"
#include "memserver/store.h"

#define SLOTS 64

static uint8_t mem[SLOTS * MS_BLOB_MAX], zero[SLOTS * MS_BLOB_MAX];
static uint64_t payload[MS_FRAME_MAX / 8 + 1];
static uint64_t ans[(MS_HDR_SIZE + MS_GET_REPLY_MAX) / 8 + 1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ms_who who[4] = {
		{ .fp = { 0xa1 }, .name = "hosta", .session = 1 },
		{ .fp = { 0xb2 }, .name = "hostb", .session = 2 },
		{ .fp = { 0xc3 }, .name = "hostc", .session = 3 },
		{ .fp = { 0 }, .name = "tcp", .session = 4 },
	};
	struct ms_stores *st;
	struct err e = { 0 };
	uint64_t now = 1000, next_session = 5;
	size_t off = 0;

	if (ms_stores_new(mem, SLOTS, &st, &e) < 0)
		__builtin_trap();
	while (off < size) {
		uint8_t k = data[off++];
		struct ms_who *w = &who[k & 3];
		unsigned ev = (k >> 2) & 7;
		struct ms_hdr h;
		struct ms_totals t;

		if (ev == 5) {
			ms_stores_session_end(st, w->session);
			w->session = next_session++;
		} else if (ev == 6) {
			if (off < size)
				now += data[off++];
			ms_stores_expire(st, now);
		} else if (ev == 7) {
			uint16_t req;
			if (off + 1 + sizeof(h) > size)
				break;
			req = data[off++] % (MS_OP_MAX + 1);
			memcpy(&h, data + off, sizeof(h));
			off += sizeof(h);
			if (h.len > MS_GET_REPLY_MAX || h.len > size - off) {
				/* the client reads no body it could not bound */
				(void)ms_check_answer(req, h.tag, 0, &h, (const uint8_t *)payload, &e);
				break;
			}
			memcpy(payload, data + off, h.len);
			off += h.len;
			if (ms_check_answer(req, h.tag, h.len >= 8 ? payload[0] : 0, &h, (const uint8_t *)payload, &e) == 0 &&
			    !ms_reply_len_ok(req, h.op, h.len))
				__builtin_trap();
		} else {
			const struct ms_hdr *a = (const struct ms_hdr *)ans;
			size_t alen;
			int r;
			if (off + sizeof(h) > size)
				break;
			memcpy(&h, data + off, sizeof(h));
			off += sizeof(h);
			/* the server reads a payload only when the header's length is allowed */
			if (ms_req_len_ok(h.op, h.len)) {
				if (h.len > size - off)
					break;
				memcpy(payload, data + off, h.len);
				off += h.len;
			}
			r = ms_handle(st, w, now, &h, (const uint8_t *)payload, (uint8_t *)ans, &alen);
			if (alen != MS_HDR_SIZE + a->len || a->tag != h.tag || !ms_reply_len_ok(h.op, a->op, a->len) ||
			    (r == 0) != (a->op != MS_ERROR))
				__builtin_trap();
			if (r == 1 && ms_req_len_ok(h.op, h.len) && h.op != MS_HELLO && h.op != MS_PUT && !h.flags)
				__builtin_trap(); /* only a broken record is a violation */
			if (a->op == MS_ERROR && (((const struct ms_error *)(a + 1))->status >= 0 ||
						  !memchr(((const struct ms_error *)(a + 1))->msg, 0, MS_MSG_MAX)))
				__builtin_trap();
		}
		ms_stores_totals(st, &t);
		if (t.promised > t.slots || t.used > t.promised)
			__builtin_trap();
	}
	ms_stores_free(st);
	if (memcmp(mem, zero, sizeof(mem)))
		__builtin_trap(); /* every freed blob is wiped */
	return 0;
}
