/* sealvm's migration hand-over, specified for SPIN (model/README.md).
 *
 * One VM, one migration from the source host to the destination host, over
 * mutually authenticated TLS connections that a hostile network may cut,
 * delay or refuse at any moment; the operator acting at any moment; a crash
 * of either host at any moment (only the destination's outcome records in its
 * state directory survive). The names of phases, records, pause holders and
 * outcomes are those of the C code (src/migrate/proto.h, dest.c, source.c,
 * outcome.h, src/vmm/machine.h, src/control/commands.c).
 *
 * Compile-time switches (spin -DNAME):
 *   old rules     OLD_REFUSED  the source resumed when an outcome query was refused (8731bc0)
 *                 OLD_PAUSE    one pause flag, and `resume` not refused during a migration (8731bc0)
 *                 OLD_NOFENCE  the destination answered from memory only, no durable decision,
 *                              and "no such migration" (UNKNOWN) let the source resume
 *   as built      RACY_QUIT    cmd_quit as implemented: reads `committing`, then cancels in a
 *                              second step, and quits even when the cancel was refused
 *   finding       STRICT_LOSS  counts a verified copy parked at READY as a copy of the VM
 *   mutations     M_FENCE M_RUN_BEFORE_DECIDE M_VOLATILE M_AUTH_ANSWER M_HOLDERS
 *                 M_FORCE_ANYTIME M_QUIT_GUARD M_END M_STREAM_AUTH M_CANCEL_AFTER_COMMIT
 *                 M_ASSUME_COMMITTED M_NO_RESOLVER (each removes one guard; see the README)
 *   environment   NO_FORCE (no --force), LIVE (timers fire only when nothing else can
 *                 move, the network cuts at most CUTS connections, a destination that
 *                 went down comes back, unless NEVER_BACK), bounds OPS CRASHES QCALL
 *                 MAXV FORGE RESTARTS CUTS
 */

#ifndef OPS
#define OPS 1          /* operator commands */
#endif
#ifndef CRASHES
#define CRASHES 1      /* host crashes, either host */
#endif
#ifndef RESTARTS
#define RESTARTS 1     /* destination processes started again on the same state directory */
#endif
#ifndef QCALL
#define QCALL 2        /* queries resolve_outcome() makes before its deadline */
#endif
#ifndef MAXV
#define MAXV 1         /* versions of guest memory: the guest dirties it while it runs */
#endif
#ifndef FORGE
#define FORGE 1        /* forged or replayed records (they matter only when a check is gone) */
#endif
#ifndef CUTS
#define CUTS 3         /* LIVE: connections the network cuts */
#endif

/* records: the payloads of state sections (src/state/section.h); QUERY is HELLO{kind QUERY} */
mtype = { HELLO, HELLO_ACK, ROUND, SYNC, SYNC_ACK, PAGES, VCPU, END, READY, COMMIT, COMMIT_ACK,
	  ABORT, OUTCOME, ERR };   /* ERR: the connection ended (not a record) */

/* Who sent a record, as the receiving TLS layer sees it. Every record in the
 * channels below is the authenticated peer's: a forged, replayed, duplicated or
 * reordered record fails TLS and ends the connection, which is the "cut" every
 * receive may see. Only a mutation that removes a check lets a forgery through,
 * and those are modelled at the receive that would accept it (FORGE). */
#define PEER   1

#define MIG_KIND_MIGRATE 0
#define MIG_KIND_QUERY   1

/* enum mig_outcome (proto.h); Q_ERR: no answer that can be trusted */
#define Q_ERR                0
#define MIG_OUTCOME_RUNNING  1
#define MIG_OUTCOME_ABORTED  2
#define MIG_OUTCOME_GONE     3
#define MIG_OUTCOME_UNKNOWN  5   /* old protocol: "no such migration" */

/* enum outcome_kind (outcome.h): the destination's durable decision */
#define OUTCOME_NONE      0
#define OUTCOME_COMMITTED 1
#define OUTCOME_ABORTED   2

/* enum pause_holder (vmm/machine.h) */
#define PAUSE_OPERATOR  1
#define PAUSE_MIGRATION 2
#define PAUSE_THROTTLE  4
#define PAUSE_INCOMING  16

/* enum in_phase (dest.c) */
#define IN_WAITING   0
#define IN_RECEIVING 1
#define IN_READY     2
#define IN_COMMITTED 3
#define IN_FAILED    4

/* the source's progress phases (migrate_source(), the `phase` of `ctl status`) */
#define P_IDLE     0   /* no migration yet */
#define P_HELLO    1   /* "connect", "hello" */
#define P_PRECOPY  2   /* "precopy": rounds, SYNC */
#define P_STOPCOPY 3   /* "stop-and-copy" */
#define P_VERIFY   4   /* "verify": waiting for READY */
#define P_COMMIT   5   /* "commit" */
#define P_RESOLVE  6   /* "resolve" */
#define P_ENDING   7   /* migrate_source() returned, cmd_migrate() has not yet taken c->lock */
#define P_DONE     8   /* c->phase == NULL again */

