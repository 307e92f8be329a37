#include "dev/i8042.h"

#include <string.h>

#define ST_OBF 0x01      /* output buffer full */
#define ST_SYSFLAG 0x04  /* self-test passed: what a guest sees after a BIOS */
#define ST_CMD 0x08      /* last write was to the command port */
#define CB_INT 0x01      /* keyboard interrupt enabled */
#define CB_SYS 0x04
#define CB_KBD_OFF 0x10
#define CB_AUX_OFF 0x20
#define CB_XLAT 0x40
#define KBD_ACK 0xfa
#define KBD_RESEND 0xfe

static void update_irq(struct i8042 *k, bool pulse)
{
	int level = k->s.out_count && (k->s.cmd_byte & CB_INT);

	/* The PIC is edge-triggered: each new byte needs a fresh rising edge. */
	if (pulse && level && k->irq_level == 1 && k->irq)
		k->irq(k->opaque, 0), k->irq_level = 0;
	if (level != k->irq_level) {
		k->irq_level = level;
		if (k->irq)
			k->irq(k->opaque, level);
	}
}

static void push(struct i8042 *k, uint8_t b)
{
	if (k->s.out_count >= I8042_QUEUE) {
		k->dropped++;
		return;
	}
	k->s.out[(k->s.out_head + k->s.out_count) % I8042_QUEUE] = b;
	k->s.out_count++;
}

static uint8_t pop(struct i8042 *k)
{
	uint8_t b;

	if (!k->s.out_count)
		return 0;
	b = k->s.out[k->s.out_head];
	k->s.out[k->s.out_head] = 0; /* consumed keystrokes do not linger */
	k->s.out_head = (uint8_t)((k->s.out_head + 1) % I8042_QUEUE);
	k->s.out_count--;
	return b;
}

static void kbd_reset(struct i8042 *k)
{
	k->s.kbd_enabled = 1;
	k->s.scanset = 2; /* set 2 on the wire; the controller translates to set 1 */
	k->s.leds = 0;
	k->s.kbd_pending = 0;
}

/* A byte written to port 0x60 with no controller command pending goes to the keyboard. */
static void kbd_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->s.kbd_pending;

	if (cmd) {
		k->s.kbd_pending = 0;
		if (cmd == 0xed)
			k->s.leds = v & 7;
		if (cmd == 0xf0) {
			push(k, KBD_ACK);
			if (v == 0)
				push(k, k->s.scanset);
			else if (v <= 3)
				k->s.scanset = v;
			return;
		}
		push(k, KBD_ACK);
		return;
	}
	switch (v) {
	case 0xed: /* LEDs */
	case 0xf0: /* scan code set */
	case 0xf3: /* typematic rate */
		k->s.kbd_pending = v;
		push(k, KBD_ACK);
		break;
	case 0xee: /* echo */
		push(k, 0xee);
		break;
	case 0xf2: /* identify: an MF2 keyboard */
		push(k, KBD_ACK);
		push(k, 0xab);
		push(k, 0x83);
		break;
	case 0xf4:
		k->s.kbd_enabled = 1;
		push(k, KBD_ACK);
		break;
	case 0xf5:
		k->s.kbd_enabled = 0;
		push(k, KBD_ACK);
		break;
	case 0xf6:
		kbd_reset(k);
		push(k, KBD_ACK);
		break;
	case 0xff:
		kbd_reset(k);
		push(k, KBD_ACK);
		push(k, 0xaa); /* self-test passed */
		break;
	default:
		push(k, KBD_RESEND);
		break;
	}
}

static void ctl_command(struct i8042 *k, uint8_t v)
{
	switch (v) {
	case 0x20:
		push(k, k->s.cmd_byte);
		break;
	case 0x60: /* write configuration byte */
	case 0xd1: /* write output port */
	case 0xd2: /* write keyboard output buffer */
	case 0xd3: /* write aux output buffer */
	case 0xd4: /* write to aux device */
		k->s.ctl_pending = v;
		break;
	case 0xa7:
		k->s.cmd_byte |= CB_AUX_OFF;
		break;
	case 0xa8:
		k->s.cmd_byte &= (uint8_t)~CB_AUX_OFF;
		break;
	case 0xa9: /* aux interface test: no mouse, clock line stuck low */
		push(k, 0x01);
		break;
	case 0xaa: /* controller self-test */
		push(k, 0x55);
		break;
	case 0xab: /* keyboard interface test */
		push(k, 0x00);
		break;
	case 0xad:
		k->s.cmd_byte |= CB_KBD_OFF;
		break;
	case 0xae:
		k->s.cmd_byte &= (uint8_t)~CB_KBD_OFF;
		break;
	case I8042_CMD_RESET:
		if (k->reset)
			k->reset(k->opaque);
		break;
	default:
		break; /* other pulses and reads of lines nobody wired */
	}
}

