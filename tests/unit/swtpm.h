/* A real software TPM for a unit test: swtpm_setup provisions a fresh state directory
 * (/tmp/trust-swtpm.XXXXXX), then `swtpm socket` serves it on a free loopback port pair
 * (PORT for commands, PORT+1 for control). swtpm_stop kills it and removes the state.
 * Without swtpm installed, swtpm_start returns -1 and the test should exit 77 (skip). */
#ifndef SEALVM_TESTS_SWTPM_H
#define SEALVM_TESTS_SWTPM_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct swtpm {
	pid_t pid;
	int port;
	char dir[64];
	char spec[96];
};

static int swtpm_port_free_(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static int swtpm_listening_(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Starts swtpm on the existing state in s->dir (after swtpm_start, or to restart it). */
static int swtpm_run(struct swtpm *s)
{
	char state[96], server[96], ctrl[96];
	char *argv[] = { "swtpm", "socket", "--tpm2", "--tpmstate", state, "--server", server, "--ctrl", ctrl,
			 "--flags", "not-need-init,startup-clear", NULL };

	snprintf(state, sizeof(state), "dir=%s", s->dir);
	/* a restart keeps its port if it can (the host's configuration names it) */
	for (int tries = 0; tries < 50 && !(s->port && swtpm_port_free_(s->port) && swtpm_port_free_(s->port + 1));
	     tries++) {
		int p = 20000 + (int)((unsigned)rand() % 20000);
		if (swtpm_port_free_(p) && swtpm_port_free_(p + 1)) {
			s->port = p;
			break;
		}
	}
	snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1", s->port);
	snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%d,bindaddr=127.0.0.1", s->port + 1);
	if (posix_spawnp(&s->pid, "swtpm", NULL, NULL, argv, environ) != 0)
		return -1;
	for (int i = 0; i < 100; i++) {
		if (swtpm_listening_(s->port)) {
			snprintf(s->spec, sizeof(s->spec), "swtpm:host=127.0.0.1,port=%d", s->port);
			return 0;
		}
		usleep(50 * 1000);
	}
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
	return -1;
}

static int swtpm_start(struct swtpm *s)
{
	char cmd[256];

	memset(s, 0, sizeof(*s));
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	if (system("command -v swtpm >/dev/null && command -v swtpm_setup >/dev/null") != 0)
		return -1;
	snprintf(s->dir, sizeof(s->dir), "/tmp/trust-swtpm.XXXXXX");
	if (!mkdtemp(s->dir))
		return -1;
	snprintf(cmd, sizeof(cmd), "swtpm_setup --tpm2 --tpmstate %s --createek --overwrite >/dev/null 2>&1", s->dir);
	if (system(cmd) != 0)
		return -1;
	return swtpm_run(s);
}

/* Stops the process, keeps the state (swtpm_run restarts it: PCRs read zero again). */
static void swtpm_kill(struct swtpm *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

static void swtpm_stop(struct swtpm *s)
{
	char cmd[128];

	swtpm_kill(s);
	if (s->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", s->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", s->dir);
	}
}

#endif