/* enum migrate_result */
#define MIGRATE_NONE      0
#define MIGRATE_COMMITTED 1
#define MIGRATE_ABORTED   2
#define MIGRATE_UNCERTAIN 3
#define MIGRATE_REFUSED   4   /* check_migratable() said no */

/* dest copy */
#define VM_NONE   0
#define VM_LOADED 1   /* verified, loaded, vCPU parked (READY) */
#define VM_TAKEN  2   /* COMMITTED decided: this host has the VM */

#if defined(OLD_PAUSE) || defined(M_HOLDERS)
#define SINGLE_FLAG 1
#endif

#ifdef LIVE
#define TIMEOUT (timeout)
#else
#define TIMEOUT (true)
#endif

/* ---- connections: each direction of each TLS connection is a FIFO ---- */
chan l0_sd = [4] of { mtype, byte, byte };   /* lane 0 (channel 0), source -> destination */
chan l0_ds = [2] of { mtype, byte, byte };   /* lane 0, destination -> source */
chan l1_sd = [2] of { mtype, byte, byte };   /* lane 1 (an extra channel that joined), source -> destination */
chan q_sd  = [2] of { mtype, byte, byte };   /* outcome query connections, source -> destination */
chan q_ds  = [1] of { mtype, byte, byte };   /* their answers */

/* ---- source host ---- */
bool s_up = true;          /* the source's sealvm process */
bool s_vm = true;          /* it holds the VM (not stopped) */
byte s_held = 0;           /* pause holders */
bool s_running = true;     /* s_up && s_vm && !s_held */
byte s_ver = 0;            /* version of the source's guest memory and vCPU state */
byte s_phase = P_IDLE;
bool running, committing, interrupted;   /* struct migrate_ctl */
bool s_uncertain;          /* vmm_ctx.uncertain */
bool paused_vm;            /* migrating a VM its operator paused: it stays paused */
bool conn0;                /* lane 0 and lane 1 are connected */
bool scrash;               /* the source host crashed */

/* ---- destination host ---- */
bool d_up = true;          /* a destination sealvm process runs on the state directory */
byte d_phase = IN_WAITING;
byte rec = OUTCOME_NONE;   /* STATE_DIR/outcomes/<id>: survives crashes */
bool d_fenced, d_cancelled, d_have_vm, d_vm_ended;
byte d_vm = VM_NONE;
byte d_held = 0;
bool d_running;
byte d_mem, d_cpu;         /* versions of the memory and vCPU state received */
bool got_cpu, got_final, end0, end1;
bool dcrash;               /* the destination host crashed */

/* ---- environment budgets ---- */
byte crashes = CRASHES;
byte restarts = RESTARTS;
byte forge = FORGE;
byte cuts = CUTS;

/* ---- ghosts: what the properties talk about ---- */
bool paused_once;          /* the migration paused the source's VM for stop and copy */
byte final_ver;            /* the version stop and copy sent */
bool s_rerun;              /* ... and the source's copy ran again after that */
bool d_took;               /* the destination decided COMMITTED */
bool dst_ran;              /* the destination's copy ran */
bool bad_take;             /* COMMITTED decided on a copy that is not complete and fresh */
bool forced;               /* the operator ran `resume --force` while told UNCERTAIN */
bool op_paused;            /* the operator paused the VM and has not resumed it */
bool op_ended;             /* the operator ended the VM (quit, quit --force) */
bool quit_plain;           /* a `quit` without --force stopped the source's VM */
bool dquit_cancel;         /* `quit` at the destination stopped the incoming migration */
bool crash_lost;           /* a crash took the only copy of the VM */
bool told_gone;            /* the destination answered GONE: only the operator can decide */

/* Who holds the VM: the source until the destination decided COMMITTED; from
 * then on the source's paused copy is a rollback that only `resume --force` runs. */
#define SRC_HOLDS (s_up && s_vm && !d_took)
#ifdef STRICT_LOSS
#define DST_HOLDS (d_up && d_vm != VM_NONE)
#else
#define DST_HOLDS (d_up && d_vm == VM_TAKEN)
#endif
#define LOST (!SRC_HOLDS && !DST_HOLDS)
#define SPLIT ((d_took && s_rerun) || (s_running && d_running))
#define PHASE_SET (s_phase != P_IDLE && s_phase != P_DONE)
#define BUSY (PHASE_SET || s_uncertain)

