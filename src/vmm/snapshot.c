#include "vmm/snapshot.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/pagemap.h"

int machine_send_ram(struct machine *m, struct sec_writer *w, struct pages_stats *st, struct err *e)
{
	uint64_t *idx = malloc(m->vm.ram_pages * sizeof(uint64_t));
	int64_t n;
	int r;

	if (!idx)
		return err_set(e, -ENOMEM, "page list");
	n = pagemap_populated(m->vm.ram, m->vm.ram_pages, idx, e);
	if (n < 0) {
		free(idx);
		return (int)n;
	}
	/* never-populated pages are zero: counted, not read */
	st->zero_pages += m->vm.ram_pages - (uint64_t)n;
	r = pages_send(w, m->vm.ram, idx, (uint64_t)n, false, true, st, e); /* paused: no staging */
	free(idx);
	return r;
}

int snapshot_save(struct machine *m, const char *path, struct snapshot_stats *st, struct err *e)
{
	struct snapshot_file_header fh = { .format = SNAPSHOT_FORMAT, .header_size = sizeof(fh) };
	struct fd_bstream fb;
	struct sec_writer w;
	char tmp[4096];
	uint64_t t0 = now_ns();
	int fd, r;

	memset(st, 0, sizeof(*st));
	memcpy(fh.magic, SNAPSHOT_MAGIC, 8);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return err_set(e, -ENAMETOOLONG, "snapshot path too long");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, -errno, "cannot create %s", tmp);
	fd_bstream_init(&fb, fd);
	r = sec_writer_init(&w, &fb.bs, e);
	if (r == 0)
		r = bstream_write(&fb.bs, &fh, sizeof(fh), e);
	if (r == 0)
		r = machine_save_config(m, &w, e);
	if (r == 0)
		r = machine_send_ram(m, &w, &st->pages, e);
	if (r == 0)
		r = machine_save_state(m, &w, e);
	if (r == 0)
		r = sec_write_end(&w, st->pages.data_pages + st->pages.markers, e);
	st->bytes = w.bytes + sizeof(fh);
	sec_writer_fini(&w);
	if (close(fd) < 0 && r == 0)
		r = err_sys(e, -errno, "close %s", tmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = err_sys(e, -errno, "cannot rename %s to %s", tmp, path);
	if (r < 0)
		unlink(tmp);
	st->ns = now_ns() - t0;
	return r;
}

static int read_file_header(struct bstream *bs, const char *path, struct err *e)
{
	struct snapshot_file_header fh;
	int r = bs->read_full(bs, &fh, sizeof(fh), e);

	if (r < 0)
		return err_set(e, -EINVAL, "%s is not a sealvm snapshot (too short)", path);
	if (memcmp(fh.magic, SNAPSHOT_MAGIC, 8))
		return err_set(e, -EINVAL, "%s is not a sealvm snapshot (bad magic)", path);
	if (fh.format > SNAPSHOT_FORMAT)
		return err_set(e, -EPROTO, "%s has snapshot format %u, newer than this sealvm reads (%u)",
			       path, fh.format, SNAPSHOT_FORMAT);
	if (fh.format != SNAPSHOT_FORMAT || fh.header_size != sizeof(fh))
		return err_set(e, -EPROTO, "%s has unsupported snapshot format %u", path, fh.format);
	return 0;
}

int snapshot_restore(const char *path, int serial_fd, struct machine *m, struct snapshot_stats *st,
		     struct err *e)
{
	struct machine_config cfg;
	struct machine_loader ld;
	struct fd_bstream fb;
	struct sec_reader rd;
	struct sec_hdr h;
	bool inited = false, done = false;
	uint64_t t0 = now_ns();
	char extra;
	int fd, r;

	memset(st, 0, sizeof(*st));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, -errno, "cannot open snapshot %s", path);
	fd_bstream_init(&fb, fd);
	machine_loader_init(&ld);
	r = sec_reader_init(&rd, &fb.bs, e);
	if (r == 0)
		r = read_file_header(&fb.bs, path, e);
	if (r == 0)
		r = sec_read_hdr(&rd, &h, e);
	if (r == 0)
		r = machine_config_read(&rd, &h, &cfg, e);
	if (r == 0) {
		r = machine_init(m, cfg.ram_size, (int)cfg.nr_vcpus, serial_fd, e);
		inited = r == 0;
		ld.nr_vcpus = cfg.nr_vcpus; /* a VCPU section beyond them is refused as it arrives */
	}
	while (r == 0 && !done) {
		r = sec_read_hdr(&rd, &h, e);
		if (r < 0)
			break;
		switch (h.id) {
		case SEC_PAGES:
			r = pages_recv(&rd, &h, m->vm.ram, m->vm.ram_pages, &st->pages, e);
			break;
		case SEC_END:
			r = sec_check_end(&rd, &h, st->pages.data_pages + st->pages.markers, e);
			done = true;
			break;
		default:
			r = machine_load_section(&ld, &rd, &h, e);
		}
	}
	if (r == 0 && read(fd, &extra, 1) != 0)
		r = err_set(e, -EPROTO, "%s has data after its END section", path);
	if (r == 0)
		r = machine_load_commit(m, &ld, e);
	st->bytes = rd.bytes;
	sec_reader_fini(&rd);
	machine_loader_fini(&ld);
	close(fd);
	if (r < 0) {
		if (inited)
			machine_destroy(m);
		return err_wrap(e, "restore %s", path);
	}
	st->ns = now_ns() - t0;
	return 0;
}
