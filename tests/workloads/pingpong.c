/* Workloads that block in known places, for off-CPU and off-wake tests.
 *
 *   bpfnb_pingpong pingpong ROUNDS
 *       forks; the parent (named bpfnb_ping) and the child (bpfnb_pong)
 *       pass one byte back and forth over two pipes ROUNDS times, so each
 *       blocks in pipe_read and is woken by the other's pipe_write.
 *   bpfnb_pingpong sleep COUNT MS
 *       sleeps COUNT times MS milliseconds (clock_nanosleep), named
 *       bpfnb_sleeper.
 *
 * Prints its pid (and the child's, for pingpong) on one line, then waits
 * for one byte on stdin, so a test can attach first. Build with
 * -fno-omit-frame-pointer so user stacks unwind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void wait_for_go(void) {
    char go;
    if (read(0, &go, 1) != 1) exit(3);
}

__attribute__((noinline)) static int bpfnb_pass(int in, int out, long rounds, int serve) {
    char byte = 'x';
    for (long i = 0; i < rounds; i++) {
        if (!serve && write(out, &byte, 1) != 1) return 4;
        if (read(in, &byte, 1) != 1) return 5;
        if (serve && write(out, &byte, 1) != 1) return 4;
    }
    return 0;
}

static int pingpong(long rounds) {
    int to_child[2], to_parent[2];
    if (pipe(to_child) || pipe(to_parent)) return 6;
    pid_t child = fork();
    if (child < 0) return 7;
    if (child == 0) {
        prctl(PR_SET_NAME, "bpfnb_pong");
        _exit(bpfnb_pass(to_child[0], to_parent[1], rounds, 1));
    }
    prctl(PR_SET_NAME, "bpfnb_ping");
    printf("%d %d\n", (int)getpid(), (int)child);
    fflush(stdout);
    wait_for_go();
    int rc = bpfnb_pass(to_parent[0], to_child[1], rounds, 0);
    int status = 0;
    waitpid(child, &status, 0);
    return rc ? rc : (WIFEXITED(status) ? WEXITSTATUS(status) : 8);
}

__attribute__((noinline)) static int bpfnb_sleep(long count, long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    for (long i = 0; i < count; i++)
        if (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL)) return 9;
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "pingpong"))
        return pingpong(atol(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "sleep")) {
        prctl(PR_SET_NAME, "bpfnb_sleeper");
        printf("%d\n", (int)getpid());
        fflush(stdout);
        wait_for_go();
        return bpfnb_sleep(atol(argv[2]), atol(argv[3]));
    }
    fprintf(stderr, "usage: %s pingpong ROUNDS | sleep COUNT MS\n", argv[0]);
    return 2;
}
