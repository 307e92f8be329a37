#include "paging/page_vtab.h"

#include <stdbool.h>
#include <stdlib.h>

int vtab_init(struct page_vtab *t, uint64_t npages, uint64_t first, struct err *e)
{
	t->e = NULL;
	t->npages = 0;
	if (first == 0 || first > VTAB_VERSION_MASK)
		return err_set(e, -EINVAL, "first version %llu out of range", (unsigned long long)first);
	if (npages == 0 || npages > (1ull << 40))
		return err_set(e, -EINVAL, "version table for %llu pages", (unsigned long long)npages);
	t->e = calloc(npages, sizeof(*t->e));
	if (!t->e)
		return err_set(e, -ENOMEM, "version table (%llu MiB)", (unsigned long long)(npages * 8 >> 20));
	t->npages = npages;
	t->next = first;
	return 0;
}

void vtab_fini(struct page_vtab *t)
{
	free(t->e);
	t->e = NULL;
	t->npages = 0;
}

uint64_t vtab_next_version(struct page_vtab *t)
{
	uint64_t v = __atomic_load_n(&t->next, __ATOMIC_RELAXED);

	/* never past the mask, even with many threads racing at the end */
	do {
		if (v > VTAB_VERSION_MASK)
			return 0;
	} while (!__atomic_compare_exchange_n(&t->next, &v, v + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return v;
}

uint64_t vtab_peek_next(struct page_vtab *t)
{
	return __atomic_load_n(&t->next, __ATOMIC_RELAXED);
}

uint64_t vtab_version(const struct page_vtab *t, uint64_t page)
{
	return page < t->npages ? __atomic_load_n(&t->e[page], __ATOMIC_ACQUIRE) & VTAB_VERSION_MASK : 0;
}

uint16_t vtab_where(const struct page_vtab *t, uint64_t page)
{
	return page < t->npages ? (uint16_t)(__atomic_load_n(&t->e[page], __ATOMIC_ACQUIRE) >> 48) : 0;
}

void vtab_set(struct page_vtab *t, uint64_t page, uint64_t version, uint16_t where)
{
	if (page < t->npages)
		__atomic_store_n(&t->e[page], (uint64_t)where << 48 | (version & VTAB_VERSION_MASK), __ATOMIC_RELEASE);
}

void vtab_clear(struct page_vtab *t, uint64_t page)
{
	if (page < t->npages)
		__atomic_store_n(&t->e[page], 0, __ATOMIC_RELEASE);
}
