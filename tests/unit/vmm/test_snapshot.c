/* test_snapshot.c - the snapshot state file's parser: a good image, and every way a bad one is refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver/state.h"
#include "base/err.h"
#include "base/guest_mem.h"
#include "vmm/snapshot.h"

#define MEM (64ULL << 20)

static uint8_t *img;
static size_t img_len, img_cap;

static void *add(uint32_t tag, size_t len)
{
	size_t need = sizeof(struct snap_rec) + ((len + 7) & ~(size_t)7);
	if (img_len + need > img_cap) {
		img_cap = (img_len + need) * 2;
		img = realloc(img, img_cap);
		cr_assert_not_null(img);
	}
	struct snap_rec r = { .tag = tag, .len = (uint32_t)len };
	memcpy(img + img_len, &r, sizeof(r));
	void *p = img + img_len + sizeof(r);
	memset(p, 0, need - sizeof(r));
	img_len += need;
	return p;
}

/* A good image: one vCPU, one disk, two memory extents; the caller may change it, then seal. */
static struct snap_config *cfg;
static struct snap_memory *mem;

static void build(uint32_t nr_ext)
{
	free(img);
	img = NULL;
	img_len = img_cap = 0;
	add(0, SNAP_HEADER_SIZE - sizeof(struct snap_rec));
	add(SNAP_VM, vm_state_size());
	add(SNAP_VCPU, vcpu_state_size());
	add(SNAP_SERIAL, sizeof(struct serial_state));
	add(SNAP_CMOS, sizeof(struct cmos_state));
	add(SNAP_I8042, sizeof(struct i8042_state));
	add(SNAP_VIRTIO, sizeof(struct virtio_mmio_state));
	size_t off_mem = img_len + sizeof(struct snap_rec);
	add(SNAP_MEMORY, sizeof(struct snap_memory) + nr_ext * sizeof(struct snap_extent));
	size_t off_cfg = img_len + sizeof(struct snap_rec);
	add(SNAP_CONFIG, sizeof(struct snap_config));
	cfg = (void *)(img + off_cfg);
	mem = (void *)(img + off_mem);
	cfg->mem = MEM;
	cfg->cpus = 1;
	cfg->nr_disks = 1;
	strcpy(cfg->disks[0].path, "/srv/root.ext4");
	cfg->disks[0].size = 1 << 20;
	mem->total = MEM;
	mem->file_size = MEM;
	mem->nr_extents = nr_ext;
	for (uint32_t i = 0; i < nr_ext; i++) {
		mem->ext[i].off = mem->ext[i].file_off = (uint64_t)i * 2 * 4096;
		mem->ext[i].len = mem->ext[i].file_len = 4096;
	}
}

static int parse(void)
{
	struct snapshot s;
	snapshot_seal(img, img_len, mem->compressed ? SNAP_FLAG_COMPRESSED : 0);
	return snapshot_parse(img, img_len, &s);
}

static void refused(const char *msg)
{
	err_clear();
	cr_assert_eq(parse(), -EINVAL, "accepted; wanted '%s'", msg);
	cr_assert(strstr(err_msg(), msg), "message '%s', wanted '%s'", err_msg(), msg);
}

Test(snapshot, good_image_parses)
{
	struct snapshot s;

	build(2);
	snapshot_seal(img, img_len, 0);
	cr_assert_eq(snapshot_parse(img, img_len, &s), 0, "%s", err_msg());
	cr_assert_eq(s.nr_vcpus, 1);
	cr_assert_eq(s.nr_virtio, 1);
	cr_assert_eq(s.config->mem, MEM);
	cr_assert_str_eq(s.config->disks[0].path, "/srv/root.ext4");
	cr_assert_eq(s.memory->nr_extents, 2);
	cr_assert_eq(s.vcpu_len[0], vcpu_state_size());
	cr_assert_eq(s.vm_len, vm_state_size());
}

Test(snapshot, every_truncation_is_refused)
{
	struct snapshot s;

	build(2);
	snapshot_seal(img, img_len, 0);
	for (size_t len = 0; len < img_len; len++)
		cr_assert_eq(snapshot_parse(img, len, &s), -EINVAL, "a state cut at %zu bytes was accepted", len);
}