/* ---- properties (README: what each means) ---- */
ltl split    { [] (SPLIT -> forced) }
ltl lost     { [] (LOST -> (crash_lost || op_ended)) }
ltl fresh    { [] !bad_take }
ltl pause    { [] ((op_paused && (s_running || d_running)) -> forced) }
ltl quit     { [] (((quit_plain || dquit_cancel) && d_took) -> forced) }
ltl ends     { <> (s_phase == P_DONE || scrash) }
ltl resolves { [] (s_uncertain -> <> (!s_uncertain || told_gone || scrash)) }
/* all the safety properties at once, for the wider bounds */
ltl safety   { [] ((SPLIT -> forced) && (LOST -> (crash_lost || op_ended)) && !bad_take &&
		   ((op_paused && (s_running || d_running)) -> forced) &&
		   (((quit_plain || dquit_cancel) && d_took) -> forced)) }

/* ---- the machine (vmm/machine.c): the guest runs only while nobody holds it ---- */
inline src_update() {
	s_running = (s_up && s_vm && s_held == 0);
	if
	:: s_running && paused_once && !s_rerun -> s_rerun = true;
		printf("@ source: the VM RUNS at the source again (after the hand-over pause)\n")
	:: else -> skip
	fi
}

inline d_update() {
	d_running = (d_up && d_vm != VM_NONE && d_held == 0);
	if
	:: d_running && !dst_ran -> dst_ran = true; printf("@ destination: the VM RUNS at the destination\n")
	:: else -> skip
	fi
}

#ifdef SINGLE_FLAG
inline hold(h)    { s_held = 1; src_update() }
inline release(h) { s_held = 0; src_update() }
inline d_hold(h)    { d_held = 1; d_update() }
inline d_release(h) { d_held = 0; d_update() }
#else
inline hold(h)    { s_held = s_held | (h); src_update() }
inline release(h) { s_held = s_held & ~(h); src_update() }
inline d_hold(h)    { d_held = d_held | (h); d_update() }
inline d_release(h) { d_held = d_held & ~(h); d_update() }
#endif

inline flush(ch) {
	do
	:: nempty(ch) -> ch?_,_,_
	:: empty(ch) -> break
	od
}

/* A send on a live connection; a dead one swallows it. */
inline send(ch, t, a) {
	if
	:: conn0 && nfull(ch) -> ch!t,a,PEER
	:: !conn0 -> skip
	:: full(ch) -> skip   /* never with these capacities */
	fi
}

/* The source reads the next record on lane 0 (lane_expect()). A timeout, a
 * reset, EOF, or a record that fails TLS authentication (forged, replayed,
 * duplicated, reordered) all end the connection: t = ERR. */
inline recv0(t, a, want) {
	if
	:: l0_ds?t,a,_
	:: atomic { TIMEOUT -> t = ERR;
		printf("@ network: %e does not reach the source (lost, delayed past the timeout, or the connection reset)\n", want) }
#ifdef LIVE
	:: atomic { cuts > 0 -> cuts--; t = ERR;
		printf("@ network: cuts channel 0 before %e reaches the source\n", want) }
#endif
	:: atomic { interrupted && !committing -> t = ERR }   /* interrupt(): chan_shutdown() */
	fi
}

/* what the source makes of the answer to its query */
inline say_answer(o) {
	if
	:: o == MIG_OUTCOME_RUNNING -> printf("@ source: the answer is RUNNING (committed, the VM runs there)\n")
	:: o == MIG_OUTCOME_ABORTED -> printf("@ source: the answer is ABORTED (the VM never ran there and never will)\n")
	:: o == MIG_OUTCOME_GONE -> printf("@ source: the answer is GONE (committed, ran there, has since stopped)\n")
	:: o == MIG_OUTCOME_UNKNOWN -> printf("@ source: the answer is UNKNOWN ('no such migration')\n")
	:: else -> printf("@ source: no answer that can be trusted\n")
	fi
}

/* ---- outcome queries (migrate_query_outcome()) ---- */
inline query(o) {
	atomic {
		o = Q_ERR; qrefused = false;
		if
		:: d_up -> q_sd!HELLO,MIG_KIND_QUERY,PEER; qconn = true
		:: !d_up -> qrefused = true;
			printf("@ source: the outcome query's connection is refused: no destination process listens\n")
#ifdef LIVE
		:: atomic { cuts > 0 -> cuts--; qrefused = true;
			printf("@ network: refuses the outcome query's connection\n") }
#else
		:: d_up -> qrefused = true;
			printf("@ network: the outcome query's connection is refused (ECONNREFUSED from a forged RST)\n")
#endif
#ifdef M_AUTH_ANSWER
		:: atomic { forge > 0 -> forge-- }; o = MIG_OUTCOME_ABORTED;
			printf("@ network: the query is redirected to another cluster host, which answers ABORTED ('no such migration'); the answer is taken\n")
#endif
		fi
	}
	if
	:: qconn ->
		if
		:: q_ds?OUTCOME,o,_
		:: atomic { TIMEOUT -> o = Q_ERR; printf("@ network: the OUTCOME answer does not reach the source\n") }
#ifdef LIVE
		:: atomic { cuts > 0 -> cuts--; o = Q_ERR; printf("@ network: cuts the outcome query's connection\n") }
#endif
		fi
	:: else -> skip
	fi;
	atomic {
		if
		:: qconn -> say_answer(o)
		:: else -> skip
		fi;
		flush(q_ds); qconn = false;
#ifdef OLD_REFUSED
		if
		:: qrefused -> o = MIG_OUTCOME_ABORTED;
			printf("@ source (old rule): connection refused = 'the destination is gone', so the VM may resume\n")
		:: else -> skip
		fi;
#endif
#ifdef OLD_NOFENCE
		if
		:: o == MIG_OUTCOME_UNKNOWN -> o = MIG_OUTCOME_ABORTED;   /* old: "no such migration" resumes */
			printf("@ source (old rule): UNKNOWN ('no such migration') counts as 'never ran', so the VM may resume\n")
		:: else -> skip
		fi;
#endif
		skip
	}
}

