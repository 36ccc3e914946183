/* snapshot.c - snapshot a paused VM, read and check a snapshot, map its memory (see snapshot.h). */
#include "vmm/snapshot.h"
#include "driver/state.h"
#include "base/err.h"
#include "base/log.h"
#include "base/readfile.h"
#include "vmm/stats.h"
#include "vmm/vm.h"
#include "vmm/workingset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define PAGE 4096ULL
#define MAX_RUN (32ULL << 20)   /* an extent covers at most this much RAM (one deflate call) */
#define CHECK_CHUNK (256u << 10) /* a restore reads a raw extent this much at a time to check it */

/* ---- the format ---- */

/* Header: magic[8], version, header size, body length (u64), body CRC, flags, ..., header CRC at 60. */
struct snap_header {
	char magic[8];
	uint32_t version, header_size;
	uint64_t body_len;
	uint32_t body_crc, flags;
	uint8_t pad[28];
	uint32_t header_crc;            /* CRC-32 of the 60 bytes before it */
};
_Static_assert(sizeof(struct snap_header) == SNAP_HEADER_SIZE, "header is 64 bytes");


static uint32_t crc(const void *p, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);
	const uint8_t *b = p;

	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		c = crc32(c, b, n);
		b += n;
		len -= n;
	}
	return (uint32_t)c;
}

void snapshot_seal(uint8_t *buf, size_t len, uint32_t flags)
{
	struct snap_header h = { .version = SNAP_VERSION, .header_size = SNAP_HEADER_SIZE,
				 .body_len = len - SNAP_HEADER_SIZE, .flags = flags };

	memcpy(h.magic, SNAP_MAGIC, 8);
	h.body_crc = crc(buf + SNAP_HEADER_SIZE, len - SNAP_HEADER_SIZE);
	h.header_crc = crc(&h, offsetof(struct snap_header, header_crc));
	memcpy(buf, &h, sizeof(h));
}

static bool str_ok(const char *s, size_t cap, bool empty_ok)
{
	size_t n = strnlen(s, cap);
	return n < cap && (empty_ok || n > 0);
}

static int check_config(const struct snap_config *c)
{
	if (c->cpus < 1 || c->cpus > MV_MAX_VCPUS || c->nr_disks > CFG_MAX_DISKS ||
	    c->nr_nics > CFG_MAX_NICS || c->io_engine > IO_ENGINE_SYNC || c->mem == 0 || c->mem % PAGE)
		return err_set(EINVAL, "configuration record out of range");
	for (uint32_t i = 0; i < c->nr_disks; i++)
		if (!str_ok(c->disks[i].path, sizeof(c->disks[i].path), false) ||
		    !str_ok(c->disks[i].id, sizeof(c->disks[i].id), true) || c->disks[i].size % 512 ||
		    c->disks[i].overlay > 1 || (c->disks[i].overlay && c->disks[i].ro))
			return err_set(EINVAL, "configuration record: disk %u malformed", i);
	for (uint32_t i = 0; i < c->nr_nics; i++)
		if (!str_ok(c->nics[i].tap, sizeof(c->nics[i].tap), false))
			return err_set(EINVAL, "configuration record: NIC %u malformed", i);
	return 0;
}

static int check_memory(const struct snap_memory *m, size_t len, bool compressed)
{
	if (len < sizeof(*m) || m->nr_extents > SNAP_MAX_EXTENTS ||
	    len != sizeof(*m) + (size_t)m->nr_extents * sizeof(struct snap_extent))
		return err_set(EINVAL, "memory record malformed");
	if ((m->compressed != 0) != compressed || m->total == 0 || m->total % PAGE)
		return err_set(EINVAL, "memory record malformed");
	if (!compressed && m->file_size != m->total)
		return err_set(EINVAL, "memory record: file size %llu for %llu bytes of RAM",
			       (unsigned long long)m->file_size, (unsigned long long)m->total);
	uint64_t end = 0, fend = 0;
	for (uint32_t i = 0; i < m->nr_extents; i++) {
		const struct snap_extent *e = &m->ext[i];
		if (e->len == 0 || e->len > MAX_RUN || e->off % PAGE || e->len % PAGE || e->off < end ||
		    e->off > m->total || e->len > m->total - e->off || e->file_off < fend ||
		    e->file_off > m->file_size || e->file_len > m->file_size - e->file_off ||
		    (!compressed && (e->file_off != e->off || e->file_len != e->len)) ||
		    (compressed && (e->file_len == 0 || e->file_len > compressBound(MAX_RUN))))
			return err_set(EINVAL, "memory record: extent %u out of order or out of range", i);
		end = e->off + e->len;
		fend = e->file_off + e->file_len;
	}
	return 0;
}

