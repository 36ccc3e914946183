/* runloop.c - a built VM running: the vCPU threads and the main thread's loop (see vm.h). */
#include "vmm/vm.h"
#include "vmm/vm_internal.h"
#include "base/err.h"
#include "base/log.h"
#include "vmm/sandbox/sandbox.h"
#include "vmm/sandbox/sigwatch.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* serial_ops.output: note the boot milestones, then hand the bytes to the console. */
void serial_output(void *ctx, const uint8_t *buf, size_t len)
{
	struct vmm *vmm = ctx;

	boot_times_output(&vmm->times, buf, len, stats_now_ns);
	console_output(&vmm->console, buf, len);
}

void console_quit(void *ctx)
{
	struct vmm *vmm = ctx;
	char why[128];

	snprintf(why, sizeof(why), "quit from the console (Ctrl-A x)%s", end_note(vmm));
	vmm_request_stop(vmm, end_status(vmm), why);
}

static void *vcpu_thread(void *arg)
{
	const struct vcpu_thread *t = arg;
	struct vmm *vmm = t->vmm;
	struct vcpu *vcpu = t->vcpu;
	struct vm_exit ex;

	sandbox_enter(SANDBOX_VCPU);
	bool started = false;
	/*
	 * settled: the last KVM_RUN ended without an exit to handle, so the
	 * vCPU's state is complete (an I/O or MMIO exit finishes only in the
	 * next KVM_RUN; a pause's immediate_exit makes that one return at once).
	 * Only a settled vCPU parks, so a paused VM's state can be saved.
	 */
	bool settled = true;
	/* Once any stop is requested, no vCPU re-enters the guest. */
	while (!atomic_load(&vmm->stopping) && !atomic_load(&vmm->stop_requested)) {
		if (atomic_load(&vmm->pause_requested) && settled) {
			park(vmm, vcpu);
			continue;
		}
		if (!started) {
			/* The first KVM_RUN (after POST /vm/resume with --paused). */
			unsigned long long unset = 0; /* atomic_ullong's own type */
			atomic_compare_exchange_strong(&vmm->times.guest_start, &unset, stats_now_ns());
			started = true;
		}
		int ret = vcpu_run(vcpu, &ex);
		settled = ret == -EINTR;
		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			log_error("%s", err_msg());
			vmm_request_stop(vmm, MV_EXIT_ERROR, NULL);
			break;
		}
		if (exit_dispatch(&vmm->exit_env, vcpu, &ex) == EXIT_STOP)
			break;
	}
	return NULL;
}

/* The prefetch thread only calls madvise: the I/O threads' filter allows that. */
static void prefetch_sandbox(void)
{
	sandbox_enter(SANDBOX_IO);
}

