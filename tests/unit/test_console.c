/* Unit tests for the console's parts: sealing (AES-256-GCM round trip, wrong key, any
 * altered byte), the saved-state validator and its trimmed sealed form, the console key
 * wrapped for an owner (round trip, another owner, any altered byte, key types), the
 * scrollback's numbering, the frame parser, the keymap and the i8042 keyboard (queue, IRQ
 * edges, commands, zeroed consumed bytes). */
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "console/keymap.h"
#include "console/proto.h"
#include "console/scrollback.h"
#include "console/seal.h"
#include "console/state.h"
#include "console/wrap.h"
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

/* A state with a short scrollback seals only its used part; the length must match. */
static void test_state_trim(void)
{
	struct console_key k;
	struct err e = { 0 };
	struct console_state *st = calloc(1, sizeof(*st)), *back = calloc(1, sizeof(*back));
	uint8_t *sealed = malloc(sizeof(*st) + SEAL_OVERHEAD);
	size_t n = 0;

	CHECK(console_key_generate(&k, &e) == 0);
	st->version = CONSOLE_STATE_VERSION;
	st->vga.version = VGA_STATE_VERSION;
	st->kbd.version = I8042_STATE_VERSION;
	st->kbd.scanset = 2;
	st->uart.version = SERIAL_STATE_VERSION;
	st->serial_total = 100;
	st->scroll_len = 5;
	memcpy(st->scrollback, "hello", 5);
	st->input_len = 3;
	memcpy(st->input, "abc", 3);
	CHECK(console_state_size(st) == CONSOLE_STATE_FIXED + 5);
	CHECK(console_seal(&k, CONSOLE_STATE_VERSION, st, console_state_size(st), sealed, &n, &e) == 0);
	CHECK(n == CONSOLE_STATE_FIXED + 5 + SEAL_OVERHEAD);
	CHECKF(console_state_unseal(&k, sealed, n, back, &e) == 0, "%s", e.msg);
	CHECK(back->scroll_len == 5 && !memcmp(back->scrollback, "hello", 5) && back->input_len == 3 &&
	      !memcmp(back->input, "abc", 3) && back->scrollback[5] == 0);
	/* a length that does not match the scrollback count is refused, even authentic */
	st->scroll_len = 6;
	CHECK(console_seal(&k, CONSOLE_STATE_VERSION, st, CONSOLE_STATE_FIXED + 5, sealed, &n, &e) == 0);
	CHECK(console_state_unseal(&k, sealed, n, back, &e) == -EPROTO);
	CHECK(console_seal(&k, 1, st, CONSOLE_STATE_FIXED + 6, sealed, &n, &e) == 0);
	CHECK(console_state_unseal(&k, sealed, n, back, &e) == -EPROTO); /* version 1 never travels */
	st->scroll_len = 5;
	st->input_len = CONSOLE_INPUT_MAX + 1;
	CHECK(console_seal(&k, CONSOLE_STATE_VERSION, st, console_state_size(st), sealed, &n, &e) == 0);
	CHECK(console_state_unseal(&k, sealed, n, back, &e) < 0);
	free(st), free(back), free(sealed);
}

static EVP_PKEY *keygen(const char *alg, const char *param)
{
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);

	if (c && EVP_PKEY_keygen_init(c) == 1) {
		if (param && !strcmp(alg, "EC"))
			EVP_PKEY_CTX_set_group_name(c, param);
		if (param && !strcmp(alg, "RSA"))
			EVP_PKEY_CTX_set_rsa_keygen_bits(c, 2048);
		EVP_PKEY_keygen(c, &k);
	}
	EVP_PKEY_CTX_free(c);
	return k;
}

static void test_wrap(void)
{
	static const char *const curves[] = { "P-256", "P-384", "P-521" };
	struct console_key key, back;
	struct err e = { 0 };
	uint8_t spki[CONSOLE_SPKI_MAX], w[WRAP_MAX], rcpt[32];
	size_t sl, wl, i;

	CHECK(console_key_generate(&key, &e) == 0);
	for (i = 0; i < 3; i++) {
		EVP_PKEY *owner = keygen("EC", curves[i]), *other = keygen("EC", curves[i]);
		CHECK(owner && other);
		CHECK(console_spki(owner, spki, sizeof(spki), &sl, &e) == 0);
		CHECK(console_wrap(&key, spki, sl, w, &wl, &e) == 0);
		CHECK(console_wrap_parse(w, wl, rcpt, &e) == 0);
		CHECK(console_unwrap(w, wl, owner, &back, &e) == 0 && !memcmp(key.k, back.k, sizeof(key.k)));
		CHECK(memmem(w, wl, key.k, sizeof(key.k)) == NULL);
		CHECK_INT(console_unwrap(w, wl, other, &back, &e), -EACCES);
		/* any altered byte: the layout, the recipient, the ephemeral key, nonce, key or tag */
		for (size_t b = 0; b < wl; b++) {
			w[b] ^= 0x01;
			CHECKF(console_unwrap(w, wl, owner, &back, &e) < 0, "byte %zu of %zu altered, %s", b, wl, curves[i]);
			w[b] ^= 0x01;
		}
		CHECK(console_unwrap(w, wl - 1, owner, &back, &e) == -EPROTO);
		CHECK(console_unwrap(w, 20, owner, &back, &e) == -EPROTO);
		EVP_PKEY_free(owner);
		EVP_PKEY_free(other);
	}
	/* an owner key that cannot agree on a key: said so, nothing written */
	EVP_PKEY *rsa = keygen("RSA", "2048"), *ed = keygen("ED25519", NULL);
	CHECK(rsa && ed);
	CHECK(console_spki(rsa, spki, sizeof(spki), &sl, &e) == 0);
	CHECK_INT(console_wrap(&key, spki, sl, w, &wl, &e), -EOPNOTSUPP);
	CHECK(console_spki(ed, spki, sizeof(spki), &sl, &e) == 0);
	CHECK_INT(console_wrap(&key, spki, sl, w, &wl, &e), -EOPNOTSUPP);
	CHECK(console_wrap(&key, (const uint8_t *)"garbage", 7, w, &wl, &e) == -EPROTO);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
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
	/* PREPARE: the same address rules */
	char uri[CPROTO_URI_MAX + 1];
	n = cp_encode_prepare(rb, "tls://[::1]:7701");
	CHECK(cproto_parse(rb, n, &f, &used, &e) == 1 && f.type == CP_PREPARE);
	CHECK(cp_decode_prepare(&f, uri, &e) == 0 && !strcmp(uri, "tls://[::1]:7701"));
	rb[CPROTO_HDR + 7] = ' ';
	CHECK(cp_decode_prepare(&f, uri, &e) < 0);
	f.len = 5;
	CHECK(cp_decode_prepare(&f, uri, &e) < 0);
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
	test_state_trim();
	test_wrap();
	test_scrollback();
	test_proto();
	test_i8042();
	return unit_done();
}
