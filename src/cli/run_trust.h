/* What `sealvm run` does with trust besides the migration: the policy decision
 * for a restore (the labels come from the snapshot), and the audit record of every
 * owner's console attach (through the console server's policy hook). */
#ifndef SEALVM_CLI_RUN_TRUST_H
#define SEALVM_CLI_RUN_TRUST_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "control/commands.h"
#include "util/err.h"

struct run_restore {
	struct vmm_ctx *ctx;       /* gets the snapshot's labels */
	const char *file;
};

/* snapshot_check fn: may the user running sealvm restore a VM with these labels here? */
int run_restore_check(void *opaque, const struct labels *labels, struct err *e);
/* console_policy_fn: records the attach (a failure to record refuses it); ctx is the trust_ctx. */
bool run_console_audit(void *ctx, X509 *peer, bool read_write, char *why, size_t len);

#endif