/* ---- the source host: migrate_source() and the resolver thread ---- */
proctype Source() {
	mtype t;
	byte a, o, nq;
	byte res = MIGRATE_NONE;
	bool paused, qconn, qrefused;

	{
		/* cmd_migrate(), check_migratable(), lane_open() */
		atomic {
			if
			:: s_vm && (s_held == 0 || s_held == PAUSE_OPERATOR) ->
				paused_vm = (s_held == PAUSE_OPERATOR);
				s_phase = P_HELLO; running = true; conn0 = d_up
			:: else -> res = MIGRATE_REFUSED; s_phase = P_DONE
			fi
		}
		if
		:: res == MIGRATE_REFUSED -> goto idle
		:: !conn0 && res != MIGRATE_REFUSED -> goto abort
		:: atomic { conn0 && res != MIGRATE_REFUSED -> send(l0_sd, HELLO, paused_vm);
			printf("@ source: migration starts: HELLO\n") }
		fi;
		recv0(t, a, HELLO_ACK);
		if
		:: atomic { t == HELLO_ACK -> s_phase = P_PRECOPY }
		:: t != HELLO_ACK -> goto abort
		fi;
		/* auto-converge may hold the vCPU for a slice (throttle.c) */
		if
		:: atomic { printf("@ source: auto-converge holds the vCPU for a slice\n"); hold(PAUSE_THROTTLE) };
		   atomic { printf("@ source: auto-converge releases the vCPU\n"); release(PAUSE_THROTTLE) }
		:: skip
		fi;
		/* a round, then drain(): SYNC, wait until everything sent is applied */
		if
		:: interrupted || !s_vm -> goto abort
		:: atomic { !interrupted && s_vm -> send(l0_sd, ROUND, s_ver); send(l0_sd, SYNC, 0) }
		fi;
		recv0(t, a, SYNC_ACK);
		/* stop and copy */
		if
		:: atomic { t == SYNC_ACK ->
			hold(PAUSE_MIGRATION); paused = true; paused_once = true; s_phase = P_STOPCOPY;
			printf("@ source: VM paused for stop and copy\n") }
		:: t != SYNC_ACK -> goto abort
		fi;
		if
		:: !s_vm -> goto abort   /* the VM was told to quit meanwhile */
		:: atomic { s_vm ->
			final_ver = s_ver;
			send(l1_sd, PAGES, s_ver); send(l1_sd, END, 0);
			send(l0_sd, VCPU, s_ver); send(l0_sd, END, 0);
			s_phase = P_VERIFY }
		fi;
		/* handover() */
		recv0(t, a, READY);
		if
		:: t != READY -> goto abort
		:: nempty(l0_ds) -> goto abort   /* peer_gone(): something after READY */
		:: !conn0 -> goto abort
		:: atomic { t == READY && empty(l0_ds) && conn0 ->
			if
			:: !interrupted -> committing = true;
				s_phase = P_COMMIT;
				send(l0_sd, COMMIT, paused_vm);
				printf("@ source: COMMIT sent\n")
			:: else -> skip
			fi }
		fi;
		if
		:: !committing -> goto abort
		:: else -> skip
		fi;
		recv0(t, a, COMMIT_ACK);
#ifdef M_CANCEL_AFTER_COMMIT
		if
		:: interrupted -> goto abort
		:: else -> skip
		fi;
#endif
		if
		:: atomic { t == COMMIT_ACK -> res = MIGRATE_COMMITTED; printf("@ source: COMMIT_ACK received\n") }; goto done
		:: atomic { t == ABORT -> printf("@ source: authenticated ABORT after COMMIT\n") }; goto abort
		:: atomic { t != COMMIT_ACK && t != ABORT -> printf("@ source: no COMMIT_ACK\n");
			/* resolve_outcome(): only an authenticated answer ends the wait */
			s_phase = P_RESOLVE; nq = 0 }
		fi;
		do
		:: nq < QCALL ->
			nq++;
			query(o);
			if
			:: o == MIG_OUTCOME_RUNNING -> res = MIGRATE_COMMITTED; goto done
			:: o == MIG_OUTCOME_ABORTED -> goto abort
			:: o == MIG_OUTCOME_GONE -> told_gone = true; res = MIGRATE_UNCERTAIN; goto done
			:: else -> skip
			fi
#ifdef M_ASSUME_COMMITTED
		:: nq >= QCALL -> res = MIGRATE_COMMITTED;   /* "no answer: it must run there" */
			printf("@ source: no answer before the deadline; assumes the destination runs the VM\n"); goto done
#else
		:: nq >= QCALL -> res = MIGRATE_UNCERTAIN; goto done
#endif
		od;
abort:
		atomic {
			send(l0_sd, ABORT, 0);
			if
			:: paused -> release(PAUSE_MIGRATION); paused = false
			:: else -> skip
			fi;
			res = MIGRATE_ABORTED;
			if
			:: s_running -> printf("@ source: migration aborted; the VM runs on here\n")
			:: else -> printf("@ source: migration aborted; the VM stays paused here\n")
			fi
		}
done:
		atomic {
			if
			:: res == MIGRATE_COMMITTED -> s_vm = false; src_update();
				printf("@ source: committed; the source's copy is stopped\n")
			:: else -> skip
			fi;
			running = false; s_phase = P_ENDING;
			flush(l0_ds); conn0 = false
		}
		/* cmd_migrate() records the result under c->lock */
		atomic {
			s_phase = P_DONE;
			if
			:: res == MIGRATE_UNCERTAIN -> s_uncertain = true;
				printf("@ source: UNCERTAIN, the VM is kept paused\n")
			:: else -> skip
			fi
		}
		/* resolver_thread() */
#ifdef M_NO_RESOLVER
		goto idle;   /* no thread keeps asking */
#endif
		do
		:: !s_uncertain -> break
		:: s_uncertain ->
			query(o);
			atomic {
				if
				:: !s_uncertain -> skip
				:: o == MIG_OUTCOME_RUNNING -> s_uncertain = false; s_vm = false; src_update();
					printf("@ source (resolver): the destination runs the VM; this copy stops\n")
				:: o == MIG_OUTCOME_ABORTED -> s_uncertain = false; release(PAUSE_MIGRATION);
					printf("@ source (resolver): the destination never ran the VM; resumed here\n")
				:: o == MIG_OUTCOME_GONE -> told_gone = true
				:: else -> skip
				fi
			}
			if
			:: told_gone -> break   /* GONE is final: only the operator decides now */
			:: else -> skip
			fi
		od;
idle:
end_src:
		(false)
	} unless { scrash }
	/* the host crashed: the source's copy dies with its process */
	atomic {
		if
		:: SRC_HOLDS && !DST_HOLDS -> crash_lost = true
		:: else -> skip
		fi;
		s_up = false; s_vm = false; src_update(); running = false;
		flush(l0_ds); flush(q_ds);
		printf("@ source host CRASHED\n")
	}
}

