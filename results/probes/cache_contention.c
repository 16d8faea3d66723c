/* Does a second busy core slow this one down? Runs one of three loops and prints its seconds:
 *   alu    independent integer operations (the core's own execution units)
 *   chain  a dependent floating-point chain (latency of one unit)
 *   chase  a random pointer chase over BYTES of memory (the caches and memory shared between cores)
 * Run it alone on core 0, then on cores 0 and 1 at once, and compare (results/PERFORMANCE.md):
 *   cc -O2 -o /tmp/cache_contention results/probes/cache_contention.c
 *   taskset -c 0 /tmp/cache_contention chase 4000000
 *   taskset -c 0 /tmp/cache_contention chase 4000000 & taskset -c 1 /tmp/cache_contention chase 4000000; wait
 * Not part of the build: a probe of the machine, not of wafermesh. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "";
  uint64_t sink = 0;
  double t0 = 0, t1 = 0;
  if (strcmp(what, "alu") == 0) {
    uint64_t a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8;
    t0 = now();
    for (uint64_t i = 0; i < 1000000000u; ++i) {
      a += i; b ^= a; c += b >> 1; d ^= c; e += i * 3; f ^= e; g += f >> 2; h ^= g;
      __asm__ volatile("" : : "r"(a), "r"(h));
    }
    t1 = now();
    sink = a ^ b ^ c ^ d ^ e ^ f ^ g ^ h;
  } else if (strcmp(what, "chain") == 0) {
    double y = 1.0;
    t0 = now();
    for (long i = 0; i < 400000000L; ++i) y = y * 1.0000001 + 1e-9;
    t1 = now();
    sink = (uint64_t)y;
  } else if (strcmp(what, "chase") == 0 && argc > 2) {
    const size_t n = (size_t)atoll(argv[2]) / sizeof(uint64_t);
    if (n < 2) return 2;
    uint64_t* next = malloc(n * sizeof(uint64_t));
    if (!next) return 1;
    /* One random cycle through every slot (Sattolo), so the chase touches all of them. */
    for (size_t i = 0; i < n; ++i) next[i] = i;
    uint64_t s = 88172645463325252u;
    for (size_t i = n - 1; i > 0; --i) {
      s ^= s << 13; s ^= s >> 7; s ^= s << 17;
      const size_t j = (size_t)(s % i);
      const uint64_t t = next[i]; next[i] = next[j]; next[j] = t;
    }
    uint64_t p = 0;
    t0 = now();
    for (long i = 0; i < 30000000L; ++i) p = next[p];
    t1 = now();
    sink = p;
    free(next);
  } else {
    fprintf(stderr, "usage: cache_contention alu | chain | chase BYTES\n");
    return 2;
  }
  printf("%.3f s (%llu)\n", t1 - t0, (unsigned long long)(sink & 1));
  return 0;
}