int snapshot_parse(const uint8_t *buf, size_t len, struct snapshot *s)
{
	struct snap_header h;

	memset(s, 0, sizeof(*s));
	if (len < sizeof(h) || memcmp(buf, SNAP_MAGIC, 8))
		return err_set(EINVAL, "not a microvm snapshot (no \"MVMSNAP\" header)");
	memcpy(&h, buf, sizeof(h));
	if (h.header_crc != crc(buf, offsetof(struct snap_header, header_crc)))
		return err_set(EINVAL, "header checksum mismatch (corrupt)");
	if (h.version < SNAP_VERSION_MIN || h.version > SNAP_VERSION)
		return err_set(EINVAL, "snapshot format version %u; this microvm reads versions %u to %u", h.version,
			       SNAP_VERSION_MIN, SNAP_VERSION);
	if (h.header_size != SNAP_HEADER_SIZE || (h.flags & ~SNAP_FLAG_COMPRESSED))
		return err_set(EINVAL, "header malformed");
	if (h.body_len != len - sizeof(h))
		return err_set(EINVAL, "state is %zu bytes, its header says %llu (truncated?)", len,
			       (unsigned long long)(h.body_len + sizeof(h)));
	if (h.body_crc != crc(buf + sizeof(h), len - sizeof(h)))
		return err_set(EINVAL, "checksum mismatch (corrupt)");
	s->flags = h.flags;
	s->state_crc = h.body_crc;

	size_t pos = sizeof(h);
	size_t vcpu_size = vcpu_state_size();
	while (pos < len) {
		struct snap_rec r;
		if (len - pos < sizeof(r))
			return err_set(EINVAL, "record header cut short at byte %zu", pos);
		memcpy(&r, buf + pos, sizeof(r));
		pos += sizeof(r);
		size_t padded = ((size_t)r.len + 7) & ~(size_t)7;
		if (padded > len - pos)
			return err_set(EINVAL, "record %u at byte %zu runs past the end", r.tag, pos);
		const uint8_t *p = buf + pos;
		size_t want = 0;
		bool dup = false;
		switch (r.tag) {
		case SNAP_CONFIG: want = sizeof(*s->config), dup = s->config, s->config = (const void *)p; break;
		case SNAP_VM: want = vm_state_size(), dup = s->vm, s->vm = p, s->vm_len = r.len; break;
		case SNAP_SERIAL: want = sizeof(*s->serial), dup = s->serial, s->serial = (const void *)p; break;
		case SNAP_CMOS: want = sizeof(*s->cmos), dup = s->cmos, s->cmos = (const void *)p; break;
		case SNAP_I8042: want = sizeof(*s->i8042), dup = s->i8042, s->i8042 = (const void *)p; break;
		case SNAP_VCPU:
			if (s->nr_vcpus >= MV_MAX_VCPUS)
				return err_set(EINVAL, "more than %d vCPU records", MV_MAX_VCPUS);
			want = vcpu_size;
			s->vcpu_len[s->nr_vcpus] = r.len;
			s->vcpu[s->nr_vcpus++] = p;
			break;
		case SNAP_VIRTIO:
			if (s->nr_virtio >= CFG_MAX_DISKS + CFG_MAX_NICS)
				return err_set(EINVAL, "more than %d virtio device records", CFG_MAX_DISKS + CFG_MAX_NICS);
			want = sizeof(struct virtio_mmio_state);
			s->virtio[s->nr_virtio++] = (const void *)p;
			break;
		case SNAP_MEMORY:
			dup = s->memory;
			s->memory = (const void *)p;
			if (check_memory(s->memory, r.len, h.flags & SNAP_FLAG_COMPRESSED) < 0)
				return -EINVAL;
			want = r.len;
			break;
		default:
			return err_set(EINVAL, "unknown record type %u", r.tag);
		}
		if (dup)
			return err_set(EINVAL, "record type %u twice", r.tag);
		if (r.len != want)
			return err_set(EINVAL, "record type %u is %u bytes, expected %zu", r.tag, r.len, want);
		pos += padded;
	}
	if (!s->config || !s->vm || !s->serial || !s->cmos || !s->i8042 || !s->memory)
		return err_set(EINVAL, "a record is missing");
	if (check_config(s->config) < 0)
		return -EINVAL;
	if ((uint32_t)s->nr_vcpus != s->config->cpus ||
	    (uint32_t)s->nr_virtio != s->config->nr_disks + s->config->nr_nics)
		return err_set(EINVAL, "%d vCPU and %d device records for %u vCPUs and %u devices",
			       s->nr_vcpus, s->nr_virtio, s->config->cpus,
			       s->config->nr_disks + s->config->nr_nics);
	if (s->memory->total != s->config->mem)
		return err_set(EINVAL, "memory record for %llu bytes, configuration %llu",
			       (unsigned long long)s->memory->total, (unsigned long long)s->config->mem);
	return 0;
}

/*
 * Open name in dfd for reading: a regular file, no symbolic link followed.
 * Checked before the open too, so no device node is ever opened (opening
 * some has effects: a watchdog arms, a tape rewinds on close), and after it
 * against a swap in between.
 */
static int open_regular(int dfd, const char *dir, const char *name)
{
	struct stat before, st;

	if (fstatat(dfd, name, &before, AT_SYMLINK_NOFOLLOW) < 0) {
		int e = errno;
		if (e == ENOENT && !strcmp(name, "state"))
			return err_set(e, "--restore %s: no state file in it (not a snapshot, or an unfinished one)", dir);
		return err_set(e, "--restore %s/%s: %s", dir, name, strerror(e));
	}
	if (S_ISLNK(before.st_mode))
		return err_set(ELOOP, "--restore %s/%s: refused: a symbolic link", dir, name);
	if (!S_ISREG(before.st_mode))
		return err_set(EINVAL, "--restore %s/%s: refused: not a regular file", dir, name);
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "--restore %s/%s: %s", dir, name, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_dev != before.st_dev || st.st_ino != before.st_ino) {
		close(fd);
		return err_set(EINVAL, "--restore %s/%s: refused: replaced while being opened", dir, name);
	}
	return fd;
}

