#include "cli/run_trust.h"

#include <stdio.h>
#include <unistd.h>

#include "trust/attest.h"
#include "trust/decide.h"
#include "util/hex.h"

int run_restore_check(void *opaque, const struct labels *labels, struct err *e)
{
	struct run_restore *rr = opaque;
	struct principal who = { .is_host = false, .uid = getuid() };
	const char *me = trust_host_name(rr->ctx->trust);

	rr->ctx->labels = *labels;
	return trust_decide(rr->ctx->trust, &who, OP_RESTORE, labels, NULL, *me ? me : NULL,
			    json_pack("{s:s}", "file", rr->file), NULL, e);
}

bool run_console_audit(void *ctx, X509 *peer, bool read_write, char *why, size_t len)
{
	struct trust_ctx *tc = ctx;
	unsigned char md[32];
	unsigned int n = sizeof(md);
	char name[HOST_NAME_MAX_] = "", fpr[65] = "";
	struct err e = { 0 };

	attest_cert_name(peer, name, sizeof(name));
	if (peer && X509_digest(peer, EVP_sha256(), md, &n) == 1 && n == sizeof(md))
		hex_encode(md, sizeof(md), fpr);
	if (trust_audit(tc, "console-attach",
			json_pack("{s:s, s:s, s:s}", "peer", name, "cert_sha256", fpr, "mode",
				  read_write ? "read-write" : "read-only"),
			&e) < 0) {
		snprintf(why, len, "the attach cannot be recorded: %s", e.msg);
		return false;
	}
	return true;
}
