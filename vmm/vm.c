/* vm.c - build, run and tear down one VM (see vm.h); the machine is assembled in vmm_build(). */
#include "vmm/vm.h"
#include "boot/boot.h"
#include "firmware/acpi.h"
#include "firmware/fdt.h"
#include "base/err.h"
#include "base/exit_codes.h"
#include "base/log.h"
#include "vmm/quirks.h"
#include "vmm/sandbox/sandbox.h"
#include "vmm/sandbox/sigwatch.h"
#include "driver/state.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_INPUT_FILE (2ULL << 30)

/* Read a whole regular file; flag is the option that named it, for messages. */
static int read_file(const char *flag, const char *path, uint8_t **data, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret = 0;

	*data = NULL;
	*len = 0;
	if (fd < 0)
		return err_set(errno, "%s %s: %s", flag, path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		ret = err_set(errno, "%s %s: %s", flag, path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = err_set(EISDIR, "%s %s: is a directory, not a file", flag, path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = err_set(EINVAL, "%s %s: not a regular file", flag, path);
		goto out;
	}
	if (st.st_size == 0) {
		ret = err_set(EINVAL, "%s %s: file is empty", flag, path);
		goto out;
	}
	if ((uint64_t)st.st_size > MAX_INPUT_FILE) {
		ret = err_set(EFBIG, "%s %s: file is larger than %llu GiB", flag, path,
			      (unsigned long long)(MAX_INPUT_FILE >> 30));
		goto out;
	}
	*data = malloc((size_t)st.st_size);
	if (!*data) {
		ret = err_set(ENOMEM, "%s %s: out of memory", flag, path);
		goto out;
	}
	size_t done = 0;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, *data + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = err_set(n < 0 ? errno : EIO, "%s %s: read failed: %s", flag, path,
				      n < 0 ? strerror(errno) : "file shrank while reading");
			free(*data);
			*data = NULL;
			goto out;
		}
		done += (size_t)n;
	}
	*len = done;
out:
	close(fd);
	return ret;
}

/* The status for a guest that ended the VM without an exit-status write: 0, or 123 under --run. */
static int end_status(const struct vmm *vmm)
{
	return vmm->cfg.run ? MV_EXIT_RUN_NO_STATUS : MV_EXIT_POWEROFF;
}

static const char *end_note(const struct vmm *vmm)
{
	return vmm->cfg.run ? " before reporting the --run script's status (exit status 123)" : "";
}

static void on_sysctl(void *ctx, enum sysctl_event ev, int status)
{
	struct vmm *vmm = ctx;
	char why[160];

	switch (ev) {
	case SYSCTL_EXIT_STATUS:
		snprintf(why, sizeof(why), "guest reported exit status %d", status);
		vmm_request_stop(vmm, status, why);
		break;
	case SYSCTL_POWEROFF:
		snprintf(why, sizeof(why), "guest powered off (ACPI S5)%s", end_note(vmm));
		vmm_request_stop(vmm, end_status(vmm), why);
		break;
	case SYSCTL_RESET:
		snprintf(why, sizeof(why), "guest requested a reset; ending the VM%s", end_note(vmm));
		vmm_request_stop(vmm, end_status(vmm), why);
		break;
	}
}

static void on_pvpanic(void *ctx, enum pvpanic_event ev)
{
	struct vmm *vmm = ctx;

	if (ev == PVPANIC_EV_PANICKED)
		vmm_request_stop(vmm, MV_EXIT_GUEST_PANIC, "guest kernel panicked (pvpanic); stopping the VM");
	else
		log_info("guest kernel panicked and loaded a crash kernel (pvpanic crash-loaded); the VM goes on");
}

/* serial_ops.output: note the boot milestones, then hand the bytes to the console. */
static void serial_output(void *ctx, const uint8_t *buf, size_t len)
{
	struct vmm *vmm = ctx;

	boot_times_output(&vmm->times, buf, len, stats_now_ns());
	console_output(&vmm->console, buf, len);
}

static void serial_irq(void *ctx, bool level)
{
	struct vmm *vmm = ctx;

	if (vm_irq_line(&vmm->vm, MV_IRQ_COM1, level) < 0)
		log_warn("serial: %s", err_msg());
}

