#include "console/font.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PSF1_MAGIC 0x0436
#define PSF1_MODE512 0x01
#define PSF1_MODEHASTAB 0x02
#define PSF_MAX (1u << 20)

/* Unicode code point -> glyph index, from a PSF1 table (u16 entries, 0xFFFF ends a
 * glyph's list, 0xFFFE starts sequences we skip). */
static void map_psf1(const uint8_t *tab, size_t len, unsigned nglyphs, int *uni_to_glyph)
{
	size_t i = 0;
	unsigned g = 0;
	int in_seq = 0;

	while (i + 1 < len && g < nglyphs) {
		unsigned u = tab[i] | tab[i + 1] << 8;
		i += 2;
		if (u == 0xffff) {
			g++;
			in_seq = 0;
		} else if (u == 0xfffe) {
			in_seq = 1;
		} else if (!in_seq && u < 0x80 && uni_to_glyph[u] < 0) {
			uni_to_glyph[u] = (int)g;
		}
	}
}

int font_load(const char *path, struct font *f, struct err *e)
{
	gzFile gz = gzopen(path, "rb");
	uint8_t *d;
	int n, uni[0x80], b;
	unsigned nglyphs, height;
	const uint8_t *glyphs;

	if (!gz)
		return err_sys(e, errno ? -errno : -ENOENT, "cannot open console font %s", path);
	d = malloc(PSF_MAX);
	if (!d) {
		gzclose(gz);
		return err_set(e, -ENOMEM, "font");
	}
	n = gzread(gz, d, PSF_MAX);
	gzclose(gz);
	if (n < 4 || (d[0] | d[1] << 8) != PSF1_MAGIC) {
		free(d);
		return err_set(e, -EINVAL, "%s is not a PSF1 console font", path);
	}
	nglyphs = (d[2] & PSF1_MODE512) ? 512 : 256;
	height = d[3];
	if (height != FONT_H || (size_t)n < 4 + (size_t)nglyphs * height) {
		free(d);
		return err_set(e, -EINVAL, "%s: glyphs are 8x%u, or the file is cut short (need 8x%u)", path,
			       height, FONT_H);
	}
	glyphs = d + 4;
	for (b = 0; b < 0x80; b++)
		uni[b] = (d[2] & PSF1_MODEHASTAB) ? -1 : b;
	if (d[2] & PSF1_MODEHASTAB)
		map_psf1(d + 4 + nglyphs * height, (size_t)n - 4 - nglyphs * height, nglyphs, uni);
	memset(f, 0, sizeof(*f));
	for (b = 0; b < 256; b++) {
		int g = b >= 0x20 && b < 0x7f ? uni[b] : b >= 0x80 ? uni['?'] : -1;
		if (b >= 0x20 && b < 0x7f && g < 0)
			g = uni['?'];
		if (g >= 0)
			memcpy(f->glyph[b], glyphs + (size_t)g * height, FONT_H);
	}
	free(d);
	return 0;
}
