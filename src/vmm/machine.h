/* A running machine: the VM, one thread per vCPU, the port bus and the devices,
 * with pause/resume and whole-machine state save/load.
 * Everything that touches KVM state while the guest runs goes through here.
 *
 * Each vCPU thread runs KVM_RUN on its own and takes the machine lock only to park:
 * a vCPU that blocks in the kernel (HLT, wait-for-SIPI, a missing page served by
 * userfaultfd) blocks nobody else. A pause kicks every thread and returns once all
 * of them are parked outside KVM_RUN with their last port/MMIO access completed. */
#ifndef SEALVM_VMM_MACHINE_H
#define SEALVM_VMM_MACHINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dev/bus.h"
#include "dev/debug_exit.h"
#include "dev/i8042.h"
#include "dev/pubmem.h"
#include "dev/serial.h"
#include "dev/vga.h"
#include "state/section.h"
#include "util/err.h"
#include "vm/clock.h"
#include "vm/vcpu.h"
#include "vm/vm.h"

enum machine_run_state {
	MACHINE_CREATED,   /* not started */
	MACHINE_RUNNING,
	MACHINE_PAUSED,
	MACHINE_STOPPED,   /* the guest ended, or it was told to stop */
};

/* Who holds the vCPUs paused. The guest runs only while nobody does, so one
 * party (the throttle, a snapshot) can never resume a VM another (the
 * operator, a migration's hand-over) paused. */
enum pause_holder {
	PAUSE_OPERATOR = 1u << 0,   /* ctl pause */
	PAUSE_MIGRATION = 1u << 1,  /* stop and copy, hand-over, uncertain outcome */
	PAUSE_THROTTLE = 1u << 2,   /* auto-converge */
	PAUSE_SNAPSHOT = 1u << 3,   /* snapshot being written */
	PAUSE_INCOMING = 1u << 4,   /* loaded at the destination, waiting for COMMIT */
	PAUSE_CONSOLE = 1u << 5,    /* restored: its sealed console waits for the owner's key */
};

enum machine_stop_reason {
	STOP_NONE,
	STOP_DEBUG_EXIT,   /* guest wrote to the debug-exit port */
	STOP_RESET,        /* i8042 reset or triple fault */
	STOP_QUIT,         /* control socket `quit` */
	STOP_MIGRATED,     /* handed over to another host */
	STOP_ERROR,        /* KVM reported an error */
};

/* CONFIG: the machine's shape, first in a snapshot, so a receiver can build the VM.
 * Version 1: one vCPU. Version 2: nr_vcpus (1..64) vCPUs, one VCPU section each
 * with its id inside. A one-vCPU machine still writes version 1, which every
 * sealvm reads; both versions are read. */
#define CONFIG_VERSION_1CPU 1
#define CONFIG_VERSION 2
struct machine_config {
	uint32_t version;
	uint32_t nr_vcpus;
	uint64_t ram_size;
	uint8_t reserved[48];
};

/* What a save is for: decides which extension sections may go out. */
enum machine_save_purpose {
	SAVE_SNAPSHOT,             /* a snapshot file (sealed with the host's key) */
	SAVE_MIGRATION,            /* a migration channel protected by TLS */
	SAVE_MIGRATION_INSECURE,   /* a tcp:// channel: nothing confidential may go out */
};

/* A part above the machine that owns some of its devices' contents (the owner's
 * console: serial port, keyboard, screen) and carries them in its own sections
 * beside the machine's. While it is attached, the plain SERIAL section leaves out
 * the receive FIFO (typed input). All three run outside the machine's lock. */
struct machine_ext_ops {
	/* The machine is paused: write the extension's sections. Input stays out of
	 * the devices from now until thaw (or for good after a hand-over). */
	int (*save)(void *opaque, struct sec_writer *w, enum machine_save_purpose p, struct err *e);
	/* The VM runs here again after a save: snapshot written, migration aborted. */
	void (*thaw)(void *opaque);
	/* The VM now runs on another host; addr is that host's console ("" if unknown). */
	void (*handed_over)(void *opaque, const char *addr);
	/* A hint: the VM is about to move to addr (its destination is loaded and about
	 * to answer READY); it may still stay here. */
	void (*moving)(void *opaque, const char *addr);
};

/* Sections of an extension that a load brought (migration or snapshot), kept
 * until the extension takes them. */
#define MACHINE_EXT_SECTIONS 3
struct machine_ext_sec {
	uint32_t id, version;
	uint8_t *data;
	size_t len;
};

struct machine;

/* One vCPU and the thread that runs it. */
struct vcpu_runner {
	struct machine *m;
	struct vcpu *v;
	pthread_t thread;
	bool started;
	bool parked;    /* outside KVM_RUN, its I/O completed, waiting (or its thread ended) */
};

struct machine {
	struct vm vm;
	int nr_vcpus;
	struct vcpu_runner cpus[VM_MAX_VCPUS];
	struct pio_bus bus;
	struct serial serial;
	struct i8042 kbd;
	struct vga vga;            /* text screen: sealvm memory, not guest RAM */
	struct debug_exit dbg;
	struct pubmem pubmem;      /* non-sensitive RAM, declared by the operator or the guest */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum machine_run_state state;
	unsigned held;             /* enum pause_holder bits */
	struct clock_hold clocks;  /* the guest's clocks stand still while held (not for the throttle) */
	bool stop_req;
	enum machine_stop_reason stop_reason;
	int exit_status;
	char stop_msg[256];

