/* devices.c - open the disk images and taps, wire virtio-blk/virtio-net + virtio-mmio into the VM and the I/O thread (see devices.h). */
#include "vmm/devices.h"
#include "base/err.h"
#include "base/log.h"
#include "io/disk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What tap_open() found that the user should hear about, in the words of --net. */
static void report_tap(const struct tap *t, const struct net_config *nc)
{
	if (t->created) {
		if (t->up_error)
			log_warn("--net tap=%s: created the tap but cannot bring it up: %s", nc->tap,
				 strerror(t->up_error));
		log_info("--net tap=%s: created tap %s, up, without an address (it is removed when microvm exits)",
			 nc->tap, t->name);
	} else if (t->down) {
		log_warn("--net tap=%s: the tap is down; the guest's frames are dropped until: ip link set %s up",
			 nc->tap, t->name);
	}
}

/* Where a throw-away overlay lives: $TMPDIR, else /var/tmp (disk-backed on most hosts, unlike /tmp). */
static const char *overlay_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	return t && *t ? t : "/var/tmp";
}

/* ,overlay[=FILE]: the copy-on-write layer over the (read-only) base of v. */
static int open_overlay(struct vdisk *v, const struct disk_config *dc)
{
	const char *path = dc->overlay_path[0] ? dc->overlay_path : NULL;
	bool created;
	int ret;

	if (dc->has_overlay_src) {
		created = true;
		ret = overlay_open_copy(&v->ovl, path, overlay_tmpdir(), dc->overlay_src_fd, v->size);
	} else {
		ret = overlay_open(&v->ovl, path, overlay_tmpdir(), v->size, dc->overlay_fresh, &created);
	}
	if (ret == -EEXIST && path && dc->overlay_fresh)
		err_set(EEXIST, "exists: a restore starts each clone on a new overlay (name a file that does not exist)");

	if (ret < 0)
		return path ? err_prefix(ret, "--disk %s,overlay=%s", dc->path, path)
			    : err_prefix(ret, "--disk %s,overlay", dc->path);
	if (!path)
		log_info("--disk %s: throw-away overlay in %s (gone at exit)", dc->path, overlay_tmpdir());
	else if (created)
		log_info("--disk %s: new overlay %s", dc->path, path);
	else
		log_info("--disk %s: overlay %s, %llu clusters of %u bytes written", dc->path, path,
			 (unsigned long long)overlay_allocated(v->ovl), OVL_CLUSTER);
	return 0;
}

/* Open one image (io/disk.h); the message names the flag and the file, and the option that helps. */
static int open_disk(struct vdisk *v, const struct disk_config *dc)
{
	uint64_t size;
	/* An overlay's base is only read: shared lock, any number of VMs. */
	int fd = disk_open(dc->path, dc->ro || dc->overlay, dc->direct, &size);

	if (fd < 0) {
		err_prefix(fd, "--disk %s", dc->path);
		if (fd == -EOPNOTSUPP && dc->direct)
			return err_append(fd, " (drop ,direct)");
		if (!dc->ro && (fd == -EACCES || fd == -EROFS || fd == -EPERM))
			return err_append(fd, " (cannot open it for writing; add ,ro for a read-only disk)");
		return fd;
	}
	v->cfg = dc;
	v->fd = fd;
	v->size = size;
	int ret = dc->overlay ? open_overlay(v, dc) : 0;
	if (ret < 0) {
		close(fd);
		v->fd = -1;
	}
	return ret;
}

int vdevs_open(struct vdevs *d, const struct vmm_config *cfg, struct machine *m)
{
	int ret;

	memset(d, 0, sizeof(*d));
	for (int i = 0; i < cfg->nr_disks; i++) {
		struct vdisk *v = &d->disks[i];
		if ((ret = open_disk(v, &cfg->disks[i])) < 0)
			return ret;
		d->nr_disks = i + 1;
		if ((ret = machine_add_mmio_dev(m, MMIO_DEV_VIRTIO_BLK)) < 0)
			return err_prefix(-ret, "--disk %s", cfg->disks[i].path);
		v->mmio_idx = ret;
	}
	/* Taps after the disks, so both kinds of error come before /dev/kvm is touched. */
	for (int i = 0; i < cfg->nr_nics; i++) {
		const struct net_config *nc = &cfg->nics[i];
		struct vnet *v = &d->nics[i];
		char mac[18];
		if ((ret = tap_open(&v->tap, nc->tap)) < 0)
			return err_prefix(ret, "--net tap=%s", nc->tap);
		v->cfg = nc;
		d->nr_nics = i + 1;
		report_tap(&v->tap, nc);
		if (nc->has_mac) {
			memcpy(v->mac, nc->mac, sizeof(v->mac));
		} else if (nc->random_mac) {
			if ((ret = tap_random_mac(v->mac)) < 0)
				return err_prefix(-ret, "--net tap=%s", nc->tap);
		} else {
			tap_default_mac(nc->tap, (unsigned int)i, v->mac);
		}
		if ((ret = machine_add_mmio_dev(m, MMIO_DEV_VIRTIO_NET)) < 0)
			return err_prefix(-ret, "--net tap=%s", nc->tap);
		v->mmio_idx = ret;
		log_info("--net tap=%s: MAC %s%s", nc->tap, mac_format(v->mac, mac),
			 nc->has_mac ? "" : nc->random_mac ? " (random)" : " (derived from the tap name)");
	}
	return 0;
}