/* DIR/workingset's bytes into s, if there is one; one that cannot be read is only a lost hint. */
static void read_working_set(int dfd, const char *dir, struct snapshot *s)
{
	struct stat st;

	if (fstatat(dfd, "workingset", &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return;
	int fd = open_regular(dfd, dir, "workingset");
	if (fd < 0) {
		log_warn("%s (the working set is ignored)", err_msg());
		return;
	}
	int r = read_whole(fd, WS_MAX_FILE, &s->ws_buf, &s->ws_len);
	if (r < 0) {
		log_warn("--restore %s/workingset: ignored: %s", dir,
			 r == -EFBIG ? "larger than any working set" : strerror(-r));
		s->ws_buf = NULL;
		s->ws_len = 0;
	}
	close(fd);
}

int snapshot_read(const char *dir, struct snapshot *s, bool want_ws)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret, fd = -1, mfd = -1;
	bool layers = false;

	memset(s, 0, sizeof(*s));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(errno, "--restore %s: %s", dir, strerror(errno));
	/*
	 * The directory is trusted only if no one but its owner (this user, or
	 * root) can change it: another user could swap its files under a
	 * running VM or between the checks below.
	 */
	struct stat st;
	if (fstat(dfd, &st) < 0) {
		int e = errno;
		close(dfd);
		return err_set(e, "--restore %s: %s", dir, strerror(e));
	}
	if ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		close(dfd);
		return err_set(EPERM, "--restore %s: refused: the directory must belong to you or root and be "
			       "writable by no one else (uid %u, mode %04o)", dir, (unsigned)st.st_uid,
			       (unsigned)(st.st_mode & 07777));
	}
	/* A snapshot being written here holds the directory exclusively: state and memory are read as one pair. */
	if (flock(dfd, LOCK_SH | LOCK_NB) < 0) {
		int e = errno;
		close(dfd);
		return err_set(e == EWOULDBLOCK ? EBUSY : e, "--restore %s: %s", dir,
			       e == EWOULDBLOCK ? "a snapshot is being written into it; try again when it is done"
					        : strerror(e));
	}
	if ((fd = open_regular(dfd, dir, "state")) < 0) {
		ret = fd;
		goto out;
	}
	ret = read_whole(fd, SNAP_MAX_STATE, &buf, &len);
	if (ret < 0) {
		err_prefix(-ret, "--restore %s/state", dir);
		goto out;
	}
	/* read_whole's buffer comes from malloc: aligned for the records. */
	if ((ret = snapshot_parse(buf, len, s)) < 0) {
		err_prefix(-ret, "--restore %s: refused", dir);
		goto out;
	}
	if ((mfd = open_regular(dfd, dir, (s->flags & SNAP_FLAG_COMPRESSED) ? "memory.z" : "memory")) < 0) {
		ret = mfd;
		goto out;
	}
	for (int i = 0; i < CFG_MAX_DISKS; i++)
		s->layer_fd[i] = -1;
	layers = true;
	for (uint32_t i = 0; i < s->config->nr_disks; i++) {
		char name[32];
		if (!s->config->disks[i].overlay)
			continue;
		snprintf(name, sizeof(name), SNAP_LAYER_NAME, (int)i);
		if ((s->layer_fd[i] = open_regular(dfd, dir, name)) < 0) {
			ret = s->layer_fd[i];
			s->layer_fd[i] = -1;
			goto out;
		}
	}
	s->buf = buf;
	s->len = len;
	s->mem_fd = mfd;
	buf = NULL;
	mfd = -1;
	/* Under the same lock: the working set belongs to this state, or its CRC says it does not. */
	if (want_ws && !(s->flags & SNAP_FLAG_COMPRESSED))
		read_working_set(dfd, dir, s);
out:
	if (ret < 0) {
		for (int i = 0; layers && i < CFG_MAX_DISKS; i++)
			if (s->layer_fd[i] >= 0)
				close(s->layer_fd[i]);
		memset(s, 0, sizeof(*s));
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	if (mfd >= 0)
		close(mfd);
	close(dfd);
	return ret;
}

void snapshot_free(struct snapshot *s)
{
	if (s->buf && s->mem_fd >= 0)
		close(s->mem_fd);
	for (int i = 0; s->buf && i < CFG_MAX_DISKS; i++)
		if (s->layer_fd[i] >= 0)
			close(s->layer_fd[i]);
	free(s->buf);
	free(s->ws_buf);
	memset(s, 0, sizeof(*s));
}

/* ---- memory ---- */

/* Host address of [off, off+len) of RAM counted across the regions, or NULL. */
static uint8_t *ram_at(const struct guest_mem *mem, uint64_t off, uint64_t len)
{
	uint64_t base = 0;

	for (int i = 0; i < mem->nr; i++) {
		const struct guest_region *r = &mem->region[i];
		if (off >= base && off - base <= r->size && len <= r->size - (off - base))
			return r->host + (off - base);
		base += r->size;
	}
	return NULL;
}

static bool page_zero(const uint8_t *p)
{
	static const uint8_t zero[PAGE];
	return !memcmp(p, zero, PAGE);
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *name)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len > (1u << 30) ? (1u << 30) : len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set(n < 0 ? errno : EIO, "writing %s: %s", name, n < 0 ? strerror(errno) : "short write");
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off, const char *name)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set(n < 0 ? errno : EIO, "reading %s: %s", name, n < 0 ? strerror(errno) : "file is shorter than its record says");
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

