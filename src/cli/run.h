#ifndef SEALVM_CLI_RUN_H
#define SEALVM_CLI_RUN_H

/* `sealvm run ...`: returns the process exit status. */
int cmd_run(int argc, char **argv);

#endif
