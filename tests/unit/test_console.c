/* Unit tests for the console's parts: sealing (AES-256-GCM round trip, wrong key, any
 * altered byte), the saved-state validator, the scrollback's numbering, the frame parser,
 * the keymap and the i8042 keyboard (queue, IRQ edges, commands, zeroed consumed bytes). */
#include <stdlib.h>
#include <string.h>

#include "console/keymap.h"
#include "console/proto.h"
#include "console/scrollback.h"
#include "console/seal.h"
#include "console/state.h"
#include "dev/i8042.h"
#include "unit.h"

static void test_seal(void)
{
	struct console_key k1, k2;
	struct err e = { 0 };
	struct console_state *st = calloc(1, sizeof(*st)), *back = calloc(1, sizeof(*back));
	size_t cap = sizeof(*st) + SEAL_OVERHEAD, n = 0, m = 0;
	uint8_t *sealed = malloc(cap);
	uint32_t version = 0;

	CHECK(console_key_generate(&k1, &e) == 0);
	CHECK(console_key_generate(&k2, &e) == 0);
	CHECK(memcmp(&k1, &k2, sizeof(k1)) != 0);
	st->version = CONSOLE_STATE_VERSION;
	memcpy(st->scrollback, "CANARY-in-scrollback", 20);
	st->scroll_len = 20;
	st->serial_total = 20;
	st->vga.version = VGA_STATE_VERSION;
	memcpy(st->vga.text, "C\x07" "A\x07", 4);
	st->kbd.version = I8042_STATE_VERSION;
	st->kbd.scanset = 2;
	st->uart.version = SERIAL_STATE_VERSION;
	CHECK(console_state_validate(st, &e) == 0);
	CHECK(console_seal(&k1, CONSOLE_STATE_VERSION, st, sizeof(*st), sealed, &n, &e) == 0);
	CHECK_INT(n, sizeof(*st) + SEAL_OVERHEAD);
	CHECK(memmem(sealed, n, "CANARY", 6) == NULL); /* no plaintext in the sealed form */
	CHECK(console_unseal(&k1, sealed, n, back, sizeof(*back), &version, &m, &e) == 0);
	CHECK_INT(version, CONSOLE_STATE_VERSION);
	CHECK(m == sizeof(*st) && memcmp(st, back, sizeof(*st)) == 0);
	CHECK_INT(console_unseal(&k2, sealed, n, back, sizeof(*back), &version, &m, &e), -EBADMSG);
	/* every part of the sealed form is covered: header, nonce, body, tag */
	size_t spots[] = { 9, 20, SEAL_HDR + 5, n / 2, n - 1 };
	for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
		sealed[spots[i]] ^= 0x40;
		CHECK(console_unseal(&k1, sealed, n, back, sizeof(*back), &version, &m, &e) < 0);
		sealed[spots[i]] ^= 0x40;
	}
	CHECK_INT(console_unseal(&k1, sealed, n - 1, back, sizeof(*back), &version, &m, &e), -EPROTO);
	CHECK_INT(console_unseal(&k1, sealed, 10, back, sizeof(*back), &version, &m, &e), -EPROTO);
	/* the validator refuses what does not add up */
	st->scroll_len = SCROLLBACK_SIZE + 1;
	CHECK(console_state_validate(st, &e) < 0);
	st->scroll_len = 20;
	st->kbd.out_head = I8042_QUEUE;
	CHECK(console_state_validate(st, &e) < 0);
	st->kbd.out_head = 0;
	st->version = 99;
	CHECK(console_state_validate(st, &e) < 0);
	free(st), free(back), free(sealed);
}