struct ext_list {
	struct snap_extent *e;
	uint32_t n, cap;
};

static int ext_add(struct ext_list *l, uint64_t off, uint64_t len)
{
	if (l->n == l->cap) {
		if (l->cap >= SNAP_MAX_EXTENTS)
			return err_set(E2BIG, "guest memory has more than %u extents", SNAP_MAX_EXTENTS);
		uint32_t cap = l->cap ? l->cap * 2 : 256;
		struct snap_extent *e = realloc(l->e, cap * sizeof(*e));
		if (!e)
			return err_set(ENOMEM, "out of memory for the extent list");
		l->e = e, l->cap = cap;
	}
	l->e[l->n++] = (struct snap_extent){ .off = off, .len = len };
	return 0;
}

/* Zero pages from p on in r (at most max bytes' worth), in bytes. */
static uint64_t zero_run(const struct guest_region *r, uint64_t p, uint64_t max)
{
	uint64_t n = 0;

	while (n < max && p + n < r->size && page_zero(r->host + p + n))
		n += PAGE;
	return n;
}

int snapshot_plan_extents(const struct guest_mem *mem, struct snap_extent **out, uint32_t *nr)
{
	struct ext_list l = { 0 };
	uint64_t base = 0;
	int ret = 0;

	for (int i = 0; i < mem->nr && ret == 0; i++) {
		const struct guest_region *r = &mem->region[i];
		for (uint64_t p = 0; p < r->size && ret == 0;) {
			if (page_zero(r->host + p)) {
				p += PAGE;
				continue;
			}
			uint64_t start = p;
			p += PAGE;
			while (p < r->size && p - start < MAX_RUN) {
				if (!page_zero(r->host + p)) {
					p += PAGE;
					continue;
				}
				/* A short hole between data is saved as data: it bounds the extent count. */
				uint64_t z = zero_run(r, p, SNAP_HOLE_MIN);
				if (z >= SNAP_HOLE_MIN || p + z >= r->size || p + z - start >= MAX_RUN)
					break;
				p += z;
			}
			ret = ext_add(&l, base + start, p - start);
		}
		base += r->size;
	}
	if (ret < 0) {
		free(l.e);
		return ret;
	}
	*out = l.e;
	*nr = l.n;
	return 0;
}

/*
 * Write the planned extents of RAM to fd (raw: at their RAM offsets, the file
 * sized to all of RAM, holes between; compressed: one deflated stream each,
 * back to back), filling in their CRCs and file positions; then sync it.
 */
static int write_memory(int fd, const char *name, const struct guest_mem *mem, bool compress,
			struct snap_extent *ext, uint32_t n, uint64_t total, uint64_t *file_size)
{
	uint64_t fpos = 0;
	uint8_t *zbuf = NULL;
	int ret = 0;

	if (!compress && ftruncate(fd, (off_t)total) < 0)
		return err_set(errno, "sizing %s: %s", name, strerror(errno));
	if (compress && !(zbuf = malloc(compressBound(MAX_RUN))))
		return err_set(ENOMEM, "out of memory for compression");
	for (uint32_t i = 0; i < n && ret == 0; i++) {
		struct snap_extent *e = &ext[i];
		const uint8_t *data = ram_at(mem, e->off, e->len);
		if (!data) {
			ret = err_set(EINVAL, "extent %u outside guest RAM", i);
			break;
		}
		e->crc = crc(data, e->len);
		if (compress) {
			uLongf zlen = compressBound(MAX_RUN);
			if (compress2(zbuf, &zlen, data, e->len, 1) != Z_OK) {
				ret = err_set(EIO, "compressing guest memory failed");
				break;
			}
			e->file_off = fpos, e->file_len = zlen;
			ret = pwrite_all(fd, zbuf, zlen, fpos, name);
			fpos += zlen;
		} else {
			e->file_off = e->off, e->file_len = e->len;
			ret = pwrite_all(fd, data, e->len, e->off, name);
		}
	}
	free(zbuf);
	if (ret < 0)
		return ret;
	*file_size = compress ? fpos : total;
	if (fsync(fd) < 0)
		return err_set(errno, "syncing %s: %s", name, strerror(errno));
	return 0;
}

int snapshot_map_memory(const char *dir, const struct snapshot *s, const struct machine *m,
			struct guest_mem *mem, bool verify)
{
	const struct snap_memory *sm = s->memory;
	bool compressed = s->flags & SNAP_FLAG_COMPRESSED;
	char path[PATH_MAX];
	gpa_t starts[2];
	uint64_t sizes[2], total = 0;
	struct stat st;
	uint8_t *buf = NULL;
	int ret = 0;

