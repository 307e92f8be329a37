/* Binds a migration channel's END to this very TLS session (proto.h): the MAC key
 * is exporter keying material of the session (RFC 8446 §7.5) for the migration id,
 * the destination's nonce for this channel, and the channel index. Both ends
 * derive the same key; nobody else can. */
#ifndef SEALVM_MIGRATE_BIND_H
#define SEALVM_MIGRATE_BIND_H

#include <stdint.h>

#include "channel/channel.h"
#include "migrate/proto.h"
#include "state/section.h"

int mig_bind(struct chan *c, const uint8_t id[16], const uint8_t nonce[MIG_NONCE_LEN], uint32_t lane,
	     struct sec_bind *b, struct err *e);

#endif
