/* The public-memory device (dev/pubmem.h): ranges merged and split as declared, the
 * table's limit, the port as a guest drives it, RAM above 4 GiB, the operator's list,
 * and saved states that are malformed refused. */
#include "dev/pubmem.h"
#include "unit.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static uint32_t port_rd(struct pubmem *p, uint16_t off)
{
	uint32_t v = 0;

	pubmem_pio(p, (uint16_t)(PUBMEM_PORT + off), (uint8_t *)&v, 4, false);
	return v;
}

static void port_wr(struct pubmem *p, uint16_t off, uint32_t v)
{
	pubmem_pio(p, (uint16_t)(PUBMEM_PORT + off), (uint8_t *)&v, 4, true);
}

/* The guest's way: FIRST, COUNT, command; returns the status. */
static uint32_t cmd(struct pubmem *p, uint32_t c, uint32_t first, uint32_t count)
{
	port_wr(p, 4, first);
	port_wr(p, 8, count);
	port_wr(p, 0, c);
	return port_rd(p, 12) & 0xffff;
}

static void check_ranges(struct pubmem *p, const uint64_t *want, uint32_t n, int line)
{
	struct pubmem_state s;

	pubmem_get(p, &s, NULL);
	CHECKF(s.nranges == n, "line %d: %u ranges, want %u", line, s.nranges, n);
	for (uint32_t i = 0; i < n && i < s.nranges; i++)
		CHECKF(s.r[i].first == want[2 * i] && s.r[i].count == want[2 * i + 1], "line %d: range %u is %llu+%llu",
		       line, i, (unsigned long long)s.r[i].first, (unsigned long long)s.r[i].count);
}
#define RANGES(p, ...)                                                                  \
	do {                                                                            \
		static const uint64_t w_[] = { __VA_ARGS__ };                           \
		check_ranges(p, w_, sizeof(w_) / sizeof(w_[0]) / 2, __LINE__);          \
	} while (0)

static void test_table(void)
{
	struct pubmem p;

	pubmem_init(&p, 64 * MiB); /* frames 0..16383 */
	CHECK(!pubmem_in_use(&p));
	CHECK_INT(pubmem_declare(&p, 100, 10, true), PUBMEM_OK);
	CHECK_INT(pubmem_declare(&p, 200, 10, true), PUBMEM_OK);
	RANGES(&p, 100, 10, 200, 10);
	CHECK_INT(pubmem_declare(&p, 110, 90, true), PUBMEM_OK);       /* fills the gap: one range */
	RANGES(&p, 100, 110);
	CHECK_INT(pubmem_declare(&p, 50, 10, true), PUBMEM_OK);        /* before it */
	CHECK_INT(pubmem_declare(&p, 300, 1, true), PUBMEM_OK);        /* after it */
	RANGES(&p, 50, 10, 100, 110, 300, 1);
	CHECK_INT(pubmem_declare(&p, 150, 10, false), PUBMEM_OK);      /* a hole in the middle */
	RANGES(&p, 50, 10, 100, 50, 160, 50, 300, 1);
	CHECK_INT(pubmem_declare(&p, 40, 300, false), PUBMEM_OK);      /* all of it private again */
	CHECK_INT(pubmem_public_pages(&p), 0);
	CHECK(pubmem_in_use(&p));
	CHECK_INT(pubmem_declare(&p, 16383, 1, true), PUBMEM_OK);
	CHECK_INT(pubmem_declare(&p, 16383, 2, true), PUBMEM_ERANGE);  /* beyond RAM */
	CHECK_INT(pubmem_declare(&p, 5, 0, true), PUBMEM_ERANGE);
	CHECK_INT(pubmem_declare(&p, UINT64_MAX - 1, 4, true), PUBMEM_ERANGE);
	CHECK(pubmem_ram_page_public(&p, 16383) && !pubmem_ram_page_public(&p, 16382));
	/* the table holds 64 ranges; a 65th (or a split making one) changes nothing */
	CHECK_INT(pubmem_declare(&p, 0, 16384, false), PUBMEM_OK);
	for (uint32_t i = 0; i < PUBMEM_MAX_RANGES; i++)
		CHECK_INT(pubmem_declare(&p, i * 10, 5, true), PUBMEM_OK);
	CHECK_INT(pubmem_declare(&p, 2000, 5, true), PUBMEM_EFULL);
	CHECK_INT(pubmem_declare(&p, 1, 2, false), PUBMEM_EFULL);      /* would split range 0 */
	CHECK_INT(pubmem_public_pages(&p), PUBMEM_MAX_RANGES * 5);
	CHECK_INT(pubmem_declare(&p, 0, 5, false), PUBMEM_OK);         /* removing one is fine */
	CHECK_INT(pubmem_declare(&p, 4, 7, true), PUBMEM_OK);          /* 4..10, merging 10..15 in */
	CHECK_INT(pubmem_public_pages(&p), PUBMEM_MAX_RANGES * 5 - 5 + 6);
	CHECK(pubmem_ram_page_public(&p, 4) && pubmem_ram_page_public(&p, 14) && !pubmem_ram_page_public(&p, 15));
	pubmem_destroy(&p);
}