static void kick_handler(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

/* After the vCPU threads were joined: their counters are final. */
static void report_stats(struct vmm *vmm)
{
	static struct stats_report r; /* a few KiB: not on the stack */
	struct exit_stats sum;

	vmm->times.exit = stats_now_ns();
	exit_stats_sum(vmm->vstats, vmm->nr_vcpus, &sum);
	stats_report_fill(&r, &vmm->times, &sum, vmm->nr_vcpus, &vmm->pio, &vmm->mmio,
			  vmm->exit_status);
	log_debug("boot: first output at %.1f ms, init started (\"Run ... %s\") at %.1f ms, guest ended at %.1f ms (-1: never)",
		  r.first_output_ms, STATS_INIT_MARK, r.run_init_ms, r.guest_end_ms);
	if (vmm->cfg.stats == STATS_TEXT)
		stats_print_text(stderr, &r);
	else if (vmm->cfg.stats == STATS_JSON)
		stats_print_json(stderr, &r);
}

/* sigwatch before_exit: a forced exit must not leave the terminal raw. */
static void restore_terminal(void *ctx)
{
	struct vmm *vmm = ctx;

	console_restore_terminal(&vmm->console);
}

/*
 * A deadline of the main loop (ns, 0: none): true once it has passed; else
 * *wait_ms (-1: no limit) shrinks so the loop wakes up for it.
 */
static bool deadline_passed(uint64_t deadline, int *wait_ms)
{
	uint64_t now = stats_now_ns();

	if (!deadline)
		return false;
	if (now >= deadline)
		return true;
	uint64_t left = (deadline - now + 999999) / 1000000;
	if (*wait_ms < 0 || left < (uint64_t)*wait_ms)
		*wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
	return false;
}

int vmm_run(struct vmm *vmm)
{
	sigset_t block;
	struct sigaction sa;
	int sfd, ret;

	/* SIGINT/SIGTERM/SIGHUP reach the main thread through a signalfd only. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	sfd = signalfd(-1, &block, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return MV_EXIT_ERROR;
	}
	/* SIGUSR1 kicks a vCPU out of KVM_RUN: a handler without SA_RESTART. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	/* A closed stdout must not kill the VMM; writes then fail with EPIPE. */
	signal(SIGPIPE, SIG_IGN);

	/* Every thread started from here on confines itself (vmm/sandbox/sandbox.h). */
	if (vmm->cfg.no_seccomp) {
		log_debug("seccomp: off (--no-seccomp)");
	/* --record-working-set reads /proc/self/pagemap and writes DIR/workingset as a snapshot writes its files. */
	} else if (sandbox_prepare(vmm->door_open || vmm->cfg.record_ws_ms, restore_terminal, vmm) < 0) {
		log_error("%s", err_msg());
		close(sfd);
		return MV_EXIT_ERROR;
	}
	vmm->times.sandbox_ready = stats_now_ns();

	/* The console's threads start after the vCPUs' (below): its ring holds what the guest writes meanwhile. */
	if ((ret = console_init(&vmm->console, &vmm->serial, STDIN_FILENO, STDOUT_FILENO,
				console_quit, vmm)) < 0) {
		log_error("%s", err_msg());
		close(sfd);
		return MV_EXIT_ERROR;
	}
	vmm->console_ready = true;
	/* The serial device was created with the console's output in mind. */
	pthread_mutex_lock(&vmm->serial.lock);
	vmm->serial.ops.output = serial_output;
	vmm->serial.ops.out_ctx = vmm;
	pthread_mutex_unlock(&vmm->serial.lock);

	/* The I/O thread serves the disks and taps before any vCPU can kick a queue. */
	if (vdevs_start(&vmm->vdevs) < 0) {
		log_error("%s", err_msg());
		console_stop(&vmm->console);
		close(sfd);
		return MV_EXIT_ERROR;
	}

	/* The working set loads while the vCPUs start (and while a --paused VM waits). */
	if (vmm->ws.n) {
		vmm->ws.thread_init = prefetch_sandbox;
		if (ws_prefetch_start(&vmm->ws) < 0)
			log_warn("%s (restoring without it)", err_msg());
	}
	if (vmm->cfg.record_ws_ms && !vmm->cfg.paused)
		vmm->ws_deadline = stats_now_ns() + vmm->cfg.record_ws_ms * 1000000ULL;
	/* --paused: the vCPU threads park before their first KVM_RUN until POST /vm/resume. */
	if (vmm->cfg.paused) {
		pthread_mutex_lock(&vmm->run_lock);
		atomic_store(&vmm->pause_requested, true);
		vmm->paused_since = stats_now_ns();
		pthread_mutex_unlock(&vmm->run_lock);
		log_info("paused (--paused): the VM runs at POST /vm/resume on %s", vmm->cfg.api_sock);
	}
	for (int i = 0; i < vmm->nr_vcpus; i++) {
		vmm->thread_args[i] = (struct vcpu_thread){ .vmm = vmm, .vcpu = &vmm->vcpus[i] };
		int e = pthread_create(&vmm->threads[i], NULL, vcpu_thread, &vmm->thread_args[i]);
		if (e) {
			log_error("cannot start vCPU %d thread: %s", i, strerror(e));
			vmm_request_stop(vmm, MV_EXIT_ERROR, NULL);
			break;
		}
		vmm->nr_threads = i + 1;
	}
	/*
	 * Nothing the first KVM_RUN needs: the guest's first output waits in the
	 * console's ring for the output thread, and its input can wait too.
	 */
	if (console_start(&vmm->console) < 0) {
		log_error("%s", err_msg());
		vmm_request_stop(vmm, MV_EXIT_ERROR, NULL);
	}
	sandbox_enter(SANDBOX_MAIN);

	uint64_t deadline = vmm->cfg.timeout_ms ? vmm->times.start + vmm->cfg.timeout_ms * 1000000ULL : 0;
	for (;;) {
		struct pollfd p[2 + VMM_DOOR_MAX_FDS] = {
			{ .fd = vmm->stop_efd, .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};
		int napi = vmm->door_open ? vmm->door.pollfds(vmm->door.ctx, p + 2, VMM_DOOR_MAX_FDS) : 0;
		int wait_ms = vmm->door_open ? vmm->door.timeout_ms(vmm->door.ctx, stats_now_ns()) : -1;
		char why[160];
		if (deadline_passed(vmm->shutdown_deadline, &wait_ms)) {
			snprintf(why, sizeof(why),
				 "the guest did not power off within %g s of the shutdown request; stopping the VM (exit status %d)",
				 (double)vmm->shutdown_timeout_ms / 1000.0, MV_EXIT_TIMEOUT);
			vmm_request_stop(vmm, MV_EXIT_TIMEOUT, why);
			break;
		}
		if (deadline_passed(vmm->ws_deadline, &wait_ms)) {
			uint32_t nr;
			uint64_t bytes;
			if (vmm_save_working_set(vmm, &nr, &bytes) < 0)
				log_warn("--record-working-set: %s", err_msg());
		}
		if (deadline_passed(deadline, &wait_ms)) {
			snprintf(why, sizeof(why),
				 "--timeout: the guest was still running after %g s; stopping the VM (exit status %d)",
				 (double)vmm->cfg.timeout_ms / 1000.0, MV_EXIT_TIMEOUT);
			vmm_request_stop(vmm, MV_EXIT_TIMEOUT, why);
			break;
		}
		if (poll(p, (nfds_t)(2 + napi), wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			vmm_request_stop(vmm, MV_EXIT_ERROR, NULL);
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				snprintf(why, sizeof(why), "received %s, stopping the VM",
					 strsignal((int)si.ssi_signo));
				vmm_request_stop(vmm, 128 + (int)si.ssi_signo, why);
			}
		}
		/* The control API: its routes run here, on the main thread (vmm/api/control.h). */
		if (vmm->door_open)
			vmm->door.process(vmm->door.ctx, p + 2, napi, stats_now_ns());
		if (atomic_load(&vmm->stop_requested))
			break;
	}
	/* Stopping may wait on the host (disk writes, a stalled stdout): a second signal ends it. */
	struct sigwatch sw;
	if (sigwatch_start(&sw, sfd, restore_terminal, vmm) < 0)
		log_debug("%s", err_msg());
	stop_vcpus(vmm);
	if (vmm->ws.started) {
		ws_prefetch_stop(&vmm->ws);
		log_debug("working set: %llu MiB prefetched in %.1f ms", (unsigned long long)(vmm->ws.bytes >> 20),
			  (double)vmm->ws.ns / 1e6);
	}
	/* No vCPU can add requests now: finish those in flight, sync the images, log the NIC counters. */
	vdevs_stop(&vmm->vdevs);
	console_stop(&vmm->console);
	sigwatch_stop(&sw);
	close(sfd);
	report_stats(vmm);
	return vmm->exit_status;
}
