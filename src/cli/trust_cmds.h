#ifndef SEALVM_CLI_TRUST_CMDS_H
#define SEALVM_CLI_TRUST_CMDS_H

/* Each returns the process exit status (0 ok, 1 refused/failed check, 2 usage or error). */
int cmd_host(int argc, char **argv);     /* sealvm host init|measure */
int cmd_admin(int argc, char **argv);    /* sealvm admin keygen|sign|verify */
int cmd_attest(int argc, char **argv);   /* sealvm attest quote|verify */
int cmd_policy(int argc, char **argv);   /* sealvm policy check */
int cmd_audit(int argc, char **argv);    /* sealvm audit verify|show|append */

#endif
