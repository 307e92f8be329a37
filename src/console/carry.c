/* The console's part in the machine's life beyond this process: binding a machine,
 * carrying the console state in migrations and snapshots, unlocking a restored
 * console, and sending clients after a VM that moved.
 *
 * What protects the console state where it travels:
 *  - It is one struct (console/state.h), sealed with AES-256-GCM under a console key
 *    drawn fresh for every save (SEC_CONSOLE). The plain SERIAL section carries no
 *    typed input while a console is bound (vmm/machine.c scrubs it).
 *  - Migration: the key goes in its own section (SEC_CONSOLE_KEY), written only to a
 *    channel protected by TLS (mutually authenticated hosts); over tcp:// the save
 *    fails. Nothing outside the two sealvm processes sees either in the clear.
 *  - Snapshot: the file is sealed with the host's key, which the operator can read.
 *    So the console key goes in wrapped for the owner (SEC_CONSOLE_WRAP, console/wrap.h):
 *    for the public key of the owner who last attached read-write. Restoring the file
 *    brings the VM back paused (PAUSE_CONSOLE) until an owner's client, holding the
 *    matching private key, unwraps the key inside its TLS session. Without a read-write
 *    owner ever attached there is nobody to seal it for: the snapshot then carries no
 *    console state at all (the restored VM gets an empty console), and says so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console/server_impl.h"
#include "console/wrap.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The state now (the machine paused, lock held). */
static void save_locked(struct console_server *cs, struct console_state *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	out->version = CONSOLE_STATE_VERSION;
	out->scroll_len = (uint32_t)scrollback_export(&cs->sb, out->scrollback, &out->serial_total);
	vga_save(&cs->m->vga, &out->vga);
	i8042_save(&cs->m->kbd, &out->kbd);
	serial_save(&cs->m->serial, &out->uart);
	memcpy(out->input, cs->inq, cs->inq_len);
	out->input_len = (uint32_t)cs->inq_len;
	memcpy(out->owner_spki, cs->owner_spki, cs->owner_spki_len);
	out->owner_spki_len = cs->owner_spki_len;
	for (i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &cs->sess[i];
		if (!s->used || s->st != SS_OPEN)
			continue;
		if (s->mode == CP_MODE_RW) {
			out->attach.rw_attached = 1;
			out->attach.rw_delivered = s->next < out->serial_total ? s->next : out->serial_total;
			memcpy(out->attach.rw_peer_sha256, s->fp, 32);
		} else {
			out->attach.ro_sessions++;
		}
	}
	/* an owner a migration brought here, who has not come back yet, keeps the seat */
	if (!out->attach.rw_attached && mono_ns() < cs->reserve_until &&
	    memcmp(cs->reserve_fp, (const uint8_t[32]){ 0 }, 32)) {
		out->attach.rw_attached = 1;
		memcpy(out->attach.rw_peer_sha256, cs->reserve_fp, 32);
	}
}

int console_load_locked(struct console_server *cs, const struct console_state *st, struct err *e)
{
	int r = console_state_validate(st, e);

	if (r == 0)
		r = vga_load(&cs->m->vga, &st->vga, e);
	if (r == 0)
		r = i8042_load(&cs->m->kbd, &st->kbd, e);
	if (r == 0)
		r = serial_load(&cs->m->serial, &st->uart, e);
	if (r < 0)
		return r;
	scrollback_import(&cs->sb, st->scrollback, st->scroll_len, st->serial_total);
	memcpy(cs->inq, st->input, st->input_len);
	cs->inq_len = st->input_len;
	memcpy(cs->owner_spki, st->owner_spki, st->owner_spki_len);
	cs->owner_spki_len = st->owner_spki_len;
	if (st->attach.rw_attached) {
		memcpy(cs->reserve_fp, st->attach.rw_peer_sha256, 32);
		cs->reserve_until = mono_ns() + RESERVE_NS;
	}
	return 0;
}

/* Opens a sealed state with key and loads it (lock held). */
static int open_and_load(struct console_server *cs, const struct machine_ext_sec *sealed,
			 const struct console_key *key, struct err *e)
{
	struct console_state *st = malloc(sizeof(*st));
	int r;

	if (!st)
		return err_set(e, -ENOMEM, "console state");
	r = console_state_unseal(key, sealed->data, sealed->len, st, e);
	if (r == 0)
		r = console_load_locked(cs, st, e);
	explicit_bzero(st, sizeof(*st));
	free(st);
	return r;
}

static void sink(void *opaque, uint8_t c)
{
	struct console_server *cs = opaque;

	/* the vCPU thread, UART lock held: no console lock here */
	scrollback_append(&cs->sb, &c, 1);
	console_wake(cs);
}