static void console_quit(void *ctx)
{
	struct vmm *vmm = ctx;
	char why[128];

	snprintf(why, sizeof(why), "quit from the console (Ctrl-A x)%s", end_note(vmm));
	vmm_request_stop(vmm, end_status(vmm), why);
}

static void exit_stop(void *ctx, int status, const char *why)
{
	struct vmm *vmm = ctx;

	/*
	 * Status 0 comes only from a KVM shutdown/reset system event, which the
	 * handler does not log: the guest ended without an exit-status write.
	 * Errors were logged by the handler already.
	 */
	if (status == MV_EXIT_POWEROFF) {
		log_info("%s%s", why ? why : "guest ended", end_note(vmm));
		status = end_status(vmm);
	}
	vmm_request_stop(vmm, status, NULL);
}

static void exit_console_tail(void *ctx, char *buf, size_t len)
{
	struct vmm *vmm = ctx;

	if (vmm->console_ready)
		console_tail(&vmm->console, buf, len);
	else if (len)
		buf[0] = '\0';
}

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

/* Load kernel and initrd, render firmware, write boot structures: no KVM needed. */
static int load_guest(struct vmm *vmm, struct boot_kernel *k)
{
	const struct vmm_config *cfg = &vmm->cfg;
	uint8_t *data = NULL;
	size_t len = 0;
	const char *cmdline = vmm->vdevs.cmdline; /* with virtio_mmio.device= if wanted */
	struct boot_params_in in = { .cmdline = cmdline };
	int ret;

	if ((ret = read_file("--kernel", cfg->kernel, &data, &len)) < 0)
		return ret;
	ret = boot_load_kernel(&vmm->mem, cfg->kernel, data, len, k);
	free(data);
	if (ret < 0)
		return ret;
	log_info("%s", k->how);
	/* A Linux kernel on a host that emulates guest kernel code gets the options it needs there. */
	uint64_t klen = k->load_end - k->load_start;
	const void *image = gpa_to_host(&vmm->mem, k->load_start, klen);
	size_t cmax = k->cmdline_max < MV_CMDLINE_MAX - 1 ? k->cmdline_max : MV_CMDLINE_MAX - 1;
	if ((ret = quirk_apply_guest_options(&vmm->vdevs.cmdline, image, image ? klen : 0, cmax,
					     !cfg->no_host_quirks)) < 0)
		return ret;
	cmdline = in.cmdline = vmm->vdevs.cmdline;
	/* Before the device tree copies the command line: give the precise message. */
	if ((ret = boot_check_cmdline(k, cmdline)) < 0)
		return ret;

	if (cfg->initrd) {
		if ((ret = read_file("--initrd", cfg->initrd, &data, &len)) < 0)
			return ret;
		ret = boot_load_initrd(&vmm->mem, &vmm->machine, k, cfg->initrd, data, len,
				       &in.initrd_gpa);
		free(data);
		if (ret < 0)
			return ret;
		in.initrd_size = len;
		log_debug("initrd at 0x%llx, %zu bytes", (unsigned long long)in.initrd_gpa, len);
	}

	uint8_t *acpi = gpa_to_host(&vmm->mem, MV_ACPI_GPA, MV_ACPI_MAX);
	if (!acpi)
		return err_set(EFAULT, "ACPI area outside guest RAM");
	long n = acpi_build(&vmm->machine, acpi, MV_ACPI_MAX, MV_ACPI_GPA);
	if (n < 0)
		return (int)n;
	in.rsdp_gpa = MV_ACPI_GPA;

	uint8_t *fdt = gpa_to_host(&vmm->mem, MV_FDT_GPA, MV_FDT_MAX);
	if (!fdt)
		return err_set(EFAULT, "FDT area outside guest RAM");
	n = fdt_build(&vmm->machine, cmdline, fdt + 16, MV_FDT_MAX - 16);
	if (n < 0)
		return (int)n;
	in.fdt_gpa = MV_FDT_GPA;
	in.fdt_size = (uint32_t)n;

	uint64_t gdt[X86_BOOT_GDT_ENTRIES];
	x86_boot_gdt(gdt);
	if ((ret = guest_write(&vmm->mem, MV_GDT_GPA, gdt, sizeof(gdt))) < 0)
		return ret;
	return boot_write_params(&vmm->mem, &vmm->machine, k, &in);
}

