/* bzimage.c - parses and validates the Linux bzImage setup header (a pure function of the file bytes). */
#include "boot/internal.h"

#include <errno.h>
#include <string.h>

#include "base/err.h"

static uint8_t rd8(const uint8_t *p, size_t off)
{
	return p[off];
}

static uint16_t rd16(const uint8_t *p, size_t off)
{
	return le16(p + off);
}

static uint32_t rd32(const uint8_t *p, size_t off)
{
	return le32(p + off);
}

static uint64_t rd64(const uint8_t *p, size_t off)
{
	return le64(p + off);
}

static void wr16(uint8_t *p, size_t off, uint16_t v)
{
	p[off] = (uint8_t)v;
	p[off + 1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, size_t off, uint32_t v)
{
	wr16(p, off, (uint16_t)v);
	wr16(p, off + 2, (uint16_t)(v >> 16));
}

bool bzimage_detect(const uint8_t *data, size_t len)
{
	return len >= HDR_AT(header) + 4 && rd32(data, HDR_AT(header)) == SETUP_HDR_MAGIC;
}

int bzimage_parse(const uint8_t *data, size_t len, struct bzimage_info *bi)
{
	memset(bi, 0, sizeof(*bi));
	if (!bzimage_detect(data, len))
		return err_set(EINVAL, "not a bzImage (no \"HdrS\" at 0x202)");
	/* Everything up to 0x290 lies in the setup sectors, checked next; the
	 * version sits right after the magic that was just found. */
	if (len < HDR_AT(version) + 2)
		return err_set(EINVAL, "truncated bzImage: %zu bytes, the setup header alone needs 0x%x",
			       len, (unsigned)SETUP_HDR_END);

	bi->version = rd16(data, HDR_AT(version));
	if (bi->version < BZ_MIN_VERSION)
		return err_set(EINVAL, "bzImage boot protocol %u.%02u is too old (2.08 or later needed)",
			       bi->version >> 8, bi->version & 0xff);

	bi->setup_sects = rd8(data, HDR_AT(setup_sects));
	if (bi->setup_sects == 0)
		bi->setup_sects = 4;
	bi->pm_offset = ((size_t)bi->setup_sects + 1) * BZ_SECTOR;
	/* setup_sects >= 1, so pm_offset >= 0x400 > SETUP_HDR_END: the whole header is inside. */
	if (len < bi->pm_offset)
		return err_set(EINVAL, "truncated bzImage: the setup code takes %zu bytes (%u sectors), "
			       "the file has only %zu", bi->pm_offset, bi->setup_sects + 1, len);
	bi->pm_len = len - bi->pm_offset;
	if (bi->pm_len == 0)
		return err_set(EINVAL, "truncated bzImage: no protected-mode code after the %zu setup bytes",
			       bi->pm_offset);

	bi->loadflags = rd8(data, HDR_AT(loadflags));
	bi->initrd_addr_max = rd32(data, HDR_AT(initrd_addr_max));
	bi->kernel_alignment = rd32(data, HDR_AT(kernel_alignment));
	bi->relocatable = rd8(data, HDR_AT(relocatable_kernel)) != 0;
	bi->cmdline_size = rd32(data, HDR_AT(cmdline_size));
	bi->pref_address = BZ_DEFAULT_LOAD;
	if (bi->version >= 0x020a) {
		bi->pref_address = rd64(data, HDR_AT(pref_address));
		bi->init_size = rd32(data, HDR_AT(init_size));
	}
	if (bi->version >= 0x020c)
		bi->xloadflags = rd16(data, HDR_AT(xloadflags));

	uint64_t poff = rd32(data, HDR_AT(payload_offset));
	uint64_t plen = rd32(data, HDR_AT(payload_length));
	/* 32-bit fields summed in 64 bits: cannot wrap. */
	if (poff + plen > bi->pm_len)
		return err_set(EINVAL, "truncated bzImage: the payload at 0x%llx (+0x%llx bytes) runs past "
			       "the end of the file (0x%zx bytes)",
			       (unsigned long long)(bi->pm_offset + poff), (unsigned long long)plen, len);
	bi->payload_offset = bi->pm_offset + (size_t)poff;
	bi->payload_len = (size_t)plen;

	/* The header ends where its jump at 0x200 lands; always keep the fields we know. */
	size_t end = 0x202 + (size_t)rd8(data, HDR_AT(jump) + 1);
	if (end < SETUP_HDR_OFFSET + sizeof(struct setup_header))
		end = SETUP_HDR_OFFSET + sizeof(struct setup_header);
	if (end > SETUP_HDR_END)
		end = SETUP_HDR_END;
	bi->hdr_len = end - SETUP_HDR_OFFSET;
	return 0;
}

void bzimage_default_header(uint8_t *hdr, size_t len)
{
	uint8_t h[SETUP_HDR_END - SETUP_HDR_OFFSET] = { 0 };
#define AT(f) (HDR_AT(f) - SETUP_HDR_OFFSET)
	wr16(h, AT(boot_flag), BOOT_FLAG_MAGIC);
	/* A "jmp short" over the header, as a real bzImage has (the header ends at 0x26c). */
	wr16(h, AT(jump), (uint16_t)(0xeb | (0x26c - 0x202) << 8));
	wr32(h, AT(header), SETUP_HDR_MAGIC);
	wr16(h, AT(version), 0x020f);
	h[AT(loadflags)] = LOADED_HIGH;
	wr32(h, AT(initrd_addr_max), 0x7fffffff);
	wr32(h, AT(kernel_alignment), 2u << 20);
	wr16(h, AT(xloadflags), XLF_KERNEL_64);
	wr32(h, AT(cmdline_size), (uint32_t)(MV_CMDLINE_MAX - 1));
#undef AT
	memcpy(hdr, h, len < sizeof(h) ? len : sizeof(h));
}
