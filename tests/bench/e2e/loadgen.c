/* bench_e2e_loadgen: the end-to-end load tool of tests/bench/e2e/run (issue 9).
 *
 *   bench_e2e_loadgen load  ...   citizens reporting through the LINE emulator (e2e_load.c)
 *   bench_e2e_loadgen blast ...   signed webhooks at the ingress or the bare h2o ceiling
 *   bench_e2e_loadgen drain ...   waits until the stack has digested what it was given
 *
 * A benchmark, not a test: it asserts nothing beyond "every request was answered". */
#include <stdio.h>
#include <string.h>

#include "e2e_load.h"

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "load") == 0)
        return e2e_load_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "blast") == 0)
        return e2e_blast_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "drain") == 0)
        return e2e_drain_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: bench_e2e_loadgen load|blast|drain [options] (--help per command)\n");
    return 2;
}
