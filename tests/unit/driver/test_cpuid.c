/*
 * test_cpuid.c - x86_cpuid_fix_deps(): features whose state lives in an XSAVE component go
 * when XSAVE, or that component, is missing. The expected masks are typed from the Intel SDM
 * vol. 2A (CPUID) and the AMD APM vol. 3, independently of driver/x86.c's table.
 */
#include "driver/x86.h"

#include <criterion/criterion.h>

#define ALL 0xffffffffu
#define XSAVE (1u << 26)
#define OSXSAVE (1u << 27)

/* leaf 1 ECX: FMA 12, AVX 28, F16C 29 */
#define L1_AVX ((1u << 12) | (1u << 28) | (1u << 29))
/* leaf 7.0 EBX: AVX2 5 | MPX 14 | AVX512 F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31 */
#define L7B_AVX (1u << 5)
#define L7B_MPX (1u << 14)
#define L7B_512 ((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31))
/* leaf 7.0 ECX: VBMI 1, PKU 3, VBMI2 6, CET_SS 7, VAES 9, VPCLMULQDQ 10, VNNI 11, BITALG 12, VPOPCNTDQ 14 */
#define L7C_AVX ((1u << 9) | (1u << 10))
#define L7C_512 ((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14))
#define L7C_PKU (1u << 3)
#define L7C_CET (1u << 7)
/* leaf 7.0 EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, CET_IBT 20, AMX_BF16 22, FP16 23, AMX_TILE 24, AMX_INT8 25 */
#define L7D_512 ((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23))
#define L7D_CET (1u << 20)
#define L7D_AMX ((1u << 22) | (1u << 24) | (1u << 25))
/* leaf 7.1 EAX: SHA512 0, SM3 1, SM4 2, AVX_VNNI 4, AVX512_BF16 5, AMX_FP16 21, AVX_IFMA 23 */
#define L71A_AVX ((1u << 0) | (1u << 1) | (1u << 2) | (1u << 4) | (1u << 23))
#define L71A_512 (1u << 5)
#define L71A_AMX (1u << 21)
/* leaf 7.1 EDX: AVX_VNNI_INT8 4, AVX_NE_CONVERT 5, AMX_COMPLEX 8, AVX_VNNI_INT16 10, AVX10 19 */
#define L71D_AVX ((1u << 4) | (1u << 5) | (1u << 10))
#define L71D_512 (1u << 19)
#define L71D_AMX (1u << 8)
/* 0x80000001 ECX: XOP 11, FMA4 16 */
#define LX_AVX ((1u << 11) | (1u << 16))

enum { E1, E70, E71, EX, ED0, ED1, N };
static struct kvm_cpuid_entry2 t[N];

/* Every feature bit set; leaf 1 with or without XSAVE; leaf 0xD.0 offering xcr0. */
static void fill(bool xsave, uint64_t xcr0)
{
	memset(t, 0, sizeof(t));
	t[E1].function = 1;
	t[E1].ecx = xsave ? ALL : ALL & ~XSAVE;
	t[E70].function = 7;
	t[E70].ebx = t[E70].ecx = t[E70].edx = ALL;
	t[E71].function = 7;
	t[E71].index = 1;
	t[E71].eax = t[E71].edx = ALL;
	t[EX].function = 0x80000001;
	t[EX].ecx = ALL;
	t[ED0].function = 0xd;
	t[ED0].eax = (uint32_t)xcr0;
	t[ED0].edx = (uint32_t)(xcr0 >> 32);
	t[ED0].ebx = t[ED0].ecx = 0x340;
	t[ED1].function = 0xd;
	t[ED1].index = 1;
	t[ED1].eax = 0xf;
}

Test(cpuid, no_xsave_clears_every_dependent_feature_and_leaf_d)
{
	/* What KVM_GET_SUPPORTED_CPUID gave in QEMU's -cpu max,xsave=off (the nested KVM). */
	fill(false, 0x602e7);
	x86_cpuid_fix_deps(t, N);
	cr_assert_eq(t[E1].ecx, ALL & ~XSAVE & ~OSXSAVE & ~L1_AVX);
	cr_assert_eq(t[E70].ebx, ALL & ~L7B_AVX & ~L7B_MPX & ~L7B_512);
	cr_assert_eq(t[E70].ecx, ALL & ~L7C_AVX & ~L7C_512 & ~L7C_PKU & ~L7C_CET);
	cr_assert_eq(t[E70].edx, ALL & ~L7D_512 & ~L7D_CET & ~L7D_AMX);
	cr_assert_eq(t[E71].eax, ALL & ~L71A_AVX & ~L71A_512 & ~L71A_AMX);
	cr_assert_eq(t[E71].edx, ALL & ~L71D_AVX & ~L71D_512 & ~L71D_AMX);
	cr_assert_eq(t[EX].ecx, ALL & ~LX_AVX);
	cr_assert(!t[ED0].eax && !t[ED0].ebx && !t[ED0].ecx && !t[ED0].edx && !t[ED1].eax,
		  "leaf 0xD means nothing without XSAVE");
	/* Not XSAVE-managed: kept (SSE4.2 20 in leaf 1; SHA 29, BMI1 3, BMI2 8 in 7.0 EBX; GFNI 8 in ECX). */
	cr_assert(t[E1].ecx & (1u << 20));
	cr_assert_eq(t[E70].ebx & ((1u << 29) | (1u << 3) | (1u << 8)), (1u << 29) | (1u << 3) | (1u << 8));
	cr_assert(t[E70].ecx & (1u << 8));
}

Test(cpuid, avx_only_xcr0_keeps_avx_and_clears_the_rest)
{
	fill(true, 0x7); /* x87, SSE, YMM */
	x86_cpuid_fix_deps(t, N);
	cr_assert_eq(t[E1].ecx, ALL, "AVX, FMA, F16C, XSAVE and OSXSAVE stay");
	cr_assert_eq(t[E70].ebx, ALL & ~L7B_MPX & ~L7B_512);
	cr_assert_eq(t[E70].ecx, ALL & ~L7C_512 & ~L7C_PKU);
	cr_assert_eq(t[E70].edx, ALL & ~L7D_512 & ~L7D_AMX);
	cr_assert_eq(t[E71].eax, ALL & ~L71A_512 & ~L71A_AMX);
	cr_assert_eq(t[E71].edx, ALL & ~L71D_512 & ~L71D_AMX);
	cr_assert_eq(t[EX].ecx, ALL);
	cr_assert_eq(t[ED0].eax, 0x7, "leaf 0xD is KVM's to describe when XSAVE is there");
}

Test(cpuid, consistent_table_is_left_alone)
{
	fill(true, 0x602ff); /* x87 SSE YMM MPX AVX-512 PKRU AMX */
	cr_assert_eq(x86_cpuid_fix_deps(t, N), 0);
	cr_assert_eq(t[E70].ebx, ALL);
	cr_assert_eq(t[E70].edx, ALL);
	cr_assert_eq(t[E71].edx, ALL);
}
