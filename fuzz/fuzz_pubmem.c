/* libFuzzer target: the public-memory device (dev/pubmem.h) — its saved state as a
 * stream brings it, the operator's --public list, and the port as a guest drives it.
 * The first byte picks: 0 a saved state (then loaded, and the table queried); 1 a
 * --public list; 2 port accesses, 6 bytes each (offset, width, write?, value), after
 * which the device's own state must validate and load into a fresh device. RAM size:
 * 64 MiB or, with bit 7 of the first byte, 6 GiB (RAM above 4 GiB). */
#include <stdint.h>
#include <string.h>

#include "dev/pubmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pubmem p, q;
	struct pubmem_state s;
	struct err e = { 0 };
	uint64_t ram;

	if (size < 1)
		return 0;
	ram = data[0] & 0x80 ? 6ull << 30 : 64ull << 20;
	pubmem_init(&p, ram);
	switch (data[0] & 3) {
	case 0:
		memset(&s, 0, sizeof(s));
		memcpy(&s, data + 1, size - 1 < sizeof(s) ? size - 1 : sizeof(s));
		if (pubmem_load(&p, &s, &e) == 0) {
			uint64_t n = 0;
			for (uint64_t pg = 0; pg < ram / 4096; pg += 4099)
				n += pubmem_ram_page_public(&p, pg);
			if (n > pubmem_public_pages(&p))
				__builtin_trap();
		} else if (e.code >= 0 || !e.msg[0]) {
			__builtin_trap();
		}
		break;
	case 1: {
		char list[1200];
		size_t n = size - 1 < sizeof(list) - 1 ? size - 1 : sizeof(list) - 1;
		memcpy(list, data + 1, n);
		list[n] = 0;
		if (pubmem_declare_list(&p, list, &e) < 0 && (e.code >= 0 || !e.msg[0]))
			__builtin_trap();
		break;
	}
	default:
		for (size_t off = 1; off + 6 <= size; off += 6) {
			uint8_t buf[4];
			uint32_t len = 1u << (data[off + 1] % 3);  /* 1, 2 or 4 bytes */
			memcpy(buf, data + off + 2, 4);
			pubmem_pio(&p, (uint16_t)(PUBMEM_PORT + data[off] % (PUBMEM_PORTS + 4)), buf, len,
				   data[off + 1] & 0x80);
		}
		break;
	}
	/* whatever happened, the device's own state is one a stream may carry */
	pubmem_save(&p, &s);
	pubmem_init(&q, ram);
	if (pubmem_state_validate(&s, ram, &e) < 0 || pubmem_load(&q, &s, &e) < 0)
		__builtin_trap();
	pubmem_destroy(&q);
	pubmem_destroy(&p);
	return 0;
}
