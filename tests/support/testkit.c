#define TESTKIT_IMPLEMENTATION
#include "testkit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int testkit_main(const struct CMUnitTest *tests, size_t count, const char *const *names,
                 CMFixtureFunction setup, CMFixtureFunction teardown, int argc, char **argv)
{
    if (argc > 1) {
        bool known = false;
        for (size_t i = 0; i < count; i++)
            if (strcmp(names[i], argv[1]) == 0)
                known = true;
        if (!known) {
            fprintf(stderr, "no test case named '%s'\n", argv[1]);
            return 2;
        }
        cmocka_set_test_filter(argv[1]);
    }
    return _cmocka_run_group_tests(argv[0], tests, count, setup, teardown);
}

int64_t testkit_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool testkit_wait_until(bool (*cond)(void *closure), void *closure, int64_t timeout_ms)
{
    int64_t deadline = testkit_now_ms() + timeout_ms;
    for (;;) {
        if (cond(closure))
            return true;
        if (testkit_now_ms() >= deadline)
            return false;
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

const char *testkit_env(const char *name)
{
    const char *value = getenv(name);
    if (value == NULL || value[0] == '\0')
        fail_msg("%s is not set: run the tests through tests/run, which starts the servers",
                 name);
    return value;
}

void testkit_unique(char *out, size_t out_size)
{
    static unsigned counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, out_size, "t%ldx%ldx%u", (long)getpid(), (long)(ts.tv_nsec % 100000),
             counter++);
}

const char *testkit_bin_dir(void)
{
    const char *dir = getenv("ESS_BIN_DIR");
    return dir != NULL ? dir : "build/bin";
}

int testkit_run(const char *const *argv, const char *const *env, int64_t timeout_ms,
                char **ret_output)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 4096, len = 0;
    char *output = malloc(cap);
    int64_t deadline = testkit_now_ms() + timeout_ms;
    bool timed_out = false;
    for (;;) {
        int64_t left = deadline - testkit_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            continue;
        if (len + 1024 > cap) {
            cap *= 2;
            output = realloc(output, cap);
        }
        ssize_t n = read(fds[0], output + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    output[len] = '\0';
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (ret_output != NULL)
        *ret_output = output;
    else
        free(output);
    if (timed_out)
        return -1;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
