/* The memory server client library against a real server over TLS, in one process:
 * thousands of pipelined PUTs and GETs complete once each and in order; a server that
 * stops, or one that goes silent, fails every pending request with the reason and
 * later submissions at once — what a paging provider sees of a lost sub-host. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "channel/channel.h"
#include "memserver/client.h"
#include "memserver/server.h"
#include "unit.h"

static char certs[64];
static char dirbuf[4][128];

static const char *dirof(const char *h)
{
	static int k;
	char *d = dirbuf[k++ % 4];

	snprintf(d, 128, "%s/%s", certs, h);
	return d;
}

struct tally {
	pthread_mutex_t lock;
	uint64_t ok, failed, wrong;
	uint64_t next_key;      /* GET answers come in submission order */
	int last_status;
	char msg[200];
};

static void on_get(void *arg, const struct ms_result *r)
{
	struct tally *t = arg;

	pthread_mutex_lock(&t->lock);
	if (r->status == 0) {
		if (r->key != t->next_key || r->len != 100 || r->blob[0] != (uint8_t)r->key || r->blob[99] != (uint8_t)r->key)
			t->wrong++;
		t->ok++;
	} else {
		t->failed++;
		t->last_status = r->status;
		snprintf(t->msg, sizeof(t->msg), "%s", r->msg);
	}
	t->next_key++;
	pthread_mutex_unlock(&t->lock);
}

static void on_put(void *arg, const struct ms_result *r)
{
	struct tally *t = arg;

	pthread_mutex_lock(&t->lock);
	if (r->status == 0 && r->u.put.count == 32)
		t->ok++;
	else
		t->failed++;
	pthread_mutex_unlock(&t->lock);
}

/* Any answer: counts, and keeps the last failure's reason. */
static void on_any(void *arg, const struct ms_result *r)
{
	struct tally *t = arg;

	pthread_mutex_lock(&t->lock);
	if (r->status == 0) {
		t->ok++;
	} else {
		t->failed++;
		if (r->status == -ENOENT)
			t->wrong++;
		t->last_status = r->status;
		snprintf(t->msg, sizeof(t->msg), "%s", r->msg);
	}
	pthread_mutex_unlock(&t->lock);
}

static void test_pipelined(void)
{
	static const uint8_t S[MS_STORE_ID_LEN] = { 0x51 };
	struct ms_server_params p = { .uri = "tls://127.0.0.1:0", .tls_dir = dirof("hostc"), .capacity = 8 << 20 };
	struct tally t = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct ms_server *srv;
	struct ms_client *c;
	struct err e = { 0 };
	char uri[64];
	uint8_t blobs[32][100];
	const uint8_t *bp[32];
	uint32_t lens[32];
	uint64_t keys[32], freed;
	int r;

	CHECKF(ms_server_start(&p, &srv, &e) == 0, "%s", e.msg);
	snprintf(uri, sizeof(uri), "tls://127.0.0.1:%d", ms_server_port(srv));
	CHECKF(ms_client_connect(uri, dirof("hosta"), 10000, &c, &e) == 0, "%s", e.msg);
	CHECK_STR(ms_client_info(c)->name, "hostc");
	CHECK(ms_client_info(c)->capacity == (8 << 20) / MS_BLOB_MAX);
	CHECKF(ms_client_create(c, S, 1024, MS_CREATE_EPHEMERAL, NULL, &e) == 0, "%s", e.msg);
	/* 32 PUTs of 32 blobs, all submitted before any answer is awaited */
	for (int b = 0; b < 32; b++) {
		for (int i = 0; i < 32; i++) {
			keys[i] = (uint64_t)(b * 32 + i);
			memset(blobs[i], (uint8_t)keys[i], sizeof(blobs[i]));
			bp[i] = blobs[i];
			lens[i] = sizeof(blobs[i]);
		}
		while ((r = ms_client_put_async(c, S, 32, keys, bp, lens, on_put, &t)) == -EAGAIN)
			ms_client_wait_room(c, &e);
		CHECK_INT(r, 0);
	}
	CHECK_INT(ms_client_drain(c, &e), 0);
	CHECK(t.ok == 32 && t.failed == 0);
	/* 3000 GETs pipelined: every one answered once, in order, with its own blob */
	t.ok = t.failed = 0;
	for (uint64_t k = 0; k < 3000; k++) {
		while ((r = ms_client_get_async(c, S, k % 1024, on_get, &t)) == -EAGAIN)
			ms_client_wait_room(c, &e);
		CHECK_INT(r, 0);
		if (k % 1024 == 1023) { /* the expected key wraps with the keys asked */
			CHECK_INT(ms_client_drain(c, &e), 0);
			t.next_key = 0;
		}
	}
	CHECK_INT(ms_client_drain(c, &e), 0);
	CHECKF(t.ok == 3000 && t.failed == 0 && t.wrong == 0, "ok %llu failed %llu wrong %llu: %s",
	       (unsigned long long)t.ok, (unsigned long long)t.failed, (unsigned long long)t.wrong, t.msg);
	/* a refusal is one request's failure, not the connection's */
	{
		uint8_t blob[MS_BLOB_MAX];
		uint32_t len;
		CHECKF(ms_client_get(c, S, 5000, blob, &len, &e) == -ENOENT && strstr(e.msg, "holds no blob"), "%s", e.msg);
		CHECK(ms_client_ok(c, NULL));
		CHECK_INT(ms_client_get(c, S, 7, blob, &len, &e), 0);
		CHECK(len == 100 && blob[0] == 7);
	}
	CHECK_INT(ms_client_free(c, S, &freed, &e), 0);
	CHECK_INT(freed, 1024);

	/* the server goes away with requests outstanding: each fails once, with the reason */
	CHECKF(ms_client_create(c, S, 10, 0, NULL, &e) == 0, "%s", e.msg);
	CHECKF(ms_client_put(c, S, 1, keys, bp, lens, NULL, &e) == 0, "%s", e.msg);
	t = (struct tally){ .lock = PTHREAD_MUTEX_INITIALIZER };
	for (int k = 0; k < 2000; k++)
		CHECK_INT(ms_client_get_async(c, S, keys[0], on_any, &t), 0);
	ms_server_stop(srv);
	CHECK(ms_client_drain(c, &e) < 0);
	CHECKF(t.ok + t.failed == 2000 && t.failed > 0 && t.wrong == 0, "ok %llu failed %llu (%llu refused)",
	       (unsigned long long)t.ok, (unsigned long long)t.failed, (unsigned long long)t.wrong);
	CHECK(!ms_client_ok(c, &e));
	printf("  lost server: %llu requests failed with \"%s\"\n", (unsigned long long)t.failed, t.msg);
	CHECK_INT(ms_client_get_async(c, S, 1, on_any, &t), -EPIPE);
	CHECK(ms_client_ping(c, NULL, &e) < 0);
	ms_client_close(c);
}

