/* image.S - what tells the test-guest images apart: their name and, for the PVH image, the PVH entry note. */
	.file "image.S"

/*
 * Assembled once per image with -DIMAGE_PVH, -DIMAGE_FLAT or neither (the
 * plain ELF64). The guest prints the name, so a test can tell which image a
 * loader path actually entered (e.g. the decompressed ELF or the bzImage's
 * own protected-mode code).
 */
	.section .rodata
	.globl guest_image_name
guest_image_name:
#if defined(IMAGE_PVH)
	.asciz "pvh"
#elif defined(IMAGE_FLAT)
	.asciz "flat"
#else
	.asciz "elf64"
#endif

#ifdef IMAGE_PVH
/* ELF note "Xen", XEN_ELFNOTE_PHYS32_ENTRY (18): 32-bit physical entry address. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4                 /* namesz */
	.long 4                 /* descsz */
	.long 18                /* type */
	.asciz "Xen"
	.balign 4
	.long pvh_entry
	.balign 4
#endif
	.section .note.GNU-stack, "", @progbits
