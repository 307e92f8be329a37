/* What a sealvm process measures when it starts (DESIGN.md §7): its own executable and
 * its trust configuration, into TPM_PCR with an event each (eventlog.h).
 *
 * The trust-config event's data is canonical JSON:
 *   {"admin": "<administrator key fingerprint>",
 *    "table": {"serial": 7, "sha256": "<hash of the signed content>"} or null,
 *    "policy": {"serial": 3, "sha256": "..."} or null,
 *    "ca": "<sha256 of the cluster CA file>" or null}
 * Measuring the table by serial and hash (not by a digest the table itself lists) avoids
 * a table that must contain its own hash, and lets a verifier refuse a peer whose table
 * is older than its own (a revoked host may still be trusted there). */
#ifndef SEALVM_TRUST_MEASURE_H
#define SEALVM_TRUST_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#include "trust/policy.h"
#include "trust/table.h"
#include "util/err.h"

/* The trust-config data for this configuration (any of table, policy, ca_path may be
 * NULL). Returns a malloc'd string. */
char *measure_config_data(const char *admin_fpr, const struct trust_table *table, const struct policy *policy,
			  const uint8_t *ca_sha256);

/* Measures /proc/self/exe and the configuration. exe_sha256 (if non-NULL) receives the
 * executable's digest; *events_added counts the events the log gained (0 when this
 * exact configuration was measured before). */
int measure_start(const char *state_dir, const char *tpm_spec, const char *admin_fpr,
		  const struct trust_table *table, const struct policy *policy, const char *ca_path,
		  uint8_t exe_sha256[32], int *events_added, struct err *e);

/* Judges one trust-config event of a peer against our table (and our policy's serial,
 * 0 for none). last: whether it is the peer's latest configuration (only that one must
 * not be stale). Returns 0, or -EPERM with why filled. */
int measure_config_check(const char *data, const struct trust_table *ours, uint64_t policy_serial, int last,
			 char *why, size_t n);

#endif
