/* A host's trust state and what a sealvm process does with it when it starts.
 *
 * STATE_DIR (--state-dir, default /var/lib/sealvm; mode 0700) holds:
 *   host.json          {"name": "hostb", "tpm": "swtpm:host=...,port=...", "ak": "<fpr>"}
 *   ak.pem             the TPM attestation key's public key (for the table)
 *   audit-key.pem      the host's audit key (Ed25519, 0600), signs audit log heads
 *   audit-key.pub.pem  its public key
 *   admin.pem          the cluster administrator's public key: table and policy must be
 *                      signed by it
 *   eventlog.jsonl     the measurement event log (eventlog.h)
 *   audit.jsonl        the audit log (audit.h)
 *
 * Trust is opt-in: a process started with a table and a policy runs in trusted mode
 * (both signatures verified or it does not start, a TPM, measurements, attestation and
 * policy mandatory); one started with neither runs in open mode, which is recorded in
 * the audit log and announced on stderr. */
#ifndef SEALVM_TRUST_HOST_H
#define SEALVM_TRUST_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "trust/audit.h"
#include "trust/policy.h"
#include "trust/table.h"
#include "util/err.h"

#define STATE_DIR_DEFAULT "/var/lib/sealvm"

struct host_config {
	char name[HOST_NAME_MAX_];
	char tpm[128];
	char ak_fpr[FPR_HEX_LEN + 1];
};

/* `sealvm host init`: creates STATE_DIR, the attestation key in the TPM (ak.pem), the
 * TPM audit counter, the audit key (kept if present), admin.pem (if admin_pub given) and
 * host.json, and records it all in the audit log. */
int host_init(const char *state_dir, const char *name, const char *tpm_spec, const char *admin_pub,
	      struct host_config *out, struct err *e);
/* Reads STATE_DIR/host.json (-ENOENT: the host was never initialised). */
int host_config_load(const char *state_dir, struct host_config *c, struct err *e);
/* STATE_DIR/NAME into buf. */
const char *host_path(const char *state_dir, const char *name, char *buf, size_t n);

struct trust_opts {
	const char *state_dir;      /* NULL: STATE_DIR_DEFAULT */
	const char *table;          /* --table FILE */
	const char *policy;         /* --policy FILE */
	const char *ca;             /* the cluster CA file (measured; NULL: none) */
	const char *tpm;            /* overrides host.json's TPM (NULL: host.json's) */
	const char *role;           /* "run", "memserver", "guard" (for the audit record) */
};

struct trust_ctx {
	bool open_mode;
	char state_dir[4096];
	struct host_config host;            /* name "" in open mode without host init */
	EVP_PKEY *admin;
	struct trust_table *table;
	struct policy *policy;
	struct audit_log *audit;
	uint8_t exe_sha256[32];
	int events_added;                   /* measurements this start added to the log */
};

/* Starts trust for a process: verifies table and policy (a bad signature, an expired
 * file or a missing administrator key stops the start with a message naming the file
 * and the check), measures the executable and configuration, opens the audit log and
 * records the start. In open mode prints one warning on stderr. */
int trust_start(const struct trust_opts *o, struct trust_ctx **out, struct err *e);
/* Records the stop and closes the audit log with a signed head. NULL is a no-op. */
void trust_stop(struct trust_ctx *c);

#endif
