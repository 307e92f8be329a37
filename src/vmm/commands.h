/* The control-socket commands a running machine answers (status, pause, snapshot...). */
#ifndef SEALVM_VMM_COMMANDS_H
#define SEALVM_VMM_COMMANDS_H

#include <jansson.h>
#include <pthread.h>

#include "util/err.h"
#include "vmm/machine.h"

struct vmm_ctx {
	struct machine *m;
	pthread_mutex_t op_lock;   /* one snapshot or migration at a time */
	const char *tls_dir;       /* default for migrate */
	json_t *last_migration;    /* report of the last migration, for `stats` */
	json_t *progress;          /* live migration progress, for `stats` */
	pthread_mutex_t progress_lock;
};

void vmm_ctx_init(struct vmm_ctx *c, struct machine *m, const char *tls_dir);
void vmm_ctx_fini(struct vmm_ctx *c);
/* ctl_handler_fn for the control server. */
json_t *vmm_handle(void *opaque, const char *cmd, json_t *req, struct err *e);

#endif
