/* An 8x16 console font for rendering the text screen, loaded from a PSF file (the
 * Linux console format; Debian's console-setup-linux ships VGA fonts as .psf.gz). */
#ifndef SEALVM_CONSOLE_FONT_H
#define SEALVM_CONSOLE_FONT_H

#include <stdint.h>

#include "util/err.h"

#define FONT_W 8
#define FONT_H 16
#define FONT_DEFAULT "/usr/share/consolefonts/Lat15-VGA16.psf.gz"

/* glyph[b]: the 16 rows of the glyph shown for screen byte b (ASCII found through the
 * font's Unicode table; bytes without a glyph show '?', control bytes blank). */
struct font {
	uint8_t glyph[256][FONT_H];
};

int font_load(const char *path, struct font *f, struct err *e);

#endif