	for (int i = 0; i < m->nr_ram; i++) {
		starts[i] = m->ram[i].start;
		sizes[i] = m->ram[i].size;
		total += sizes[i];
	}
	if (total != sm->total)
		return err_set(EINVAL, "--restore %s: refused: %llu bytes of RAM in the snapshot, the machine has %llu",
			       dir, (unsigned long long)sm->total, (unsigned long long)total);
	snprintf(path, sizeof(path), "%s/%s", dir, compressed ? "memory.z" : "memory");
	int fd = s->mem_fd;
	if (!s->buf || fd < 0)
		return err_set(EINVAL, "--restore %s: the memory file is not open", dir);
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != sm->file_size) {
		ret = err_set(EINVAL, "--restore %s: refused: %llu bytes, the state says %llu (truncated or replaced)",
			      path, (unsigned long long)st.st_size, (unsigned long long)sm->file_size);
		goto out;
	}
	/*
	 * A shared lock for as long as the file is mapped: flock belongs to the
	 * open file, which the mapping keeps open after the fd is closed. No
	 * microvm snapshot writes into a memory file (snapshot.h: new files are
	 * renamed into place), and other tools can see that VMs run from it.
	 */
	if (!compressed && flock(fd, LOCK_SH | LOCK_NB) < 0) {
		ret = err_set(errno, "--restore %s: refused: cannot lock it: %s", path,
			      errno == EWOULDBLOCK ? "someone holds it exclusively" : strerror(errno));
		goto out;
	}
	if ((ret = guest_mem_map_file(mem, starts, sizes, m->nr_ram, compressed ? -1 : fd)) < 0)
		goto out;
	/* Lazy (the default): the raw file's pages load when the guest first touches them; nothing is read here. */
	if (!compressed && !verify)
		goto out;
	/* The raw file is read in small pieces: a 32 MiB buffer costs thousands of page faults. */
	if (!(buf = malloc(compressed ? compressBound(MAX_RUN) : CHECK_CHUNK))) {
		ret = err_set(ENOMEM, "--restore: out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < sm->nr_extents; i++) {
		const struct snap_extent *e = &sm->ext[i];
		uint8_t *dst = ram_at(mem, e->off, e->len);
		if (!dst) {
			ret = err_set(EINVAL, "--restore %s: refused: extent %u crosses a RAM region", path, i);
			goto out;
		}
		if (!compressed) {
			/* Checked through reads, so the mapping still loads on first touch. */
			uLong c = crc32(0L, Z_NULL, 0);
			for (uint64_t done = 0; done < e->len; done += CHECK_CHUNK) {
				size_t n = e->len - done < CHECK_CHUNK ? (size_t)(e->len - done) : CHECK_CHUNK;
				if ((ret = pread_all(fd, buf, n, e->file_off + done, path)) < 0)
					goto out;
				c = crc32(c, buf, (uInt)n);
			}
			if ((uint32_t)c != e->crc) {
				ret = err_set(EINVAL, "--restore %s: refused: checksum mismatch in extent %u (corrupt)", path, i);
				goto out;
			}
			continue;
		}
		if ((ret = pread_all(fd, buf, e->file_len, e->file_off, path)) < 0)
			goto out;
		uLongf n = e->len;
		if (uncompress(dst, &n, buf, e->file_len) != Z_OK || n != e->len) {
			ret = err_set(EINVAL, "--restore %s: refused: extent %u does not decompress", path, i);
			goto out;
		}
		if (crc(dst, e->len) != e->crc) {
			ret = err_set(EINVAL, "--restore %s: refused: checksum mismatch in extent %u (corrupt)", path, i);
			goto out;
		}
	}
out:
	free(buf);
	if (ret < 0)
		guest_mem_unmap(mem);
	return ret;
}

/* ---- writing a snapshot ---- */

struct sbuf {
	uint8_t *p;
	size_t len, cap;
};

/* Append a record of len bytes (zeroed, padded to 8); its payload, or NULL (out of memory). */
static void *rec(struct sbuf *b, uint32_t tag, size_t len)
{
	size_t need = sizeof(struct snap_rec) + ((len + 7) & ~(size_t)7);

	if (b->cap - b->len < need) {
		size_t cap = b->cap ? b->cap : 1 << 16;
		while (cap - b->len < need)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p)
			return NULL;
		b->p = p, b->cap = cap;
	}
	struct snap_rec r = { .tag = tag, .len = (uint32_t)len };
	memcpy(b->p + b->len, &r, sizeof(r));
	uint8_t *payload = b->p + b->len + sizeof(r);
	memset(payload, 0, need - sizeof(r));
	b->len += need;
	return payload;
}

static void fill_config(const struct vmm *vmm, struct snap_config *c)
{
	c->mem = vmm->machine.ram_size;
	c->cpus = (uint32_t)vmm->nr_vcpus;
	c->io_engine = (uint32_t)vmm->cfg.io_engine;
	c->nr_disks = (uint32_t)vmm->vdevs.nr_disks;
	c->nr_nics = (uint32_t)vmm->vdevs.nr_nics;
	for (int i = 0; i < vmm->vdevs.nr_disks; i++) {
		const struct vdisk *v = &vmm->vdevs.disks[i];
		struct snap_disk *d = &c->disks[i];
		char id[BLK_ID_BYTES];
		snprintf(d->path, sizeof(d->path), "%s", v->cfg->path);
		/* The id the guest reads (the derived one too): a restore onto another path keeps it. */
		vdevs_disk_id(v->cfg, id);
		memcpy(d->id, id, sizeof(id));
		d->size = v->size;
		d->ro = v->cfg->ro;
		d->direct = v->cfg->direct;
		d->overlay = v->ovl != NULL;
	}
	for (int i = 0; i < vmm->vdevs.nr_nics; i++) {
		const struct vnet *v = &vmm->vdevs.nics[i];
		snprintf(c->nics[i].tap, sizeof(c->nics[i].tap), "%s", v->tap.name);
		memcpy(c->nics[i].mac, v->mac, 6);
	}
}

