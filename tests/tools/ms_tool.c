/* ms_tool: a memory server client for tests (memserver/client.h), and a hostile one.
 *
 *   ms_tool URI --tls-dir DIR [--timeout MS] COMMAND [ARGS] [COMMAND [ARGS]...]
 *
 * Runs the commands in order over one connection (so a store created EPHEMERAL lives
 * until the tool ends) and prints one line per command: "ok ..." or "error CODE: why".
 * Exits 0 if every command did what it was asked, 1 if one failed (the rest are skipped),
 * 2 on usage or connection errors.
 *
 *   create STORE QUOTA [ephemeral]        STORE: 32 hex digits (a store id)
 *   fill STORE FIRST COUNT KEYFILE TEXT [plain]
 *           seals pages FIRST..FIRST+COUNT-1, each filled with TEXT repeated (and its page
 *           number), under a page key made now and written to KEYFILE (or read from it if it
 *           exists), as version 1 (sealed, or plain+GMAC), and PUTs them, pipelined
 *   verify STORE FIRST COUNT KEYFILE TEXT GETs them back, opens and checks every page
 *   get STORE KEY                         one blob: prints its length
 *   free STORE | stat STORE | adopt STORE | decline STORE
 *   grant STORE CERT.pem TTL              to the holder of that certificate
 *   ping N                                N round trips: prints p50/p99 in µs
 *   hold SECONDS                          keeps the connection open
 *   raw KIND                              a malformed record on a fresh connection, and what came
 *                                         back: badversion, notmemserver, badop, hugelen, badput,
 *                                         dupkey, secondhello, shortpayload, flags, junk */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channel/channel.h"
#include "memserver/client.h"
#include "paging/page_seal.h"
#include "util/hex.h"

static const char *uri, *tls_dir;
static int timeout_ms = 10000;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int store_id(const char *s, uint8_t id[MS_STORE_ID_LEN])
{
	if (strlen(s) != 2 * MS_STORE_ID_LEN || hex_decode(s, id, MS_STORE_ID_LEN) < 0) {
		fprintf(stderr, "ms_tool: a store id is 32 hex digits, not '%s'\n", s);
		return -1;
	}
	return 0;
}

static int fail(const struct err *e)
{
	printf("error %d: %s\n", e->code, e->msg);
	fflush(stdout);
	return 1;
}

/* The page key in KEYFILE (hex of key, VM id and epoch), made if it does not exist. */
static int load_key(const char *path, struct page_key *k, struct err *e)
{
	char hex[2 * (PAGE_KEY_LEN + PAGE_VM_ID_LEN) + 16];
	FILE *f = fopen(path, "r");

	if (f) {
		char vm[2 * PAGE_VM_ID_LEN + 1];
		bool ok = fgets(hex, sizeof(hex), f) && strlen(hex) >= 2 * (PAGE_KEY_LEN + PAGE_VM_ID_LEN);
		if (ok) {
			memcpy(vm, hex + 2 * PAGE_KEY_LEN, sizeof(vm) - 1);
			vm[sizeof(vm) - 1] = 0;
			hex[2 * PAGE_KEY_LEN] = 0;
			ok = hex_decode(hex, k->key, PAGE_KEY_LEN) == 0 && hex_decode(vm, k->vm_id, PAGE_VM_ID_LEN) == 0;
		}
		fclose(f);
		k->epoch = 1;
		return ok ? 0 : err_set(e, -EINVAL, "%s is not a key file", path);
	}
	if (page_key_generate(k, NULL, 1, e) < 0)
		return -1;
	f = fopen(path, "w");
	if (!f)
		return err_set(e, -errno, "cannot write %s", path);
	hex_encode(k->key, PAGE_KEY_LEN, hex);
	fputs(hex, f);
	hex_encode(k->vm_id, PAGE_VM_ID_LEN, hex);
	fprintf(f, "%s\n", hex);
	fclose(f);
	return 0;
}

static void fill_page(uint8_t *p, uint64_t page, const char *text)
{
	size_t n = strlen(text), off = 0;
	char tag[32];
	int t = snprintf(tag, sizeof(tag), "[%llu]", (unsigned long long)page);

	while (off < PAGE_SEAL_PAGE) {
		size_t k = n < PAGE_SEAL_PAGE - off ? n : PAGE_SEAL_PAGE - off;
		memcpy(p + off, text, k);
		off += k;
	}
	memcpy(p, tag, (size_t)t);
}

