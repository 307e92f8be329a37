/* sealvm audit verify | show | append */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/trust_cmds.h"
#include "trust/audit.h"
#include "trust/host.h"
#include "util/file.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sealvm audit verify [FILE] [--state-dir DIR] [--key PUB] [--ak PEM] [--tpm SPEC|--no-tpm]\n"
		   "       sealvm audit show [FILE] [--state-dir DIR]\n"
		   "       sealvm audit append --state-dir DIR JSON\n"
		   "  FILE defaults to DIR/audit.jsonl; DIR defaults to FILE's directory when that holds the\n"
		   "  host's keys, else %s. verify checks the hash chain, every signed head (with\n"
		   "  DIR/audit-key.pub.pem, and the TPM counter certifications with DIR/ak.pem), and that the\n"
		   "  TPM's audit counter (DIR/host.json) still matches the last head; it prints OK or the\n"
		   "  first broken record and why (exit 0 / 1).\n",
		STATE_DIR_DEFAULT);
}

struct opts {
	const char *dir, *key, *ak, *tpm, *file;
	int no_tpm;
	char dirbuf[4096], filebuf[4200];
};

static int parse(int argc, char **argv, struct opts *o, int npos)
{
	static const struct option lo[] = { { "state-dir", required_argument, NULL, 's' },
					    { "key", required_argument, NULL, 'k' },
					    { "ak", required_argument, NULL, 'a' },
					    { "tpm", required_argument, NULL, 't' },
					    { "no-tpm", no_argument, NULL, 'N' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->dir = optarg; break;
		case 'k': o->key = optarg; break;
		case 'a': o->ak = optarg; break;
		case 't': o->tpm = optarg; break;
		case 'N': o->no_tpm = 1; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "sealvm audit: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (argc - optind > npos) {
		usage(stderr);
		return 2;
	}
	if (optind < argc)
		o->file = argv[optind];
	if (!o->dir && o->file) {
		/* the log's own directory, when it is a state directory */
		char tmp[4096], probe[4200];
		snprintf(tmp, sizeof(tmp), "%s", o->file);
		snprintf(o->dirbuf, sizeof(o->dirbuf), "%s", dirname(tmp));
		if (access(host_path(o->dirbuf, "audit-key.pub.pem", probe, sizeof(probe)), R_OK) == 0)
			o->dir = o->dirbuf;
	}
	if (!o->dir)
		o->dir = STATE_DIR_DEFAULT;
	if (!o->file)
		o->file = host_path(o->dir, "audit.jsonl", o->filebuf, sizeof(o->filebuf));
	return -1;
}

static int verify(struct opts *o)
{
	struct audit_verify_opts vo = { 0 };
	struct audit_report r;
	struct host_config hc;
	struct err e = { 0 };
	char path[4200], *text = NULL;
	size_t len;
	int rc = 2;

	if (file_read_all(o->file, AUDIT_FILE_MAX, &text, &len, &e) < 0) {
		fprintf(stderr, "sealvm: audit verify: %s\n", e.msg);
		return 2;
	}
	if (!o->key && access(host_path(o->dir, "audit-key.pub.pem", path, sizeof(path)), R_OK) == 0)
		o->key = strdup(path);
	if (!o->ak && access(host_path(o->dir, "ak.pem", path, sizeof(path)), R_OK) == 0)
		o->ak = strdup(path);
	if (!o->tpm && !o->no_tpm && o->ak && host_config_load(o->dir, &hc, &e) == 0)
		o->tpm = strdup(hc.tpm);
	if (o->no_tpm)
		o->tpm = NULL;
	if ((o->key && key_public_from_file(o->key, &vo.key, &e) < 0) || (o->ak && key_public_from_file(o->ak, &vo.ak, &e) < 0)) {
		fprintf(stderr, "sealvm: audit verify: %s\n", e.msg);
		goto out;
	}
	vo.tpm_spec = o->tpm;
	audit_verify(text, len, &vo, &r);
	if (r.ok) {
		printf("%s: %s\n", o->file, r.reason);
		if (!vo.key)
			printf("note: no audit key given: signed heads were not checked\n");
		if (!vo.ak)
			printf("note: no attestation key: TPM counter certifications were not checked\n");
		else if (!vo.tpm_spec)
			printf("note: the TPM was not asked: a cut at a signed head would go unnoticed\n");
		rc = 0;
	} else {
		printf("%s: BROKEN at %s\n", o->file, r.reason);
		rc = 1;
	}
out:
	key_free(vo.key);
	key_free(vo.ak);
	free(text);
	return rc;
}

/* One line per record: seq, time, event, then the other fields as key=value. */
static int show(struct opts *o)
{
	struct err e = { 0 };
	char *text;
	size_t len, off = 0;

	if (file_read_all(o->file, AUDIT_FILE_MAX, &text, &len, &e) < 0) {
		fprintf(stderr, "sealvm: audit show: %s\n", e.msg);
		return 2;
	}
	while (off < len) {
		char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		json_t *r = json_loadb(text + off, n, 0, NULL), *v;
		const char *k, *time = json_string_value(json_object_get(r, "time"));
		const char *ev = json_string_value(json_object_get(r, "event"));

		if (!json_is_object(r)) {
			printf("?     (not a record: %.60s)\n", text + off);
		} else if (ev && !strcmp(ev, "head")) {
			json_t *t = json_object_get(r, "tpm");
			printf("%-5lld %.23s  %-14s signed by %.16s…", (long long)json_integer_value(json_object_get(r, "seq")),
			       time ? time : "?", "head", json_string_value(json_object_get(r, "key")) ?: "?");
			if (t)
				printf(", TPM counter %lld", (long long)json_integer_value(json_object_get(t, "counter")));
			printf("\n");
		} else {
			printf("%-5lld %.23s  %-14s", (long long)json_integer_value(json_object_get(r, "seq")), time ? time : "?",
			       ev ? ev : "?");
			json_object_foreach(r, k, v) {
				char *s;
				if (!strcmp(k, "seq") || !strcmp(k, "time") || !strcmp(k, "prev") || !strcmp(k, "event"))
					continue;
				s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
				if (json_is_string(v) && strchr(json_string_value(v), ' '))
					printf(" %s=\"%s\"", k, json_string_value(v));
				else
					printf(" %s=%s", k, s ? s : json_string_value(v));
				free(s);
			}
			printf("\n");
		}
		json_decref(r);
		off += n + (nl ? 1 : 0);
	}
	free(text);
	return 0;
}

static int append(struct opts *o, const char *json)
{
	struct audit_log *l;
	struct host_config hc;
	struct err e = { 0 };
	char key[4200];
	struct audit_opts ao = { .path = o->file, .key_path = host_path(o->dir, "audit-key.pem", key, sizeof(key)) };
	int rc;

	if (host_config_load(o->dir, &hc, &e) == 0)
		ao.tpm_spec = hc.tpm;
	if (audit_open(&ao, &l, &e) < 0) {
		fprintf(stderr, "sealvm: audit append: %s\n", e.msg);
		return 2;
	}
	rc = audit_append_json(l, json, &e);
	if (rc < 0)
		fprintf(stderr, "sealvm: audit append: %s\n", e.msg);
	audit_close(l);
	return rc < 0 ? 2 : 0;
}

int cmd_audit(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "";
	struct opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	if (!strcmp(sub, "--help") || !strcmp(sub, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(sub, "append")) {
		rc = parse(argc - 1, argv + 1, &o, 1);
		if (rc >= 0)
			return rc;
		if (optind + 2 != argc) {
			usage(stderr);
			return 2;
		}
		o.file = host_path(o.dir, "audit.jsonl", o.filebuf, sizeof(o.filebuf));
		return append(&o, argv[optind + 1]);
	}
	if (strcmp(sub, "verify") && strcmp(sub, "show")) {
		usage(stderr);
		return 2;
	}
	rc = parse(argc - 1, argv + 1, &o, 1);
	if (rc >= 0)
		return rc;
	return !strcmp(sub, "verify") ? verify(&o) : show(&o);
}
