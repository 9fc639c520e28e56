/* A program with a USDT probe (sys/sdt.h from systemtap-sdt-dev).
 *
 *   bpfnb_usdt M     blocks until a byte arrives on stdin, then fires the
 *                    probe bpfnb:tick M times with the tick number */
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long m = argc > 1 ? atol(argv[1]) : 0;
    char go;
    if (read(0, &go, 1) != 1) return 3;
    for (long i = 0; i < m; i++) DTRACE_PROBE1(bpfnb, tick, i);
    return 0;
}