static int setup_devices(struct vmm *vmm)
{
	int ret;

	bus_init(&vmm->pio, "port");
	bus_init(&vmm->mmio, "MMIO");
	/* Output goes nowhere until vmm_run() connects the console. */
	serial_init(&vmm->serial, &(struct serial_ops){ .set_irq = serial_irq, .irq_ctx = vmm });
	sysctl_init(&vmm->sysctl, &(struct sysctl_ops){ .request = on_sysctl, .ctx = vmm });
	pvpanic_init(&vmm->pvpanic, &(struct pvpanic_ops){ .event = on_pvpanic, .ctx = vmm });
	cmos_init(&vmm->cmos);
	vmm->devices_ready = true;

	if ((ret = bus_register(&vmm->pio, MV_PORT_COM1, 8, serial_io, &vmm->serial, "COM1")) < 0 ||
	    (ret = bus_register(&vmm->pio, MV_PORT_I8042_DATA, 5, sysctl_i8042_io, &vmm->sysctl,
				"i8042")) < 0 ||
	    (ret = bus_register(&vmm->pio, MV_PORT_EXIT, 4, sysctl_exit_port_io, &vmm->sysctl,
				"exit-status port")) < 0 ||
	    (ret = bus_register(&vmm->pio, MV_PORT_PVPANIC, 1, pvpanic_io, &vmm->pvpanic,
				"pvpanic")) < 0 ||
	    (ret = bus_register(&vmm->pio, MV_PORT_CMOS, 2, cmos_io, &vmm->cmos, "CMOS RTC")) < 0 ||
	    (ret = bus_register(&vmm->pio, MV_PORT_ACPI_SLEEP_CTL, 3, sysctl_acpi_io, &vmm->sysctl,
				"ACPI sleep/reset")) < 0)
		return ret;
	return 0;
}

/* A saved disk's GET_ID answer: its id, or (older snapshots) the one derived from its saved path. */
static void saved_disk_id(const struct snap_disk *sd, char id[CFG_DISK_ID_MAX + 1])
{
	struct disk_config dc = { 0 };
	char raw[BLK_ID_BYTES];

	snprintf(dc.path, sizeof(dc.path), "%s", sd->path);
	memcpy(dc.id, sd->id, strnlen(sd->id, CFG_DISK_ID_MAX));
	vdevs_disk_id(&dc, raw);
	memset(id, 0, CFG_DISK_ID_MAX + 1);
	memcpy(id, raw, sizeof(raw));
}

/*
 * --restore: the machine the snapshot describes, with this run's other
 * settings. The person restoring chooses the back ends, never the state
 * file (it may come from anywhere: even a regular file it names can be a
 * sysfs attribute or another tenant's image): each saved disk needs a
 * --disk (the one with its id=, else the next in order), each NIC a --net.
 * The guest keeps what it saw: disk ids, the read-only flag (a disk saved
 * read-only stays so) and MACs come from the snapshot.
 */