	uint64_t exits, io_exits;  /* all vCPUs (atomic adds) */
	uint64_t started_ns;
	uint64_t run_ns, last_resume_ns;   /* time the guest spent running */

	pthread_mutex_t ext_lock;  /* held while an extension op runs, and to change ext */
	const struct machine_ext_ops *ext;
	void *ext_opaque;
	bool ext_saved;            /* a save froze the extension: thaw on resume */
	bool ext_told_moved;       /* handed_over was called */
	char successor[300];       /* the destination's console, learnt during a migration */
	struct machine_ext_sec ext_in[MACHINE_EXT_SECTIONS];
};

/* Creates the VM (nr_vcpus 1..VM_MAX_VCPUS, checked against KVM's limit) and devices;
 * serial output goes to serial_fd (-1 drops it). The vCPUs come with boot or load. */
int machine_init(struct machine *m, uint64_t ram_size, int nr_vcpus, int serial_fd, struct err *e);
/* The same, with guest RAM in a mapping made beforehand (vm/reserve.h); it is
 * the machine's from then on, even if this fails. */
int machine_init_in(struct machine *m, uint64_t ram_size, int nr_vcpus, int serial_fd, uint8_t *ram,
		    struct err *e);
void machine_destroy(struct machine *m);
/* Loads a Multiboot kernel, writes the MP table, creates the vCPUs: vCPU 0 at the
 * kernel's entry, the others waiting for INIT/SIPI as on hardware. */
int machine_boot(struct machine *m, const char *kernel, const char *cmdline, struct err *e);
/* Starts the vCPU threads; they park at once if someone already holds the machine paused. */
int machine_start(struct machine *m, struct err *e);
/* Adds holder to those holding the machine paused; every vCPU is then outside
 * KVM_RUN with any port/MMIO access completed (waits for all of them). */
void machine_pause(struct machine *m, unsigned holder);
/* Releases holder; every vCPU runs again once no holder is left. */
void machine_resume(struct machine *m, unsigned holder);
/* The enum pause_holder bits currently set. */
unsigned machine_held(struct machine *m);
/* "operator,migration" for the bits in held ("" for none). */
const char *pause_holder_names(unsigned held, char *buf, size_t len);
/* Ends the machine with a reason; wakes machine_wait. */
void machine_stop(struct machine *m, enum machine_stop_reason why, int status, const char *msg);
/* Blocks until the machine stops; returns the reason. */
enum machine_stop_reason machine_wait(struct machine *m);
enum machine_run_state machine_state(struct machine *m);
const char *machine_state_name(enum machine_run_state s);

/* Attaches (ops non-NULL) or detaches an extension (see struct machine_ext_ops). */
void machine_set_ext(struct machine *m, const struct machine_ext_ops *ops, void *opaque);
bool machine_has_ext(struct machine *m);
/* Remembers where the VM's console will be after a hand-over (migration source),
 * and tells the extension (a hint: clients may get ready). */
void machine_set_successor(struct machine *m, const char *console_addr);
/* The VM runs on the destination now (its COMMIT_ACK came): tells the extension
 * once, at once; machine_stop(STOP_MIGRATED) does it too if this was not called. */
void machine_handed_over(struct machine *m);
/* Hands an extension section a load brought over to the caller (who frees it,
 * wiping it first); false if the load brought none of that id. */
bool machine_take_ext(struct machine *m, uint32_t id, struct machine_ext_sec *out);
/* True while sections a load brought wait for an extension to take them. */
bool machine_ext_pending(struct machine *m);
void machine_ext_sec_free(struct machine_ext_sec *s);

/* State sections. save_state needs the machine paused; it writes SERIAL (and PUBMEM
 * once anything was declared non-sensitive), one VCPU per vCPU in id order, VM
 * (devices first, clock last), then the extension's sections. */
int machine_save_config(struct machine *m, struct sec_writer *w, struct err *e);
int machine_save_state(struct machine *m, struct sec_writer *w, enum machine_save_purpose p, struct err *e);

/* Loading: the config section first (machine_init from it), then any PAGES and
 * state sections via machine_load_section (buffered, validated), then
 * machine_load_commit applies the buffered state to fresh vCPUs. */
int machine_config_read(struct sec_reader *r, const struct sec_hdr *h, struct machine_config *c,
			struct err *e);
struct machine_loader {
	uint32_t nr_vcpus;         /* expected VCPU sections; 0: not known yet (up to VM_MAX_VCPUS) */
	uint32_t have_vcpus;       /* VCPU sections buffered */
	struct vcpu_state *vcpu[VM_MAX_VCPUS];  /* by vCPU id */
	struct vm_state *vmst;
	struct serial_state serial;
	struct pubmem_state pubmem;
	bool have_vm, have_serial, have_pubmem;
	struct machine_ext_sec ext[MACHINE_EXT_SECTIONS];   /* CONSOLE, CONSOLE_KEY, CONSOLE_WRAP */
};
void machine_loader_init(struct machine_loader *l);
void machine_loader_fini(struct machine_loader *l);
/* Consumes one section of type VCPU, VM, SERIAL or PUBMEM (header already read). */
int machine_load_section(struct machine_loader *l, struct sec_reader *r, const struct sec_hdr *h,
			 struct err *e);
/* Checks the buffered state is complete for nr_vcpus vCPUs (every id once). */
int machine_loader_complete(const struct machine_loader *l, uint32_t nr_vcpus, struct err *e);
/* Creates the vCPUs and loads everything in order; the machine stays paused. */
int machine_load_commit(struct machine *m, struct machine_loader *l, struct err *e);

uint64_t now_ns(void);

#endif
