/* libFuzzer target: everything a console client (or a peer holding sealed console state,
 * or a snapshot file) can feed sealvm, on an exact-size buffer:
 *  - the frame parser and every frame decoder, both directions (console/proto.h);
 *  - the keyboard input path: KEY frames through the keymap into an i8042 whose queue the
 *    "guest" then drains through its ports, plus raw port writes (commands, arguments);
 *  - a sealed console state opened under a fixed key and validated (console/seal.h, state.h);
 *  - a console key wrapped for an owner (console/wrap.h), opened with a fixed owner key.
 * Invariants: no crash, queue indices in range, a decoded frame lies inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "console/keymap.h"
#include "console/proto.h"
#include "console/seal.h"
#include "console/state.h"
#include "console/wrap.h"
#include "dev/i8042.h"
#include "console_seed_key.h"

static void check_i8042(const struct i8042 *k)
{
	struct err e = { 0 };
	if (i8042_state_validate(&k->s, &e) < 0)
		__builtin_trap();
}

static void frames(const uint8_t *data, size_t size, struct i8042 *k)
{
	size_t off = 0;

	while (off < size) {
		struct cproto_frame f;
		struct err e = { 0 };
		size_t used = 0;
		int r = cproto_parse(data + off, size - off, &f, &used, &e);
		union {
			struct cp_hello h;
			struct cp_key key;
			struct cp_redirect rd;
			uint8_t unlock[CPROTO_KEY_LEN];
			struct cp_welcome w;
			struct cp_output o;
			struct cp_screen s;
		} u;
		char msg[128];
		uint8_t codes[4];

		if (r <= 0)
			return;
		if (used > size - off || f.payload + f.len > data + size)
			__builtin_trap();
		switch (f.type) {
		case CP_HELLO: cp_decode_hello(&f, &u.h, &e); break;
		case CP_INPUT: cp_decode_input(&f, &e); break;
		case CP_KEY:
			if (cp_decode_key(&f, &u.key, &e) == 0) {
				size_t n = keymap_scancodes(u.key.keysym, u.key.down, codes);
				if (n > 4)
					__builtin_trap();
				i8042_key_input(k, codes, n);
			}
			break;
		case CP_REDIRECT:
			if (cp_decode_redirect(&f, &u.rd, &e) == 0 && strnlen(u.rd.uri, sizeof(u.rd.uri)) > CPROTO_URI_MAX)
				__builtin_trap();
			break;
		case CP_UNLOCK: cp_decode_unlock(&f, u.unlock, &e); break;
		case CP_PREPARE:
			if (cp_decode_prepare(&f, u.rd.uri, &e) == 0 && strnlen(u.rd.uri, sizeof(u.rd.uri)) > CPROTO_URI_MAX)
				__builtin_trap();
			break;
		case CP_LOCKED: {
			uint8_t rcpt[32];
			console_wrap_parse(f.payload, f.len, rcpt, &e);
			break;
		}
		case CP_WELCOME: cp_decode_welcome(&f, &u.w, &e); break;
		case CP_OUTPUT: cp_decode_output(&f, &u.o, &e); break;
		case CP_SCREEN:
			if (cp_decode_screen(&f, &u.s, &e) == 0 &&
			    u.s.cells + 2u * u.s.rows * u.s.cols > data + size)
				__builtin_trap();
			break;
		case CP_ERROR: cp_decode_error(&f, msg, sizeof(msg)); break;
		default:
			/* raw port traffic: the guest programs the controller and keyboard */
			for (uint32_t i = 0; i + 1 < f.len; i += 2) {
				uint8_t b = f.payload[i + 1];
				i8042_pio(k, (f.payload[i] & 1) ? I8042_CMD : I8042_DATA, &b, 1, f.payload[i] & 2);
			}
			break;
		}
		/* the guest drains whatever is queued */
		for (int i = 0; i < 40; i++) {
			uint8_t st, b;
			i8042_pio(k, I8042_CMD, &st, 1, false);
			if (!(st & 1))
				break;
			i8042_pio(k, I8042_DATA, &b, 1, false);
		}
		check_i8042(k);
		off += used;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct console_state st;
	static const struct console_key key = CONSOLE_SEED_KEY;
	static EVP_PKEY *owner;
	struct console_key unwrapped;
	struct i8042 k;
	struct err e = { 0 };
	int r;

	if (!owner)
		owner = console_seed_owner();
	i8042_init(&k, NULL, NULL, NULL);
	frames(data, size, &k);
	i8042_destroy(&k);
	r = console_state_unseal(&key, data, size, &st, &e);
	if ((r == 0 && console_state_size(&st) != size - SEAL_OVERHEAD) || (r < 0 && e.code >= 0))
		__builtin_trap();
	e.code = 0;
	r = console_unwrap(data, size, owner, &unwrapped, &e);
	if (r < 0 && e.code >= 0)
		__builtin_trap();
	return 0;
}