static void test_scrollback(void)
{
	static struct scrollback sb;
	uint8_t out[16], big[SCROLLBACK_SIZE];
	uint64_t from = 0, total;
	size_t n;

	scrollback_init(&sb);
	scrollback_append(&sb, (const uint8_t *)"hello", 5);
	n = scrollback_read(&sb, &from, out, sizeof(out));
	CHECK(n == 5 && from == 0 && !memcmp(out, "hello", 5));
	from = 3;
	n = scrollback_read(&sb, &from, out, sizeof(out));
	CHECK(n == 2 && from == 3 && !memcmp(out, "lo", 2));
	from = 99; /* beyond: nothing, clamped to the end */
	CHECK(scrollback_read(&sb, &from, out, sizeof(out)) == 0 && from == 5);
	memset(big, 'x', sizeof(big));
	scrollback_append(&sb, big, sizeof(big));
	from = 0; /* overrun: starts at the oldest byte kept */
	n = scrollback_read(&sb, &from, out, 4);
	CHECK(n == 4 && from == 5 && !memcmp(out, "xxxx", 4));
	CHECK(scrollback_export(&sb, big, &total) == SCROLLBACK_SIZE && total == 5 + SCROLLBACK_SIZE);
	scrollback_import(&sb, (const uint8_t *)"abc", 3, 1000);
	from = 0;
	n = scrollback_read(&sb, &from, out, sizeof(out));
	CHECK(n == 3 && from == 997 && scrollback_total(&sb) == 1000);
	scrollback_destroy(&sb);
}

static void test_proto(void)
{
	uint8_t buf[64];
	struct cproto_frame f;
	struct cp_hello h = { CPROTO_VERSION, CP_HELLO_RW, 42 }, h2;
	struct err e = { 0 };
	size_t used = 0, n = cp_encode_hello(buf, &h);

	CHECK(cproto_parse(buf, n - 1, &f, &used, &e) == 0); /* incomplete */
	CHECK(cproto_parse(buf, n, &f, &used, &e) == 1 && used == n && f.type == CP_HELLO);
	CHECK(cp_decode_hello(&f, &h2, &e) == 0 && h2.from == 42 && h2.flags == CP_HELLO_RW);
	buf[12] = 0x80; /* unknown flag */
	CHECK(cp_decode_hello(&f, &h2, &e) < 0);
	cproto_header(buf, CP_INPUT, CPROTO_MAX + 1);
	CHECK(cproto_parse(buf, 8, &f, &used, &e) == -EPROTO);
	cproto_header(buf, CP_INPUT, 1);
	buf[2] = 1;
	CHECK(cproto_parse(buf, 9, &f, &used, &e) == -EPROTO);
	/* REDIRECT: round trip, and only a printable tls:// address of bounded length */
	uint8_t rb[CPROTO_HDR + 16 + CPROTO_URI_MAX + 8];
	struct cp_redirect rd = { 123, 7, "tls://hostb:7701" }, rd2;
	n = cp_encode_redirect(rb, &rd);
	CHECK(cproto_parse(rb, n, &f, &used, &e) == 1 && f.type == CP_REDIRECT);
	CHECK(cp_decode_redirect(&f, &rd2, &e) == 0 && rd2.total == 123 && rd2.input_frames == 7 &&
	      !strcmp(rd2.uri, "tls://hostb:7701"));
	rb[CPROTO_HDR + 16 + 3] = '\n';
	CHECK(cp_decode_redirect(&f, &rd2, &e) < 0);
	rb[CPROTO_HDR + 16 + 3] = ':';
	memcpy(rb + CPROTO_HDR + 16, "tcp://", 6);
	CHECK(cp_decode_redirect(&f, &rd2, &e) < 0);
	f.len = 16 + CPROTO_URI_MAX + 1;
	CHECK(cp_decode_redirect(&f, &rd2, &e) < 0);
	f.len = 15;
	CHECK(cp_decode_redirect(&f, &rd2, &e) < 0);
	/* UNLOCK carries exactly one key */
	uint8_t key[CPROTO_KEY_LEN];
	cproto_header(buf, CP_UNLOCK, CPROTO_KEY_LEN);
	memset(buf + 8, 0x5a, CPROTO_KEY_LEN);
	CHECK(cproto_parse(buf, 8 + CPROTO_KEY_LEN, &f, &used, &e) == 1 && cp_decode_unlock(&f, key, &e) == 0 &&
	      key[31] == 0x5a);
	f.len--;
	CHECK(cp_decode_unlock(&f, key, &e) < 0);
	/* the screen subscription is a known flag; the old protocol is refused by name */
	h.flags = CP_HELLO_SCREEN;
	n = cp_encode_hello(buf, &h);
	CHECK(cproto_parse(buf, n, &f, &used, &e) == 1 && cp_decode_hello(&f, &h2, &e) == 0);
	put_be32(buf + 8, 1);
	CHECK(cp_decode_hello(&f, &h2, &e) < 0);
}