Test(snapshot, flipped_bits_are_refused)
{
	struct snapshot s;

	build(1);
	snapshot_seal(img, img_len, 0);
	for (size_t i = 0; i < img_len; i += 61) {
		img[i] ^= 0x10;
		cr_assert_eq(snapshot_parse(img, img_len, &s), -EINVAL, "a flipped bit at %zu was accepted", i);
		img[i] ^= 0x10;
	}
	cr_assert_eq(snapshot_parse(img, img_len, &s), 0);
}

Test(snapshot, header_problems)
{
	struct snapshot s;

	build(0);
	snapshot_seal(img, img_len, 0);
	memcpy(img, "MVMSNAQ\n", 8);
	cr_assert_eq(snapshot_parse(img, img_len, &s), -EINVAL);
	cr_assert(strstr(err_msg(), "not a microvm snapshot"));
	build(0);
	snapshot_seal(img, img_len, 0);
	img[60] ^= 1;
	cr_assert_eq(snapshot_parse(img, img_len, &s), -EINVAL);
	cr_assert(strstr(err_msg(), "header checksum mismatch"));
	build(0);
	snapshot_seal(img, img_len, 0);
	img[200] ^= 1;
	cr_assert_eq(snapshot_parse(img, img_len, &s), -EINVAL);
	cr_assert(strstr(err_msg(), "checksum mismatch (corrupt)"));
	build(0);
	cr_assert_eq(snapshot_parse(img, img_len - 8, &s), -EINVAL);
	build(0);
	snapshot_seal(img, img_len, 4); /* an unknown flag */
	cr_assert_eq(snapshot_parse(img, img_len, &s), -EINVAL);
}

Test(snapshot, other_version_is_named)
{
	struct snapshot s;

	build(0);
	snapshot_seal(img, img_len, 0);
	uint32_t v = 3;
	memcpy(img + 8, &v, 4);
	/* The header CRC again, so only the version is wrong. */
	uint32_t c = (uint32_t)crc32(crc32(0, NULL, 0), img, 60);
	memcpy(img + 60, &c, 4);
	cr_assert_eq(snapshot_parse(img, img_len, &s), -EINVAL);
	cr_assert_str_eq(err_msg(), "snapshot format version 3; this microvm reads versions 1 to 2");
	/* Version 1 (no overlays: the same records) is still read. */
	v = 1;
	memcpy(img + 8, &v, 4);
	c = (uint32_t)crc32(crc32(0, NULL, 0), img, 60);
	memcpy(img + 60, &c, 4);
	cr_assert_eq(snapshot_parse(img, img_len, &s), 0, "%s", err_msg());
	v = 0;
	memcpy(img + 8, &v, 4);
	c = (uint32_t)crc32(crc32(0, NULL, 0), img, 60);
	memcpy(img + 60, &c, 4);
	cr_assert_eq(snapshot_parse(img, img_len, &s), -EINVAL);
}

Test(snapshot, records)
{
	build(0);
	add(SNAP_CMOS, sizeof(struct cmos_state));
	refused("record type 5 twice");
	build(0);
	add(99, 8);
	refused("unknown record type 99");
	build(0);
	add(SNAP_VCPU, vcpu_state_size());
	refused("2 vCPU and 1 device records for 1 vCPUs and 1 devices");
	build(0);
	add(SNAP_VIRTIO, sizeof(struct virtio_mmio_state) - 8);
	char want[80];
	snprintf(want, sizeof(want), "record type 7 is %zu bytes, expected %zu", sizeof(struct virtio_mmio_state) - 8,
		 sizeof(struct virtio_mmio_state));
	refused(want);
	build(0);
	img_len -= sizeof(struct snap_config) + sizeof(struct snap_rec); /* no config */
	refused("a record is missing");
	build(0);
	struct snap_rec *last = (void *)(img + img_len - sizeof(struct snap_config) - sizeof(struct snap_rec));
	last->len = 0x7fffffff;
	refused("runs past the end");
}

