/* snapshot.h - snapshots of a paused VM into a directory, and the restore from one (docs/snapshot.md). */
#ifndef MICROVM_SNAPSHOT_H
#define MICROVM_SNAPSHOT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/cmos.h"
#include "devices/serial.h"
#include "devices/sysctl.h"
#include "devices/virtio/mmio.h"
#include "firmware/machine.h"
#include "vmm/config.h"

/*
 * A snapshot directory holds two files: `state` (a header, then records:
 * the configuration, the VM's and every vCPU's KVM state, every device's
 * state and the list of memory extents; CRC-32 over header and body) and
 * the guest memory, either `memory` (the RAM regions one after the other, a
 * sparse file: pages of zeroes are holes) or, compressed, `memory.z` (each
 * extent of non-zero pages deflated on its own). Every extent has a CRC-32.
 */
#define SNAP_MAGIC "MVMSNAP\n"
#define SNAP_VERSION 2                  /* 2: a disk may be on an overlay (snap_disk.overlay, diskN.overlay) */
#define SNAP_VERSION_MIN 1              /* 1: the same records, no overlays (the byte was padding, 0) */
#define SNAP_HEADER_SIZE 64
#define SNAP_MAX_STATE (64u << 20)      /* a state file larger than this is refused */
#define SNAP_MAX_EXTENTS (1u << 20)
/*
 * A run of zero pages shorter than this between non-zero pages is saved as
 * data, not as a hole: every extent then covers with its following hole at
 * least SNAP_HOLE_MIN + 4 KiB of RAM (or ends at the 32 MiB extent limit or
 * a region's end), so even 1 TiB of RAM needs fewer than SNAP_MAX_EXTENTS.
 */
#define SNAP_HOLE_MIN (1ull << 20)
#define SNAP_FLAG_COMPRESSED 1u

enum snap_tag {
	SNAP_CONFIG = 1, SNAP_VM, SNAP_VCPU, SNAP_SERIAL, SNAP_CMOS, SNAP_I8042, SNAP_VIRTIO, SNAP_MEMORY,
};

struct snap_disk {
	char path[PATH_MAX];
	char id[CFG_DISK_ID_MAX + 4];
	uint64_t size;
	uint8_t ro, direct;
	uint8_t overlay;                /* 1: on a copy-on-write overlay, saved as diskN.overlay beside state */
	uint8_t pad[5];
};

struct snap_nic {
	char tap[CFG_TAP_NAME_MAX + 1];
	uint8_t mac[6], pad[2];
};

struct snap_config {
	uint64_t mem;
	uint32_t cpus, nr_disks, nr_nics, io_engine;
	struct snap_disk disks[CFG_MAX_DISKS];
	struct snap_nic nics[CFG_MAX_NICS];
};

struct snap_extent {
	uint64_t off, len;              /* in guest RAM (regions one after the other), page aligned */
	uint64_t file_off, file_len;    /* in the memory file (raw: the same as off/len) */
	uint32_t crc, pad;              /* CRC-32 of the len bytes of RAM */
};

struct snap_memory {
	uint64_t total;                 /* bytes of guest RAM */
	uint64_t file_size;             /* the memory file's size */
	uint32_t nr_extents, compressed;
	struct snap_extent ext[];
};

/* The state file: a 64-byte header, then records, each a struct snap_rec and its payload padded to 8 bytes. */
struct snap_rec {
	uint32_t tag, len;              /* enum snap_tag; payload bytes */
};

/*
 * Fill in the header of a state image buf[0..len) whose records start at
 * byte SNAP_HEADER_SIZE: magic, version, body length, flags and both CRCs.
 */
void snapshot_seal(uint8_t *buf, size_t len, uint32_t flags);

/* A parsed state file: pointers into buf, which it owns. */
struct snapshot {
	uint8_t *buf;
	size_t len;
	uint32_t flags;
	const struct snap_config *config;
	const void *vm;
	size_t vm_len;
	int nr_vcpus;
	const void *vcpu[MV_MAX_VCPUS];
	size_t vcpu_len[MV_MAX_VCPUS];
	const struct serial_state *serial;
	const struct cmos_state *cmos;
	const struct i8042_state *i8042;
	int nr_virtio;
	const struct virtio_mmio_state *virtio[CFG_MAX_DISKS + CFG_MAX_NICS];
	const struct snap_memory *memory;
	int mem_fd;                     /* snapshot_read(): the memory file, opened with the state */
	int layer_fd[CFG_MAX_DISKS];    /* snapshot_read(): disk i's saved overlay (diskI.overlay), or -1 */
	uint32_t state_crc;             /* the header's CRC of the body: names this snapshot (a working set's) */
	uint8_t *ws_buf;                /* snapshot_read(): DIR/workingset's bytes (unchecked), owned; NULL: none */
	size_t ws_len;
};