static int restore_config(struct vmm_config *cfg, const struct snap_config *c)
{
	const char *dir = cfg->restore;
	struct disk_config given[CFG_MAX_DISKS];
	int slot[CFG_MAX_DISKS];   /* slot[j]: the --disk for saved disk j */
	int nd = cfg->nr_disks;

	if ((uint32_t)nd != c->nr_disks) {
		char id[CFG_DISK_ID_MAX + 1] = "";
		if (c->nr_disks)
			saved_disk_id(&c->disks[0], id);
		return err_set(EINVAL, "--restore %s: the snapshot has %u disk%s, %d --disk given: give each its "
			       "image with --disk PATH[,id=ID]%s%s%s (a disk is never opened from a snapshot's say-so)",
			       dir, c->nr_disks, c->nr_disks == 1 ? "" : "s", nd, c->nr_disks ? " (the first: id " : "",
			       id, c->nr_disks ? ")" : "");
	}
	if ((uint32_t)cfg->nr_nics != c->nr_nics)
		return err_set(EINVAL, "--restore %s: the snapshot has %u NIC%s, %d --net given: name a tap for "
			       "each with --net tap=NAME (taps are never taken from a snapshot)", dir,
			       c->nr_nics, c->nr_nics == 1 ? "" : "s", cfg->nr_nics);
	memcpy(given, cfg->disks, sizeof(given));
	for (uint32_t j = 0; j < c->nr_disks; j++)
		slot[j] = -1;
	/* By id first, then the rest in order. */
	for (int i = 0; i < nd; i++) {
		if (!given[i].id[0])
			continue;
		uint32_t j, found = 0, hits = 0;
		for (j = 0; j < c->nr_disks; j++) {
			char id[CFG_DISK_ID_MAX + 1];
			saved_disk_id(&c->disks[j], id);
			if (!strcmp(id, given[i].id))
				found = j, hits++;
		}
		if (hits == 0)
			return err_set(EINVAL, "--restore %s: --disk %s,id=%s: the snapshot has no disk with that id",
				       dir, given[i].path, given[i].id);
		if (hits > 1)
			return err_set(EINVAL, "--restore %s: --disk %s,id=%s: the snapshot has %u disks with that id: "
				       "give the --disks in order, without id=", dir, given[i].path, given[i].id, hits);
		if (slot[found] >= 0)
			return err_set(EINVAL, "--restore %s: two --disk with id=%s", dir, given[i].id);
		slot[found] = i;
	}
	for (int i = 0; i < nd; i++) {
		if (given[i].id[0])
			continue;
		for (uint32_t j = 0; j < c->nr_disks; j++)
			if (slot[j] < 0) {
				slot[j] = i;
				break;
			}
	}

	cfg->mem = c->mem;
	cfg->cpus = (int)c->cpus;
	cfg->io_engine = (enum io_engine)c->io_engine;
	cfg->nr_disks = (int)c->nr_disks;
	for (uint32_t j = 0; j < c->nr_disks; j++) {
		const struct snap_disk *sd = &c->disks[j];
		struct disk_config *d = &cfg->disks[j];
		char id[CFG_DISK_ID_MAX + 1];
		saved_disk_id(sd, id);
		const struct disk_config *g = &given[slot[j]];
		if (g->ro && !sd->ro)
			return err_set(EINVAL, "--restore %s: --disk %s,ro: the guest has disk %s writable; "
				       "it cannot become read-only under it", dir, g->path, id);
		*d = *g;
		memcpy(d->id, id, sizeof(d->id));
		d->ro = d->ro || sd->ro;        /* saved read-only: read-only */
	}
	for (uint32_t i = 0; i < c->nr_nics; i++) {
		struct net_config *n = &cfg->nics[i];
		char mac[18];
		if ((n->has_mac && memcmp(n->mac, c->nics[i].mac, 6)) || n->random_mac)
			return err_set(EINVAL, "--restore %s: --net tap=%s: the guest's MAC is the snapshot's (%s): "
				       "no mac= with --restore", dir, n->tap, mac_format(c->nics[i].mac, mac));
		n->has_mac = true;
		memcpy(n->mac, c->nics[i].mac, 6);
	}
	return 0;
}

/* --restore: say which host files and taps the restored guest got. */
static void restore_report(const struct vmm *vmm)
{
	for (int i = 0; i < vmm->cfg.nr_disks; i++) {
		const struct disk_config *d = &vmm->cfg.disks[i];
		log_info("--restore: vd%c (id %s): %s, %s", 'a' + i, d->id, d->path,
			 d->ro ? "read-only" : "read-write");
	}
	for (int i = 0; i < vmm->cfg.nr_nics; i++)
		log_info("--restore: eth%d: tap %s", i, vmm->cfg.nics[i].tap);
}

