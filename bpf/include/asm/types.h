/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/* The BPF target has no asm/ of its own; the generic integer types are the
 * ones every Linux architecture uses for the UAPI headers corral needs. */
#include <asm-generic/types.h>
