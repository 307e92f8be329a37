/* The measurement event log: what sealvm extended into its PCR, one JSON line an event
 * in STATE_DIR/eventlog.jsonl, so that a verifier can replay the log to the quoted PCR
 * value and judge each measurement:
 *
 *   {"pcr": 15, "type": "sealvm-exe", "digest": "<sha256>", "data": "/usr/bin/sealvm"}
 *   {"pcr": 15, "type": "trust-config", "digest": "<sha256 of data>", "data": "{...}"}
 *
 * sealvm-exe: the SHA-256 of the running executable (/proc/self/exe); data is its path,
 * for people only. trust-config: data is canonical JSON naming the administrator key,
 * the table and policy (serial and hash) and the cluster CA the process runs with; the
 * digest is SHA-256(data), so the verifier can read what was measured.
 *
 * The PCR is not resettable and the log lives as long as the TPM's power cycle: when
 * the PCR reads all zeros (the TPM restarted) a new log is begun and the old one kept as
 * eventlog.jsonl.old. An executable already in the log is not extended again (as IMA
 * does), so the log grows with distinct measurements, not with starts; a configuration
 * is skipped only when it equals the latest one, so returning to an older table or
 * policy is measured again (and a verifier sees it as the host's current, stale one). */
#ifndef SEALVM_TRUST_EVENTLOG_H
#define SEALVM_TRUST_EVENTLOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define EVENTLOG_MAX_EVENTS 4096
#define EVENT_DATA_MAX      2048
#define EVENT_TYPE_EXE      "sealvm-exe"
#define EVENT_TYPE_CONFIG   "trust-config"
/* The integrity guard found this host's sealvm tampered with (guard/alarm.h): data is
 * canonical JSON {"check", "reason", "time"}, the digest its SHA-256. A PCR cannot be
 * un-extended, so the host fails every attestation until its TPM restarts (a reboot). */
#define EVENT_TYPE_GUARD_ALARM "guard-alarm"

struct tpm;

struct event {
	int pcr;
	char type[32];
	uint8_t digest[32];
	char data[EVENT_DATA_MAX];
};

struct eventlog {
	size_t n;
	struct event *ev;
};

/* From a JSON list of event objects (evidence from a peer: untrusted). */
int eventlog_from_json(json_t *a, struct eventlog *out, struct err *e);
/* From the text of an eventlog.jsonl file (one object a line). */
int eventlog_parse(const char *text, size_t len, struct eventlog *out, struct err *e);
json_t *eventlog_to_json(const struct eventlog *l);
void eventlog_free(struct eventlog *l);
/* The value pcr holds after extending, from zeros, every event of the log for pcr. */
void eventlog_replay(const struct eventlog *l, int pcr, uint8_t out[32]);

/* Measures one event: under an exclusive lock on the log, checks that the log replays
 * to the TPM's PCR (or starts a new log after a TPM restart), extends the PCR and
 * appends the event, unless an identical event is already there. A log that does not
 * match the PCR is an error naming both values (the log was edited, or something else
 * extended the PCR). *extended says whether the PCR changed. */
int eventlog_measure(const char *state_dir, const char *tpm_spec, const char *type, const uint8_t digest[32],
		     const char *data, int *extended, struct err *e);

/* Reads the log under a shared lock and calls fn while still holding it (so no other
 * process extends the PCR meanwhile): what a quote needs. */
int eventlog_with_log(const char *state_dir, int (*fn)(void *opaque, const struct eventlog *l, struct err *e),
		      void *opaque, struct err *e);

#endif
