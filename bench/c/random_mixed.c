/*
 * random-mixed through the C malloc API, for allocators loaded with LD_PRELOAD.
 *
 * The same loop as kiln-bench's in-process random-mixed: per op draw r (xorshift32, the same
 * seed), slot = r % ws; free the slot's block if it is occupied, else malloc 16 + (r & 1023)
 * bytes and write its first byte. An untimed prefault pass of ops/10 ops comes first.
 *
 * usage: random_mixed OPS WS
 * prints: ops=<timed ops> secs=<seconds> peak_kib=<peak RSS above the RSS before the first malloc
 * of the loop> (the same measure as kiln-bench's in-process peak children)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint32_t rng_state = 2463534242u;

static inline uint32_t xorshift32(void) {
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

/* A field of /proc/self/status in KiB ("VmRSS", "VmHWM"), or -1. */
static long status_kib(const char *field) {
    char line[256];
    long kib = -1;
    size_t n = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kib = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0); returns 0 on success. */
static int reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void churn(unsigned char **slots, uint64_t ops, uint32_t ws) {
    for (uint64_t i = 0; i < ops; i++) {
        uint32_t r = xorshift32();
        unsigned char **slot = &slots[r % ws];
        if (*slot) {
            free(*slot);
            *slot = NULL;
        } else {
            unsigned char *p = malloc(16 + (r & 1023));
            if (!p) {
                fprintf(stderr, "malloc returned NULL after %llu ops\n", (unsigned long long)i);
                exit(2);
            }
            *(volatile unsigned char *)p = (unsigned char)r;
            *slot = p;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s OPS WS\n", argv[0]);
        return 1;
    }
    char *end;
    uint64_t ops = strtoull(argv[1], &end, 10);
    if (*end || ops == 0) {
        fprintf(stderr, "bad OPS `%s`\n", argv[1]);
        return 1;
    }
    unsigned long ws = strtoul(argv[2], &end, 10);
    if (*end || ws == 0 || ws > 100000000ul) {
        fprintf(stderr, "bad WS `%s`\n", argv[2]);
        return 1;
    }
    unsigned char **slots = calloc(ws, sizeof *slots);
    if (!slots) {
        fprintf(stderr, "cannot allocate %lu slots\n", ws);
        return 2;
    }
    /* Touch the slot table now so that its pages do not count as the allocator's memory. */
    for (unsigned long i = 0; i < ws; i++) ((unsigned char *volatile *)slots)[i] = NULL;
    if (reset_peak() != 0) {
        fprintf(stderr, "cannot reset the peak RSS through /proc/self/clear_refs\n");
        return 2;
    }
    long base = status_kib("VmRSS");
    churn(slots, ops / 10, (uint32_t)ws);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    churn(slots, ops, (uint32_t)ws);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long peak = status_kib("VmHWM");
    for (unsigned long i = 0; i < ws; i++) free(slots[i]);
    free(slots);
    if (base < 0 || peak < 0) {
        fprintf(stderr, "cannot read /proc/self/status\n");
        return 2;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("ops=%llu secs=%.6f peak_kib=%ld\n", (unsigned long long)ops, secs, peak - base);
    return 0;
}