/* The source's guest dirties its memory while it runs. */
proctype Guest() {
end_guest:
	do
	:: atomic { s_running && s_ver < MAXV -> s_ver++ }
	od
}

/* ---- the destination host: incoming_wait_vm(), hand_over() ---- */
proctype Dest() {
	mtype t;
	byte a, flags;
	bool ok;

	{
		/* take_offer(), admit(), accept_with() */
		if
		:: l0_sd?t,a,_ ->
			if
			:: t == HELLO && !d_cancelled -> skip
			:: else -> goto failed
			fi
		:: d_cancelled -> goto failed
		fi;
		atomic {
			d_phase = IN_RECEIVING; flags = a;
			send(l0_ds, HELLO_ACK, 0)
		}
		/* rx_receive(): every lane up to its END */
		do
#ifdef M_END
		:: end0 && got_cpu -> break
#else
		:: end0 && end1 && got_cpu -> break
#endif
		:: l0_sd?t,a,_ ->
			if
			:: t == ROUND -> d_mem = a
			:: t == SYNC -> send(l0_ds, SYNC_ACK, 0)
			:: t == VCPU -> d_cpu = a; got_cpu = true
			:: t == END -> end0 = true
			:: else -> goto failed   /* ABORT, or a record out of place */
			fi
		:: l1_sd?t,a,_ ->
			if
			:: t == PAGES -> d_mem = a; got_final = true
			:: t == END -> end1 = true
			:: else -> goto failed
			fi
		:: atomic { TIMEOUT -> printf("@ destination: the stream stops (cut, delayed past its timeout, or the source is gone)\n") }; goto failed
#ifdef LIVE
		:: atomic { cuts > 0 -> cuts--; printf("@ network: cuts the stream to the destination\n") }; goto failed
#endif
		:: d_fenced || d_cancelled -> goto failed   /* rx_interrupt() */
#ifdef M_STREAM_AUTH
		/* without the channel's authentication, a replayed or forged record is applied */
		:: atomic { forge > 0 -> forge-- }; d_mem = 0;
			printf("@ network: replays a pre-copy page record (version 0) into the stream; it is applied\n")
		:: atomic { forge > 0 -> forge-- }; end1 = true;
			printf("@ network: forges END on channel 1; it is accepted\n")
#endif
		od;
		/* verified and loaded: COMMITTED prepared, vCPU parked (PAUSE_INCOMING) */
		atomic {
			if
			:: d_fenced || d_cancelled -> goto failed
			:: else -> skip
			fi;
			d_vm = VM_LOADED; d_hold(PAUSE_INCOMING); d_phase = IN_READY;
			printf("@ destination: stream verified (every channel's END), VM loaded and parked: READY\n")
		}
		send(l0_ds, READY, 0);
		/* hand_over(): wait_commit() */
		if
		:: l0_sd?t,a,_ -> ok = (t == COMMIT); flags = a
		:: atomic { TIMEOUT -> ok = false; printf("@ destination: no COMMIT arrives (lost, delayed past its timeout, or never sent)\n") }
#ifdef LIVE
		:: atomic { cuts > 0 -> cuts--; ok = false; printf("@ network: cuts channel 0 before COMMIT reaches the destination\n") }
#endif
		:: d_fenced || d_cancelled -> ok = false   /* lane 0 shut down */
#ifdef M_STREAM_AUTH
		:: atomic { forge > 0 -> forge-- }; ok = true; flags = 0;
			printf("@ network: forges COMMIT; it is accepted\n")
#endif
		fi;
		atomic {
			if
			:: ok && d_fenced -> ok = false;
				printf("@ destination: COMMIT came after the fence; refused\n")
			:: else -> skip
			fi;
			if
			:: !ok ->
#ifndef OLD_NOFENCE
				if
				:: !d_fenced && rec == OUTCOME_NONE -> rec = OUTCOME_ABORTED
				:: else -> skip
				fi;
#endif
				goto failed
			:: else -> skip
			fi;
#ifdef M_RUN_BEFORE_DECIDE
			d_phase = IN_COMMITTED
		}
		atomic {
			if
			:: flags -> d_hold(PAUSE_OPERATOR)
			:: else -> skip
			fi;
			d_release(PAUSE_INCOMING);
			printf("@ destination: VM started before COMMITTED is recorded\n")
		}
		atomic {
#endif
			/* outcome_decide(COMMITTED): the first decision for the id wins */
#ifdef OLD_NOFENCE
			ok = true;
#else
			ok = (rec == OUTCOME_NONE);
			if
			:: ok -> rec = OUTCOME_COMMITTED
			:: else -> skip
			fi;
#endif
			if
			:: ok ->
				d_took = true; d_vm = VM_TAKEN; d_phase = IN_COMMITTED;
				bad_take = !(got_cpu && got_final && d_mem == final_ver && d_cpu == final_ver);
				printf("@ destination: COMMITTED decided\n")
			:: else ->
				send(l0_ds, ABORT, 0);
				printf("@ destination: already settled as ABORTED; ABORT sent\n");
				goto failed
			fi
		}
#ifndef M_RUN_BEFORE_DECIDE
		atomic {
			if
			:: flags -> d_hold(PAUSE_OPERATOR)
			:: else -> skip
			fi;
			d_release(PAUSE_INCOMING);
			if
			:: d_running -> skip
			:: else -> printf("@ destination: VM committed, kept paused by its operator\n")
			fi
		}
#endif
		send(l0_ds, COMMIT_ACK, 0);
		d_have_vm = true;
		/* the VM runs here until it ends (quit at the destination) */
		(d_vm == VM_NONE);
		goto down;
failed:
		atomic {
			d_phase = IN_FAILED; d_vm = VM_NONE; d_held = 0; d_update();   /* machine_destroy() */
			printf("@ destination: incoming migration failed; its copy (never run) is discarded\n")
		}
		/* incoming_stop(): lingers answering queries, then the process exits */
down:
		skip   /* incoming_stop(): the process exits */
	} unless { dcrash }
	atomic {
		if
		:: dcrash && d_up ->
			if
			:: DST_HOLDS && !SRC_HOLDS -> crash_lost = true
			:: else -> skip
			fi;
#ifdef M_VOLATILE
			if
			:: rec == OUTCOME_COMMITTED -> rec = OUTCOME_NONE   /* the decision was only in memory */
			:: else -> skip
			fi;
#endif
			printf("@ destination host CRASHED\n")
		:: else -> printf("@ destination process exits\n")
		fi;
		/* what lived in the process is gone; its connections die with it */
		d_up = false; conn0 = false; flush(l0_sd); flush(l1_sd); flush(q_sd);
		d_vm = VM_NONE; d_held = 0; d_update(); d_phase = IN_WAITING; d_have_vm = false;
		d_fenced = false; d_cancelled = false; d_vm_ended = false;
		d_mem = 0; d_cpu = 0; got_cpu = false; got_final = false; end0 = false; end1 = false;
#if defined(LIVE) && !defined(NEVER_BACK)
		/* liveness assumes a destination that went down comes back */
		d_up = true; printf("@ destination restarted on its state directory\n")
#endif
	}
#ifndef LIVE
	/* `sealvm run --incoming` started again on the same state directory, or not */
	if
	:: restarts > 0 -> atomic { restarts--; d_up = true; printf("@ destination restarted on its state directory\n") }
	:: true -> skip
	fi
#endif
}

