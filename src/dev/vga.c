#include "dev/vga.h"

#include <string.h>
#include <sys/mman.h>

/* CRTC registers the text screen uses (IBM VGA reference). */
#define CRTC_CURSOR_START 0x0a   /* bit 5: cursor off */
#define CRTC_START_HI 0x0c
#define CRTC_START_LO 0x0d
#define CRTC_CURSOR_HI 0x0e
#define CRTC_CURSOR_LO 0x0f

static void vga_pio(void *opaque, uint16_t port, uint8_t *data, uint32_t len, bool is_write)
{
	struct vga *v = opaque;
	uint32_t i;

	pthread_mutex_lock(&v->lock);
	/* A 16-bit OUT to 0x3D4 writes the index and then the data: the usual idiom. */
	for (i = 0; i < len; i++) {
		uint16_t p = (uint16_t)(port + i);
		if (p == VGA_CRTC_INDEX) {
			if (is_write)
				v->crtc_index = data[i];
			else
				data[i] = v->crtc_index;
		} else if (p == VGA_CRTC_DATA) {
			bool ok = v->crtc_index < VGA_CRTC_REGS;
			if (is_write) {
				if (ok)
					v->crtc[v->crtc_index] = data[i];
			} else {
				data[i] = ok ? v->crtc[v->crtc_index] : 0xff;
			}
		} else if (!is_write) {
			data[i] = 0xff;
		}
	}
	pthread_mutex_unlock(&v->lock);
}

static void blank(uint8_t *text)
{
	size_t i;
	for (i = 0; i < VGA_TEXT_SIZE; i += 2) {
		text[i] = ' ';
		text[i + 1] = 0x07;
	}
}

int vga_init(struct vga *v, struct err *e)
{
	memset(v, 0, sizeof(*v));
	v->mem = mmap(NULL, VGA_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v->mem == MAP_FAILED) {
		v->mem = NULL;
		return err_sys(e, -errno, "cannot allocate VGA memory");
	}
	/* Console plaintext: keep it out of core dumps too. */
	madvise(v->mem, VGA_MEM_SIZE, MADV_DONTDUMP);
	pthread_mutex_init(&v->lock, NULL);
	blank(v->mem + (VGA_TEXT_BASE - VGA_MEM_BASE));
	v->crtc[CRTC_CURSOR_START] = 0x0d; /* underline cursor, on */
	v->crtc[0x0b] = 0x0e;
	return 0;
}

void vga_destroy(struct vga *v)
{
	if (!v->mem)
		return;
	explicit_bzero(v->mem, VGA_MEM_SIZE);
	munmap(v->mem, VGA_MEM_SIZE);
	v->mem = NULL;
	pthread_mutex_destroy(&v->lock);
}

int vga_attach(struct vga *v, struct pio_bus *bus, struct vm *vm, struct err *e)
{
	int r = vm_map_devmem(vm, VGA_MEM_BASE, VGA_MEM_SIZE, v->mem, e);

	if (r < 0)
		return r;
	if (pio_bus_register(bus, VGA_CRTC_INDEX, 2, vga_pio, v))
		return err_set(e, -ENOSPC, "port bus full");
	return 0;
}

void vga_read_screen(struct vga *v, struct vga_screen *out)
{
	const uint8_t *text = v->mem + (VGA_TEXT_BASE - VGA_MEM_BASE);
	unsigned start, cursor, i;

	pthread_mutex_lock(&v->lock);
	start = (unsigned)v->crtc[CRTC_START_HI] << 8 | v->crtc[CRTC_START_LO];
	cursor = (unsigned)v->crtc[CRTC_CURSOR_HI] << 8 | v->crtc[CRTC_CURSOR_LO];
	out->cursor_on = !(v->crtc[CRTC_CURSOR_START] & 0x20);
	pthread_mutex_unlock(&v->lock);
	/* Addresses are in cells and wrap within the 32 KiB text window. */
	for (i = 0; i < VGA_ROWS * VGA_COLS; i++) {
		unsigned off = ((start + i) * 2) % VGA_TEXT_SIZE;
		out->cells[i] = (uint16_t)(text[off] | text[off + 1] << 8);
	}
	cursor = (cursor - start) & 0xffff;
	if (cursor >= VGA_ROWS * VGA_COLS) {
		out->cursor_on = false;
		cursor = 0;
	}
	out->cursor_row = (uint16_t)(cursor / VGA_COLS);
	out->cursor_col = (uint16_t)(cursor % VGA_COLS);
}

void vga_screen_text(const struct vga_screen *s, char *buf, size_t len)
{
	size_t n = 0;
	int r, c;

	if (!len)
		return;
	for (r = 0; r < VGA_ROWS; r++) {
		for (c = 0; c < VGA_COLS && n + 1 < len; c++) {
			uint8_t ch = (uint8_t)s->cells[r * VGA_COLS + c];
			buf[n++] = (char)(ch >= 0x20 && ch < 0x7f ? ch : ' ');
		}
		if (n + 1 < len)
			buf[n++] = '\n';
	}
	buf[n] = 0;
}

void vga_save(struct vga *v, struct vga_state *out)
{
	memset(out, 0, sizeof(*out));
	out->version = VGA_STATE_VERSION;
	pthread_mutex_lock(&v->lock);
	out->crtc_index = v->crtc_index;
	memcpy(out->crtc, v->crtc, sizeof(out->crtc));
	pthread_mutex_unlock(&v->lock);
	memcpy(out->text, v->mem + (VGA_TEXT_BASE - VGA_MEM_BASE), VGA_TEXT_SIZE);
}

int vga_state_validate(const struct vga_state *in, struct err *e)
{
	if (in->version != VGA_STATE_VERSION)
		return err_set(e, -EPROTO, "VGA state version %u not supported (expected %u)", in->version,
			       VGA_STATE_VERSION);
	return 0; /* any register and cell value is one a guest could have written */
}

int vga_load(struct vga *v, const struct vga_state *in, struct err *e)
{
	int r = vga_state_validate(in, e);

	if (r < 0)
		return r;
	pthread_mutex_lock(&v->lock);
	v->crtc_index = in->crtc_index;
	memcpy(v->crtc, in->crtc, sizeof(v->crtc));
	pthread_mutex_unlock(&v->lock);
	memcpy(v->mem + (VGA_TEXT_BASE - VGA_MEM_BASE), in->text, VGA_TEXT_SIZE);
	return 0;
}
