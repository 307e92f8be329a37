#include "vmm/snapshot.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <openssl/rand.h>

#include "state/sealed.h"
#include "util/fsync.h"
#include "util/pagemap.h"
#include "util/statedir.h"

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

int snapshot_file_keys(const struct snapshot_file_header *fh, const uint8_t key[32], struct sealed_keys *k,
		     uint8_t key_id[4], struct err *e)
{
	struct sealed_keys id;
	int r = sealed_derive(key, fh->salt, "sealvm snapshot v2", k, e);

	/* the id depends on the master key only: it says "another key", nothing more */
	if (r == 0)
		r = sealed_derive(key, (const uint8_t[32]){ 0 }, "sealvm snapshot key id", &id, e);
	if (r == 0)
		memcpy(key_id, id.data, 4);
	return r;
}

void snapshot_end_bind(const struct sealed_keys *k, const struct snapshot_file_header *fh, struct sec_bind *b)
{
	memset(b, 0, sizeof(*b));
	memcpy(b->key, k->end, 32);
	memcpy(b->ctx, fh->salt, 32);
	b->ctx_len = 32;
}

/* LABELS: the VM's labels as canonical JSON (what the policy judges at restore). */
static int save_labels(const struct labels *labels, struct sec_writer *w, struct err *e)
{
	static const struct labels none;
	char *text = labels_to_text(labels ? labels : &none);
	struct iovec iov;
	int r;

	if (!text)
		return err_set(e, -ENOMEM, "out of memory");
	iov = (struct iovec){ text, strlen(text) };
	r = sec_write(w, SEC_LABELS, 1, &iov, 1, e);
	free(text);
	return r;
}

static int read_labels(struct sec_reader *r, const struct sec_hdr *h, struct labels *labels, struct err *e)
{
	char *text = malloc(h->len + 1);
	int rc = text ? sec_read(r, text, h->len, e) : err_set(e, -ENOMEM, "out of memory");

	if (rc == 0)
		rc = sec_read_end(r, e);
	if (rc == 0)
		rc = labels_parse_text(text, h->len, labels, e);
	free(text);
	return rc < 0 ? err_wrap(e, "LABELS section") : 0;
}

int snapshot_save(struct machine *m, const char *path, const uint8_t key[32], const struct labels *labels,
		  struct snapshot_stats *st, struct err *e)
{
	struct snapshot_file_header fh = { .format = SNAPSHOT_FORMAT, .header_size = sizeof(fh),
					   .cipher = SNAPSHOT_CIPHER_AES256GCM };
	struct sealed_keys k;
	struct sealed_stream ss = { 0 };
	struct sec_writer w = { 0 };
	struct sec_bind bind;
	char tmp[4200], rnd[17];
	uint8_t r8[8];
	uint64_t t0 = now_ns();
	bool sealed = false;
	int fd, r;