/* The name of disk i's saved overlay layer in a snapshot directory. */
#define SNAP_LAYER_NAME "disk%d.overlay"

/*
 * Check and index a state file's bytes (buf must be 8-byte aligned and stay
 * alive): magic, version, header and body checksums, the length (a truncated
 * file), every record's size, the configuration's counts and strings, and
 * the extents (sorted, page aligned, inside RAM and the memory file). Pure.
 * Returns 0, or -EINVAL with err_msg() saying what is wrong.
 */
int snapshot_parse(const uint8_t *buf, size_t len, struct snapshot *s);

/*
 * Read DIR/state and parse it, and open the memory file beside it and the
 * saved overlay of each disk that was on one, all under a shared lock on DIR
 * (snapshot_dir_open() holds it exclusively while a snapshot is written), all
 * regular files (no symbolic link followed); s->buf, s->mem_fd and
 * s->layer_fd[] are then owned by s (snapshot_free()).
 * Read DIR/state and parse it, and open the memory file beside it, both
 * under a shared lock on DIR (snapshot_dir_open() holds it exclusively while
 * a snapshot is written), both regular files (no symbolic link followed);
 * s->buf and s->mem_fd are then owned by s (snapshot_free()). With
 * want_ws, DIR/workingset's bytes too, if there is one (s->ws_buf, checked
 * later by ws_parse()); one that cannot be read is left out with a warning.
 * Returns 0 or -errno with err_msg() naming the directory.
 */
int snapshot_read(const char *dir, struct snapshot *s, bool want_ws);
void snapshot_free(struct snapshot *s);

struct vmm;
struct guest_mem;

/*
 * The extents of guest RAM (regions one after the other) a snapshot saves:
 * every non-zero page, in order, page aligned, each at most 32 MiB, none
 * crossing a region, zero runs shorter than SNAP_HOLE_MIN between data
 * included. *out (malloc'ed, the caller frees) gets *nr extents with off and
 * len set. Returns 0 or -errno with err_msg() (E2BIG: more than
 * SNAP_MAX_EXTENTS, which the rule above prevents up to 1 TiB of RAM).
 */
int snapshot_plan_extents(const struct guest_mem *mem, struct snap_extent **out, uint32_t *nr);

/*
 * Open (make, 0700, if missing) a directory to write a snapshot into and
 * lock it against a second writer: it must be a directory (a symbolic link
 * is refused), owned by the effective user and writable by no one else.
 * Returns its fd (O_RDONLY, close-on-exec, flock'ed exclusively until closed)
 * or -errno with err_msg() naming dir and the fix.
 */
int snapshot_dir_open(const char *dir);

/*
 * Snapshot a paused VM (main thread; vmm_pause() first) into dir
 * (snapshot_dir_open()): devices frozen (disk requests in flight completed,
 * writable images and overlays synced), memory, each overlay's layer
 * (diskN.overlay) and state written to new files under temporary names
 * (O_EXCL, 0600, no link followed), synced, then renamed over `memory` (or
 * `memory.z`) and the layers, and last `state`. No existing file is ever
 * written in place, so VMs restored from dir keep the RAM they mapped, and a
 * complete `state` always describes the memory beside it. *bytes: what was
 * written (the state file and the memory's data, holes not counted).
 * Returns 0 or -errno with err_msg().
 */
int vmm_snapshot(struct vmm *vmm, const char *dir, bool compress, uint64_t *bytes);

/*
 * Map a snapshot's memory for a restore into the regions of m (guest_mem):
 * the raw file MAP_PRIVATE, with a shared flock on it that lasts as long as
 * the mapping (no microvm snapshot ever writes a locked memory file; other
 * tools can see it is in use); its size is checked, its data is not read:
 * pages load when the guest first touches them, so the time does not grow
 * with the memory. verify (--verify-memory): every extent is read from the
 * file first and its CRC checked. A compressed one is always decompressed
 * into anonymous memory and checked. The memory file must not change while
 * VMs run from it (docs/snapshot.md). Returns 0 or -errno with err_msg().
 */
int snapshot_map_memory(const char *dir, const struct snapshot *s, const struct machine *m,
			struct guest_mem *mem, bool verify);

/*
 * Save a working set's file (vmm/workingset.h) as DIR/workingset: under a
 * shared lock on DIR (no snapshot is being written), only while DIR/state
 * is still the snapshot state_crc names, under a temporary name (O_EXCL,
 * 0600, no link followed), synced, renamed into place. Returns 0 or -errno
 * with err_msg() naming the directory (one this user may not write: says so).
 */
int snapshot_save_working_set(const char *dir, uint32_t state_crc, const uint8_t *buf, size_t len);

#endif
