#ifndef SEALVM_CLI_MEMSERVER_CMD_H
#define SEALVM_CLI_MEMSERVER_CMD_H

/* sealvm memserver: a sub-host for split migration (memserver/server.h). Returns the
 * process exit status (0 stopped cleanly, 2 usage or start-up error). */
int cmd_memserver(int argc, char **argv);

#endif