int console_server_bind(struct console_server *cs, struct machine *m, enum console_origin from, struct err *e)
{
	struct machine_ext_sec sealed = { 0 }, key = { 0 }, wrap = { 0 };
	uint8_t recipient[32];
	bool lock_it = false;
	int r = 0;

	machine_take_ext(m, SEC_CONSOLE, &sealed);
	machine_take_ext(m, SEC_CONSOLE_KEY, &key);
	machine_take_ext(m, SEC_CONSOLE_WRAP, &wrap);
	pthread_mutex_lock(&cs->lock);
	cs->m = m;
	/* a console key in the clear belongs in a migration's TLS channel only; a wrapped
	 * one in a snapshot only; a booted VM brings neither */
	if (key.data && from != CONSOLE_INCOMING)
		r = err_set(e, -EPROTO, "a console key in the clear outside a migration channel: refused");
	else if (wrap.data && from != CONSOLE_RESTORE)
		r = err_set(e, -EPROTO, "a console key wrapped for the owner outside a snapshot: refused");
	else if (sealed.data && from == CONSOLE_BOOT)
		r = err_set(e, -EPROTO, "console state for a VM booted here");
	else if (sealed.data && key.data) {
		/* a migration's: the key came inside the authenticated, encrypted channel */
		struct console_key k;
		uint64_t t0 = mono_ns();
		if (key.len != CONSOLE_KEY_LEN)
			r = err_set(e, -EPROTO, "console key of %zu bytes", key.len);
		if (r == 0) {
			memcpy(k.k, key.data, CONSOLE_KEY_LEN);
			r = open_and_load(cs, &sealed, &k, e);
			console_key_wipe(&k);
		}
		if (r == 0)
			console_log("state of the incoming VM loaded: %zu bytes in %.2f ms", sealed.len,
				    (double)(mono_ns() - t0) / 1e6);
	} else if (sealed.data && wrap.data) {
		/* a snapshot's: only the owner can open it */
		r = console_wrap_parse(wrap.data, wrap.len, recipient, e);
		lock_it = r == 0;
	} else if (sealed.data || key.data || wrap.data) {
		r = err_set(e, -EPROTO, "console state incomplete: %s without %s",
			    sealed.data ? "CONSOLE" : key.data ? "CONSOLE_KEY" : "CONSOLE_WRAP",
			    sealed.data ? "its key" : "the state");
	}
	if (r < 0) {
		cs->m = NULL;
		pthread_mutex_unlock(&cs->lock);
		machine_ext_sec_free(&sealed);
		machine_ext_sec_free(&key);
		machine_ext_sec_free(&wrap);
		return err_wrap(e, "the VM's console");
	}
	if (lock_it) {
		cs->locked = true;
		cs->sealed = sealed;
		cs->wrap = wrap;
		memset(&sealed, 0, sizeof(sealed));
		memset(&wrap, 0, sizeof(wrap));
	}
	cs->scr_gen = 0;
	pthread_mutex_unlock(&cs->lock);
	machine_ext_sec_free(&sealed);
	machine_ext_sec_free(&key);
	machine_ext_sec_free(&wrap);
	if (lock_it) {
		machine_pause(m, PAUSE_CONSOLE);
		console_log("restored console is sealed for its owner: the VM waits, paused, until the owner attaches");
	}
	serial_set_sink(&m->serial, sink, cs);
	machine_set_ext(m, &console_ext_ops, cs);
	console_wake(cs);
	return 0;
}

void console_server_unbind(struct console_server *cs)
{
	struct machine *m;
	int i;

	pthread_mutex_lock(&cs->lock);
	m = cs->m;
	pthread_mutex_unlock(&cs->lock);
	if (!m)
		return;
	machine_set_ext(m, NULL, NULL);
	serial_set_sink(&m->serial, NULL, NULL);
	pthread_mutex_lock(&cs->lock);
	cs->m = NULL;
	for (i = 0; i < MAX_SESSIONS && !cs->moved; i++) {
		struct session *s = &cs->sess[i];
		static const char why[] = "the VM is no longer on this host";
		/* the I/O thread flushes it; nothing more is read */
		if (s->used && (s->st == SS_OPEN || s->st == SS_WAIT) &&
		    console_send_frame(s, CP_ERROR, why, sizeof(why) - 1) == 0)
			s->st = SS_CLOSING;
	}
	pthread_mutex_unlock(&cs->lock);
	console_wake(cs);
}

int console_unlock(struct console_server *cs, const uint8_t key[CPROTO_KEY_LEN], struct err *e)
{
	struct console_key k;
	struct machine *m;
	int r;

	pthread_mutex_lock(&cs->lock);
	if (!cs->locked || !cs->m) {
		pthread_mutex_unlock(&cs->lock);
		return 0; /* someone else was quicker */
	}
	memcpy(k.k, key, CONSOLE_KEY_LEN);
	r = open_and_load(cs, &cs->sealed, &k, e);
	console_key_wipe(&k);
	if (r < 0) {
		pthread_mutex_unlock(&cs->lock);
		return err_wrap(e, "this key does not open the restored console");
	}
	cs->locked = false;
	machine_ext_sec_free(&cs->sealed);
	machine_ext_sec_free(&cs->wrap);
	m = cs->m;
	pthread_mutex_unlock(&cs->lock);
	machine_resume(m, PAUSE_CONSOLE);
	return 0;
}

/* ---- the machine's extension ops ---- */