Test(snapshot, config_checks)
{
	build(0);
	cfg->cpus = 0;
	refused("configuration record out of range");
	build(0);
	cfg->nr_disks = CFG_MAX_DISKS + 1;
	refused("configuration record out of range");
	build(0);
	memset(cfg->disks[0].path, 'a', sizeof(cfg->disks[0].path));
	refused("disk 0 malformed");
	build(0);
	cfg->disks[0].size = 1000;
	refused("disk 0 malformed");
	build(0);
	cfg->disks[0].overlay = 2;
	refused("disk 0 malformed");
	build(0);
	cfg->disks[0].overlay = 1;
	cfg->disks[0].ro = 1;          /* a read-only disk on an overlay: no writer made that */
	refused("disk 0 malformed");
	build(0);
	cfg->nr_nics = 1; /* its tap name is empty */
	refused("NIC 0 malformed");
	build(0);
	cfg->mem = MEM * 2;
	refused("memory record for 67108864 bytes, configuration 134217728");
}

Test(snapshot, extent_checks)
{
	build(2);
	mem->ext[1].off = mem->ext[1].file_off = 0; /* overlaps extent 0 */
	refused("extent 1 out of order or out of range");
	build(1);
	mem->ext[0].off = mem->ext[0].file_off = MEM;
	refused("extent 0 out of order or out of range");
	build(1);
	mem->ext[0].len = mem->ext[0].file_len = 100;
	refused("extent 0");
	build(1);
	mem->ext[0].file_off = 8192; /* raw: must equal off */
	refused("extent 0");
	build(1);
	mem->file_size = MEM / 2;
	refused("memory record: file size");
	build(1);
	mem->nr_extents = 5; /* more than the record holds */
	refused("memory record malformed");
	build(1);
	mem->compressed = 1;  /* sealed with the flag: compressed extents may sit anywhere in the file */
	mem->file_size = 4096;
	mem->ext[0].file_off = 0;
	mem->ext[0].file_len = 4096;
	cr_assert_eq(parse(), 0, "%s", err_msg());
	mem->ext[0].file_len = 4097;
	refused("extent 0");
	/* A deflated extent larger than any the writer makes (the restore reads it into a bounded buffer). */
	build(1);
	mem->compressed = 1;
	mem->file_size = 1ULL << 30;
	mem->ext[0].file_off = 0;
	mem->ext[0].file_len = 1ULL << 30;
	refused("extent 0");
}

/* ---- which extents of RAM a snapshot saves (snapshot_plan_extents) ---- */

#define PG 4096ULL
#define RUN_MAX (32ULL << 20)

static bool zero_page(const uint8_t *p)
{
	static const uint8_t z[PG];
	return !memcmp(p, z, PG);
}

/* The plan's rules, checked against the RAM page by page. */
static void check_plan(const struct guest_mem *m, const struct snap_extent *e, uint32_t n)
{
	uint64_t base = 0, k = 0, end = 0;

	for (int i = 0; i < m->nr; i++) {
		const struct guest_region *r = &m->region[i];
		uint64_t zrun = 0;
		for (uint64_t p = 0; p < r->size; p += PG) {
			uint64_t off = base + p;
			while (k < n && e[k].off + e[k].len <= off)
				k++;
			bool in = k < n && e[k].off <= off;
			bool z = zero_page(r->host + p);
			if (!z)
				cr_assert(in, "non-zero page at %#llx is not saved", (unsigned long long)off);
			if (in && e[k].off == off)
				cr_assert(!z, "extent %llu starts with a zero page", (unsigned long long)k);
			zrun = in && z ? zrun + PG : 0;
			cr_assert_lt(zrun, SNAP_HOLE_MIN, "a zero run of %llu bytes saved at %#llx",
				     (unsigned long long)zrun, (unsigned long long)off);
		}
		base += r->size;
	}
	for (uint32_t i = 0; i < n; i++) {
		cr_assert(e[i].off % PG == 0 && e[i].len % PG == 0 && e[i].len > 0 && e[i].len <= RUN_MAX);
		cr_assert_geq(e[i].off, end, "extents in order");
		end = e[i].off + e[i].len;
	}
}

