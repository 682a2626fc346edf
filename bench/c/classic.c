/*
 * The classic multi-threaded allocator workloads through the C malloc API, for allocators loaded
 * with LD_PRELOAD: the same loops as kiln-bench's bench/src/workloads/classic.rs (see its module
 * doc for what each one does and counts), two worker threads.
 *
 * usage: classic NAME OPS     NAME: xmalloc cache-scratch cache-thrash mstress glibc-simple
 *                                   glibc-thread
 * prints: ops=<timed ops> secs=<seconds> peak_kib=<peak RSS above the RSS before the first
 * malloc of the workload> (the same measure as random_mixed.c)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 2
#define XM_BATCH 64
#define XM_QUEUE 16
#define WRITES 64
#define MS_BURST 512
#define MS_TRANSFER 1024
#define MS_KEEP 2048
#define GS_COUNT 100
#define GT_SLOTS 1024

static uint64_t ops_total;      /* the workload's OPS argument */
static _Atomic uint64_t done_ops; /* summed by the workers */

typedef struct {
    uint32_t s;
} rng_t;

static inline uint32_t next_u32(rng_t *r) {
    uint32_t x = r->s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    r->s = x;
    return x;
}

static rng_t rng_skip(unsigned n) {
    rng_t r = {2463534242u};
    for (unsigned i = 0; i < n; i++) next_u32(&r);
    return r;
}

static void *xmalloc_or_die(size_t n) {
    unsigned char *p = malloc(n);
    if (!p) {
        fprintf(stderr, "malloc(%zu) returned NULL\n", n);
        exit(2);
    }
    *(volatile unsigned char *)p = (unsigned char)n;
    return p;
}

static void backoff(unsigned *spins) {
    if (++*spins >= 64) sched_yield();
}

/* ---- xmalloc: a ring of producer/consumer chains ------------------------------------------- */

typedef struct {
    void *blocks[XM_BATCH];
    unsigned n;
} batch_t;

typedef struct {
    pthread_mutex_t lock;
    batch_t *items[XM_QUEUE];
    unsigned head, len;
} queue_t;

static queue_t queues[THREADS];
static _Atomic int producing = THREADS;

static int q_push(queue_t *q, batch_t *b) {
    pthread_mutex_lock(&q->lock);
    int ok = q->len < XM_QUEUE;
    if (ok) q->items[(q->head + q->len++) % XM_QUEUE] = b;
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static batch_t *q_pop(queue_t *q) {
    batch_t *b = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->len) {
        b = q->items[q->head];
        q->head = (q->head + 1) % XM_QUEUE;
        q->len--;
    }
    pthread_mutex_unlock(&q->lock);
    return b;
}

static void *xmalloc_worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    rng_t r = rng_skip(id * 13 + 1);
    uint64_t quota = ops_total / (2 * THREADS), made = 0, freed = 0;
    int producing_now = 1;
    unsigned spins = 0;
    batch_t *pending = NULL; /* a batch the successor had no room for yet */
    for (;;) {
        int progressed = 0;
        if (producing_now && !pending && made >= quota) {
            producing_now = 0;
            atomic_fetch_sub(&producing, 1);
        }
        if (producing_now && !pending) {
            /* batch_t is harness memory in the Rust version; here it comes from the malloc
               under test, as in the original xmalloc-test. */
            pending = malloc(sizeof *pending);
            if (!pending) exit(2);
            uint64_t left = quota - made;
            pending->n = left < XM_BATCH ? (unsigned)left : XM_BATCH;
            for (unsigned i = 0; i < pending->n; i++)
                pending->blocks[i] = xmalloc_or_die(16 + (next_u32(&r) & 255));
            made += pending->n;
        }
        if (pending && q_push(&queues[(id + 1) % THREADS], pending)) {
            pending = NULL;
            progressed = 1;
        }
        batch_t *b = q_pop(&queues[id]);
        if (b) {
            for (unsigned i = 0; i < b->n; i++) free(b->blocks[i]);
            freed += b->n;
            free(b);
            progressed = 1;
        } else if (!producing_now && atomic_load(&producing) == 0) {
            break;
        }
        if (progressed)
            spins = 0;
        else
            backoff(&spins);
    }
    atomic_fetch_add(&done_ops, made + freed);
    return NULL;
}

/* ---- cache-scratch / cache-thrash -------------------------------------------------------- */

static void *handed[THREADS];

static void scratch_loop(uint64_t objects) {
    for (uint64_t i = 0; i < objects; i++) {
        volatile uint64_t *p = malloc(8);
        if (!p) exit(2);
        for (unsigned w = 0; w < WRITES; w++) *p = i ^ w;
        free((void *)p);
    }
    atomic_fetch_add(&done_ops, 2 * objects);
}

static void *scratch_worker(void *arg) {
    free(handed[(uintptr_t)arg]);
    scratch_loop(ops_total / (2 * THREADS));
    return NULL;
}

static void *thrash_worker(void *arg) {
    (void)arg;
    scratch_loop(ops_total / (2 * THREADS));
    return NULL;
}

/* ---- mstress ----------------------------------------------------------------------------- */

static _Atomic(void *) transfer[MS_TRANSFER];

static size_t mstress_size(uint32_t r) {
    return r % 32 == 0 ? (size_t)1024 << (1 + (r >> 5) % 6) : (size_t)16 << ((r >> 5) % 7);
}

