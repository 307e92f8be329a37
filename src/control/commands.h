/* The control-socket commands of a sealvm process (status, pause, snapshot,
 * migrate...): the orchestration above the machine and the migration engine.
 *
 * While a migration runs, commands that would run or change the VM are refused
 * with the phase named; `quit` first aborts the migration (before COMMIT only);
 * `migrate-cancel` aborts it and the VM runs on. A migration whose outcome is
 * UNCERTAIN keeps the VM paused until the destination answers (asked in the
 * background) or the operator decides with `resume --force`. */
#ifndef SEALVM_CONTROL_COMMANDS_H
#define SEALVM_CONTROL_COMMANDS_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "control/control.h"
#include "migrate/migrate.h"
#include "trust/host.h"
#include "trust/labels.h"
#include "util/err.h"
#include "util/statedir.h"
#include "vmm/machine.h"

struct vmm_ctx {
	struct machine *m;
	const char *tls_dir;       /* default for migrate */
	const char *key_file;      /* default snapshot key (else the host key in sd) */
	const struct state_dir *sd;
	struct trust_ctx *trust;   /* policy and audit log of this process (NULL: none) */
	struct labels labels;      /* the VM's (--label, or brought by a migration or snapshot); set before vm_ready */
	struct incoming *incoming; /* destination: the migration that brings the VM */
	pthread_mutex_t op_lock;   /* one snapshot or migration at a time */
	pthread_mutex_t lock;      /* everything below */
	bool have_vm;              /* m is built (not yet at a destination still waiting) */
	const char *phase;         /* of the migration in progress, NULL when none */
	bool uncertain;            /* a migration ended UNCERTAIN: VM held paused */
	char uncertain_why[512];
	struct migrate_ctl mctl;
	pthread_t resolver;
	bool resolver_started, resolver_stop;
	bool resolver_running;          /* false once the thread returned (join it) */
	pthread_cond_t cond;
	json_t *last_migration;    /* report of the last migration, for `stats` */
	json_t *progress;          /* live migration progress, for `stats` */
};

void vmm_ctx_init(struct vmm_ctx *c, struct machine *m, const char *tls_dir, const struct state_dir *sd);
void vmm_ctx_fini(struct vmm_ctx *c);
/* The incoming migration that will bring the VM (a destination; listening now). */
void vmm_ctx_set_incoming(struct vmm_ctx *c, struct incoming *in);
/* The machine is built and may be commanded from now on. */
void vmm_ctx_vm_ready(struct vmm_ctx *c);
/* ctl_handler_fn for the control server: peer is the principal the policy judges. */
json_t *vmm_handle(void *opaque, const struct ctl_peer *peer, const char *cmd, json_t *req, struct err *e);

#endif