/* Two regions, as the machine has above 3 GiB: 3 MiB + 5 MiB here, filled by fill(). */
static void plan_small(void (*fill)(uint8_t *ram, uint64_t size), uint32_t *n_out)
{
	uint64_t size = 8ULL << 20;
	uint8_t *ram = aligned_alloc(PG, size);
	cr_assert_not_null(ram);
	memset(ram, 0, size);
	fill(ram, size);
	struct guest_mem m = { .nr = 2 };
	m.region[0] = (struct guest_region){ .gpa = 0, .size = 3ULL << 20, .host = ram };
	m.region[1] = (struct guest_region){ .gpa = 4ULL << 30, .size = 5ULL << 20, .host = ram + (3ULL << 20) };
	struct snap_extent *e = NULL;
	uint32_t n = 0;
	cr_assert_eq(snapshot_plan_extents(&m, &e, &n), 0, "%s", err_msg());
	check_plan(&m, e, n);
	for (uint32_t i = 0; i < n; i++)
		cr_assert(e[i].off >= 3ULL << 20 || e[i].off + e[i].len <= 3ULL << 20, "no extent crosses a region");
	*n_out = n;
	free(e);
	free(ram);
}

static void fill_random(uint8_t *ram, uint64_t size)
{
	uint64_t x = 88172645463325252ULL;
	for (uint64_t p = 0; p < size; p += PG) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* Runs of data and holes of every length, some over 1 MiB. */
		if ((x >> 40) % 97 < 20 || ((p >> 20) % 3 == 1 && (x >> 20) % 5))
			continue;
		if ((x >> 8) % 4 == 0)
			ram[p + (x >> 32) % PG] = (uint8_t)(x | 1);
	}
}

static void fill_alternate(uint8_t *ram, uint64_t size)
{
	for (uint64_t p = 0; p < size; p += 2 * PG)
		ram[p + 7] = 1;
}

static void fill_sparse(uint8_t *ram, uint64_t size)
{
	/* One page of data, then a hole of exactly SNAP_HOLE_MIN: each page its own extent. */
	for (uint64_t p = 0; p < size; p += SNAP_HOLE_MIN + PG)
		ram[p] = 1;
}

static void fill_nothing(uint8_t *ram, uint64_t size)
{
	(void)ram, (void)size;
}

Test(snapshot_plan, rules_hold_on_any_pattern)
{
	uint32_t n;

	plan_small(fill_random, &n);
	cr_assert_gt(n, 1);
	plan_small(fill_alternate, &n);
	cr_assert_eq(n, 2, "alternating pages: one extent per region (got %u)", n);
	plan_small(fill_sparse, &n);
	cr_assert_eq(n, 8, "holes of SNAP_HOLE_MIN stay holes (got %u)", n);
	plan_small(fill_nothing, &n);
	cr_assert_eq(n, 0);
}

/*
 * A 9 GiB guest whose pages alternate between data and zeroes (the worst
 * case for a plan without merged holes: 2^20 + 2^17 extents, more than a
 * state file may hold). The RAM is one 2 MiB memfd of that pattern mapped
 * 4608 times, so the test needs 2 MiB of memory, not 4.5 GiB.
 */
Test(snapshot_plan, nine_gib_of_alternating_pages, .timeout = 120)
{
	const uint64_t chunk = 2ULL << 20, size = 9ULL << 30, low = 3ULL << 30;
	int fd = memfd_create("pattern", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)chunk), 0);
	uint8_t *pat = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(pat, MAP_FAILED);
	fill_alternate(pat, chunk);
	uint8_t *ram = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(ram, MAP_FAILED);
	for (uint64_t off = 0; off < size; off += chunk)
		cr_assert_neq(mmap(ram + off, chunk, PROT_READ, MAP_SHARED | MAP_FIXED, fd, (off_t)0), MAP_FAILED);
	struct guest_mem m = { .nr = 2 };
	m.region[0] = (struct guest_region){ .gpa = 0, .size = low, .host = ram };
	m.region[1] = (struct guest_region){ .gpa = 4ULL << 30, .size = size - low, .host = ram + low };
	struct snap_extent *e = NULL;
	uint32_t n = 0;
	err_clear();
	cr_assert_eq(snapshot_plan_extents(&m, &e, &n), 0, "refused: %s", err_msg());
	/* Every 32 MiB of RAM is one extent: the holes between pages are saved as data. */
	cr_assert_eq(n, size / RUN_MAX, "%u extents", n);
	uint64_t covered = 0;
	for (uint32_t i = 0; i < n; i++)
		covered += e[i].len;
	/* An extent never ends with a zero page: each leaves its last (odd, zero) page out. */
	cr_assert_eq(covered, size - n * PG);
	free(e);
	munmap(ram, size);
	munmap(pat, chunk);
	close(fd);
}