struct fill_state {
	int outstanding, failed;
	char why[256];
};

static void put_done(void *arg, const struct ms_result *r)
{
	struct fill_state *f = arg;

	__atomic_sub_fetch(&f->outstanding, 1, __ATOMIC_SEQ_CST);
	if (r->status < 0 && !__atomic_exchange_n(&f->failed, 1, __ATOMIC_SEQ_CST))
		snprintf(f->why, sizeof(f->why), "%s", r->msg);
}

static int cmd_fill(struct ms_client *c, const uint8_t *id, uint64_t first, uint64_t count, const char *keyfile,
		    const char *text, bool plain)
{
	static uint8_t blobs[MS_PUT_MAX][PAGE_BLOB_SIZE];
	uint8_t page[PAGE_SEAL_PAGE];
	struct fill_state fs = { 0 };
	struct page_sealer *s;
	struct page_key k;
	struct err e = { 0 };
	uint64_t done = 0, t0 = mono_ns();

	if (load_key(keyfile, &k, &e) < 0 || page_sealer_new(&k, &s, &e) < 0)
		return fail(&e);
	while (done < count) {
		uint32_t n = count - done < MS_PUT_MAX ? (uint32_t)(count - done) : MS_PUT_MAX, lens[MS_PUT_MAX];
		const uint8_t *bp[MS_PUT_MAX];
		uint64_t keys[MS_PUT_MAX];
		int r;
		for (uint32_t i = 0; i < n; i++) {
			keys[i] = first + done + i;
			fill_page(page, keys[i], text);
			if (page_seal(s, keys[i], 1, plain ? PAGE_MODE_PLAIN : PAGE_MODE_SEALED, page, blobs[i], &e) < 0)
				return fail(&e);
			bp[i] = blobs[i];
			lens[i] = PAGE_BLOB_SIZE;
		}
		__atomic_add_fetch(&fs.outstanding, 1, __ATOMIC_SEQ_CST);
		while ((r = ms_client_put_async(c, id, n, keys, bp, lens, put_done, &fs)) == -EAGAIN)
			if (ms_client_wait_room(c, &e) < 0)
				return fail(&e);
		if (r < 0) {
			err_set(&e, r, "PUT: %s", ms_client_ok(c, &e) ? "refused" : e.msg);
			return fail(&e);
		}
		done += n;
	}
	explicit_bzero(page, sizeof(page));
	if (ms_client_drain(c, &e) < 0)
		return fail(&e);
	page_sealer_free(s);
	page_key_wipe(&k);
	if (fs.failed) {
		err_set(&e, -EIO, "a PUT was refused: %s", fs.why);
		return fail(&e);
	}
	printf("ok filled %llu pages (%s) in %.1f ms\n", (unsigned long long)count, plain ? "plain" : "sealed",
	       (double)(mono_ns() - t0) / 1e6);
	return 0;
}

struct verify_state {
	struct page_sealer *s;
	const char *text;
	uint64_t ok, bad;
	char why[256];
};

static void get_done(void *arg, const struct ms_result *r)
{
	struct verify_state *v = arg;
	uint8_t page[PAGE_SEAL_PAGE], want[PAGE_SEAL_PAGE];
	enum page_verdict why;
	struct err e = { 0 };

	if (r->status < 0) {
		v->bad++;
		snprintf(v->why, sizeof(v->why), "%s", r->msg);
		return;
	}
	if (page_open(v->s, r->key, 1, r->blob, r->len, page, NULL, &why, &e) < 0) {
		v->bad++;
		snprintf(v->why, sizeof(v->why), "%s", e.msg);
		return;
	}
	fill_page(want, r->key, v->text);
	if (memcmp(page, want, sizeof(page))) {
		v->bad++;
		snprintf(v->why, sizeof(v->why), "page %llu opened but holds other contents", (unsigned long long)r->key);
		return;
	}
	v->ok++;
}

