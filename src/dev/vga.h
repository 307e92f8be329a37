/* VGA text-mode screen: 80x25 cells at 0xB8000, cursor and start address through
 * the CRTC ports 0x3D4/0x3D5.
 *
 * The whole legacy window 0xA0000-0xBFFFF is sealvm memory mapped into the guest as
 * its own KVM memslot (vm_map_devmem), not guest RAM: the guest writes cells without
 * VM exits, sealvm reads them to render, and the screen never travels inside the RAM
 * pages that snapshots and migrations copy. It travels only inside the console's
 * sealed state (console/state.h), so an owner-only console keeps its screen away
 * from every operator-side sink. */
#ifndef SEALVM_DEV_VGA_H
#define SEALVM_DEV_VGA_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dev/bus.h"
#include "util/err.h"
#include "vm/vm.h"

#define VGA_MEM_BASE 0xa0000ULL
#define VGA_MEM_SIZE 0x20000ULL
#define VGA_TEXT_BASE 0xb8000ULL
#define VGA_TEXT_SIZE 0x8000u       /* 0xB8000-0xBFFFF: what text mode can address */
#define VGA_COLS 80
#define VGA_ROWS 25
#define VGA_CRTC_INDEX 0x3d4
#define VGA_CRTC_DATA 0x3d5
#define VGA_CRTC_REGS 25
#define VGA_STATE_VERSION 1

/* Guest-visible state, plain and pointer-free. */
struct vga_state {
	uint32_t version;
	uint8_t crtc_index;
	uint8_t pad[3];
	uint8_t crtc[VGA_CRTC_REGS];
	uint8_t pad2[7];
	uint8_t text[VGA_TEXT_SIZE];   /* character/attribute words at 0xB8000 */
};

/* What a renderer needs: the visible cells (char | attr << 8) and the cursor. */
struct vga_screen {
	uint16_t cells[VGA_ROWS * VGA_COLS];
	uint16_t cursor_row, cursor_col;
	bool cursor_on;
};

struct vga {
	uint8_t *mem;            /* VGA_MEM_SIZE bytes, mapped at VGA_MEM_BASE */
	pthread_mutex_t lock;    /* CRTC registers */
	uint8_t crtc_index;
	uint8_t crtc[VGA_CRTC_REGS];
};

int vga_init(struct vga *v, struct err *e);
void vga_destroy(struct vga *v);
/* Maps the memory into the VM and claims the CRTC ports. */
int vga_attach(struct vga *v, struct pio_bus *bus, struct vm *vm, struct err *e);
/* The visible screen now (start address and cursor from the CRTC). */
void vga_read_screen(struct vga *v, struct vga_screen *out);
/* Screen text, one line per row, trailing blanks kept; buf gets rows*(cols+1)+1 bytes. */
void vga_screen_text(const struct vga_screen *s, char *buf, size_t len);

void vga_save(struct vga *v, struct vga_state *out);
int vga_state_validate(const struct vga_state *in, struct err *e);
int vga_load(struct vga *v, const struct vga_state *in, struct err *e);

#endif