/* Everything but the header and the memory record, with the devices frozen. */
static int save_state(struct vmm *vmm, struct sbuf *b)
{
	void *p;
	int ret;

	if (!(p = rec(b, SNAP_CONFIG, sizeof(struct snap_config))))
		return -ENOMEM;
	fill_config(vmm, p);
	if (!(p = rec(b, SNAP_VM, vm_state_size())))
		return -ENOMEM;
	if ((ret = vm_state_save(&vmm->vm, p)) < 0)
		return ret;
	for (int i = 0; i < vmm->nr_vcpus; i++) {
		if (!(p = rec(b, SNAP_VCPU, vcpu_state_size())))
			return -ENOMEM;
		if ((ret = vcpu_state_save(&vmm->vcpus[i], p)) < 0)
			return ret;
	}
	if (!(p = rec(b, SNAP_SERIAL, sizeof(struct serial_state))))
		return -ENOMEM;
	serial_save(&vmm->serial, p);
	if (!(p = rec(b, SNAP_CMOS, sizeof(struct cmos_state))))
		return -ENOMEM;
	cmos_save(&vmm->cmos, p);
	if (!(p = rec(b, SNAP_I8042, sizeof(struct i8042_state))))
		return -ENOMEM;
	sysctl_save(&vmm->sysctl, p);
	for (int i = 0; i < vdevs_count(&vmm->vdevs); i++) {
		struct virtio_mmio *m = vdevs_transport(&vmm->vdevs, i);
		if (!m)
			return err_set(EINVAL, "virtio device %d is not set up", i);
		if (!(p = rec(b, SNAP_VIRTIO, sizeof(struct virtio_mmio_state))))
			return -ENOMEM;
		virtio_mmio_save(m, p);
	}
	return 0;
}

/* Is name one a snapshot directory may hold: the files, or a temporary one a killed writer left? */
static bool snapshot_file_name(const char *name, bool *leftover)
{
	static const char *const files[] = { "state", "memory", "memory.z", "workingset" };
	static const char *const tmps[] = { ".state.tmp.", ".memory.tmp.", ".memory.z.tmp.", ".workingset.tmp." };
	char layer[32], layer_tmp[40];

	*leftover = false;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (!strcmp(name, files[i]))
			return true;
	for (int i = 0; i < CFG_MAX_DISKS; i++) {
		snprintf(layer, sizeof(layer), SNAP_LAYER_NAME, i);
		snprintf(layer_tmp, sizeof(layer_tmp), ".%s.tmp.", layer);
		if (!strcmp(name, layer))
			return true;
		if (!strncmp(name, layer_tmp, strlen(layer_tmp)))
			return *leftover = true;
	}
	for (size_t i = 0; i < sizeof(tmps) / sizeof(tmps[0]); i++)
		if (!strncmp(name, tmps[i], strlen(tmps[i])))
			return *leftover = true;
	return false;
}

/*
 * An existing directory must be empty or hold a snapshot: a snapshot never
 * replaces files of some other directory that happen to be called `state`
 * or `memory`. Temporary files a killed writer left are removed (the caller
 * holds the directory's exclusive lock: no writer is using them).
 */
static int check_contents(int dfd, const char *dir)
{
	char buf[4096];
	long n;

	if (lseek(dfd, 0, SEEK_SET) < 0)
		return err_set(errno, "snapshot %s: %s", dir, strerror(errno));
	while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			bool leftover;
			off += d->d_reclen;
			if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
				continue;
			if (!snapshot_file_name(d->d_name, &leftover))
				return err_set(EEXIST, "snapshot %s: holds other files (%.64s): snapshot into a new or "
					       "empty directory, or one that holds a snapshot", dir, d->d_name);
			if (leftover)
				unlinkat(dfd, d->d_name, 0);
		}
	}
	if (n < 0)
		return err_set(errno, "snapshot %s: reading it: %s", dir, strerror(errno));
	return 0;
}

/* Is the last component of path "." or ".." (trailing slashes ignored)? */
static bool dot_last(const char *path, size_t len)
{
	size_t start = len;

	while (start > 0 && path[start - 1] != '/')
		start--;
	return (len - start == 1 && path[start] == '.') ||
	       (len - start == 2 && path[start] == '.' && path[start + 1] == '.');
}

int snapshot_dir_open(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	size_t len = strlen(dir);

	/* Trailing slashes would make open() follow a symbolic link in the directory's place. */
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(path) || dot_last(dir, len))
		return err_set(EINVAL, "snapshot %s: name the directory itself (not ., .., or empty)", dir);
	memcpy(path, dir, len);
	path[len] = '\0';
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return err_set(errno, "snapshot %s: %s", dir, strerror(errno));
	/* O_NOFOLLOW: a symbolic link planted in the directory's place is refused, not followed. */
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		if (e == ELOOP || (e == ENOTDIR && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)))
			return err_set(ELOOP, "snapshot %s: a symbolic link: name the directory itself", dir);
		return err_set(e, "snapshot %s: %s", dir, strerror(e));
	}
	if (fstat(dfd, &st) < 0) {
		int e = errno;
		close(dfd);
		return err_set(e, "snapshot %s: %s", dir, strerror(e));
	}
	if (st.st_uid != geteuid()) {
		close(dfd);
		return err_set(EPERM, "snapshot %s: owned by uid %u, not by microvm's user (uid %u): "
			       "snapshot into a directory of your own", dir, (unsigned)st.st_uid, (unsigned)geteuid());
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		close(dfd);
		return err_set(EPERM, "snapshot %s: writable by others (mode %04o): chmod go-w it, or use a "
			       "directory only you can write", dir, (unsigned)(st.st_mode & 07777));
	}
	/* One snapshot at a time into a directory: two writers would pair one's state with the other's memory. */
	if (flock(dfd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(dfd);
		return err_set(e == EWOULDBLOCK ? EBUSY : e, "snapshot %s: %s", dir,
			       e == EWOULDBLOCK ? "another snapshot is being written into it, or restored from it"
					        : strerror(e));
	}
	int ret = check_contents(dfd, dir);
	if (ret < 0) {
		close(dfd);
		return ret;
	}
	return dfd;
}

