/* The state directory and the durable outcome store: one decision per migration
 * id, whoever links first, across processes; records survive and parse strictly. */
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migrate/outcome.h"
#include "unit.h"
#include "util/statedir.h"

static char root[128];

static void test_state_dir(void)
{
	struct state_dir a, b;
	struct err e = { 0 };
	char p[256];

	snprintf(p, sizeof(p), "%s/a/b/c", root);
	CHECK_INT(state_dir_open(&a, p, &e), 0);
	CHECK_INT(state_dir_open(&b, p, &e), 0);
	CHECK(memcmp(a.host_id, b.host_id, 16) == 0);          /* stable across opens */
	snprintf(p, sizeof(p), "%s/other", root);
	CHECK_INT(state_dir_open(&b, p, &e), 0);
	CHECK(memcmp(a.host_id, b.host_id, 16) != 0);          /* another directory, another id */
	CHECK_INT(chmod(p, 0777), 0);
	CHECKF(state_dir_open(&b, p, &e) == -EACCES && strstr(e.msg, "chmod 700"), "%s", e.msg);
	snprintf(p, sizeof(p), "%s/a/b/c/host-id", root);
	CHECK_INT(system("true"), 0);
	{
		FILE *f = fopen(p, "w");
		fputs("zz\n", f);
		fclose(f);
	}
	snprintf(p, sizeof(p), "%s/a/b/c", root);
	CHECKF(state_dir_open(&b, p, &e) == -EINVAL && strstr(e.msg, "damaged"), "%s", e.msg);
}

static void test_decide(void)
{
	struct outcome_store s;
	struct outcome_rec r;
	struct outcome_prep pc, pa;
	struct state_dir sd;
	struct err e = { 0 };
	uint8_t id[16] = { 1, 2, 3 }, id2[16] = { 9 };
	char p[256];

	snprintf(p, sizeof(p), "%s/st", root);
	CHECK_INT(state_dir_open(&sd, p, &e), 0);
	CHECK_INT(outcome_store_open(&s, &sd, &e), 0);
	CHECK_INT(outcome_read(&s, id, &r, &e), -ENOENT);
	/* prepared ahead, decided later; a competing decision loses and sees the winner */
	CHECK_INT(outcome_prepare(&s, id, OUTCOME_COMMITTED, "hosta", &pc, &e), 0);
	CHECK_INT(outcome_prepare(&s, id, OUTCOME_ABORTED, "hosta", &pa, &e), 0);
	CHECK_INT(outcome_read(&s, id, &r, &e), -ENOENT);      /* preparing decides nothing */
	CHECK_INT(outcome_decide(&s, &pa, NULL, &e), 0);
	CHECK_INT(outcome_decide(&s, &pc, &r, &e), -EEXIST);
	CHECK_INT(r.kind, OUTCOME_ABORTED);
	outcome_discard(&pc);
	outcome_discard(&pa);
	CHECK_INT(outcome_read(&s, id, &r, &e), 0);
	CHECK_INT(r.kind, OUTCOME_ABORTED);
	CHECK_STR(r.peer, "hosta");
	/* committed, then the VM ended */
	CHECK_INT(outcome_decide_now(&s, id2, OUTCOME_COMMITTED, "hostb", NULL, &e), 0);
	CHECK_INT(outcome_decide_now(&s, id2, OUTCOME_ABORTED, "x", &r, &e), -EEXIST);
	CHECK_INT(r.kind, OUTCOME_COMMITTED);
	CHECK_STR(r.ended, "");
	CHECK_INT(outcome_set_ended(&s, id2, "quit from the control socket", &e), 0);
	CHECK_INT(outcome_read(&s, id2, &r, &e), 0);
	CHECK_INT(r.kind, OUTCOME_COMMITTED);
	CHECK_STR(r.ended, "quit from the control socket");
	/* no temporary files left behind */
	snprintf(p, sizeof(p), "ls %s/st/outcomes | grep -q tmp", root);
	CHECK(system(p) != 0);
}

/* Processes race committed against aborted for one id: exactly one wins. */
static void test_race(void)
{
	struct outcome_store s;
	struct outcome_rec r;
	struct state_dir sd;
	struct err e = { 0 };
	char p[256];
	int round, i;

	snprintf(p, sizeof(p), "%s/race", root);
	CHECK_INT(state_dir_open(&sd, p, &e), 0);
	CHECK_INT(outcome_store_open(&s, &sd, &e), 0);
	for (round = 0; round < 20; round++) {
		uint8_t id[16] = { 0x42, (uint8_t)round };
		pid_t pid[8];
		int wins = 0, st;
		for (i = 0; i < 8; i++) {
			pid[i] = fork();
			if (pid[i] == 0) {
				struct outcome_rec x;
				int rc = outcome_decide_now(&s, id, i % 2 ? OUTCOME_ABORTED : OUTCOME_COMMITTED,
							    "p", &x, NULL);
				_exit(rc == 0 ? 10 + (i % 2) : rc == -EEXIST ? 20 + (int)x.kind : 1);
			}
		}
		int kind_won = 0, seen_other = 0;
		for (i = 0; i < 8; i++) {
			waitpid(pid[i], &st, 0);
			int c = WEXITSTATUS(st);
			if (c == 10 || c == 11) {
				wins++;
				kind_won = c == 10 ? OUTCOME_COMMITTED : OUTCOME_ABORTED;
			} else if (c >= 20) {
				seen_other = c - 20;
			} else {
				CHECKF(0, "child failed");
			}
		}
		CHECK_INT(wins, 1);
		CHECK_INT(outcome_read(&s, id, &r, &e), 0);
		CHECK_INT(r.kind, kind_won);
		CHECK(seen_other == 0 || seen_other == kind_won);   /* losers saw the winner's decision */
	}
}

static void test_parse(void)
{
	struct outcome_rec r;
	struct err e = { 0 };
	static const char *bad[] = {
		"", "{", "[]", "{\"version\":2,\"outcome\":\"committed\",\"time\":1,\"peer\":\"\",\"ended\":\"\"}",
		"{\"version\":1,\"outcome\":\"maybe\",\"time\":1,\"peer\":\"\",\"ended\":\"\"}",
		"{\"version\":1,\"outcome\":\"aborted\",\"time\":-1,\"peer\":\"\",\"ended\":\"\"}",
		"{\"version\":1,\"outcome\":\"aborted\",\"time\":1,\"peer\":7,\"ended\":\"\"}",
		"{\"version\":1,\"outcome\":\"aborted\",\"outcome\":\"committed\",\"time\":1,\"peer\":\"\",\"ended\":\"\"}",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(outcome_parse(bad[i], strlen(bad[i]), &r, &e) < 0, "accepted: %s", bad[i]);
	{
		const char *ok = "{\"version\":1,\"outcome\":\"committed\",\"time\":5,\"peer\":\"h\",\"ended\":\"\"}\n";
		CHECK_INT(outcome_parse(ok, strlen(ok), &r, &e), 0);
	}
	CHECK_INT(r.kind, OUTCOME_COMMITTED);
}

int main(void)
{
	char cmd[160];

	snprintf(root, sizeof(root), "/tmp/sealvm-test-outcome-XXXXXX");
	if (!mkdtemp(root))
		return 1;
	test_state_dir();
	test_decide();
	test_race();
	test_parse();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	if (system(cmd) != 0)
		return 1;
	return unit_done();
}
