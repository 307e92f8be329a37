/* Measuring the host itself, every interval:
 *
 *  config  the trust configuration files: the administrator key (STATE_DIR/admin.pem)
 *          must not change; the integrity validation table and the policy must still
 *          verify (signature, expiry) — a newer serial signed by the administrator is an
 *          update, taken and measured into the TPM; an older one is a rollback; the
 *          cluster CA (TLS_DIR/ca.pem) must stay one the table allows. Each file is
 *          re-read every time; only when its bytes change is it verified again.
 *  tpm     the host's own measurement: a quote of sealvm's PCR over a fresh nonce,
 *          verified like a peer's (attest_verify) against the table: the event log
 *          replays to the PCR, every sealvm that started on this host since the TPM did
 *          was an allowed build, and the latest trust configuration is current. Quoted
 *          every few rounds, and in the round the event log changes (every measurement
 *          sealvm makes appends to it before extending the PCR). */
#ifndef SEALVM_GUARD_HOSTMEAS_H
#define SEALVM_GUARD_HOSTMEAS_H

#include <stdbool.h>
#include <stdint.h>

#include "trust/host.h"
#include "trust/keys.h"
#include "trust/policy.h"
#include "trust/table.h"
#include "util/err.h"

struct hostmeas {
	char state_dir[4096], table_path[4096], policy_path[4096], ca_path[4200], admin_path[4200];
	struct host_config host;
	EVP_PKEY *admin;
	char admin_fpr[FPR_HEX_LEN + 1];
	struct trust_table *table;
	struct policy *policy;
	uint8_t admin_file[32], table_file[32], policy_file[32], ca_file[32];   /* SHA-256 of the bytes */
	bool have_ca;
	uint64_t quotes;
	/* the event log when last quoted: a change is quoted at once */
	bool log_known;
	uint64_t log_ino, log_size;
	int64_t log_mtime_ns;
};

struct host_result {
	bool ok;
	char check[16];                 /* "config" or "tpm" when failed */
	char reason[600];
	char note[300];
	bool config_changed;            /* a newer table or policy, or another allowed CA, was taken
					 * (and measured into the TPM) */
	bool tpm_checked;
	bool guard_alarm;               /* the TPM already carries this host's guard alarm */
	int trust_level;
	uint64_t ns, tpm_ns;
};

/* Loads and pins the configuration (the same checks as a trusted start). */
int hostmeas_open(const char *state_dir, const char *table, const char *policy, const char *tls_dir,
		  struct hostmeas **out, struct err *e);
void hostmeas_close(struct hostmeas *h);
/* One measurement; quote: include the TPM (it is included anyway when the event log
 * changed). Never fails: the verdict is in r. */
void hostmeas_run(struct hostmeas *h, bool quote, struct host_result *r);
/* This host's table entry (NULL if it has none). */
const struct table_host *hostmeas_self(const struct hostmeas *h);
/* Measures the current configuration into the TPM (hostmeas_run does it when it
 * takes a new configuration). */
int hostmeas_measure_config(struct hostmeas *h, struct err *e);

#endif