/* A new file under a fresh temporary name in dfd (O_EXCL, no link followed, 0600); its name in name. */
static int open_tmp(int dfd, const char *base, char *name, size_t cap)
{
	static unsigned counter;

	for (int tries = 0; tries < 100; tries++) {
		snprintf(name, cap, ".%s.tmp.%ld.%u", base, (long)getpid(),
			 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
		int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			return fd < 0 ? err_set(errno, "creating %s: %s", name, strerror(errno)) : fd;
	}
	return err_set(EEXIST, "creating a temporary %s: every name taken", base);
}

int vmm_snapshot(struct vmm *vmm, const char *dir, bool compress, uint64_t *bytes)
{
	const char *mem_name = compress ? "memory.z" : "memory";
	char mem_tmp[64] = "", state_tmp[64] = "", layer_tmp[CFG_MAX_DISKS][64] = { "" };
	struct sbuf b = { 0 };
	struct snap_extent *ext = NULL;
	uint32_t n_ext = 0;
	uint64_t total = 0, file_size = 0;
	int dfd, mfd = -1, fd = -1, ret;

	if ((dfd = snapshot_dir_open(dir)) < 0)
		return dfd;
	/*
	 * A `state` left from an earlier snapshot here must not describe the
	 * memory written now. Files are never written in place: VMs restored from
	 * this directory map its memory file, and truncating or rewriting it would
	 * change their RAM under them. New files get temporary names and are
	 * renamed over the old ones (whose mappings keep the old data).
	 */
	/* A working set recorded from the old snapshot is stale (its CRC would say so too). */
	if ((unlinkat(dfd, "state", 0) < 0 && errno != ENOENT) ||
	    (unlinkat(dfd, "workingset", 0) < 0 && errno != ENOENT) || fsync(dfd) < 0) {
		ret = err_set(errno, "snapshot %s/state: %s", dir, strerror(errno));
		goto out;
	}
	if (!rec(&b, 0, SNAP_HEADER_SIZE - sizeof(struct snap_rec))) { /* room for the header */
		ret = err_set(ENOMEM, "snapshot: out of memory");
		goto out;
	}
	if ((mfd = open_tmp(dfd, mem_name, mem_tmp, sizeof(mem_tmp))) < 0) {
		ret = err_prefix(-mfd, "snapshot %s", dir);
		mem_tmp[0] = '\0';
		goto out;
	}
	for (int i = 0; i < vmm->mem.nr; i++)
		total += vmm->mem.region[i].size;
	/* Nothing moves in guest memory or the transports from here to the thaw. */
	ret = vdevs_freeze(&vmm->vdevs);
	if (ret == 0 && (ret = save_state(vmm, &b)) == -ENOMEM)
		ret = err_set(ENOMEM, "out of memory");
	if (ret == 0)
		ret = snapshot_plan_extents(&vmm->mem, &ext, &n_ext);
	if (ret == 0)
		ret = write_memory(mfd, mem_tmp, &vmm->mem, compress, ext, n_ext, total, &file_size);
	/* Each overlay as the freeze flushed it: the layer the restored guest's disk continues from. */
	for (int i = 0; ret == 0 && i < vmm->vdevs.nr_disks; i++) {
		char name[32];
		if (!vmm->vdevs.disks[i].ovl)
			continue;
		snprintf(name, sizeof(name), SNAP_LAYER_NAME, i);
		int lfd = open_tmp(dfd, name, layer_tmp[i], sizeof(layer_tmp[i]));
		if (lfd < 0) {
			layer_tmp[i][0] = '\0';
			ret = lfd;
			break;
		}
		if ((ret = overlay_save(vmm->vdevs.disks[i].ovl, lfd)) < 0)
			err_prefix(-ret, "--disk %s: overlay", vmm->vdevs.disks[i].cfg->path);
		close(lfd);
	}
	vdevs_thaw(&vmm->vdevs);
	if (ret < 0) {
		err_prefix(-ret, "snapshot %s", dir);
		goto out;
	}

	struct snap_memory *sm = rec(&b, SNAP_MEMORY, sizeof(*sm) + (size_t)n_ext * sizeof(*ext));
	if (!sm) {
		ret = err_set(ENOMEM, "snapshot: out of memory");
		goto out;
	}
	sm->total = total;
	sm->file_size = file_size;
	sm->nr_extents = n_ext;
	sm->compressed = compress;
	if (n_ext)
		memcpy(sm->ext, ext, (size_t)n_ext * sizeof(*ext));

	snapshot_seal(b.p, b.len, compress ? SNAP_FLAG_COMPRESSED : 0);

	if ((fd = open_tmp(dfd, "state", state_tmp, sizeof(state_tmp))) < 0) {
		ret = err_prefix(-fd, "snapshot %s", dir);
		state_tmp[0] = '\0';
		goto out;
	}
	if ((ret = pwrite_all(fd, b.p, b.len, 0, state_tmp)) < 0) {
		err_prefix(-ret, "snapshot %s", dir);
		goto out;
	}
	/* Memory and layers first, state last: a complete `state` always describes the files beside it. */
	if (fsync(fd) < 0 || renameat(dfd, mem_tmp, dfd, mem_name) < 0) {
		ret = err_set(errno, "snapshot %s: %s", dir, strerror(errno));
		goto out;
	}
	mem_tmp[0] = '\0';
	for (int i = 0; i < CFG_MAX_DISKS; i++) {
		char name[32];
		snprintf(name, sizeof(name), SNAP_LAYER_NAME, i);
		if (layer_tmp[i][0] && renameat(dfd, layer_tmp[i], dfd, name) < 0) {
			ret = err_set(errno, "snapshot %s/%s: %s", dir, name, strerror(errno));
			goto out;
		}
		layer_tmp[i][0] = '\0';
	}
	if (renameat(dfd, state_tmp, dfd, "state") < 0 || fsync(dfd) < 0) {
		ret = err_set(errno, "snapshot %s: %s", dir, strerror(errno));
		goto out;
	}
	state_tmp[0] = '\0';
	/* The other form of memory, and layers of disks not on an overlay now, from an earlier snapshot here, are stale. */
	unlinkat(dfd, compress ? "memory" : "memory.z", 0);
	for (int i = 0; i < CFG_MAX_DISKS; i++) {
		char name[32];
		snprintf(name, sizeof(name), SNAP_LAYER_NAME, i);
		if (i >= vmm->vdevs.nr_disks || !vmm->vdevs.disks[i].ovl)
			unlinkat(dfd, name, 0);
	}
	*bytes = b.len;
	for (uint32_t i = 0; i < n_ext; i++)
		*bytes += ext[i].file_len;
out:
	if (mem_tmp[0])
		unlinkat(dfd, mem_tmp, 0);
	if (state_tmp[0])
		unlinkat(dfd, state_tmp, 0);
	for (int i = 0; i < CFG_MAX_DISKS; i++)
		if (layer_tmp[i][0])
			unlinkat(dfd, layer_tmp[i], 0);
	if (mfd >= 0)
		close(mfd);
	if (fd >= 0)
		close(fd);
	close(dfd);
	free(b.p);
	free(ext);
	return ret;
}

/* ---- the working set's file ---- */

int snapshot_save_working_set(const char *dir, uint32_t state_crc, const uint8_t *buf, size_t len)
{
	char tmp[64] = "";
	struct snap_header h;
	struct stat st;
	int fd = -1, sfd = -1, ret = 0;

	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(errno, "working set: %s: %s", dir, strerror(errno));
	/* The rules a restore trusted the directory under, still true (docs/snapshot.md). */
	if (fstat(dfd, &st) < 0 || (st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		ret = err_set(EPERM, "working set: %s: refused: the directory must belong to you or root and be "
			      "writable by no one else", dir);
		goto out;
	}
	if (flock(dfd, LOCK_SH | LOCK_NB) < 0) {
		ret = err_set(errno == EWOULDBLOCK ? EBUSY : errno, "working set: %s: %s", dir,
			      errno == EWOULDBLOCK ? "a snapshot is being written into it" : strerror(errno));
		goto out;
	}
	/* The state this VM was restored from, not one written there since. */
	if ((sfd = open_regular(dfd, dir, "state")) < 0) {
		ret = err_prefix(-sfd, "working set");
		goto out;
	}
	if (pread_all(sfd, &h, sizeof(h), 0, "state") < 0 || memcmp(h.magic, SNAP_MAGIC, 8) ||
	    h.header_crc != crc(&h, offsetof(struct snap_header, header_crc)) || h.body_crc != state_crc) {
		ret = err_set(ESTALE, "working set: %s: not saved: the snapshot there is no longer the one this VM "
			      "was restored from", dir);
		goto out;
	}
	fd = open_tmp(dfd, "workingset", tmp, sizeof(tmp));
	if (fd < 0) {
		ret = err_set(-fd, "working set: %s: cannot create a file in it: %s%s", dir, strerror(-fd),
			      fd == -EACCES || fd == -EROFS ? " (record as the directory's owner, or copy the snapshot "
							      "into a directory you can write)" : "");
		tmp[0] = '\0';
		goto out;
	}
	if ((ret = pwrite_all(fd, buf, len, 0, tmp)) < 0) {
		err_prefix(-ret, "working set: %s", dir);
		goto out;
	}
	if (fsync(fd) < 0 || renameat(dfd, tmp, dfd, "workingset") < 0 || fsync(dfd) < 0) {
		ret = err_set(errno, "working set: %s: %s", dir, strerror(errno));
		goto out;
	}
	tmp[0] = '\0';
out:
	if (tmp[0])
		unlinkat(dfd, tmp, 0);
	if (fd >= 0)
		close(fd);
	if (sfd >= 0)
		close(sfd);
	close(dfd);
	return ret;
}
