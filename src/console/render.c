#include "console/render.h"

#include <string.h>

const uint32_t vga_palette[16] = {
	0x000000, 0x0000aa, 0x00aa00, 0x00aaaa, 0xaa0000, 0xaa00aa, 0xaa5500, 0xaaaaaa,
	0x555555, 0x5555ff, 0x55ff55, 0x55ffff, 0xff5555, 0xff55ff, 0xffff55, 0xffffff,
};

static uint32_t to_fb(uint32_t rgb)
{
	return (rgb >> 16 & 0xff) | (rgb & 0xff00) | (rgb & 0xff) << 16;
}

void render_cell(const struct font *f, uint32_t *fb, int stride, int row, int col, uint16_t cell,
		 bool cursor)
{
	uint8_t ch = (uint8_t)cell, attr = (uint8_t)(cell >> 8);
	uint32_t fg = to_fb(vga_palette[attr & 0x0f]), bg = to_fb(vga_palette[(attr >> 4) & 0x07]);
	int y, x;

	for (y = 0; y < FONT_H; y++) {
		uint8_t bits = f->glyph[ch][y];
		uint32_t *p = fb + (row * FONT_H + y) * stride + col * FONT_W;
		if (cursor && y >= FONT_H - 2)
			bits = 0xff;
		for (x = 0; x < FONT_W; x++)
			p[x] = (bits & (0x80 >> x)) ? fg : bg;
	}
}

static bool in_palette(uint32_t rgb)
{
	int i;
	for (i = 0; i < 16; i++)
		if (vga_palette[i] == rgb)
			return true;
	return false;
}

int render_decode_cell(const struct font *f, const uint32_t *img, int stride, int x, int y)
{
	uint8_t rows[FONT_H];
	uint32_t bg = img[y * stride + x] & 0xffffff, fg = bg;
	int r, c, b;
	bool two = false;

	/* Background: the top-left pixel (no glyph here touches it); foreground: any other. */
	for (r = 0; r < FONT_H; r++) {
		uint8_t bits = 0;
		for (c = 0; c < FONT_W; c++) {
			uint32_t px = img[(y + r) * stride + x + c] & 0xffffff;
			if (px == bg)
				continue;
			if (!two) {
				fg = px;
				two = true;
			} else if (px != fg) {
				return -1; /* a third colour: not a text cell */
			}
			bits |= (uint8_t)(0x80 >> c);
		}
		rows[r] = bits;
	}
	if (!in_palette(bg) || !in_palette(fg))
		return -1; /* not a cell of ours (e.g. the page around a canvas) */
	for (b = 0x20; b < 0x7f; b++)
		if (!memcmp(rows, f->glyph[b], FONT_H))
			return b;
	return -1;
}

int render_decode_screen(const struct font *f, const uint32_t *img, int stride, int x, int y, char *text)
{
	int r, c, n = 0, ok = 0;

	for (r = 0; r < VGA_ROWS; r++) {
		for (c = 0; c < VGA_COLS; c++) {
			int ch = render_decode_cell(f, img, stride, x + c * FONT_W, y + r * FONT_H);
			text[n++] = (char)(ch < 0 ? '?' : ch);
			ok += ch >= 0;
		}
		text[n++] = '\n';
	}
	text[n] = 0;
	return ok;
}
