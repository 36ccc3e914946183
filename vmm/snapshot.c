/* snapshot.c - snapshot a paused VM, read and check a snapshot, map its memory (see snapshot.h). */
#include "vmm/snapshot.h"
#include "driver/state.h"
#include "vmm/err.h"
#include "vmm/log.h"
#include "vmm/readfile.h"
#include "vmm/stats.h"
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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
	if (c->cpus < 1 || c->cpus > MV_MAX_VCPUS || c->nr_disks > CLI_MAX_DISKS ||
	    c->nr_nics > CLI_MAX_NICS || c->io_engine > IO_ENGINE_SYNC || c->mem == 0 || c->mem % PAGE)
		return err_set(EINVAL, "configuration record out of range");
	for (uint32_t i = 0; i < c->nr_disks; i++)
		if (!str_ok(c->disks[i].path, sizeof(c->disks[i].path), false) ||
		    !str_ok(c->disks[i].id, sizeof(c->disks[i].id), true) || c->disks[i].size % 512)
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
	if (h.version != SNAP_VERSION)
		return err_set(EINVAL, "snapshot format version %u; this microvm reads version %u", h.version,
			       SNAP_VERSION);
	if (h.header_size != SNAP_HEADER_SIZE || (h.flags & ~SNAP_FLAG_COMPRESSED))
		return err_set(EINVAL, "header malformed");
	if (h.body_len != len - sizeof(h))
		return err_set(EINVAL, "state is %zu bytes, its header says %llu (truncated?)", len,
			       (unsigned long long)(h.body_len + sizeof(h)));
	if (h.body_crc != crc(buf + sizeof(h), len - sizeof(h)))
		return err_set(EINVAL, "checksum mismatch (corrupt)");
	s->flags = h.flags;

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
			if (s->nr_virtio >= CLI_MAX_DISKS + CLI_MAX_NICS)
				return err_set(EINVAL, "more than %d virtio device records", CLI_MAX_DISKS + CLI_MAX_NICS);
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