static int cmd_verify(struct ms_client *c, const uint8_t *id, uint64_t first, uint64_t count, const char *keyfile,
		      const char *text)
{
	struct verify_state v = { .text = text };
	struct page_key k;
	struct err e = { 0 };
	uint64_t t0 = mono_ns();

	if (load_key(keyfile, &k, &e) < 0 || page_sealer_new(&k, &v.s, &e) < 0)
		return fail(&e);
	for (uint64_t i = 0; i < count; i++) {
		int r;
		while ((r = ms_client_get_async(c, id, first + i, get_done, &v)) == -EAGAIN)
			if (ms_client_wait_room(c, &e) < 0)
				return fail(&e);
		if (r < 0) {
			err_set(&e, r, "GET could not be sent");
			return fail(&e);
		}
	}
	if (ms_client_drain(c, &e) < 0)
		return fail(&e);
	page_sealer_free(v.s);
	if (v.bad) {
		err_set(&e, -EBADMSG, "%llu of %llu pages bad: %s", (unsigned long long)v.bad, (unsigned long long)count,
			v.why);
		return fail(&e);
	}
	printf("ok verified %llu pages in %.1f ms\n", (unsigned long long)v.ok, (double)(mono_ns() - t0) / 1e6);
	return 0;
}

static int cert_fp(const char *path, uint8_t fp[32], struct err *e)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	unsigned int n = 32;
	int ok = x && X509_digest(x, EVP_sha256(), fp, &n) == 1;

	if (f)
		fclose(f);
	X509_free(x);
	return ok ? 0 : err_set(e, -EINVAL, "cannot read a certificate from %s", path);
}

static void print_stat(const char *what, const struct ms_stat_reply *s)
{
	static const char *const states[] = { "?", "filling", "granted", "owned" };

	printf("ok %s blobs=%llu quota=%llu bytes=%llu state=%s role=%s ttl=%u adoptions=%u\n", what,
	       (unsigned long long)s->blobs, (unsigned long long)s->quota, (unsigned long long)s->bytes,
	       s->state <= 3 ? states[s->state] : "?", s->role == MS_ROLE_OWNER ? "owner" : "grantee", s->grant_ttl,
	       s->adoptions);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- hostile records, on a fresh connection ---- */

static int send_raw(struct chan *ch, uint16_t op, uint16_t flags, uint32_t len, const void *p, uint32_t plen,
		    struct err *e)
{
	struct ms_hdr h = { .op = op, .flags = flags, .len = len, .tag = 77 };
	int r = chan_write(ch, &h, sizeof(h), e);

	if (r == 0 && plen)
		r = chan_write(ch, p, plen, e);
	return r ? r : chan_flush(ch, e);
}

static int cmd_raw(const char *kind)
{
	struct ms_hello hello = { .proto = MS_PROTO_VERSION };
	uint8_t buf[8192];
	struct chan *ch;
	struct err e = { 0 };
	struct ms_hdr h;
	int r;

	r = chan_connect(uri, tls_dir, timeout_ms, &ch, &e);
	if (r < 0)
		return fail(&e);
	chan_set_timeout(ch, timeout_ms);
	if (!strcmp(kind, "badversion")) {
		hello.proto = 99;
		r = send_raw(ch, MS_HELLO, 0, sizeof(hello), &hello, sizeof(hello), &e);
		goto answer;
	}
	if (!strcmp(kind, "notmemserver")) {
		/* a migration source's first section header */
		uint32_t sec[6] = { 16, 3, 0, 0, 64, 0 };
		r = chan_write(ch, sec, sizeof(sec), &e);
		if (r == 0)
			r = chan_flush(ch, &e);
		goto answer;
	}
	r = send_raw(ch, MS_HELLO, 0, sizeof(hello), &hello, sizeof(hello), &e);
	if (r == 0)
		r = chan_read_full(ch, &h, sizeof(h), &e);
	if (r == 0 && h.len <= sizeof(buf))
		r = chan_read_full(ch, buf, h.len, &e);
	if (r < 0)
		goto out;
	if (!strcmp(kind, "badop")) {
		r = send_raw(ch, 99, 0, 8, buf, 8, &e);
	} else if (!strcmp(kind, "hugelen")) {
		r = send_raw(ch, MS_PUT, 0, 0x7fffffff, NULL, 0, &e);
	} else if (!strcmp(kind, "badput") || !strcmp(kind, "dupkey")) {
		struct {
			struct ms_put_head h;
			struct ms_put_ent e[2];
			uint8_t b[2][16];
		} p;
		memset(&p, 0, sizeof(p));
		p.h.count = 2;
		p.e[0] = (struct ms_put_ent){ .key = 1, .len = 16 };
		p.e[1] = (struct ms_put_ent){ .key = 1, .len = 16 };
		if (!strcmp(kind, "badput"))
			p.e[1] = (struct ms_put_ent){ .key = 2, .len = 40 }; /* longer than what follows */
		r = send_raw(ch, MS_PUT, 0, sizeof(p), &p, sizeof(p), &e);
	} else if (!strcmp(kind, "secondhello")) {
		r = send_raw(ch, MS_HELLO, 0, sizeof(hello), &hello, sizeof(hello), &e);
	} else if (!strcmp(kind, "flags")) {
		r = send_raw(ch, MS_PING, 0x8000, 8, buf, 8, &e);
	} else if (!strcmp(kind, "shortpayload")) {
		/* a GET that ends half-way, then silence: the server must drop us, not hang */
		r = send_raw(ch, MS_GET, 0, sizeof(struct ms_key_req), buf, 5, &e);
		if (r == 0)
			r = chan_read_full(ch, &h, sizeof(h), &e);
		printf("ok shortpayload: %s\n", r < 0 ? e.msg : "the server answered a half record");
		chan_close(ch);
		return r < 0 ? 0 : 1;
	} else if (!strcmp(kind, "junk")) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)(i * 2654435761u >> 7);
		r = chan_write(ch, buf, sizeof(buf), &e);
		if (r == 0)
			r = chan_flush(ch, &e);
	} else {
		fprintf(stderr, "ms_tool: unknown raw kind %s\n", kind);
		chan_close(ch);
		return 2;
	}
