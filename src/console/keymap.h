/* X11/RFB keysyms (what VNC viewers send) to PS/2 scan codes, set 1, US layout.
 * A shifted keysym ('A', '!') maps to its key's code: the viewer sends Shift itself. */
#ifndef SEALVM_CONSOLE_KEYMAP_H
#define SEALVM_CONSOLE_KEYMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes the make (down) or break code sequence into out[4]; returns its length,
 * 0 for a keysym without a key here. */
size_t keymap_scancodes(uint32_t keysym, bool down, uint8_t out[4]);

#endif
