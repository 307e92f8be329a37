#include "console/state.h"

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
	r = vga_state_validate(&s->vga, e);
	if (r == 0)
		r = i8042_state_validate(&s->kbd, e);
	if (r == 0)
		r = serial_state_validate(&s->uart, e);
	return r;
}