answer:
	if (r == 0)
		r = chan_read_full(ch, &h, sizeof(h), &e);
	if (r == 0 && h.op == MS_ERROR && h.len == sizeof(struct ms_error)) {
		struct ms_error er;
		r = chan_read_full(ch, &er, sizeof(er), &e);
		ms_error_fix(&er);
		if (r == 0) {
			/* then the server closes */
			int c2 = chan_read_full(ch, buf, 1, &e);
			printf("ok %s: refused (%d): %s; then %s\n", kind, er.status, er.msg,
			       c2 == -ENODATA ? "closed" : "still open");
		}
	} else if (r == 0) {
		printf("error: %s got %s of %u bytes\n", kind, ms_op_name(h.op), h.len);
		r = -EPROTO;
	}
out:
	if (r < 0 && r != -EPROTO)
		printf("ok %s: connection ended: %s\n", kind, e.msg);
	chan_close(ch);
	return r == -EPROTO;
}

int main(int argc, char **argv)
{
	struct ms_client *c = NULL;
	struct err e = { 0 };
	uint8_t id[MS_STORE_ID_LEN];
	int i = 1, rc = 0;

	if (argc < 2)
		goto usage;
	uri = argv[i++];
	while (i < argc && !strncmp(argv[i], "--", 2)) {
		if (!strcmp(argv[i], "--tls-dir") && i + 1 < argc)
			tls_dir = argv[i + 1];
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout_ms = atoi(argv[i + 1]);
		else
			goto usage;
		i += 2;
	}
	if (i < argc && !strcmp(argv[i], "raw") && i + 1 < argc)
		return cmd_raw(argv[i + 1]);
	if (ms_client_connect(uri, tls_dir, timeout_ms, &c, &e) < 0) {
		printf("error %d: %s\n", e.code, e.msg);
		return 2;
	}
	printf("ok connected to %s: capacity %llu blobs, %llu free\n", ms_client_info(c)->name,
	       (unsigned long long)ms_client_info(c)->capacity, (unsigned long long)ms_client_info(c)->free);
	fflush(stdout);
	while (rc == 0 && i < argc) {
		const char *cmd = argv[i++];
		int left = argc - i;
		struct ms_stat_reply st;
		if (!strcmp(cmd, "create") && left >= 2) {
			struct ms_create_reply cr;
			bool eph = left >= 3 && !strcmp(argv[i + 2], "ephemeral");
			if (store_id(argv[i], id) < 0)
				return 2;
			rc = ms_client_create(c, id, strtoull(argv[i + 1], NULL, 10), eph ? MS_CREATE_EPHEMERAL : 0, &cr, &e) < 0
				     ? fail(&e)
				     : (printf("ok created quota=%llu free=%llu\n", (unsigned long long)cr.quota,
					       (unsigned long long)cr.free),
					0);
			i += eph ? 3 : 2;
		} else if (!strcmp(cmd, "fill") && left >= 5) {
			bool plain = left >= 6 && !strcmp(argv[i + 5], "plain");
			if (store_id(argv[i], id) < 0)
				return 2;
			rc = cmd_fill(c, id, strtoull(argv[i + 1], NULL, 10), strtoull(argv[i + 2], NULL, 10), argv[i + 3],
				      argv[i + 4], plain);
			i += plain ? 6 : 5;
		} else if (!strcmp(cmd, "verify") && left >= 5) {
			if (store_id(argv[i], id) < 0)
				return 2;
			rc = cmd_verify(c, id, strtoull(argv[i + 1], NULL, 10), strtoull(argv[i + 2], NULL, 10), argv[i + 3],
					argv[i + 4]);
			i += 5;
		} else if (!strcmp(cmd, "get") && left >= 2) {
			static uint8_t blob[MS_BLOB_MAX];
			uint32_t len;
			if (store_id(argv[i], id) < 0)
				return 2;
			rc = ms_client_get(c, id, strtoull(argv[i + 1], NULL, 10), blob, &len, &e) < 0
				     ? fail(&e)
				     : (printf("ok got %u bytes\n", len), 0);
			i += 2;
		} else if ((!strcmp(cmd, "free") || !strcmp(cmd, "stat") || !strcmp(cmd, "adopt") ||
			    !strcmp(cmd, "decline")) && left >= 1) {
			uint64_t n = 0;
			int r;
			if (store_id(argv[i++], id) < 0)
				return 2;
			if (!strcmp(cmd, "free"))
				r = ms_client_free(c, id, &n, &e);
			else if (!strcmp(cmd, "stat"))
				r = ms_client_stat(c, id, &st, &e);
			else if (!strcmp(cmd, "adopt"))
				r = ms_client_adopt(c, id, &st, &e);
			else
				r = ms_client_decline(c, id, &e);
			if (r < 0)
				rc = fail(&e);
			else if (!strcmp(cmd, "free"))
				printf("ok freed %llu blobs\n", (unsigned long long)n);
			else if (!strcmp(cmd, "decline"))
				printf("ok declined\n");
			else
				print_stat(cmd, &st);
		} else if (!strcmp(cmd, "grant") && left >= 3) {
			uint8_t fp[32];
			if (store_id(argv[i], id) < 0)
				return 2;
			if (cert_fp(argv[i + 1], fp, &e) < 0 ||
			    ms_client_grant(c, id, fp, (uint32_t)strtoul(argv[i + 2], NULL, 10), &st, &e) < 0)
				rc = fail(&e);
			else
				print_stat("grant", &st);
			i += 3;
		} else if (!strcmp(cmd, "ping") && left >= 1) {
			int n = atoi(argv[i++]);
			uint64_t *rtt = calloc((size_t)(n > 0 ? n : 1), sizeof(uint64_t));
			for (int k = 0; rc == 0 && k < n; k++)
				if (ms_client_ping(c, &rtt[k], &e) < 0)
					rc = fail(&e);
			if (rc == 0 && n > 0) {
				qsort(rtt, (size_t)n, sizeof(*rtt), cmp_u64);
				printf("ok ping n=%d p50_us=%.1f p99_us=%.1f\n", n, (double)rtt[n / 2] / 1e3,
				       (double)rtt[(n * 99) / 100] / 1e3);
			}
			free(rtt);
		} else if (!strcmp(cmd, "hold") && left >= 1) {
			sleep((unsigned)atoi(argv[i++]));
			printf("ok held\n");
		} else {
			fprintf(stderr, "ms_tool: unknown command or missing arguments: %s\n", cmd);
			ms_client_close(c);
			return 2;
		}
		fflush(stdout);
	}
	ms_client_close(c);
	return rc;
usage:
	fprintf(stderr, "usage: ms_tool URI --tls-dir DIR [--timeout MS] COMMAND [ARGS]... (see the source)\n");
	return 2;
}