static int irq_level = -1, irq_edges;
static void irq(void *opaque, int level)
{
	if (level && irq_level != 1)
		irq_edges++;
	irq_level = level;
}

static uint8_t port(struct i8042 *k, uint16_t p)
{
	uint8_t v = 0;
	i8042_pio(k, p, &v, 1, false);
	return v;
}

static void out(struct i8042 *k, uint16_t p, uint8_t v)
{
	i8042_pio(k, p, &v, 1, true);
}

static void test_i8042(void)
{
	struct i8042 k;
	uint8_t codes[4];
	struct err e = { 0 };
	size_t n;

	i8042_init(&k, irq, NULL, NULL);
	CHECK(!(port(&k, I8042_CMD) & 1));
	n = keymap_scancodes('a', true, codes);
	CHECK(n == 1 && codes[0] == 0x1e);
	CHECK(keymap_scancodes('A', false, codes) == 1 && codes[0] == 0x9e);
	CHECK(keymap_scancodes(0xff52, true, codes) == 2 && codes[0] == 0xe0 && codes[1] == 0x48);
	CHECK(keymap_scancodes(0x12345, true, codes) == 0);
	CHECK(i8042_key_input(&k, (const uint8_t *)"\x1e\x9e", 2) == 2);
	CHECK(irq_level == 1 && irq_edges == 1);
	CHECK(port(&k, I8042_CMD) & 1);
	CHECK_INT(port(&k, I8042_DATA), 0x1e);
	CHECK(irq_edges == 2); /* a fresh edge for the next byte */
	CHECK_INT(port(&k, I8042_DATA), 0x9e);
	CHECK(irq_level == 0 && !(port(&k, I8042_CMD) & 1));
	for (int i = 0; i < I8042_QUEUE; i++)
		CHECK(k.s.out[i] == 0); /* consumed keystrokes are gone from the state */
	out(&k, I8042_DATA, 0xf2); /* identify */
	CHECK(port(&k, I8042_DATA) == 0xfa && port(&k, I8042_DATA) == 0xab && port(&k, I8042_DATA) == 0x83);
	out(&k, I8042_CMD, 0xaa); /* self-test */
	CHECK_INT(port(&k, I8042_DATA), 0x55);
	out(&k, I8042_CMD, 0x60); /* interrupts off */
	out(&k, I8042_DATA, 0x44);
	CHECK(i8042_key_input(&k, codes, 1) == 1 && irq_level == 0);
	out(&k, I8042_CMD, 0xad); /* keyboard off: input refused */
	CHECK(i8042_key_input(&k, codes, 1) == 0);
	out(&k, I8042_CMD, 0xae);
	uint8_t fill[I8042_QUEUE] = { 0 };
	CHECK(i8042_key_input(&k, fill, I8042_QUEUE) == 0); /* never half a sequence */
	struct i8042_state s;
	i8042_save(&k, &s);
	CHECK(i8042_state_validate(&s, &e) == 0);
	s.out_count = I8042_QUEUE + 1;
	CHECK(i8042_load(&k, &s, &e) < 0);
	i8042_destroy(&k);
}

int main(void)
{
	test_seal();
	test_scrollback();
	test_proto();
	test_i8042();
	return unit_done();
}
