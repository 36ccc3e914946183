/* lifecycle.c - one VM's life once built: stop requests, pause and resume, shutdown, its state (see vm.h). */
#include "vmm/vm.h"
#include "vmm/vm_internal.h"
#include "base/err.h"
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

void vmm_request_stop(struct vmm *vmm, int status, const char *why)
{
	if (atomic_exchange(&vmm->stop_requested, true))
		return;
	boot_times_guest_end(&vmm->times, stats_now_ns());
	vmm->exit_status = status;
	if (why)
		log_info("%s", why);
	if (vmm->run_sync_ready) { /* a pause waiting for this vCPU to park gives up now */
		pthread_mutex_lock(&vmm->run_lock);
		pthread_cond_broadcast(&vmm->run_cond);
		pthread_mutex_unlock(&vmm->run_lock);
	}
	uint64_t one = 1;
	if (write(vmm->stop_efd, &one, sizeof(one)) < 0)
		log_warn("cannot signal the main thread: %s", strerror(errno));
}

void park(struct vmm *vmm, struct vcpu *vcpu)
{
	pthread_mutex_lock(&vmm->run_lock);
	vmm->nr_parked++;
	pthread_cond_broadcast(&vmm->run_cond);
	while (atomic_load(&vmm->pause_requested) && !atomic_load(&vmm->stopping))
		pthread_cond_wait(&vmm->run_cond, &vmm->run_lock);
	vmm->nr_parked--;
	/* Under the lock: a new pause sets the flag and kicks only after this. */
	if (!atomic_load(&vmm->stopping))
		vcpu_set_immediate_exit(vcpu, false);
	pthread_mutex_unlock(&vmm->run_lock);
}

/* A stop was requested or is under way. */
static bool stop_pending(struct vmm *vmm)
{
	return atomic_load(&vmm->stopping) || atomic_load(&vmm->stop_requested);
}

/* Make every vCPU thread leave KVM_RUN (or not enter it): immediate_exit, then a signal. */
static void kick_vcpus(struct vmm *vmm)
{
	for (int i = 0; i < vmm->nr_threads; i++) {
		vcpu_set_immediate_exit(&vmm->vcpus[i], true);
		pthread_kill(vmm->threads[i], SIGUSR1);
	}
}

void stop_vcpus(struct vmm *vmm)
{
	pthread_mutex_lock(&vmm->run_lock);
	atomic_store(&vmm->stopping, true);
	pthread_cond_broadcast(&vmm->run_cond); /* parked vCPUs leave too */
	kick_vcpus(vmm);
	pthread_mutex_unlock(&vmm->run_lock);
	for (int i = 0; i < vmm->nr_threads; i++)
		pthread_join(vmm->threads[i], NULL);
	vmm->nr_threads = 0;
}

int vmm_pause(struct vmm *vmm)
{
	int ret = 0;

	pthread_mutex_lock(&vmm->run_lock);
	if (stop_pending(vmm)) {
		pthread_mutex_unlock(&vmm->run_lock);
		return -ESHUTDOWN;
	}
	if (atomic_load(&vmm->pause_requested)) {
		pthread_mutex_unlock(&vmm->run_lock);
		return 0;
	}
	atomic_store(&vmm->pause_requested, true);
	kick_vcpus(vmm);
	struct timespec dl = stats_deadline_ts(CLOCK_MONOTONIC, VMM_PAUSE_WAIT_MS);
	while (vmm->nr_parked < vmm->nr_threads && !atomic_load(&vmm->stop_requested)) {
		if (pthread_cond_timedwait(&vmm->run_cond, &vmm->run_lock, &dl) == ETIMEDOUT)
			break;
	}
	if (vmm->nr_parked < vmm->nr_threads) {
		ret = atomic_load(&vmm->stop_requested) ? -ESHUTDOWN :
			err_set(ETIMEDOUT, "pause: %d of %d vCPUs stopped within %d ms; the VM keeps running",
				vmm->nr_parked, vmm->nr_threads, VMM_PAUSE_WAIT_MS);
		atomic_store(&vmm->pause_requested, false);
		pthread_cond_broadcast(&vmm->run_cond);
	} else {
		vmm->paused_since = stats_now_ns();
		log_info("paused (control API): %d vCPUs stopped", vmm->nr_threads);
	}
	pthread_mutex_unlock(&vmm->run_lock);
	return ret;
}

int vmm_resume(struct vmm *vmm)
{
	pthread_mutex_lock(&vmm->run_lock);
	if (stop_pending(vmm)) {
		pthread_mutex_unlock(&vmm->run_lock);
		return -ESHUTDOWN;
	}
	if (atomic_load(&vmm->pause_requested)) {
		vmm->paused_total += stats_now_ns() - vmm->paused_since;
		atomic_store(&vmm->pause_requested, false);
		pthread_cond_broadcast(&vmm->run_cond);
		log_info("resumed (control API)");
		/* --paused --record-working-set: the recording's time counts from when the guest runs. */
		if (vmm->cfg.record_ws_ms && !vmm->ws_deadline && !vmm->ws_saved)
			vmm->ws_deadline = stats_now_ns() + vmm->cfg.record_ws_ms * 1000000ULL;
	}
	pthread_mutex_unlock(&vmm->run_lock);
	return 0;
}

int vmm_shutdown(struct vmm *vmm, uint64_t timeout_ms)
{
	if (stop_pending(vmm))
		return -ESHUTDOWN;
	if (atomic_load(&vmm->pause_requested))
		return -EAGAIN;
	/* An edge on the GED's pin: _EVT runs and notifies the power button. */
	if (vm_irq_line(&vmm->vm, MV_IRQ_GED, true) < 0 || vm_irq_line(&vmm->vm, MV_IRQ_GED, false) < 0)
		return -EIO;
	uint64_t deadline = stats_now_ns() + timeout_ms * 1000000ULL;
	if (!vmm->shutdown_deadline || deadline < vmm->shutdown_deadline) {
		vmm->shutdown_deadline = deadline;
		vmm->shutdown_timeout_ms = timeout_ms;
	}
	log_info("shutdown requested (control API): pressed the guest's power button; stopping it in %g s "
		 "unless it powers off", (double)timeout_ms / 1000.0);
	return 0;
}

const char *vmm_state_name(struct vmm *vmm)
{
	if (stop_pending(vmm))
		return "stopping";
	if (atomic_load(&vmm->pause_requested))
		return "paused";
	return vmm->shutdown_deadline ? "shutting-down" : "running";
}

uint64_t vmm_paused_ns(struct vmm *vmm, uint64_t now)
{
	pthread_mutex_lock(&vmm->run_lock);
	uint64_t t = vmm->paused_total;
	if (atomic_load(&vmm->pause_requested) && now > vmm->paused_since)
		t += now - vmm->paused_since;
	pthread_mutex_unlock(&vmm->run_lock);
	return t;
}

int vmm_save_working_set(struct vmm *vmm, uint32_t *nr, uint64_t *bytes)
{
	if (!vmm->cfg.record_ws_ms)
		return -ENOENT;
	if (vmm->ws_saved)
		return -EALREADY;
	vmm->ws_saved = true;
	vmm->ws_deadline = 0;
	int ret = ws_record_save(&vmm->mem, vmm->cfg.restore, vmm->ws_state_crc, vmm->machine.ram_size, nr, bytes);
	if (ret == 0)
		log_info("working set: %u ranges, %llu MiB of RAM saved in %s/workingset", *nr,
			 (unsigned long long)(*bytes >> 20), vmm->cfg.restore);
	return ret;
}