int snapshot_read(const char *dir, struct snapshot *s)
{
	char path[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	memset(s, 0, sizeof(*s));
	if ((size_t)snprintf(path, sizeof(path), "%s/state", dir) >= sizeof(path))
		return err_set(ENAMETOOLONG, "--restore %s: path too long", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		struct stat st;
		if (e == ENOENT && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
			return err_set(e, "--restore %s: no state file in it (not a snapshot, or an unfinished one)", dir);
		return err_set(e, "--restore %s: %s", dir, strerror(e));
	}
	ret = read_whole(fd, SNAP_MAX_STATE, &buf, &len);
	close(fd);
	if (ret < 0)
		return err_prefix(-ret, "--restore %s/state", dir);
	/* read_whole's buffer comes from malloc: aligned for the records. */
	if ((ret = snapshot_parse(buf, len, s)) < 0) {
		free(buf);
		memset(s, 0, sizeof(*s));
		return err_prefix(-ret, "--restore %s: refused", dir);
	}
	s->buf = buf;
	s->len = len;
	return 0;
}

void snapshot_free(struct snapshot *s)
{
	free(s->buf);
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

/* Write the non-zero pages of RAM to dir/memory (sparse) or dir/memory.z (deflated). */
static int write_memory(int dfd, const struct guest_mem *mem, bool compress, struct ext_list *out,
			uint64_t *total, uint64_t *file_size)
{
	const char *name = compress ? "memory.z" : "memory";
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint64_t base = 0, fpos = 0;
	uint8_t *zbuf = NULL;
	int ret = 0;

	if (fd < 0)
		return err_set(errno, "creating %s: %s", name, strerror(errno));
	for (int i = 0; i < mem->nr; i++)
		*total += mem->region[i].size;
	if (!compress && ftruncate(fd, (off_t)*total) < 0) {
		ret = err_set(errno, "sizing %s: %s", name, strerror(errno));
		goto out;
	}
	if (compress && !(zbuf = malloc(compressBound(MAX_RUN)))) {
		ret = err_set(ENOMEM, "out of memory for compression");
		goto out;
	}
	for (int i = 0; i < mem->nr; i++) {
		const struct guest_region *r = &mem->region[i];
		for (uint64_t p = 0; p < r->size;) {
			if (page_zero(r->host + p)) {
				p += PAGE;
				continue;
			}
			uint64_t start = p;
			while (p < r->size && p - start < MAX_RUN && !page_zero(r->host + p))
				p += PAGE;
			if (out->n == out->cap) {
				if (out->cap >= SNAP_MAX_EXTENTS) {
					ret = err_set(E2BIG, "guest memory has more than %u extents", SNAP_MAX_EXTENTS);
					goto out;
				}
				uint32_t cap = out->cap ? out->cap * 2 : 256;
				struct snap_extent *e = realloc(out->e, cap * sizeof(*e));
				if (!e) {
					ret = err_set(ENOMEM, "out of memory for the extent list");
					goto out;
				}
				out->e = e, out->cap = cap;
			}
			struct snap_extent *e = &out->e[out->n++];
			const uint8_t *data = r->host + start;
			*e = (struct snap_extent){ .off = base + start, .len = p - start };
			e->crc = crc(data, e->len);
			if (compress) {
				uLongf zlen = compressBound(MAX_RUN);
				if (compress2(zbuf, &zlen, data, e->len, 1) != Z_OK) {
					ret = err_set(EIO, "compressing guest memory failed");
					goto out;
				}
				e->file_off = fpos, e->file_len = zlen;
				ret = pwrite_all(fd, zbuf, zlen, fpos, name);
				fpos += zlen;
			} else {
				e->file_off = e->off, e->file_len = e->len;
				ret = pwrite_all(fd, data, e->len, e->off, name);
			}
			if (ret < 0)
				goto out;
		}
		base += r->size;
	}
	*file_size = compress ? fpos : *total;
	if (fsync(fd) < 0)
		ret = err_set(errno, "syncing %s: %s", name, strerror(errno));
out:
	free(zbuf);
	close(fd);
	return ret;
}

int snapshot_map_memory(const char *dir, const struct snapshot *s, const struct machine *m,
			struct guest_mem *mem)
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
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "--restore %s: refused: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != sm->file_size) {
		ret = err_set(EINVAL, "--restore %s: refused: %llu bytes, the state says %llu (truncated or replaced)",
			      path, (unsigned long long)st.st_size, (unsigned long long)sm->file_size);
		goto out;
	}
	if ((ret = guest_mem_map_file(mem, starts, sizes, m->nr_ram, compressed ? -1 : fd)) < 0)
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
	close(fd);
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
		snprintf(d->path, sizeof(d->path), "%s", v->cfg->path);
		snprintf(d->id, sizeof(d->id), "%s", v->cfg->id);
		d->size = v->size;
		d->ro = v->cfg->ro;
		d->direct = v->cfg->direct;
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

int vmm_snapshot(struct vmm *vmm, const char *dir, bool compress, uint64_t *bytes)
{
	struct sbuf b = { 0 };
	struct ext_list ext = { 0 };
	uint64_t total = 0, file_size = 0;
	int dfd, fd = -1, ret;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err_set(errno, "snapshot %s: %s", dir, strerror(errno));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set(errno, "snapshot %s: %s", dir, strerror(errno));
	/* A `state` left from an earlier snapshot here must not describe the memory written now. */
	if (unlinkat(dfd, "state", 0) < 0 && errno != ENOENT) {
		ret = err_set(errno, "snapshot %s/state: %s", dir, strerror(errno));
		goto out;
	}
	if (!rec(&b, 0, SNAP_HEADER_SIZE - sizeof(struct snap_rec))) { /* room for the header */
		ret = err_set(ENOMEM, "snapshot: out of memory");
		goto out;
	}
	/* Nothing moves in guest memory or the transports from here to the thaw. */
	ret = vdevs_freeze(&vmm->vdevs);
	if (ret < 0)
		err_prefix(-ret, "snapshot %s", dir);
	else
		ret = save_state(vmm, &b);
	if (ret == -ENOMEM)
		ret = err_set(ENOMEM, "snapshot: out of memory");
	if (ret == 0)
		ret = write_memory(dfd, &vmm->mem, compress, &ext, &total, &file_size);
	vdevs_thaw(&vmm->vdevs);
	if (ret < 0)
		goto out;

	struct snap_memory *sm = rec(&b, SNAP_MEMORY, sizeof(*sm) + (size_t)ext.n * sizeof(*ext.e));
	if (!sm) {
		ret = err_set(ENOMEM, "snapshot: out of memory");
		goto out;
	}
	sm->total = total;
	sm->file_size = file_size;
	sm->nr_extents = ext.n;
	sm->compressed = compress;
	if (ext.n)
		memcpy(sm->ext, ext.e, (size_t)ext.n * sizeof(*ext.e));

	snapshot_seal(b.p, b.len, compress ? SNAP_FLAG_COMPRESSED : 0);

	fd = openat(dfd, "state.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = err_set(errno, "snapshot %s/state.tmp: %s", dir, strerror(errno));
		goto out;
	}
	if ((ret = pwrite_all(fd, b.p, b.len, 0, "state.tmp")) < 0)
		goto out;
	if (fsync(fd) < 0 || renameat(dfd, "state.tmp", dfd, "state") < 0 || fsync(dfd) < 0) {
		ret = err_set(errno, "snapshot %s/state: %s", dir, strerror(errno));
		goto out;
	}
	/* The other form of memory, from an earlier snapshot here, is stale now. */
	unlinkat(dfd, compress ? "memory" : "memory.z", 0);
	*bytes = b.len;
	for (uint32_t i = 0; i < ext.n; i++)
		*bytes += ext.e[i].file_len;
out:
	if (fd >= 0)
		close(fd);
	close(dfd);
	free(b.p);
	free(ext.e);
	return ret;
}