static void ctl_data(struct i8042 *k, uint8_t cmd, uint8_t v)
{
	switch (cmd) {
	case 0x60:
		k->s.cmd_byte = v;
		break;
	case 0xd1:
		if (!(v & 1) && k->reset) /* bit 0 low: CPU reset */
			k->reset(k->opaque);
		break;
	case 0xd2:
		push(k, v);
		break;
	default:
		break; /* no aux device */
	}
}

void i8042_pio(void *opaque, uint16_t port, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;
	bool pulse = false;

	if (!len)
		return;
	pthread_mutex_lock(&k->lock);
	if (!is_write) {
		memset(data, 0, len);
		if (port == I8042_CMD) {
			data[0] = (uint8_t)(ST_SYSFLAG | (k->s.out_count ? ST_OBF : 0));
		} else {
			data[0] = pop(k);
			pulse = true;
		}
	} else if (port == I8042_CMD) {
		k->s.ctl_pending = 0;
		ctl_command(k, data[0]);
	} else if (k->s.ctl_pending) {
		uint8_t cmd = k->s.ctl_pending;
		k->s.ctl_pending = 0;
		ctl_data(k, cmd, data[0]);
	} else {
		kbd_write(k, data[0]);
	}
	update_irq(k, pulse);
	pthread_mutex_unlock(&k->lock);
}

void i8042_init(struct i8042 *k, void (*irq)(void *, int), void (*reset)(void *), void *opaque)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	k->s.version = I8042_STATE_VERSION;
	k->s.cmd_byte = CB_INT | CB_SYS | CB_AUX_OFF | CB_XLAT; /* as a BIOS leaves it */
	kbd_reset(k);
	k->irq = irq;
	k->reset = reset;
	k->opaque = opaque;
}

void i8042_destroy(struct i8042 *k)
{
	explicit_bzero(&k->s, sizeof(k->s));
	pthread_mutex_destroy(&k->lock);
}

int i8042_attach(struct i8042 *k, struct pio_bus *bus)
{
	int r = pio_bus_register(bus, I8042_DATA, 1, i8042_pio, k);
	return r ? r : pio_bus_register(bus, I8042_CMD, 1, i8042_pio, k);
}

size_t i8042_key_input(struct i8042 *k, const uint8_t *codes, size_t len)
{
	size_t i;

	pthread_mutex_lock(&k->lock);
	if (!k->s.kbd_enabled || (k->s.cmd_byte & CB_KBD_OFF) || len > (size_t)(I8042_QUEUE - k->s.out_count)) {
		k->dropped += len;
		pthread_mutex_unlock(&k->lock);
		return 0;
	}
	for (i = 0; i < len; i++)
		push(k, codes[i]);
	update_irq(k, false);
	pthread_mutex_unlock(&k->lock);
	return len;
}

void i8042_save(struct i8042 *k, struct i8042_state *out)
{
	pthread_mutex_lock(&k->lock);
	*out = k->s;
	pthread_mutex_unlock(&k->lock);
	out->version = I8042_STATE_VERSION;
}

int i8042_state_validate(const struct i8042_state *in, struct err *e)
{
	if (in->version != I8042_STATE_VERSION)
		return err_set(e, -EPROTO, "i8042 state version %u not supported (expected %u)", in->version,
			       I8042_STATE_VERSION);
	if (in->out_head >= I8042_QUEUE || in->out_count > I8042_QUEUE)
		return err_set(e, -EINVAL, "i8042 state: queue index %u/count %u beyond %u bytes", in->out_head,
			       in->out_count, I8042_QUEUE);
	if (in->kbd_enabled > 1 || in->scanset < 1 || in->scanset > 3)
		return err_set(e, -EINVAL, "i8042 state: keyboard enable %u or scan set %u invalid",
			       in->kbd_enabled, in->scanset);
	return 0;
}

int i8042_load(struct i8042 *k, const struct i8042_state *in, struct err *e)
{
	int r = i8042_state_validate(in, e);

	if (r < 0)
		return r;
	pthread_mutex_lock(&k->lock);
	k->s = *in;
	k->irq_level = -1; /* drive the line to the loaded level */
	update_irq(k, false);
	pthread_mutex_unlock(&k->lock);
	return 0;
}
