/* vm.c - build and tear down one VM (see vm.h): the machine is assembled in vmm_build(). */
#include "vmm/vm.h"
#include "vmm/vm_internal.h"
#include "base/readfile.h"
#include "boot/boot.h"
#include "firmware/acpi.h"
#include "firmware/fdt.h"
#include "base/err.h"
#include "base/exit_codes.h"
#include "base/log.h"
#include "vmm/cmdline.h"
#include "vmm/quirks.h"
#include "vmm/sandbox/sandbox.h"
#include "vmm/sandbox/sigwatch.h"
#include "driver/state.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#define MAX_INPUT_FILE (2ULL << 30)

/* Read --kernel or --initrd whole (base/readfile.h); the message names the flag and the file. */
static int read_input(const char *flag, const char *path, uint8_t **data, size_t *len)
{
	int ret = read_user_file(path, "a file", MAX_INPUT_FILE, data, len);

	return ret < 0 ? err_prefix(-ret, "%s %s", flag, path) : 0;
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

static void serial_irq(void *ctx, bool level)
{
	struct vmm *vmm = ctx;

	if (vm_irq_line(&vmm->vm, MV_IRQ_COM1, level) < 0)
		log_warn("serial: %s", err_msg());
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

/*
 * A new VM generation ID (docs/firmware.md): 16 random bytes at
 * MV_VMGENID_GPA, where the DSDT's VM_Gen_Counter device (VGEN) points the
 * guest. Written at boot and, into the restored memory, at every restore.
 */
static int vmgenid_write(struct vmm *vmm, const char *when)
{
	uint8_t id[MV_VMGENID_SIZE];
	char hex[2 * MV_VMGENID_SIZE + 1];
	ssize_t n;

	do
		n = getrandom(id, sizeof(id), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(id))
		return err_set(n < 0 ? errno : EIO, "VM generation ID: getrandom: %s",
			       n < 0 ? strerror(errno) : "short read");
	int ret = guest_write(&vmm->mem, MV_VMGENID_GPA, id, sizeof(id));
	if (ret < 0)
		return err_prefix(-ret, "VM generation ID at 0x%llx", (unsigned long long)MV_VMGENID_GPA);
	for (size_t i = 0; i < sizeof(id); i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	log_debug("VM generation ID %s (%s)", hex, when);
	return 0;
}

/* Load kernel and initrd, render firmware, write boot structures: no KVM needed. */
static int load_guest(struct vmm *vmm, struct boot_kernel *k)
{
	const struct vmm_config *cfg = &vmm->cfg;
	uint8_t *data = NULL;
	size_t len = 0;
	struct boot_params_in in = { 0 };
	int ret;

	if ((ret = read_input("--kernel", cfg->kernel, &data, &len)) < 0)
		return ret;
	ret = boot_load_kernel(&vmm->mem, data, len, k);
	free(data);
	if (ret < 0) {
		err_prefix(ret, "--kernel %s", cfg->kernel);
		return ret == -ERANGE ? err_append(ret, "; try a larger --mem") : ret;
	}
	log_info("%s", k->how);
	/* A Linux kernel on a host that emulates guest kernel code gets the options it needs there. */
	uint64_t klen = k->load_end - k->load_start;
	const void *image = gpa_to_host(&vmm->mem, k->load_start, klen);
	size_t cmax = k->cmdline_max < MV_CMDLINE_MAX - 1 ? k->cmdline_max : MV_CMDLINE_MAX - 1;
	struct cmdline_parts parts = cmdline_parts(cfg, &vmm->machine);
	if ((ret = quirk_apply_guest_options(&parts, &vmm->cmdline, image, image ? klen : 0, cmax,
					     !cfg->no_host_quirks)) < 0)
		return ret;
	in.cmdline = vmm->cmdline;
	/* Before the device tree copies the command line: give the precise message. */
	if ((ret = boot_check_cmdline(k, in.cmdline)) < 0)
		return err_prefix(ret, "--cmdline");

	if (cfg->initrd) {
		if ((ret = read_input("--initrd", cfg->initrd, &data, &len)) < 0)
			return ret;
		ret = boot_load_initrd(&vmm->mem, &vmm->machine, k, data, len, &in.initrd_gpa);
		free(data);
		if (ret < 0)
			return err_prefix(ret, "--initrd %s", cfg->initrd);
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
	if ((ret = vmgenid_write(vmm, "boot")) < 0)
		return ret;

	uint8_t *fdt = gpa_to_host(&vmm->mem, MV_FDT_GPA, MV_FDT_MAX);
	if (!fdt)
		return err_set(EFAULT, "FDT area outside guest RAM");
	n = fdt_build(&vmm->machine, in.cmdline, fdt + 16, MV_FDT_MAX - 16);
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
static int restore_config(struct vmm_config *cfg, const struct snapshot *s)
{
	const struct snap_config *c = s->config;
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
		if (sd->ro && g->overlay)
			return err_set(EINVAL, "--restore %s: --disk %s,overlay: the guest has disk %s read-only: it needs no "
				       "overlay", dir, g->path, id);
		if (sd->overlay && !g->overlay)
			return err_set(EINVAL, "--restore %s: --disk %s: the guest's disk %s was on an overlay: restore it "
				       "onto a new one over the same base (--disk %s,overlay=NEWFILE, or ,overlay for "
				       "a throw-away one)", dir, g->path, id, g->path);
		*d = *g;
		memcpy(d->id, id, sizeof(d->id));
		d->ro = d->ro || sd->ro;        /* saved read-only: read-only */
		/* Each clone gets its own overlay: new, from the saved layer if there is one. */
		d->overlay_fresh = d->overlay;
		d->has_overlay_src = sd->overlay && s->layer_fd[j] >= 0;
		d->overlay_src_fd = s->layer_fd[j];
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
		log_info("--restore: vd%c (id %s): %s, %s%s%s", 'a' + i, d->id, d->path,
			 d->ro ? "read-only" : "read-write", d->overlay ? " on the overlay " : "",
			 !d->overlay ? "" : d->overlay_path[0] ? d->overlay_path : "(throw-away)");
	}
	for (int i = 0; i < vmm->cfg.nr_nics; i++)
		log_info("--restore: eth%d: tap %s", i, vmm->cfg.nics[i].tap);
}

/*
 * --restore: DIR/workingset's ranges for the prefetch (vmm_run() starts it).
 * A working set is a hint: a bad or stale one is ignored with a warning,
 * the restore goes on without it.
 */
static void load_working_set(struct vmm *vmm)
{
	struct ws_range *r;
	uint32_t n;
	uint64_t bytes = 0;

	if (ws_parse(vmm->snap.ws_buf, vmm->snap.ws_len, vmm->snap.state_crc, vmm->snap.memory->total, &r, &n) < 0) {
		log_warn("--restore %s/workingset: ignored: %s", vmm->cfg.restore, err_msg());
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		bytes += r[i].len;
	vmm->ws.r = r;
	vmm->ws.n = n;
	vmm->ws.mem = &vmm->mem;
	log_info("--restore: working set: %u ranges, %llu MiB to prefetch", n, (unsigned long long)(bytes >> 20));
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
	/*
	 * The restored guest is a clone of the one saved: a new generation ID in
	 * its memory before any vCPU runs, then an edge on the GED's line for it
	 * (loaded IOAPIC and LAPICs deliver it when the vCPUs start): _EVT runs
	 * Notify(VGEN, 0x80), and Linux reseeds its RNG. Only when the guest set
	 * that IOAPIC line up (Linux's GED driver does): KVM also routes a GSI
	 * below 16 to the legacy PIC, which a guest that never programmed it
	 * leaves in virtual-wire mode, so an edge there would reach the guest as
	 * vector 0x0b (a #NP) the next time it enables interrupts.
	 */
	if ((ret = vmgenid_write(vmm, "restore")) < 0)
		return err_prefix(-ret, "--restore %s", vmm->cfg.restore);
	if ((ret = vm_ioapic_pin_unmasked(&vmm->vm, MV_IRQ_GED_GENID)) < 0)
		return err_prefix(-ret, "--restore %s", vmm->cfg.restore);
	if (ret == 0)
		log_debug("VM generation ID: the guest has not set up its GED line (IOAPIC pin %d masked): "
			  "not notified", MV_IRQ_GED_GENID);
	else if (vm_irq_line(&vmm->vm, MV_IRQ_GED_GENID, true) < 0 ||
		 vm_irq_line(&vmm->vm, MV_IRQ_GED_GENID, false) < 0)
		return err_prefix(EIO, "--restore %s: the VM generation ID notification", vmm->cfg.restore);
	log_info("restored from %s: %d vCPUs, %llu MiB, a new VM generation ID", vmm->cfg.restore, vmm->nr_vcpus,
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
		if ((ret = snapshot_read(cfg->restore, &vmm->snap, !cfg->no_working_set && !cfg->record_ws_ms)) < 0 ||
		    (ret = restore_config(&vmm->cfg, &vmm->snap)) < 0)
			return ret;
		cfg = &vmm->cfg;
	}
	/* Named after the flags: a snapshot's values have not been through config.c's checks. */
	char ram[32];
	if ((ret = machine_check_ram(cfg->mem)) < 0)
		return err_prefix(ret, "--mem %s", machine_size_str(ram, sizeof(ram), cfg->mem));
	if ((ret = machine_check_cpus(cfg->cpus)) < 0)
		return err_prefix(ret, "--cpus %d", cfg->cpus);
	if ((ret = machine_init(&vmm->machine, cfg->mem, cfg->cpus)) < 0)
		return ret;
	/* Disks and NICs join the machine before the firmware tables describe it; taps open before /dev/kvm. */
	if ((ret = vdevs_open(&vmm->vdevs, cfg, &vmm->machine)) < 0)
		return ret;
	/* The guest's command line, with the devices' words; the host's options need the kernel (load_guest()). */
	struct cmdline_parts parts = cmdline_parts(cfg, &vmm->machine);
	if ((ret = cmdline_compose(&parts, SIZE_MAX, &vmm->cmdline)) < 0)
		return ret;
	/* The socket too, so a path in use is reported the same on any host; requests are served once vmm_run() starts. */
	if (cfg->api_sock && (!door || !door->ctx))
		return err_set(EINVAL, "--api-sock %s: this program has no control API to serve on it", cfg->api_sock);
	if (cfg->api_sock) {
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
		if (cfg->record_ws_ms && (vmm->snap.flags & SNAP_FLAG_COMPRESSED))
			return err_set(EINVAL, "--record-working-set: %s holds memory.z, inflated whole at restore: a "
				       "working set is for a raw memory file (snapshot without \"compress\")", cfg->restore);
		if ((ret = snapshot_map_memory(cfg->restore, &vmm->snap, &vmm->machine, &vmm->mem, cfg->verify_memory)) < 0)
			return ret;
		vmm->ws_state_crc = vmm->snap.state_crc;
		if (vmm->snap.ws_buf)
			load_working_set(vmm);
		restore_report(vmm);
	} else {
		if ((ret = guest_mem_map(&vmm->mem, starts, sizes, vmm->machine.nr_ram)) < 0)
			return ret;
		if ((ret = load_guest(vmm, &k)) < 0)
			return ret;
	}
	vmm->times.loaded = stats_now_ns();

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
	vmm->times.vm_created = stats_now_ns();
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

	vmm->times.vcpus_ready = stats_now_ns();
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

void vmm_destroy(struct vmm *vmm)
{
	if (vmm->nr_threads)
		stop_vcpus(vmm);
	for (int i = 0; i < vmm->nr_vcpus; i++)
		vcpu_destroy(&vmm->vcpus[i]);
	vmm->nr_vcpus = 0;
	vdevs_destroy(&vmm->vdevs);
	free(vmm->cmdline);
	vmm->cmdline = NULL;
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
	ws_prefetch_stop(&vmm->ws);
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