/* --restore: every vCPU's state, then the VM's (the clock last), then the devices'. */
static int restore_state(struct vmm *vmm)
{
	const struct snapshot *s = &vmm->snap;
	int ret;

	for (int i = 0; i < vmm->nr_vcpus; i++)
		if ((ret = vcpu_state_load(&vmm->vcpus[i], s->vcpu[i], s->vcpu_len[i])) < 0)
			return err_prefix(-ret, "--restore %s", vmm->cfg.restore);
	if ((ret = vm_state_load(&vmm->vm, s->vm, s->vm_len)) < 0 ||
	    (ret = serial_load(&vmm->serial, s->serial)) < 0)
		return err_prefix(-ret, "--restore %s", vmm->cfg.restore);
	cmos_load(&vmm->cmos, s->cmos);
	sysctl_load(&vmm->sysctl, s->i8042);
	for (int i = 0; i < vdevs_count(&vmm->vdevs); i++) {
		struct virtio_mmio *m = vdevs_transport(&vmm->vdevs, i);
		if (!m || (ret = virtio_mmio_load(m, s->virtio[i])) < 0)
			return err_prefix(m ? -ret : EINVAL, "--restore %s", vmm->cfg.restore);
	}
	log_info("restored from %s: %d vCPUs, %llu MiB", vmm->cfg.restore, vmm->nr_vcpus,
		 (unsigned long long)(vmm->machine.ram_size >> 20));
	snapshot_free(&vmm->snap);
	return 0;
}

/* Each I/O thread confines itself before its first request (io/ioloop.h). */
static void io_thread_sandbox(void)
{
	sandbox_enter(SANDBOX_IO);
}