/* The destination's pool thread: dispatch() -> answer_query() -> outcome_for(). */
proctype DestQuery() {
	byte o;
	bool current;

end_dq:
	do
	:: atomic {
		d_up && nempty(q_sd) -> q_sd?_,_,_;
		current = (d_phase != IN_WAITING);   /* phase >= RECEIVING, same id */
		o = Q_ERR;
#ifdef OLD_NOFENCE
		if
		:: current && d_phase == IN_COMMITTED && !d_vm_ended -> o = MIG_OUTCOME_RUNNING
		:: else -> o = MIG_OUTCOME_UNKNOWN
		fi;
#else
		if
		:: current && (d_phase == IN_RECEIVING || d_phase == IN_READY) ->
#ifdef M_FENCE
			o = MIG_OUTCOME_ABORTED   /* from memory, nothing decided */
#else
			if
			:: rec == OUTCOME_NONE -> rec = OUTCOME_ABORTED; d_fenced = true; o = MIG_OUTCOME_ABORTED;
				printf("@ destination: asked before COMMIT arrived: decides ABORTED (fence)\n")
			:: else -> skip
			fi
#endif
		:: else ->
			if
			:: rec == OUTCOME_NONE -> rec = OUTCOME_ABORTED; o = MIG_OUTCOME_ABORTED
			:: else -> skip
			fi
		fi;
		if
		:: o != Q_ERR -> skip
		:: rec == OUTCOME_ABORTED -> o = MIG_OUTCOME_ABORTED
		:: else ->
			if
			:: current && d_phase == IN_COMMITTED && !d_vm_ended -> o = MIG_OUTCOME_RUNNING
			:: else -> o = MIG_OUTCOME_GONE
			fi
		fi;
#endif
		if
		:: o == MIG_OUTCOME_RUNNING -> printf("@ destination: answers an outcome query: RUNNING\n")
		:: o == MIG_OUTCOME_ABORTED -> printf("@ destination: answers an outcome query: ABORTED\n")
		:: o == MIG_OUTCOME_GONE -> printf("@ destination: answers an outcome query: GONE\n")
		:: o == MIG_OUTCOME_UNKNOWN -> printf("@ destination (old rule): answers an outcome query from memory: UNKNOWN, no decision recorded\n")
		:: else -> skip
		fi;
		if
		:: nfull(q_ds) -> q_ds!OUTCOME,o,PEER
		:: full(q_ds) -> skip
		fi
	   }
	od
}