/* A server that greets and then never answers. */
struct silent {
	struct chan_listener *l;
	int port;
};

static void *silent_thread(void *arg)
{
	struct silent *s = arg;
	struct ms_hdr h;
	struct ms_hello hello;
	struct ms_hello_reply hr = { .proto = MS_PROTO_VERSION, .blob_max = MS_BLOB_MAX };
	struct ms_hdr ah = { .op = MS_HELLO | MS_REPLY, .len = sizeof(hr) };
	struct chan *ch;
	struct err e = { 0 };
	uint8_t sink[4096];

	if (chan_accept(s->l, 5000, &ch, &e) < 0)
		return NULL;
	if (chan_read_full(ch, &h, sizeof(h), &e) == 0 && chan_read_full(ch, &hello, sizeof(hello), &e) == 0 &&
	    chan_write(ch, &ah, sizeof(ah), &e) == 0 && chan_write(ch, &hr, sizeof(hr), &e) == 0 &&
	    chan_flush(ch, &e) == 0)
		while (chan_read_full(ch, sink, 1, &e) == 0)
			; /* reads every request, answers none */
	chan_close(ch);
	return NULL;
}

static void test_silent(void)
{
	static const uint8_t S[MS_STORE_ID_LEN] = { 0x52 };
	struct tally t = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct silent s;
	struct ms_client *c;
	struct err e = { 0 };
	pthread_t th;
	char uri[64];

	CHECK_INT(chan_listen("tls://127.0.0.1:0", dirof("hostc"), &s.l, &e), 0);
	snprintf(uri, sizeof(uri), "tls://127.0.0.1:%d", chan_listener_port(s.l));
	pthread_create(&th, NULL, silent_thread, &s);
	CHECKF(ms_client_connect(uri, dirof("hosta"), 700, &c, &e) == 0, "%s", e.msg);
	for (int k = 0; k < 5; k++)
		CHECK_INT(ms_client_get_async(c, S, 1, on_any, &t), 0);
	CHECK(ms_client_drain(c, &e) == -ETIMEDOUT);
	CHECKF(t.failed == 5 && t.last_status == -ETIMEDOUT && strstr(t.msg, "no answer from the memory server"), "%s",
	       t.msg);
	ms_client_close(c);
	pthread_join(th, NULL);
	chan_listener_close(s.l);
}

int main(void)
{
	char cmd[256];

	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(certs, sizeof(certs), "/tmp/sealvm-test-memclient-XXXXXX");
	if (!mkdtemp(certs)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "scripts/mkcerts.sh %s", certs);
	if (system(cmd) != 0) {
		fprintf(stderr, "test_memclient: %s failed (run from the repository root)\n", cmd);
		return 1;
	}
	test_pipelined();
	test_silent();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
	if (system(cmd) != 0)
		fprintf(stderr, "test_memclient: could not remove %s\n", certs);
	return unit_done();
}
