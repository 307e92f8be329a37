/* libFuzzer target: ctl_parse_request on one control-socket line (not NUL-terminated;
 * the input is an exact-size buffer, so a read past its end is an ASan report).
 * An accepted request is a JSON object with a non-empty "cmd" string; a refused one
 * carries a negative errno and a message the server can send back as a JSON string. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = { 0 };
	json_t *req = ctl_parse_request((const char *)data, size, &e);

	if (req) {
		json_t *cmd = json_object_get(req, "cmd");
		if (!json_is_object(req) || !json_is_string(cmd) || json_string_length(cmd) == 0)
			__builtin_trap();
		/* what the server does next with it: look the command up, answer */
		char *dump = json_dumps(req, JSON_COMPACT);
		if (!dump)
			__builtin_trap();
		free(dump);
		json_decref(req);
	} else {
		/* the server sends the message back as {"ok":false,"error":MSG} */
		json_t *resp = json_pack("{s:b, s:s}", "ok", 0, "error", e.msg);
		if (e.code >= 0 || !e.msg[0] || !resp)
			__builtin_trap();
		json_decref(resp);
	}
	return 0;
}
