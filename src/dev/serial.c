#include "dev/serial.h"

#include <string.h>
#include <unistd.h>

/* Register offsets and bits (8250/16550 datasheet). */
#define UART_RX 0
#define UART_TX 0
#define UART_IER 1
#define UART_IIR 2
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_DEFAULT 0xb0 /* DCD, DSR, CTS: a modem that is always there */

static uint8_t compute_iir(const struct serial_state *s)
{
	uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDI) && (s->lsr & LSR_DR))
		return IIR_RDI | fifo;
	if ((s->ier & IER_THRI) && s->thri_pending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

/* Level-triggered: the line is high while any enabled interrupt is pending. */
static void update_irq(struct serial *u)
{
	int level = !(compute_iir(&u->s) & IIR_NO_INT);

	if (level != u->irq_level) {
		u->irq_level = level;
		if (u->irq)
			u->irq(u->irq_opaque, level);
	}
}

static void transmit(struct serial *u, uint8_t c)
{
	if (u->s.mcr & MCR_LOOP) {
		if (u->s.rx_count < SERIAL_FIFO) {
			u->s.rx[(u->s.rx_head + u->s.rx_count) % SERIAL_FIFO] = c;
			u->s.rx_count++;
			u->s.lsr |= LSR_DR;
		}
	} else if (u->sink) {
		u->sink(u->sink_opaque, c);
		u->tx_bytes++;
	} else if (u->out_fd >= 0) {
		ssize_t r;
		do {
			r = write(u->out_fd, &c, 1);
		} while (r < 0 && errno == EINTR);
		u->tx_bytes++;
	}
	/* Transmission is instant: the holding register is empty again at once. */
	u->s.thri_pending = 1;
}

static uint8_t read_reg(struct serial *u, unsigned off)
{
	struct serial_state *s = &u->s;
	uint8_t v = 0;

	switch (off) {
	case UART_RX:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (s->rx_count) {
			v = s->rx[s->rx_head];
			s->rx[s->rx_head] = 0; /* read input (maybe console keystrokes) does not linger */
			s->rx_head = (uint8_t)((s->rx_head + 1) % SERIAL_FIFO);
			s->rx_count--;
		}
		if (!s->rx_count)
			s->lsr &= (uint8_t)~LSR_DR;
		return v;
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR:
		v = compute_iir(s);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			s->thri_pending = 0;
		return v;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return s->lsr;
	case UART_MSR:
		return (s->mcr & MCR_LOOP) ? (uint8_t)((s->mcr & 0x0f) << 4) : s->msr;
	default:
		return s->scr;
	}
}

static void write_reg(struct serial *u, unsigned off, uint8_t v)
{
	struct serial_state *s = &u->s;

	switch (off) {
	case UART_TX:
		if (s->lcr & LCR_DLAB)
			s->dll = v;
		else
			transmit(u, v);
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			/* Enabling THRI while the THR is empty raises it at once. */
			if ((v & IER_THRI) && !(s->ier & IER_THRI))
				s->thri_pending = 1;
			s->ier = v & 0x0f;
		}
		break;
	case UART_FCR:
		s->fcr = v & 0xc9;
		if (v & FCR_CLEAR_RX) {
			memset(s->rx, 0, sizeof(s->rx));
			s->rx_count = 0;
			s->rx_head = 0;
			s->lsr &= (uint8_t)~LSR_DR;
		}
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default:
		break; /* LSR and MSR are read-only */
	}
}

static void serial_pio(void *opaque, uint16_t port, uint8_t *data, uint32_t len, bool is_write)
{
	struct serial *u = opaque;
	unsigned off = port - SERIAL_BASE;

	pthread_mutex_lock(&u->lock);
	if (is_write)
		write_reg(u, off, data[0]);
	else
		data[0] = read_reg(u, off);
	if (len > 1 && !is_write)
		memset(data + 1, 0, len - 1);
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

void serial_init(struct serial *u, int out_fd, serial_irq_fn irq, void *opaque)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->s.version = SERIAL_STATE_VERSION;
	u->s.lsr = LSR_THRE | LSR_TEMT;
	u->s.msr = MSR_DEFAULT;
	u->s.dll = 12; /* 9600 baud, as after a BIOS */
	u->s.lcr = 0x03;
	u->out_fd = out_fd;
	u->irq = irq;
	u->irq_opaque = opaque;
}

void serial_destroy(struct serial *u)
{
	pthread_mutex_destroy(&u->lock);
}

int serial_attach(struct serial *u, struct pio_bus *bus)
{
	return pio_bus_register(bus, SERIAL_BASE, 8, serial_pio, u);
}

void serial_set_sink(struct serial *u, serial_sink_fn sink, void *opaque)
{
	pthread_mutex_lock(&u->lock);
	u->sink = sink;
	u->sink_opaque = opaque;
	pthread_mutex_unlock(&u->lock);
}

size_t serial_input(struct serial *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	while (n < len && u->s.rx_count < SERIAL_FIFO) {
		u->s.rx[(u->s.rx_head + u->s.rx_count) % SERIAL_FIFO] = buf[n++];
		u->s.rx_count++;
	}
	if (u->s.rx_count)
		u->s.lsr |= LSR_DR;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

void serial_save(struct serial *u, struct serial_state *out)
{
	pthread_mutex_lock(&u->lock);
	*out = u->s;
	pthread_mutex_unlock(&u->lock);
	out->version = SERIAL_STATE_VERSION;
	memset(out->pad, 0, sizeof(out->pad));
}

void serial_state_scrub(struct serial_state *s)
{
	explicit_bzero(s->rx, sizeof(s->rx));
	s->rx_head = s->rx_count = 0;
	s->lsr &= (uint8_t)~LSR_DR;
}

int serial_state_validate(const struct serial_state *in, struct err *e)
{
	if (in->version != SERIAL_STATE_VERSION)
		return err_set(e, -EPROTO, "serial state version %u not supported (expected %u)",
			       in->version, SERIAL_STATE_VERSION);
	if (in->rx_head >= SERIAL_FIFO || in->rx_count > SERIAL_FIFO)
		return err_set(e, -EINVAL, "serial state: receive FIFO index %u/count %u beyond %u bytes",
			       in->rx_head, in->rx_count, SERIAL_FIFO);
	if (!!in->rx_count != !!(in->lsr & LSR_DR) || in->thri_pending > 1)
		return err_set(e, -EINVAL, "serial state: inconsistent line status 0x%02x for %u queued bytes",
			       in->lsr, in->rx_count);
	return 0;
}

int serial_load(struct serial *u, const struct serial_state *in, struct err *e)
{
	int r = serial_state_validate(in, e);

	if (r < 0)
		return r;
	pthread_mutex_lock(&u->lock);
	u->s = *in;
	u->irq_level = -1; /* force the line to be driven to the loaded level */
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}