static void test_port(void)
{
	struct pubmem p;
	uint8_t b[4] = { 0 };

	pubmem_init(&p, 5 * GiB); /* 3 GiB low, 2 GiB from 4 GiB */
	CHECK(port_rd(&p, 0) == PUBMEM_SIGNATURE);
	CHECK_INT(port_rd(&p, 12) >> 16, PUBMEM_IF_VERSION);
	CHECK_INT(cmd(&p, PUBMEM_CMD_PUBLIC, 0x1000, 0x100), PUBMEM_OK);
	CHECK_INT(cmd(&p, PUBMEM_CMD_PUBLIC, (uint32_t)(4 * GiB / 4096), 16), PUBMEM_OK);    /* high RAM */
	CHECK_INT(cmd(&p, PUBMEM_CMD_PUBLIC, (uint32_t)(3 * GiB / 4096) - 1, 2), PUBMEM_ERANGE); /* across the hole */
	CHECK_INT(cmd(&p, PUBMEM_CMD_PUBLIC, (uint32_t)(6 * GiB / 4096), 1), PUBMEM_ERANGE);
	CHECK_INT(cmd(&p, 9, 0, 0), PUBMEM_EINVAL);
	/* the RAM page behind GPA 4 GiB is page 3 GiB/4096 of the host mapping */
	CHECK(pubmem_ram_page_public(&p, 3 * GiB / 4096));
	CHECK(pubmem_ram_page_public(&p, 3 * GiB / 4096 + 15));
	CHECK(!pubmem_ram_page_public(&p, 3 * GiB / 4096 + 16));
	CHECK(pubmem_ram_page_public(&p, 0x1000) && !pubmem_ram_page_public(&p, 0xfff));
	CHECK_INT(cmd(&p, PUBMEM_CMD_TOTALS, 0, 0), PUBMEM_OK);
	CHECK_INT(port_rd(&p, 8), 2);
	CHECK_INT(port_rd(&p, 4), 0x110);
	CHECK_INT(cmd(&p, PUBMEM_CMD_QUERY, 1, 0), PUBMEM_OK);
	CHECK(port_rd(&p, 4) == 4 * GiB / 4096 && port_rd(&p, 8) == 16);
	CHECK_INT(cmd(&p, PUBMEM_CMD_QUERY, 2, 0), PUBMEM_ERANGE);
	CHECK_INT(cmd(&p, PUBMEM_CMD_PRIVATE, 0x1080, 0x10), PUBMEM_OK);
	CHECK_INT(cmd(&p, PUBMEM_CMD_TOTALS, 0, 0), PUBMEM_OK);
	CHECK_INT(port_rd(&p, 8), 3);
	CHECK_INT(cmd(&p, PUBMEM_CMD_RESET, 0, 0), PUBMEM_OK);
	CHECK_INT(pubmem_public_pages(&p), 0);
	/* other widths: reads all-ones, writes dropped */
	pubmem_pio(&p, PUBMEM_PORT, b, 1, false);
	CHECK(b[0] == 0xff);
	b[0] = PUBMEM_CMD_RESET;
	pubmem_pio(&p, PUBMEM_PORT + 2, b, 2, false);
	CHECK(b[0] == 0xff && b[1] == 0xff);
	port_wr(&p, 4, 7);
	pubmem_pio(&p, PUBMEM_PORT + 4, (uint8_t[]){ 1, 0 }, 2, true);
	CHECK_INT(port_rd(&p, 4), 7);
	pubmem_destroy(&p);
}

