/* The commands of bench_e2e_loadgen (loadgen.c dispatches). Each takes the arguments after
 * its name (argv[0] is the command name), prints its figures on stdout and returns the
 * process's exit code: 0, or 1 when something it drove failed. Bad options exit 2. */
#ifndef E2E_LOAD_H
#define E2E_LOAD_H

/* Citizens completing reports through the emulator (e2e_load.c). */
int e2e_load_main(int argc, char **argv);
/* Signed webhooks straight at an HTTP endpoint, for the ingress and its ceiling (e2e_blast.c). */
int e2e_blast_main(int argc, char **argv);
/* Waits until no JetStream consumer has messages pending (e2e_blast.c). */
int e2e_drain_main(int argc, char **argv);

#endif
