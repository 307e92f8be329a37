#ifndef SEALVM_CLI_GUARD_CMD_H
#define SEALVM_CLI_GUARD_CMD_H

/* sealvm guard ... | sealvm guard clear ...: exit 0, 1 (refused), 2 (usage or error). */
int cmd_guard(int argc, char **argv);

#endif