	memset(st, 0, sizeof(*st));
	memcpy(fh.magic, SNAPSHOT_MAGIC, 8);
	if (RAND_bytes(fh.salt, sizeof(fh.salt)) != 1 || RAND_bytes(fh.nonce_prefix, 4) != 1 ||
	    RAND_bytes(r8, sizeof(r8)) != 1)
		return err_set(e, -EIO, "no randomness for the snapshot");
	r = snapshot_file_keys(&fh, key, &k, fh.key_id, e);
	if (r < 0)
		return r;
	/* a name nobody could have planted: never written through a symlink, never reused */
	hex_encode(r8, sizeof(r8), rnd);
	if (snprintf(tmp, sizeof(tmp), "%s.%s.tmp", path, rnd) >= (int)sizeof(tmp))
		return err_set(e, -ENAMETOOLONG, "snapshot path too long");
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(e, -errno, "cannot create %s", tmp);
	{
		struct fd_bstream fb;
		fd_bstream_init(&fb, fd);
		r = bstream_write(&fb.bs, &fh, sizeof(fh), e);
	}
	if (r == 0)
		r = sealed_writer_init(&ss, fd, k.data, &fh, sizeof(fh), fh.nonce_prefix, e);
	sealed = r == 0;
	if (r == 0)
		r = sec_writer_init(&w, &ss.bs, e);
	snapshot_end_bind(&k, &fh, &bind);
	w.bind = &bind;
	if (r == 0)
		r = machine_save_config(m, &w, e);
	if (r == 0)
		r = save_labels(labels, &w, e);
	if (r == 0)
		r = machine_send_ram(m, &w, &st->pages, e);
	if (r == 0)
		r = machine_save_state(m, &w, SAVE_SNAPSHOT, e);
	if (r == 0)
		r = sec_write_end(&w, st->pages.data_pages + st->pages.markers, e);
	if (r == 0)
		r = sealed_writer_finish(&ss, e);
	st->bytes = ss.file_bytes + sizeof(fh);
	sec_writer_fini(&w);
	if (sealed)
		sealed_fini(&ss);
	OPENSSL_cleanse(&k, sizeof(k));
	if (r == 0 && fsync(fd) < 0)
		r = err_sys(e, -errno, "cannot sync %s", tmp);
	if (close(fd) < 0 && r == 0)
		r = err_sys(e, -errno, "close %s", tmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = err_sys(e, -errno, "cannot rename %s to %s", tmp, path);
	if (r == 0)
		r = fsync_parent(path, e);
	if (r < 0)
		unlink(tmp);
	st->ns = now_ns() - t0;
	return r;
}

int snapshot_check_header(const void *buf, size_t n, const char *path, struct snapshot_file_header *fh,
			  struct err *e)
{
	memset(fh, 0, sizeof(*fh));
	memcpy(fh, buf, n < sizeof(*fh) ? n : sizeof(*fh));
	if (n < 16)
		return err_set(e, -EINVAL, "%s is not a sealvm snapshot (too short)", path);
	if (memcmp(fh->magic, SNAPSHOT_MAGIC, 8))
		return err_set(e, -EINVAL, "%s is not a sealvm snapshot (bad magic)", path);
	if (fh->format > SNAPSHOT_FORMAT)
		return err_set(e, -EPROTO, "%s has snapshot format %u, newer than this sealvm reads (%u)",
			       path, fh->format, SNAPSHOT_FORMAT);
	if (fh->format == 1)
		return err_set(e, -EPROTO,
			       "%s is an unsealed snapshot (format 1, from an older sealvm): refused, since nothing proves it was not altered",
			       path);
	if (fh->format != SNAPSHOT_FORMAT || n < sizeof(*fh) || fh->header_size != sizeof(*fh) ||
	    fh->cipher != SNAPSHOT_CIPHER_AES256GCM || fh->flags)
		return err_set(e, -EPROTO, "%s has an unsupported snapshot header", path);
	return 0;
}

static int read_file_header(int fd, const char *path, struct snapshot_file_header *fh, struct err *e)
{
	uint8_t buf[sizeof(*fh)];
	ssize_t n = read(fd, buf, sizeof(buf));

	return snapshot_check_header(buf, n < 0 ? 0 : (size_t)n, path, fh, e);
}

int snapshot_restore(const char *path, const uint8_t key[32], int serial_fd, const struct snapshot_check *chk,
		     struct machine *m, struct snapshot_stats *st, struct err *e)
{
	struct labels labels = { 0 };
	bool pending = false;
	struct snapshot_file_header fh;
	struct machine_config cfg;
	struct machine_loader ld;
	struct sealed_keys k;
	struct sealed_stream ss = { 0 };
	struct sec_reader rd = { 0 };
	struct sec_bind bind;
	struct sec_hdr h;
	bool inited = false, done = false, sealed = false;
	uint8_t key_id[4];
	uint64_t t0 = now_ns();
	int fd, r;

	memset(st, 0, sizeof(*st));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_sys(e, -errno, "cannot open snapshot %s", path);
	machine_loader_init(&ld);
	r = read_file_header(fd, path, &fh, e);
	if (r == 0)
		r = snapshot_file_keys(&fh, key, &k, key_id, e);
	if (r == 0 && memcmp(key_id, fh.key_id, 4))
		r = err_set(e, -EACCES, "%s was sealed with another key (give the one it was written with: --key-file, or the --state-dir of the host that wrote it)",
			    path);
	if (r == 0)
		r = sealed_reader_init(&ss, fd, k.data, &fh, sizeof(fh), fh.nonce_prefix, e);
	sealed = r == 0;
	if (r == 0)
		r = sec_reader_init(&rd, &ss.bs, e);
	snapshot_end_bind(&k, &fh, &bind);
	rd.bind = &bind;
	if (r == 0)
		r = sec_read_hdr(&rd, &h, e);
	if (r == 0)
		r = machine_config_read(&rd, &h, &cfg, e);
	/* the labels (files written before labels existed have none), judged before a VM exists */
	if (r == 0)
		r = sec_read_hdr(&rd, &h, e);
	if (r == 0 && h.id == SEC_LABELS)
		r = read_labels(&rd, &h, &labels, e);
	else
		pending = r == 0;
	if (r == 0 && chk && chk->fn)
		r = chk->fn(chk->opaque, &labels, e);
	if (r == 0) {
		r = machine_init(m, cfg.ram_size, (int)cfg.nr_vcpus, serial_fd, e);
		inited = r == 0;
		ld.nr_vcpus = cfg.nr_vcpus; /* a VCPU section beyond them is refused as it arrives */
	}
	while (r == 0 && !done) {
		if (!pending)
			r = sec_read_hdr(&rd, &h, e);
		pending = false;
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
	if (r == 0)
		r = sealed_reader_check_end(&ss, e);
	/* everything authenticated: only now a vCPU is made */
	if (r == 0)
		r = machine_load_commit(m, &ld, e);
	st->bytes = ss.file_bytes + sizeof(fh);
	sec_reader_fini(&rd);
	if (sealed)
		sealed_fini(&ss);
	OPENSSL_cleanse(&k, sizeof(k));
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
