/* `sealvm console`: the owner's client. */
#ifndef SEALVM_CONSOLE_CLIENT_H
#define SEALVM_CONSOLE_CLIENT_H

int console_client_main(int argc, char **argv);

#endif
