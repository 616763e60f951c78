// The kernels built for AVX2 + FMA; chosen at run time when the CPU has them.
#define SYNCBN_CPU_ISA avx2
#include "batch_norm_impl.h"