/* ---- the operator (src/control/commands.c) ---- */
inline QUIT_STOP() {
	if
	:: !refused && s_up && s_vm ->
		if
		:: !force -> quit_plain = true;
			printf("@ operator: quit (accepted), the source's VM stops\n")
		:: else -> printf("@ operator: quit --force (accepted), the source's VM stops\n")
		fi;
		s_uncertain = false; s_vm = false; src_update(); op_ended = true
	:: else -> skip
	fi;
	refused = true   /* done */
}

proctype Operator() {
	byte n = OPS;
	bool force, cancelled, refused;
	bool committing_r;

end_op:
	do
	:: n > 0 -> n--;   /* pause */
		atomic {
			if
#ifdef OLD_PAUSE
			:: s_up && s_vm ->
#else
			:: s_up && s_vm && !BUSY ->
#endif
				printf("@ operator: pause (accepted)\n");
				hold(PAUSE_OPERATOR); op_paused = true
			:: else -> skip
			fi
		}
	:: n > 0 -> n--; force = false; goto resume
#ifndef NO_FORCE
	:: n > 0 -> n--; force = true; goto resume
#endif
	:: n > 0 -> n--; force = false; goto quit
#ifndef NO_FORCE
	:: n > 0 -> n--; force = true; goto quit
#endif
	:: n > 0 -> n--;   /* migrate-cancel */
		atomic {
			if
#ifdef M_CANCEL_AFTER_COMMIT
			:: s_up && running -> interrupted = true;
#else
			:: s_up && running && !committing -> interrupted = true;
#endif
				printf("@ operator: migrate-cancel (accepted)\n")
			:: else -> skip
			fi
		}
	:: n > 0 -> n--;   /* quit at the destination: incoming_cancel(), or the VM there ends */
		atomic {
			if
			:: d_up && d_have_vm && d_vm != VM_NONE ->
				d_vm = VM_NONE; d_held = 0; d_update(); d_vm_ended = true; op_ended = true;
				printf("@ operator: quit at the destination, its VM ends\n")
			:: d_up && !d_have_vm && d_phase != IN_COMMITTED && !d_cancelled ->
				d_cancelled = true;
				if
				:: !d_took -> dquit_cancel = true   /* it stops this migration */
				:: else -> skip
				fi;
#ifndef OLD_NOFENCE
				if
				:: (d_phase == IN_RECEIVING || d_phase == IN_READY) && rec == OUTCOME_NONE ->
					rec = OUTCOME_ABORTED; d_fenced = true
				:: else -> skip
				fi;
#endif
				printf("@ operator: quit at the destination stops the incoming migration\n")
			:: else -> skip
			fi
		}
	:: n == 0 -> break
	od;
	goto end_op2;

resume:   /* cmd_resume() */
	atomic {
		if
		:: !s_up || !s_vm -> skip
#ifdef OLD_PAUSE
		:: else -> printf("@ operator: resume (accepted; old rule: it clears the one pause flag)\n");
			release(PAUSE_OPERATOR); op_paused = false
#else
#ifdef M_FORCE_ANYTIME
		:: force ->
#else
		:: force && !PHASE_SET && s_uncertain ->
#endif
			if
			:: s_uncertain -> forced = true
			:: else -> skip
			fi;
			if
			:: s_uncertain -> printf("@ operator: resume --force of an UNCERTAIN VM (accepted: the operator's explicit choice)\n")
			:: else -> printf("@ operator: resume --force during a migration (accepted)\n")
			fi;
			s_uncertain = false; release(PAUSE_MIGRATION | PAUSE_OPERATOR); op_paused = false
		:: else ->
			if
			:: !BUSY -> printf("@ operator: resume (accepted)\n");
				release(PAUSE_OPERATOR); op_paused = false
			:: else -> skip
			fi
#endif
		fi
	}
	goto end_op;

quit:     /* cmd_quit() */
	cancelled = false; refused = false;
#ifdef RACY_QUIT
	atomic {
		committing_r = running && committing;
		if
		:: !s_up || !s_vm -> refused = true
		:: (committing_r || s_uncertain) && !force -> refused = true
		:: else -> cancelled = PHASE_SET && !committing_r;
			if
			:: cancelled -> printf("@ operator: quit sees a migration before COMMIT and will cancel it first\n")
			:: else -> printf("@ operator: quit sees no COMMIT sent and nothing uncertain; it releases c->lock before machine_stop()\n")
			fi
		fi
	}
	if
	:: cancelled ->   /* migrate_cancel(), c->lock released */
		atomic {
			if
			:: running && !committing -> interrupted = true
			:: else -> cancelled = false;   /* -EBUSY or -ESRCH: quit goes on all the same */
				printf("@ operator: the cancel is refused (COMMIT was sent meanwhile), and quit goes on\n")
			fi
		}
	:: else -> skip
	fi;
	if
	:: cancelled -> (s_phase == P_DONE || !s_up)   /* waits for the migration to unwind */
	:: else -> skip
	fi;
	atomic { QUIT_STOP() }
#else
	/* c->lock is held from the check to the stop, except while a cancelled
	 * migration unwinds (it can no longer COMMIT) */
	atomic {
		if
		:: !s_up || !s_vm -> refused = true
#ifndef M_QUIT_GUARD
		:: ((committing && PHASE_SET) || s_uncertain) && !force -> refused = true
#endif
		:: else ->
			if
			:: PHASE_SET && !committing -> interrupted = true; cancelled = true
			:: else -> QUIT_STOP()
			fi
		fi
	}
	if
	:: cancelled -> (s_phase == P_DONE || !s_up); atomic { QUIT_STOP() }
	:: else -> skip
	fi;
#endif
	goto end_op;
end_op2:
	skip
}

/* ---- host crashes ---- */
proctype Crash() {
end_crash:
	do
	:: crashes > 0 && s_up && !scrash -> atomic { crashes--; scrash = true }
	:: crashes > 0 && d_up && !dcrash -> atomic { crashes--; dcrash = true }
	od
}

init {
	atomic {
		run Source(); run Guest(); run Dest(); run DestQuery(); run Operator(); run Crash()
	}
}