static void test_list_and_state(void)
{
	struct pubmem p, q;
	struct pubmem_state s;
	struct err e = { 0 };

	pubmem_init(&p, 256 * MiB);
	CHECK_INT(pubmem_declare_list(&p, "16M-32M,0x100000-0x200000,64M-65M", &e), 0);
	RANGES(&p, 256, 256, 4096, 4096, 16384, 256);
	CHECKF(pubmem_declare_list(&p, "16M-32M,1G-2G", &e) == -ERANGE && strstr(e.msg, "not guest RAM"), "%s", e.msg);
	CHECKF(pubmem_declare_list(&p, "4097-8192", &e) == -EINVAL && strstr(e.msg, "page-aligned"), "%s", e.msg);
	CHECK_INT(pubmem_declare_list(&p, "8M-4M", &e), -EINVAL);
	CHECK_INT(pubmem_declare_list(&p, "8M", &e), -EINVAL);
	CHECK_INT(pubmem_declare_list(&p, "0xzz-8M", &e), -EINVAL);
	CHECK_INT(pubmem_declare_list(&p, "", &e), -EINVAL);

	/* a saved state loads into a machine of the same RAM; malformed ones are refused */
	pubmem_save(&p, &s);
	pubmem_init(&q, 256 * MiB);
	CHECK_INT(pubmem_load(&q, &s, &e), 0);
	CHECK(pubmem_ram_page_public(&q, 300) && !pubmem_ram_page_public(&q, 600) && pubmem_in_use(&q));
	{
		struct pubmem_state t = s;
		t.version = 2;
		CHECK_INT(pubmem_state_validate(&t, 256 * MiB, &e), -EPROTO);
		t = s;
		t.nranges = PUBMEM_MAX_RANGES + 1;
		CHECK_INT(pubmem_state_validate(&t, 256 * MiB, &e), -EINVAL);
		t = s;
		t.r[1].first = 300; /* overlaps range 0 */
		CHECK_INT(pubmem_state_validate(&t, 256 * MiB, &e), -EINVAL);
		t = s;
		t.r[1].first = 512; /* touches range 0: never saved that way */
		CHECK_INT(pubmem_state_validate(&t, 256 * MiB, &e), -EINVAL);
		t = s;
		t.r[2].count = 0;
		CHECK_INT(pubmem_state_validate(&t, 256 * MiB, &e), -EINVAL);
		t = s;
		t.r[5].count = 1; /* beyond nranges */
		CHECK_INT(pubmem_state_validate(&t, 256 * MiB, &e), -EINVAL);
		t = s;
		t.status = 7;
		CHECK_INT(pubmem_state_validate(&t, 256 * MiB, &e), -EINVAL);
		CHECK_INT(pubmem_state_validate(&s, 64 * MiB, &e), -EINVAL);   /* a smaller VM */
	}
	pubmem_destroy(&p);
	pubmem_destroy(&q);
}

int main(void)
{
	test_table();
	test_port();
	test_list_and_state();
	return unit_done();
}
