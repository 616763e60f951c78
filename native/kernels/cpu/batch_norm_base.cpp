// The kernels built for the baseline instruction set (SSE2 on x86-64).
#define SYNCBN_CPU_ISA base
#include "batch_norm_impl.h"
