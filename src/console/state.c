#include "console/state.h"

#include <string.h>

#include "console/seal.h"

int console_state_validate(const struct console_state *s, struct err *e)
{
	int r;

	if (s->version != CONSOLE_STATE_VERSION)
		return err_set(e, -EPROTO, "console state version %u not supported (expected %u)", s->version,
			       CONSOLE_STATE_VERSION);
	if (s->scroll_len > SCROLLBACK_SIZE || s->scroll_len > s->serial_total)
		return err_set(e, -EINVAL, "console state: %u scrollback bytes for %llu written", s->scroll_len,
			       (unsigned long long)s->serial_total);
	if (s->attach.rw_attached > 1 || s->attach.rw_delivered > s->serial_total)
		return err_set(e, -EINVAL, "console state: attach status invalid");
	if (s->input_len > CONSOLE_INPUT_MAX || s->owner_spki_len > CONSOLE_SPKI_MAX)
		return err_set(e, -EINVAL, "console state: %u bytes of pending input, %u of owner key", s->input_len,
			       s->owner_spki_len);
	r = vga_state_validate(&s->vga, e);
	if (r == 0)
		r = i8042_state_validate(&s->kbd, e);
	if (r == 0)
		r = serial_state_validate(&s->uart, e);
	return r;
}

int console_state_unseal(const struct console_key *key, const uint8_t *sealed, size_t len,
			 struct console_state *st, struct err *e)
{
	uint32_t version;
	size_t n;
	int r;

	memset(st, 0, sizeof(*st));
	r = console_unseal(key, sealed, len, st, sizeof(*st), &version, &n, e);
	if (r == 0 && (version != CONSOLE_STATE_VERSION || n < CONSOLE_STATE_FIXED ||
		       n != CONSOLE_STATE_FIXED + (st->scroll_len <= SCROLLBACK_SIZE ? st->scroll_len : SCROLLBACK_SIZE)))
		r = err_set(e, -EPROTO, "sealed console state version %u, %zu bytes: not supported", version, n);
	if (r == 0)
		r = console_state_validate(st, e);
	if (r < 0)
		explicit_bzero(st, sizeof(*st));
	return r;
}
