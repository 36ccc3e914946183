/* test_cpuid.c - x86_cpuid_fix_deps(): AVX-class features go when XSAVE is missing. */
#include "driver/x86.h"

#include <criterion/criterion.h>

#define AVX (1u << 28)
#define FMA (1u << 12)
#define XSAVE (1u << 26)
#define AVX2 (1u << 5)
#define AVX512F (1u << 16)
#define BMI2 (1u << 8)      /* not AVX: kept */
#define VAES (1u << 9)
#define AVX_VNNI (1u << 4)
#define SSE42 (1u << 20)    /* not AVX: kept */

static struct kvm_cpuid_entry2 table[4];

static void fill(uint32_t l1_ecx)
{
	memset(table, 0, sizeof(table));
	table[0].function = 1;
	table[0].ecx = l1_ecx;
	table[1].function = 7;
	table[1].index = 0;
	table[1].ebx = AVX2 | AVX512F | BMI2;
	table[1].ecx = VAES;
	table[2].function = 7;
	table[2].index = 1;
	table[2].eax = AVX_VNNI;
	table[3].function = 0xd;
	table[3].eax = 7;
}

Test(cpuid, avx_without_xsave_is_cleared)
{
	/* What KVM_GET_SUPPORTED_CPUID gave in QEMU's -cpu max,xsave=off (the nested KVM). */
	fill(AVX | FMA | SSE42);
	cr_assert_eq(x86_cpuid_fix_deps(table, 4), 6);
	cr_assert_eq(table[0].ecx, SSE42);
	cr_assert_eq(table[1].ebx, BMI2);
	cr_assert_eq(table[1].ecx, 0);
	cr_assert_eq(table[2].eax, 0);
	cr_assert_eq(table[3].eax, 7, "leaves that do not name features are left alone");
}

Test(cpuid, with_xsave_nothing_changes)
{
	fill(XSAVE | AVX | FMA | SSE42);
	cr_assert_eq(x86_cpuid_fix_deps(table, 4), 0);
	cr_assert_eq(table[0].ecx, XSAVE | AVX | FMA | SSE42);
	cr_assert_eq(table[1].ebx, AVX2 | AVX512F | BMI2);
	cr_assert_eq(table[1].ecx, VAES);
	cr_assert_eq(table[2].eax, AVX_VNNI);
}

Test(cpuid, no_leaf_one_means_no_xsave)
{
	fill(0);
	table[0].function = 0x80000001;
	cr_assert_eq(x86_cpuid_fix_deps(table, 4), 4);
	cr_assert_eq(table[1].ebx, BMI2);
}
