/* tcpbw: loopback TCP throughput with N parallel streams, the ceiling for a
 * migration's transport. Usage: tcpbw [streams (1)] [seconds (2)] [chunk KiB (1024)]
 * Each stream is a sender thread and a receiver thread over its own connection
 * to 127.0.0.1; prints one JSON object with the aggregate receive rate. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_STREAMS 16

static size_t chunk;
static atomic_int stop;
static atomic_ullong received;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *sender(void *arg)
{
	int fd = (int)(long)arg;
	char *buf = malloc(chunk);

	memset(buf, 0x5a, chunk);
	while (!atomic_load(&stop)) {
		size_t off = 0;

		while (off < chunk) {
			ssize_t n = send(fd, buf + off, chunk - off, MSG_NOSIGNAL);

			if (n <= 0)
				goto out;
			off += (size_t)n;
		}
	}
out:
	shutdown(fd, SHUT_WR);
	free(buf);
	return NULL;
}

static void *receiver(void *arg)
{
	int fd = (int)(long)arg;
	char *buf = malloc(chunk);
	ssize_t n;

	while ((n = recv(fd, buf, chunk, 0)) > 0)
		atomic_fetch_add(&received, (unsigned long long)n);
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	int streams = argc > 1 ? atoi(argv[1]) : 1, i, lfd, one = 1;
	double secs = argc > 2 ? atof(argv[2]) : 2.0, t0, t1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	pthread_t st[MAX_STREAMS], rt[MAX_STREAMS];
	unsigned long long r0, r1;

	chunk = (argc > 3 ? strtoul(argv[3], NULL, 10) : 1024) << 10;
	if (streams < 1 || streams > MAX_STREAMS || !chunk)
		return fprintf(stderr, "usage: tcpbw [streams 1-%d] [seconds] [chunk KiB]\n", MAX_STREAMS), 2;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, streams) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl))
		die("tcpbw: listen");
	for (i = 0; i < streams; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0), a;

		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)))
			die("tcpbw: connect");
		a = accept(lfd, NULL, NULL);
		if (a < 0)
			die("tcpbw: accept");
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_create(&rt[i], NULL, receiver, (void *)(long)a);
		pthread_create(&st[i], NULL, sender, (void *)(long)c);
	}
	/* skip the slow-start ramp: measure from 0.2 s in */
	usleep(200000);
	r0 = atomic_load(&received);
	t0 = now_s();
	usleep((useconds_t)(secs * 1e6));
	r1 = atomic_load(&received);
	t1 = now_s();
	atomic_store(&stop, 1);
	for (i = 0; i < streams; i++) {
		pthread_join(st[i], NULL);
		pthread_join(rt[i], NULL);
	}
	printf("{\"streams\": %d, \"seconds\": %.3f, \"gb_s\": %.3f}\n", streams, t1 - t0,
	       (double)(r1 - r0) / (t1 - t0) / 1e9);
	return 0;
}
