/* elf.c - parses and validates an x86-64 ELF kernel: PT_LOAD segments and the PVH entry note. */
#include "boot/internal.h"

#include <errno.h>
#include <string.h>

#include "base/err.h"

/* ELF64 constants and offsets (System V gABI, x86-64 psABI). */
#define EI_CLASS      4
#define EI_DATA       5
#define ELFCLASS64    2
#define ELFDATA2LSB   1
#define ET_EXEC       2
#define EM_X86_64     62
#define PT_LOAD       1
#define PT_NOTE       4

#define EHDR_SIZE     64
#define E_TYPE        16
#define E_MACHINE     18
#define E_ENTRY       24
#define E_PHOFF       32
#define E_PHENTSIZE   54
#define E_PHNUM       56

#define PHDR_SIZE     56
#define P_TYPE        0
#define P_OFFSET      8
#define P_PADDR       24
#define P_FILESZ      32
#define P_MEMSZ       40
#define P_ALIGN       48

#define NHDR_SIZE     12

bool elf_detect(const uint8_t *data, size_t len)
{
	return len >= 4 && memcmp(data, "\x7f" "ELF", 4) == 0;
}

/* n rounded up to a multiple of align (a power of two); false if that overflows. */
static bool align_up(uint64_t n, uint64_t align, uint64_t *out)
{
	if (n > UINT64_MAX - (align - 1))
		return false;
	*out = (n + align - 1) & ~(align - 1);
	return true;
}

int elf_find_pvh_note(const uint8_t *buf, size_t len, size_t align, uint64_t *entry)
{
	uint64_t off = 0;

	if (align != 4 && align != 8)
		align = 4;
	/* Every note takes at least NHDR_SIZE bytes, so this loop is bounded by len / 12. */
	while (len - off >= NHDR_SIZE) {
		uint64_t namesz = le32(buf + off);
		uint64_t descsz = le32(buf + off + 4);
		uint32_t type = le32(buf + off + 8);
		uint64_t name_off = off + NHDR_SIZE;
		uint64_t desc_off, next;

		/* All values are < 2^32 and len < 2^63, so these sums cannot wrap. */
		if (!align_up(name_off + namesz, align, &desc_off) || desc_off > len ||
		    !align_up(desc_off + descsz, align, &next) || desc_off + descsz > len)
			return err_set(EINVAL, "malformed ELF note at offset 0x%llx: name (%llu bytes) or "
				       "descriptor (%llu bytes) runs past the end of the note segment "
				       "(%zu bytes)", (unsigned long long)off,
				       (unsigned long long)namesz, (unsigned long long)descsz, len);
		if (namesz == 4 && memcmp(buf + name_off, "Xen", 4) == 0 &&
		    type == XEN_ELFNOTE_PHYS32_ENTRY) {
			const uint8_t *d = buf + desc_off;
			/* Linux emits a 4-byte .long; accept a .quad whose upper half is 0. */
			if (descsz == 4) {
				*entry = le32(d);
			} else if (descsz == 8 && le32(d + 4) == 0) {
				*entry = le32(d);
			} else {
				return err_set(EINVAL, "malformed ELF note at offset 0x%llx: the PVH entry "
					       "(Xen note type %u) has a %llu-byte descriptor, a 32-bit "
					       "address is needed", (unsigned long long)off, type,
					       (unsigned long long)descsz);
			}
			return 1;
		}
		if (next >= len)
			break;
		off = next;
	}
	return 0;
}

static int parse_load(const uint8_t *ph, size_t len, int idx, struct elf_info *ei)
{
	uint64_t offset = le64(ph + P_OFFSET);
	uint64_t paddr = le64(ph + P_PADDR);
	uint64_t filesz = le64(ph + P_FILESZ);
	uint64_t memsz = le64(ph + P_MEMSZ);

	if (filesz > memsz)
		return err_set(EINVAL, "bad ELF: segment %d has more file bytes (0x%llx) than memory "
			       "bytes (0x%llx)", idx, (unsigned long long)filesz, (unsigned long long)memsz);
	if (offset > len || filesz > len - offset)
		return err_set(EINVAL, "truncated ELF: segment %d data at 0x%llx (+0x%llx bytes) runs past "
			       "the end of the file (0x%zx bytes)", idx, (unsigned long long)offset,
			       (unsigned long long)filesz, len);
	if (paddr > UINT64_MAX - memsz)
		return err_set(EINVAL, "bad ELF: segment %d at 0x%llx (+0x%llx bytes) wraps around the "
			       "address space", idx, (unsigned long long)paddr, (unsigned long long)memsz);
	if (memsz == 0)
		return 0;
	for (int i = 0; i < ei->nr_segs; i++) {
		const struct elf_segment *s = &ei->seg[i];
		if (paddr < s->paddr + s->memsz && s->paddr < paddr + memsz)
			return err_set(EINVAL, "bad ELF: segment %d at 0x%llx (+0x%llx bytes) overlaps "
				       "another one at 0x%llx (+0x%llx bytes)", idx,
				       (unsigned long long)paddr, (unsigned long long)memsz,
				       (unsigned long long)s->paddr, (unsigned long long)s->memsz);
	}
	if (ei->nr_segs == ELF_MAX_SEGMENTS)
		return err_set(EINVAL, "bad ELF: more than %d loadable segments", ELF_MAX_SEGMENTS);
	ei->seg[ei->nr_segs++] = (struct elf_segment){
		.paddr = paddr, .offset = offset, .filesz = filesz, .memsz = memsz,
	};
	if (ei->nr_segs == 1 || paddr < ei->lowest)
		ei->lowest = paddr;
	if (paddr + memsz > ei->highest)
		ei->highest = paddr + memsz;
	return 0;
}