/* (io) A queue-notify eventfd fired. */
static void kicked(void *arg)
{
	struct vdev_kick *k = arg;

	virtio_mmio_queue_kicked(k->m, k->q);
}

/*
 * Put dev behind a virtio-mmio transport at md and connect it, the same way
 * for every device type: the 4 KiB window on the MMIO bus, the transport's
 * interrupt eventfd as a KVM irqfd on md->irq, and per queue a KVM
 * ioeventfd on QueueNotify (datamatch = queue index) watched by the I/O
 * thread, so a guest kick never exits to the vCPU thread.
 */
static int wire_virtio(struct vdevs *d, struct vwire *w, struct virtio_dev *dev,
		       const struct mmio_dev *md, struct vm *vm, struct bus *mmio,
		       const struct guest_mem *mem)
{
	int ret;

	if ((ret = virtio_mmio_init(&w->mmio, dev, mem)) < 0)
		return ret;
	w->mmio_ready = true;
	if ((ret = bus_register(mmio, md->base, md->size, virtio_mmio_io, &w->mmio, dev->ops->name)) < 0)
		return ret;
	if ((ret = vm_irqfd(vm, w->mmio.irq_fd, md->irq, false)) < 0)
		return ret;
	for (uint16_t q = 0; q < dev->ops->num_queues; q++) {
		w->kick[q] = (struct vdev_kick){ .m = &w->mmio, .q = q };
		if ((ret = vm_ioeventfd(vm, md->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, w->mmio.notify_fd[q],
					false, true, q, false)) < 0)
			return ret;
		if ((ret = io_loop_watch_eventfd(d->loop, w->mmio.notify_fd[q], kicked, &w->kick[q])) < 0)
			return ret;
	}
	return 0;
}

static void unwire_virtio(struct vwire *w)
{
	if (w->mmio_ready)
		virtio_mmio_destroy(&w->mmio);
	w->mmio_ready = false;
}

void vdevs_disk_id(const struct disk_config *dc, char id[BLK_ID_BYTES])
{
	const char *src = dc->id[0] ? dc->id : dc->path;
	const char *slash = strrchr(src, '/');

	if (!dc->id[0] && slash && slash[1])
		src = slash + 1;
	memset(id, 0, BLK_ID_BYTES);
	memcpy(id, src, strnlen(src, BLK_ID_BYTES));
}

static int create_disk(struct vdevs *d, struct vdisk *v, const struct machine *m, struct vm *vm,
		       struct bus *mmio, const struct guest_mem *mem)
{
	const struct mmio_dev *md = &m->mmio_devs[v->mmio_idx];
	struct blk_disk bd = { .sectors = v->size / BLK_SECTOR_SIZE, .ro = v->cfg->ro };
	int ret;

	vdevs_disk_id(v->cfg, bd.id);
	if ((ret = io_loop_register_file(d->loop, v->fd)) < 0)
		return ret;
	v->file = ret;
	struct disk_backend be = { .loop = d->loop, .file = v->file, .ovl = v->ovl };
	if (v->ovl) {
		if ((ret = io_loop_register_file(d->loop, overlay_fd(v->ovl))) < 0)
			return ret;
		overlay_attach(v->ovl, d->loop, v->file, ret);
	}
	if ((ret = blk_create(&v->blk, &bd, &be)) < 0 || (ret = blk_set_limits(v->blk, &v->cfg->limit)) < 0)
		return ret;
	if ((ret = wire_virtio(d, &v->wire, blk_virtio_dev(v->blk), md, vm, mmio, mem)) < 0)
		return ret;
	log_debug("--disk %s: virtio-blk at 0x%llx, IRQ %u, %llu sectors%s", v->cfg->path,
		  (unsigned long long)md->base, md->irq, (unsigned long long)bd.sectors,
		  bd.ro ? ", read-only" : v->ovl ? ", on an overlay" : "");
	return 0;
}

static int create_nic(struct vdevs *d, struct vnet *v, const struct machine *m, struct vm *vm,
		      struct bus *mmio, const struct guest_mem *mem)
{
	const struct mmio_dev *md = &m->mmio_devs[v->mmio_idx];
	struct net_backend be = {
		.fd = v->tap.fd,
		.offloads = v->tap.offloads,
		.set_offload = tap_set_offload,
		.ctx = &v->tap,
		.name = v->tap.name,
	};
	char mac[18];
	int ret;