int vmm_build(struct vmm *vmm, const struct vmm_config *cfg, const struct vmm_door *door)
{
	struct boot_kernel k;
	gpa_t starts[2];
	uint64_t sizes[2];
	int ret;

	memset(vmm, 0, sizeof(*vmm));
	io_loop_set_thread_init(io_thread_sandbox);
	vmm->cfg = *cfg;
	vmm->times.start = cfg->start_ns ? cfg->start_ns : stats_now_ns();
	vmm->stop_efd = eventfd(0, EFD_CLOEXEC);
	vmm->vm.fd = -1;
	if (vmm->stop_efd < 0)
		return err_set(errno, "eventfd: %s", strerror(errno));
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&vmm->run_lock, NULL);
	pthread_cond_init(&vmm->run_cond, &ca);
	pthread_condattr_destroy(&ca);
	vmm->run_sync_ready = true;

	if (cfg->restore) {
		/* The snapshot's machine replaces the configuration's (config_check() refused both). */
		if ((ret = snapshot_read(cfg->restore, &vmm->snap)) < 0 ||
		    (ret = restore_config(&vmm->cfg, vmm->snap.config)) < 0)
			return ret;
		cfg = &vmm->cfg;
	}
	if ((ret = machine_init(&vmm->machine, cfg->mem, cfg->cpus)) < 0)
		return ret;
	/* Disks and NICs join the machine before the firmware tables describe it; taps open before /dev/kvm. */
	if ((ret = vdevs_open(&vmm->vdevs, cfg, &vmm->machine)) < 0)
		return ret;
	/* The socket too, so a path in use is reported the same on any host; requests are served once vmm_run() starts. */
	if (cfg->api_sock && door && door->ctx) {
		/* Closed by vmm_destroy() whether or not the open succeeds. */
		vmm->door = *door;
		vmm->door_open = true;
		if ((ret = door->open(door->ctx, vmm, cfg->api_sock)) < 0)
			return ret;
	}
	for (int i = 0; i < vmm->machine.nr_ram; i++) {
		starts[i] = vmm->machine.ram[i].start;
		sizes[i] = vmm->machine.ram[i].size;
	}
	if (cfg->restore) {
		for (int i = 0; i < vmm->vdevs.nr_disks; i++)
			if (vmm->vdevs.disks[i].size != vmm->snap.config->disks[i].size)
				return err_set(EINVAL, "--restore %s: refused: disk %s is %llu bytes now, %llu when the snapshot was taken",
					       cfg->restore, cfg->disks[i].path,
					       (unsigned long long)vmm->vdevs.disks[i].size,
					       (unsigned long long)vmm->snap.config->disks[i].size);
		if ((ret = snapshot_map_memory(cfg->restore, &vmm->snap, &vmm->machine, &vmm->mem)) < 0)
			return ret;
		restore_report(vmm);
	} else {
		if ((ret = guest_mem_map(&vmm->mem, starts, sizes, vmm->machine.nr_ram)) < 0)
			return ret;
		if ((ret = load_guest(vmm, &k)) < 0)
			return ret;
	}

	if ((ret = kvm_open(&vmm->kvm, KVM_DEV_PATH)) < 0)
		return ret;
	vmm->kvm_open = true;
	if (cfg->cpus > vmm->kvm.max_vcpus)
		return err_set(EINVAL, "--cpus %d: this host's KVM allows at most %d vCPUs per VM",
			       cfg->cpus, vmm->kvm.max_vcpus);
	if ((ret = vm_create(&vmm->kvm, &vmm->vm, MV_TSS_GPA, MV_IDENTITY_MAP_GPA)) < 0)
		return ret;
	vmm->vm_created = true;
	for (int i = 0; i < vmm->mem.nr; i++) {
		const struct guest_region *r = &vmm->mem.region[i];
		if ((ret = vm_set_memory(&vmm->vm, (uint32_t)i, r->gpa, r->size, r->host)) < 0)
			return ret;
	}
	if ((ret = setup_devices(vmm)) < 0)
		return ret;
	if ((ret = vdevs_create(&vmm->vdevs, cfg, &vmm->machine, &vmm->vm, &vmm->mmio, &vmm->mem)) < 0)
		return ret;

	for (int i = 0; i < cfg->cpus; i++) {
		if ((ret = vcpu_create(&vmm->vm, i, &vmm->vcpus[i])) < 0)
			return ret;
		vmm->nr_vcpus = i + 1;
		if ((ret = vcpu_init(&vmm->vcpus[i], cfg->cpus)) < 0)
			return ret;
		/* Explicit, not KVM's default: the APs wait for the guest's INIT/SIPI. */
		if ((ret = vcpu_set_mp_state(&vmm->vcpus[i], i == 0)) < 0)
			return ret;
	}
	if (cfg->restore) {
		if ((ret = restore_state(vmm)) < 0)
			return ret;
	/* Only the boot vCPU gets a boot state; the others wait for INIT/SIPI in the LAPIC. */
	} else if (k.mode == BOOT_PVH)
		ret = vcpu_boot_pvh(&vmm->vcpus[0], k.entry, (uint32_t)MV_PVH_INFO_GPA, MV_GDT_GPA,
				    MV_BOOT_STACK_TOP);
	else
		ret = vcpu_boot_linux64(&vmm->vcpus[0], k.entry, MV_ZERO_PAGE_GPA, MV_PML4_GPA,
					MV_GDT_GPA, MV_BOOT_STACK_TOP);
	if (ret < 0)
		return ret;

	vmm->exit_env = (struct exit_env){
		.pio = &vmm->pio,
		.mmio = &vmm->mmio,
		.stop = exit_stop,
		.console_tail = exit_console_tail,
		.ctx = vmm,
		.stats = vmm->vstats,
		.nr_stats = MV_MAX_VCPUS,
		.quirk_counts = vmm->quirk_counts,
		.unmapped_io = &vmm->unmapped_io,
	};
	return 0;
}

/* (vCPU thread) Wait while the VM is paused; then clear the kick that took us out of KVM_RUN. */
static void park(struct vmm *vmm, struct vcpu *vcpu)
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

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	/* The vCPU's VM is embedded in its struct vmm. */
	struct vmm *vmm = (struct vmm *)((char *)vcpu->vm - offsetof(struct vmm, vm));
	struct vm_exit ex;

	sandbox_enter(SANDBOX_VCPU);
	unsigned long long unset = 0; /* atomic_ullong's own type */
	atomic_compare_exchange_strong(&vmm->times.guest_start, &unset, stats_now_ns());
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

static void kick_handler(int sig)
{
	(void)sig; /* only interrupts KVM_RUN */
}