static int write_sec(struct sec_writer *w, uint32_t id, const void *p, size_t n, struct err *e)
{
	struct iovec iov = { (void *)p, n };
	return sec_write(w, id, 1, &iov, 1, e);
}

static int ext_save(void *opaque, struct sec_writer *w, enum machine_save_purpose p, struct err *e)
{
	struct console_server *cs = opaque;
	struct console_state *st;
	struct console_key key;
	uint8_t *sealed = NULL, wrapped[WRAP_MAX];
	size_t slen = 0, wlen = 0;
	uint32_t spki_len;
	uint64_t t0 = mono_ns();
	int r;

	pthread_mutex_lock(&cs->lock);
	cs->frozen = true; /* from here, input waits: this save (or the new host) takes it */
	if (p == SAVE_MIGRATION_INSECURE) {
		pthread_mutex_unlock(&cs->lock);
		return err_set(e, -EPERM, "the owner's console travels only inside TLS, never over tcp://");
	}
	if (cs->locked) {
		/* never opened here, and the VM never ran since: what came is still exactly
		 * right, and still the owner's alone */
		if (p == SAVE_SNAPSHOT) {
			r = write_sec(w, SEC_CONSOLE, cs->sealed.data, cs->sealed.len, e);
			if (r == 0)
				r = write_sec(w, SEC_CONSOLE_WRAP, cs->wrap.data, cs->wrap.len, e);
		} else {
			r = err_set(e, -EBUSY, "the VM's console is still sealed for its owner: it moves only once the owner has attached");
		}
		pthread_mutex_unlock(&cs->lock);
		return r;
	}
	st = malloc(sizeof(*st));
	sealed = malloc(sizeof(*st) + SEAL_OVERHEAD);
	if (!st || !sealed) {
		pthread_mutex_unlock(&cs->lock);
		free(st);
		free(sealed);
		return err_set(e, -ENOMEM, "console state");
	}
	save_locked(cs, st);
	spki_len = cs->owner_spki_len;
	pthread_mutex_unlock(&cs->lock);
	r = console_key_generate(&key, e);
	if (r == 0)
		r = console_seal(&key, CONSOLE_STATE_VERSION, st, console_state_size(st), sealed, &slen, e);
	if (r == 0 && p == SAVE_SNAPSHOT && spki_len) {
		r = console_wrap(&key, st->owner_spki, spki_len, wrapped, &wlen, e);
		if (r == -EOPNOTSUPP) {
			console_log("the owner's key cannot receive a wrapped console key (%s)", e->msg);
			spki_len = 0, r = 0;
		}
	}
	if (r == 0 && p == SAVE_SNAPSHOT && !spki_len)
		console_log("this snapshot carries no console state: no owner has attached read-write yet, so there is nobody to seal it for");
	else if (r == 0)
		r = write_sec(w, SEC_CONSOLE, sealed, slen, e);
	if (r == 0 && p == SAVE_MIGRATION)
		r = write_sec(w, SEC_CONSOLE_KEY, key.k, sizeof(key.k), e);
	else if (r == 0 && p == SAVE_SNAPSHOT && spki_len)
		r = write_sec(w, SEC_CONSOLE_WRAP, wrapped, wlen, e);
	console_key_wipe(&key);
	explicit_bzero(st, sizeof(*st));
	free(st);
	free(sealed);
	/* what the console adds to the pause: sizes and time, never contents */
	if (r == 0 && slen && p == SAVE_MIGRATION)
		console_log("state sealed for the migration: %zu bytes in %.2f ms", slen, (double)(mono_ns() - t0) / 1e6);
	return r;
}

static void ext_thaw(void *opaque)
{
	struct console_server *cs = opaque;
	int i;

	pthread_mutex_lock(&cs->lock);
	cs->frozen = false;
	cs->moving_to[0] = 0; /* it stays: a later migration prepares its clients again */
	for (i = 0; i < MAX_SESSIONS; i++)
		cs->sess[i].prepared = false;
	pthread_mutex_unlock(&cs->lock);
	console_wake(cs);
}

static void ext_handed_over(void *opaque, const char *addr)
{
	struct console_server *cs = opaque;

	pthread_mutex_lock(&cs->lock);
	cs->moved = true;
	snprintf(cs->moved_to, sizeof(cs->moved_to), "%s", addr);
	pthread_mutex_unlock(&cs->lock);
	console_log("the VM moved: sending its clients to %s", addr[0] ? addr : "(unknown)");
	console_wake(cs);
}

/* The destination is loaded: clients may connect there ahead (only the TLS handshake;
 * they say HELLO once the VM runs there), so that following costs no handshake. */
static void ext_moving(void *opaque, const char *addr)
{
	struct console_server *cs = opaque;

	pthread_mutex_lock(&cs->lock);
	snprintf(cs->moving_to, sizeof(cs->moving_to), "%s", addr);
	pthread_mutex_unlock(&cs->lock);
	console_wake(cs);
}

const struct machine_ext_ops console_ext_ops = {
	.save = ext_save,
	.thaw = ext_thaw,
	.handed_over = ext_handed_over,
	.moving = ext_moving,
};
