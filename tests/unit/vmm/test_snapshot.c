/* test_snapshot.c - the snapshot state file's parser: a good image, and every way a bad one is refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "driver/state.h"
#include "vmm/err.h"
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
	uint32_t v = 2;
	memcpy(img + 8, &v, 4);
	/* The header CRC again, so only the version is wrong. */
	uint32_t c = (uint32_t)crc32(crc32(0, NULL, 0), img, 60);
	memcpy(img + 60, &c, 4);
	cr_assert_eq(snapshot_parse(img, img_len, &s), -EINVAL);
	cr_assert_str_eq(err_msg(), "snapshot format version 2; this microvm reads version 1");
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
	cfg->nr_disks = CLI_MAX_DISKS + 1;
	refused("configuration record out of range");
	build(0);
	memset(cfg->disks[0].path, 'a', sizeof(cfg->disks[0].path));
	refused("disk 0 malformed");
	build(0);
	cfg->disks[0].size = 1000;
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