/* Make every vCPU thread leave KVM_RUN and wait for them. */
static void stop_vcpus(struct vmm *vmm)
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

	/* Every thread started from here on confines itself (vmm/sandbox.h). */
	if (vmm->cfg.no_seccomp) {
		log_debug("seccomp: off (--no-seccomp)");
	} else if (sandbox_prepare(vmm->door_open, restore_terminal, vmm) < 0) {
		log_error("%s", err_msg());
		close(sfd);
		return MV_EXIT_ERROR;
	}

	if ((ret = console_init(&vmm->console, &vmm->serial, STDIN_FILENO, STDOUT_FILENO,
				console_quit, vmm)) < 0 ||
	    (vmm->console_ready = true, ret = console_start(&vmm->console)) < 0) {
		log_error("%s", err_msg());
		close(sfd);
		return MV_EXIT_ERROR;
	}
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

	for (int i = 0; i < vmm->nr_vcpus; i++) {
		int e = pthread_create(&vmm->threads[i], NULL, vcpu_thread, &vmm->vcpus[i]);
		if (e) {
			log_error("cannot start vCPU %d thread: %s", i, strerror(e));
			vmm_request_stop(vmm, MV_EXIT_ERROR, NULL);
			break;
		}
		vmm->nr_threads = i + 1;
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
		if (vmm->shutdown_deadline) {
			uint64_t now = stats_now_ns();
			if (now >= vmm->shutdown_deadline) {
				char why[160];
				snprintf(why, sizeof(why),
					 "the guest did not power off within %g s of the shutdown request; stopping the VM (exit status %d)",
					 (double)vmm->shutdown_timeout_ms / 1000.0, MV_EXIT_TIMEOUT);
				vmm_request_stop(vmm, MV_EXIT_TIMEOUT, why);
				break;
			}
			uint64_t left = (vmm->shutdown_deadline - now + 999999) / 1000000;
			if (wait_ms < 0 || left < (uint64_t)wait_ms)
				wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
		}
		if (deadline) {
			uint64_t now = stats_now_ns();
			if (now >= deadline) {
				char why[128];
				snprintf(why, sizeof(why),
					 "--timeout: the guest was still running after %g s; stopping the VM (exit status %d)",
					 (double)vmm->cfg.timeout_ms / 1000.0, MV_EXIT_TIMEOUT);
				vmm_request_stop(vmm, MV_EXIT_TIMEOUT, why);
				break;
			}
			uint64_t left = (deadline - now + 999999) / 1000000;
			if (wait_ms < 0 || left < (uint64_t)wait_ms)
				wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
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
				char why[64];
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
	/* No vCPU can add requests now: finish those in flight, sync the images, log the NIC counters. */
	vdevs_stop(&vmm->vdevs);
	console_stop(&vmm->console);
	sigwatch_stop(&sw);
	close(sfd);
	report_stats(vmm);
	return vmm->exit_status;
}

void vmm_destroy(struct vmm *vmm)
{
	if (vmm->nr_threads)
		stop_vcpus(vmm);
	for (int i = 0; i < vmm->nr_vcpus; i++)
		vcpu_destroy(&vmm->vcpus[i]);
	vmm->nr_vcpus = 0;
	vdevs_destroy(&vmm->vdevs);
	if (vmm->devices_ready) {
		serial_destroy(&vmm->serial);
		sysctl_destroy(&vmm->sysctl);
		cmos_destroy(&vmm->cmos);
		vmm->devices_ready = false;
	}
	if (vmm->vm_created)
		vm_destroy(&vmm->vm);
	if (vmm->kvm_open)
		kvm_close(&vmm->kvm);
	guest_mem_unmap(&vmm->mem);
	snapshot_free(&vmm->snap);
	if (vmm->door_open)
		vmm->door.close(vmm->door.ctx);
	vmm->door_open = false;
	if (vmm->run_sync_ready) {
		pthread_cond_destroy(&vmm->run_cond);
		pthread_mutex_destroy(&vmm->run_lock);
		vmm->run_sync_ready = false;
	}
	if (vmm->stop_efd >= 0)
		close(vmm->stop_efd);
	vmm->stop_efd = -1;
}