/* ---- the directory a snapshot is written into (snapshot_dir_open) ---- */

Test(snapshot_dir, made_0700_and_locked)
{
	char base[] = "/tmp/microvm-snapdir-XXXXXX", dir[64];
	struct stat st;

	cr_assert_not_null(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/new", base);
	int fd = snapshot_dir_open(dir);
	cr_assert_geq(fd, 0, "%s", err_msg());
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	/* A second writer is refused while the first holds it. */
	err_clear();
	cr_assert_eq(snapshot_dir_open(dir), -EBUSY);
	cr_assert(strstr(err_msg(), "another snapshot is being written"), "%s", err_msg());
	close(fd);
	fd = snapshot_dir_open(dir);
	cr_assert_geq(fd, 0, "free again once the first is done: %s", err_msg());
	close(fd);
	rmdir(dir);
	rmdir(base);
}

Test(snapshot_dir, others_may_not_write_it)
{
	char base[] = "/tmp/microvm-snapdir-XXXXXX", dir[64], link[64];

	cr_assert_not_null(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/d", base);
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_eq(chmod(dir, 0777), 0);
	err_clear();
	cr_assert_eq(snapshot_dir_open(dir), -EPERM);
	cr_assert(strstr(err_msg(), "writable by others (mode 0777)"), "%s", err_msg());
	cr_assert_eq(chmod(dir, 0720), 0);
	cr_assert_eq(snapshot_dir_open(dir), -EPERM, "group-writable is refused too");
	cr_assert_eq(chmod(dir, 0755), 0);
	int fd = snapshot_dir_open(dir);
	cr_assert_geq(fd, 0, "readable by others is fine: %s", err_msg());
	close(fd);

	/* A symbolic link in the directory's place is refused, not followed. */
	snprintf(link, sizeof(link), "%s/l", base);
	cr_assert_eq(symlink(dir, link), 0);
	err_clear();
	cr_assert_eq(snapshot_dir_open(link), -ELOOP);
	cr_assert(strstr(err_msg(), "a symbolic link"), "%s", err_msg());
	char link_slash[80];
	snprintf(link_slash, sizeof(link_slash), "%s/", link);
	cr_assert_eq(snapshot_dir_open(link_slash), -ELOOP, "a trailing / does not follow the link");

	/* Owned by someone else (root only: chown). */
	if (geteuid() == 0) {
		cr_assert_eq(chown(dir, 65534, 65534), 0);
		err_clear();
		cr_assert_eq(snapshot_dir_open(dir), -EPERM);
		cr_assert(strstr(err_msg(), "owned by uid 65534"), "%s", err_msg());
	}
	unlink(link);
	rmdir(dir);
	rmdir(base);
}

Test(snapshot_dir, only_empty_or_a_snapshot)
{
	char base[] = "/tmp/microvm-snapdir-XXXXXX", dir[64], f[96], slash[80];

	cr_assert_not_null(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/d", base);
	cr_assert_eq(mkdir(dir, 0700), 0);
	/* A snapshot's files, and what a killed writer left (removed). */
	const char *ok[] = { "state", "memory", "memory.z", "workingset", ".memory.tmp.123.0", ".state.tmp.9.1",
			     ".workingset.tmp.5.0" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(f, sizeof(f), "%s/%s", dir, ok[i]);
		FILE *fp = fopen(f, "w");
		cr_assert_not_null(fp);
		fclose(fp);
	}
	int fd = snapshot_dir_open(dir);
	cr_assert_geq(fd, 0, "%s", err_msg());
	close(fd);
	snprintf(f, sizeof(f), "%s/.memory.tmp.123.0", dir);
	cr_assert_neq(access(f, F_OK), 0, "a leftover temporary file is removed");
	snprintf(f, sizeof(f), "%s/state", dir);
	cr_assert_eq(access(f, F_OK), 0, "the snapshot's own files stay");

	/* Anything else: refused, nothing touched. */
	snprintf(f, sizeof(f), "%s/passwd", dir);
	FILE *fp = fopen(f, "w");
	fclose(fp);
	err_clear();
	cr_assert_eq(snapshot_dir_open(dir), -EEXIST);
	cr_assert(strstr(err_msg(), "holds other files (passwd)"), "%s", err_msg());
	cr_assert_eq(access(f, F_OK), 0);

	/* The directory itself must be named: a trailing / is fine, . and .. are not. */
	unlink(f);
	snprintf(slash, sizeof(slash), "%s//", dir);
	fd = snapshot_dir_open(slash);
	cr_assert_geq(fd, 0, "%s", err_msg());
	close(fd);
	snprintf(slash, sizeof(slash), "%s/.", dir);
	cr_assert_eq(snapshot_dir_open(slash), -EINVAL);
	snprintf(slash, sizeof(slash), "%s/..", dir);
	cr_assert_eq(snapshot_dir_open(slash), -EINVAL);
	cr_assert_eq(snapshot_dir_open(""), -EINVAL);
	const char *left[] = { "state", "memory", "memory.z", "workingset", ".state.tmp.9.1" };
	for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++) {
		snprintf(f, sizeof(f), "%s/%s", dir, left[i]);
		unlink(f);
	}
	rmdir(dir);
	rmdir(base);
}

/* ---- DIR/workingset (snapshot_save_working_set) ---- */

Test(snapshot_ws, saved_only_beside_its_own_state)
{
	char base[] = "/tmp/microvm-snapws-XXXXXX", f[96];
	const uint8_t data[] = "working set bytes";
	struct stat st;

	cr_assert_not_null(mkdtemp(base));
	build(1);
	snapshot_seal(img, img_len, 0);
	uint32_t state_crc;
	memcpy(&state_crc, img + 24, 4);
	snprintf(f, sizeof(f), "%s/state", base);
	FILE *fp = fopen(f, "w");
	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(img, 1, img_len, fp), img_len);
	fclose(fp);

	cr_assert_eq(snapshot_save_working_set(base, state_crc, data, sizeof(data)), 0, "%s", err_msg());
	snprintf(f, sizeof(f), "%s/workingset", base);
	cr_assert_eq(stat(f, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(st.st_size, (off_t)sizeof(data));
	/* Replaced, not written in place: a second save is a new file. */
	cr_assert_eq(snapshot_save_working_set(base, state_crc, data, 4), 0, "%s", err_msg());
	struct stat st2;
	cr_assert_eq(stat(f, &st2), 0);
	cr_assert_eq(st2.st_size, 4);
	cr_assert_neq(st.st_ino, st2.st_ino);

	/* Another snapshot's state now: not saved. */
	err_clear();
	cr_assert_eq(snapshot_save_working_set(base, state_crc + 1, data, 4), -ESTALE);
	cr_assert(strstr(err_msg(), "no longer the one this VM was restored from"), "%s", err_msg());
	/* A directory others may write: refused. */
	cr_assert_eq(chmod(base, 0777), 0);
	cr_assert_eq(snapshot_save_working_set(base, state_crc, data, 4), -EPERM);
	cr_assert_eq(chmod(base, 0700), 0);
	/* A snapshot being written (its exclusive lock): refused. */
	int dfd = open(base, O_RDONLY | O_DIRECTORY);
	cr_assert_eq(flock(dfd, LOCK_EX), 0);
	err_clear();
	cr_assert_eq(snapshot_save_working_set(base, state_crc, data, 4), -EBUSY);
	cr_assert(strstr(err_msg(), "a snapshot is being written"), "%s", err_msg());
	close(dfd);
	/* No state file: refused. */
	snprintf(f, sizeof(f), "%s/state", base);
	unlink(f);
	cr_assert_lt(snapshot_save_working_set(base, state_crc, data, 4), 0);
	/* Nothing but the working set left behind (no temporary files). */
	snprintf(f, sizeof(f), "%s/workingset", base);
	cr_assert_eq(unlink(f), 0);
	cr_assert_eq(rmdir(base), 0, "the directory is empty");
}