static int parse_note(const uint8_t *data, const uint8_t *ph, size_t len, int idx, struct elf_info *ei)
{
	uint64_t offset = le64(ph + P_OFFSET);
	uint64_t filesz = le64(ph + P_FILESZ);
	uint64_t align = le64(ph + P_ALIGN);
	uint64_t entry;

	if (offset > len || filesz > len - offset)
		return err_set(EINVAL, "truncated ELF: note segment %d at 0x%llx (+0x%llx bytes) runs past "
			       "the end of the file (0x%zx bytes)", idx, (unsigned long long)offset,
			       (unsigned long long)filesz, len);
	if (ei->have_pvh)
		return 0;
	int ret = elf_find_pvh_note(data + offset, (size_t)filesz, align == 8 ? 8 : 4, &entry);
	if (ret < 0)
		return ret;
	if (ret == 1) {
		ei->have_pvh = true;
		ei->pvh_entry = entry;
	}
	return 0;
}

int elf_parse(const uint8_t *data, size_t len, struct elf_info *ei)
{
	int ret;

	memset(ei, 0, sizeof(*ei));
	if (!elf_detect(data, len))
		return err_set(EINVAL, "not an ELF file");
	if (len < EHDR_SIZE)
		return err_set(EINVAL, "truncated ELF: the header needs %d bytes, the file has %zu",
			       EHDR_SIZE, len);
	if (data[EI_CLASS] != ELFCLASS64 || data[EI_DATA] != ELFDATA2LSB)
		return err_set(EINVAL, "not an x86-64 ELF kernel (ELF class %u, data encoding %u; "
			       "64-bit little endian needed)", data[EI_CLASS], data[EI_DATA]);
	if (le16(data + E_MACHINE) != EM_X86_64)
		return err_set(EINVAL, "not an x86-64 ELF kernel (machine %u, x86-64 is %u)",
			       le16(data + E_MACHINE), EM_X86_64);
	if (le16(data + E_TYPE) != ET_EXEC)
		return err_set(EINVAL, "not an x86-64 ELF kernel (ELF type %u, an executable (%u) is needed)",
			       le16(data + E_TYPE), ET_EXEC);

	ei->entry = le64(data + E_ENTRY);
	uint64_t phoff = le64(data + E_PHOFF);
	unsigned phentsize = le16(data + E_PHENTSIZE);
	unsigned phnum = le16(data + E_PHNUM);

	if (phnum == 0)
		return err_set(EINVAL, "bad ELF: no program headers");
	if (phentsize < PHDR_SIZE)
		return err_set(EINVAL, "bad ELF: program header entries are %u bytes, at least %d needed",
			       phentsize, PHDR_SIZE);
	if (phnum > ELF_MAX_PHDRS)
		return err_set(EINVAL, "bad ELF: %u program headers, at most %d accepted", phnum,
			       ELF_MAX_PHDRS);
	uint64_t phbytes = (uint64_t)phentsize * phnum;   /* < 2^25 */
	if (phoff > len || phbytes > len - phoff)
		return err_set(EINVAL, "truncated ELF: program headers at 0x%llx (+0x%llx bytes) run past "
			       "the end of the file (0x%zx bytes)", (unsigned long long)phoff,
			       (unsigned long long)phbytes, len);

	for (unsigned i = 0; i < phnum; i++) {
		const uint8_t *ph = data + phoff + (uint64_t)i * phentsize;
		uint32_t type = le32(ph + P_TYPE);

		if (type == PT_LOAD)
			ret = parse_load(ph, len, (int)i, ei);
		else if (type == PT_NOTE)
			ret = parse_note(data, ph, len, (int)i, ei);
		else
			ret = 0;
		if (ret < 0)
			return ret;
	}
	if (ei->nr_segs == 0)
		return err_set(EINVAL, "bad ELF: no loadable segment");
	return 0;
}
