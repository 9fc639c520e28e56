/* A controlled workload for kernel tests.
 *
 *   bpfnb_workload N_GETPPID K_READS READ_SIZE M_MARKER [SPIN_MS]
 *
 * Blocks until one byte arrives on stdin (so the test can attach first),
 * then makes exactly N getppid() calls, K read()s of READ_SIZE bytes from
 * /dev/zero, M calls of bpfnb_marker() (for uprobes), and spins in
 * bpfnb_spin() for SPIN_MS milliseconds of CPU (for profiles). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) int bpfnb_marker(int x) {
    __asm__ volatile("" ::: "memory");
    return x + 1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

__attribute__((noinline)) unsigned long bpfnb_spin(long ms) {
    volatile unsigned long acc = 0;
    double end = now_ms() + ms;
    while (now_ms() < end)
        for (int i = 0; i < 10000; i++) acc += i;
    return acc;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s N_GETPPID K_READS READ_SIZE M_MARKER [SPIN_MS]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]), k = atol(argv[2]), size = atol(argv[3]), m = atol(argv[4]);
    long spin = argc > 5 ? atol(argv[5]) : 0;
    char go;
    if (read(0, &go, 1) != 1) return 3;
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    char *buf = malloc(size > 0 ? size : 1);
    int fd = open("/dev/zero", O_RDONLY);
    for (long i = 0; i < k; i++)
        if (read(fd, buf, size) != size) return 4;
    int acc = 0;
    for (long i = 0; i < m; i++) acc = bpfnb_marker(acc);
    if (spin) bpfnb_spin(spin);
    return acc == m ? 0 : 1;
}