	memcpy(be.mac, v->mac, sizeof(be.mac));
	if ((ret = net_create(&v->net, &be, d->loop)) < 0 || (ret = net_set_limits(v->net, &v->cfg->rx, &v->cfg->tx)) < 0)
		return ret;
	if ((ret = wire_virtio(d, &v->wire, net_virtio_dev(v->net), md, vm, mmio, mem)) < 0)
		return ret;
	log_debug("--net tap=%s: virtio-net at 0x%llx, IRQ %u, MAC %s, tap offloads 0x%x", v->tap.name,
		  (unsigned long long)md->base, md->irq, mac_format(v->mac, mac), v->tap.offloads);
	return 0;
}

int vdevs_create(struct vdevs *d, const struct vmm_config *cfg, const struct machine *m,
		 struct vm *vm, struct bus *mmio, const struct guest_mem *mem)
{
	int ret;

	if (d->nr_disks == 0 && d->nr_nics == 0)
		return 0;
	if ((ret = io_loop_create(&d->loop, cfg->io_engine)) < 0)
		return cfg->io_engine == IO_ENGINE_URING ? err_prefix(ret, "--io-engine uring") : ret;
	for (int i = 0; i < d->nr_disks; i++)
		if ((ret = create_disk(d, &d->disks[i], m, vm, mmio, mem)) < 0)
			return ret;
	for (int i = 0; i < d->nr_nics; i++)
		if ((ret = create_nic(d, &d->nics[i], m, vm, mmio, mem)) < 0)
			return ret;
	return 0;
}

int vdevs_start(struct vdevs *d)
{
	int ret;

	if (!d->loop)
		return 0;
	if ((ret = io_loop_start(d->loop)) < 0)
		return ret;
	d->started = true;
	log_info("I/O engine: %s", io_engine_name(io_loop_engine(d->loop)));
	return 0;
}

void vdevs_stop(struct vdevs *d)
{
	if (!d->loop)
		return;
	io_loop_destroy(d->loop);
	d->loop = NULL;
	/* Whatever the guest did not flush itself is made durable before we exit. */
	for (int i = 0; i < d->nr_disks; i++) {
		struct vdisk *v = &d->disks[i];
		if (v->ovl && overlay_sync(v->ovl) < 0)
			log_warn("--disk %s: overlay: %s", v->cfg->path, err_msg());
		else if (!v->ovl && !v->cfg->ro && fdatasync(v->fd) < 0)
			log_warn("--disk %s: fdatasync: %s", v->cfg->path, strerror(errno));
	}
	/* The thread is gone: the counters are final. */
	for (int i = 0; d->started && i < d->nr_nics; i++) {
		struct vnet *v = &d->nics[i];
		struct net_stats st;
		if (!v->net)
			continue;
		net_get_stats(v->net, &st);
		log_info("net %s: rx %llu frames (%llu bytes), tx %llu frames (%llu bytes), dropped rx %llu tx %llu",
			 v->tap.name, (unsigned long long)st.rx_frames, (unsigned long long)st.rx_bytes,
			 (unsigned long long)st.tx_frames, (unsigned long long)st.tx_bytes,
			 (unsigned long long)st.rx_dropped, (unsigned long long)st.tx_dropped);
	}
	d->started = false;
}

void vdevs_destroy(struct vdevs *d)
{
	vdevs_stop(d);
	for (int i = 0; i < d->nr_disks; i++) {
		struct vdisk *v = &d->disks[i];
		unwire_virtio(&v->wire);
		blk_destroy(v->blk);
		v->blk = NULL;
		overlay_close(v->ovl);
		v->ovl = NULL;
		close(v->fd);
	}
	d->nr_disks = 0;
	for (int i = 0; i < d->nr_nics; i++) {
		struct vnet *v = &d->nics[i];
		unwire_virtio(&v->wire);
		if (v->net)
			net_destroy(v->net);
		v->net = NULL;
		tap_close(&v->tap);
	}
	d->nr_nics = 0;
}

int vdevs_count(const struct vdevs *d)
{
	return d->nr_disks + d->nr_nics;
}

struct virtio_mmio *vdevs_transport(struct vdevs *d, int i)
{
	struct vwire *w = i < d->nr_disks ? &d->disks[i].wire : &d->nics[i - d->nr_disks].wire;

	return w->mmio_ready ? &w->mmio : NULL;
}

int vdevs_freeze(struct vdevs *d)
{
	int ret = 0;

	/* Every device is frozen even after a failure: vdevs_thaw() undoes them all. */
	for (int i = 0; i < vdevs_count(d); i++) {
		struct virtio_mmio *m = vdevs_transport(d, i);
		int r = m && m->dev->ops->freeze ? m->dev->ops->freeze(m->dev) : 0;
		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}

void vdevs_thaw(struct vdevs *d)
{
	for (int i = 0; i < vdevs_count(d); i++) {
		struct virtio_mmio *m = vdevs_transport(d, i);
		if (m && m->dev->ops->thaw)
			m->dev->ops->thaw(m->dev);
	}
}
