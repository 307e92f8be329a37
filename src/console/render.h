/* The text screen as pixels: VGA 16-colour palette, 8x16 cells, an underline cursor.
 * Also the reverse (pixels back to characters by exact glyph match), which the tests
 * use to read what a VNC viewer or a browser actually shows. */
#ifndef SEALVM_CONSOLE_RENDER_H
#define SEALVM_CONSOLE_RENDER_H

#include <stdbool.h>
#include <stdint.h>

#include "console/font.h"
#include "dev/vga.h"

#define RENDER_W (VGA_COLS * FONT_W)
#define RENDER_H (VGA_ROWS * FONT_H)

extern const uint32_t vga_palette[16];   /* 0xRRGGBB */

/* Draws one cell into a 0x00BBGGRR framebuffer (libvncserver's default 32-bit
 * format: bytes R, G, B, 0) of stride pixels per row. */
void render_cell(const struct font *f, uint32_t *fb, int stride, int row, int col, uint16_t cell,
		 bool cursor);
/* Reads the cell whose top-left pixel is at (x, y) of a 0xRRGGBB image: its character
 * (the lowest byte whose glyph matches exactly), or -1 if no glyph matches or a colour
 * is not one of the 16 VGA colours. */
int render_decode_cell(const struct font *f, const uint32_t *img, int stride, int x, int y);
/* Reads 80x25 cells from (x, y) into text (25 lines of 80 + '\n', NUL): '?' for cells
 * that match no glyph. Returns the number of cells that matched. */
int render_decode_screen(const struct font *f, const uint32_t *img, int stride, int x, int y, char *text);

#endif