static void *mstress_worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    rng_t r = rng_skip(id * 31 + 3);
    uint64_t quota = ops_total / (2 * THREADS), made = 0, freed = 0;
    void **keep = calloc(MS_KEEP, sizeof *keep);
    void **burst = calloc(MS_BURST, sizeof *burst);
    unsigned kept = 0;
    if (!keep || !burst) exit(2);
    while (made < quota) {
        uint64_t left = quota - made;
        unsigned n = left < MS_BURST ? (unsigned)left : MS_BURST;
        for (unsigned i = 0; i < n; i++) burst[i] = xmalloc_or_die(mstress_size(next_u32(&r)));
        made += n;
        for (unsigned i = 0; i < n; i++) {
            uint32_t x = next_u32(&r);
            if (x % 8 == 0) {
                void *old = atomic_exchange(&transfer[(x >> 3) % MS_TRANSFER], burst[i]);
                if (old) {
                    free(old);
                    freed++;
                }
            } else if (x % 16 == 1 && kept < MS_KEEP) {
                keep[kept++] = burst[i];
            } else {
                free(burst[i]);
                freed++;
            }
        }
    }
    for (unsigned i = 0; i < kept; i++) free(keep[i]);
    freed += kept;
    free(keep);
    free(burst);
    atomic_fetch_add(&done_ops, made + freed);
    return NULL;
}

/* ---- glibc-simple / glibc-thread ------------------------------------------------------------ */

static void glibc_simple(void) {
    void *blocks[GS_COUNT];
    uint64_t done = 0;
    for (unsigned round = 0; done < ops_total; round++) {
        size_t size = (size_t)16 << (round % 7);
        uint64_t count = (ops_total - done) / 2;
        if (count < 1) count = 1;
        if (count > GS_COUNT) count = GS_COUNT;
        for (uint64_t i = 0; i < count; i++) blocks[i] = xmalloc_or_die(size);
        for (uint64_t i = 0; i < count; i++) free(blocks[i]);
        done += 2 * count;
    }
    atomic_fetch_add(&done_ops, done);
}

static size_t glibc_thread_size(uint32_t r) {
    return r % 8 ? 16 + ((r >> 3) & 255) : 16 + ((r >> 3) & 0x7fff);
}

static void *glibc_thread_worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    rng_t r = rng_skip(id * 5 + 1);
    void **slots = calloc(GT_SLOTS, sizeof *slots);
    if (!slots) exit(2);
    uint64_t per_thread = ops_total / THREADS;
    for (uint64_t i = 0; i < per_thread; i++) {
        uint32_t x = next_u32(&r);
        void **slot = &slots[(x >> 16) % GT_SLOTS];
        if (*slot) {
            free(*slot);
            *slot = NULL;
        } else {
            *slot = xmalloc_or_die(glibc_thread_size(x));
        }
    }
    for (unsigned i = 0; i < GT_SLOTS; i++) free(slots[i]);
    free(slots);
    atomic_fetch_add(&done_ops, per_thread);
    return NULL;
}

/* ---- driver ------------------------------------------------------------------------------- */

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

static int reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void *nothing(void *arg) { return arg; }

static void run_workers(void *(*worker)(void *)) {
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(2);
        }
    for (unsigned i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME OPS\n", argv[0]);
        return 1;
    }
    const char *name = argv[1];
    char *end;
    ops_total = strtoull(argv[2], &end, 10);
    if (*end || ops_total < 4 * THREADS) {
        fprintf(stderr, "bad OPS `%s`\n", argv[2]);
        return 1;
    }
    for (unsigned i = 0; i < THREADS; i++) pthread_mutex_init(&queues[i].lock, NULL);
    /* Start one thread and join it first, so the thread library's own set-up is not counted. */
    run_workers(nothing);
    if (reset_peak() != 0) {
        fprintf(stderr, "cannot reset the peak RSS through /proc/self/clear_refs\n");
        return 2;
    }
    long base = status_kib("VmRSS");
    if (strcmp(name, "cache-scratch") == 0)
        for (unsigned i = 0; i < THREADS; i++) handed[i] = xmalloc_or_die(8);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (strcmp(name, "xmalloc") == 0) {
        run_workers(xmalloc_worker);
    } else if (strcmp(name, "cache-scratch") == 0) {
        run_workers(scratch_worker);
    } else if (strcmp(name, "cache-thrash") == 0) {
        run_workers(thrash_worker);
    } else if (strcmp(name, "mstress") == 0) {
        run_workers(mstress_worker);
    } else if (strcmp(name, "glibc-simple") == 0) {
        glibc_simple();
    } else if (strcmp(name, "glibc-thread") == 0) {
        run_workers(glibc_thread_worker);
    } else {
        fprintf(stderr, "unknown workload `%s`\n", name);
        return 1;
    }
    /* mstress empties its transfer table inside the timed part (the table is empty otherwise). */
    for (unsigned i = 0; i < MS_TRANSFER; i++) {
        void *p = atomic_exchange(&transfer[i], NULL);
        if (p) {
            free(p);
            atomic_fetch_add(&done_ops, 1);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long peak = status_kib("VmHWM");
    if (base < 0 || peak < 0) {
        fprintf(stderr, "cannot read /proc/self/status\n");
        return 2;
    }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("ops=%llu secs=%.6f peak_kib=%ld\n", (unsigned long long)atomic_load(&done_ops), secs,
           peak - base);
    return 0;
}
