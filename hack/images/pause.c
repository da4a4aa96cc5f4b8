/*
 * pause: the pod sandbox's only process, as in Kubernetes' build/pause/linux/pause.c.
 * It holds the pod's namespaces open and otherwise sleeps; as PID 1 of a pod that shares
 * its PID namespace it also reaps the zombies other containers leave behind.
 * SIGINT and SIGTERM end it with status 0 (PID 1 ignores signals it has no handler for).
 *
 *   gcc -static -Os -s -o pause pause.c
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "3.10"

static void sigdown(int signo) {
  (void)signo;
  static const char msg[] = "pause: shutting down\n";
  ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)n;
  _exit(0);
}

static void sigreap(int signo) {
  (void)signo;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (!strcasecmp(argv[i], "-v")) {
      printf("pause.c %s\n", VERSION);
      return 0;
    }
  }
  if (getpid() != 1) {
    fprintf(stderr, "pause: warning: not PID 1\n");
  }
  struct sigaction down = {.sa_handler = sigdown};
  struct sigaction reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  if (sigaction(SIGINT, &down, NULL) < 0 || sigaction(SIGTERM, &down, NULL) < 0 ||
      sigaction(SIGCHLD, &reap, NULL) < 0) {
    fprintf(stderr, "pause: sigaction: %s\n", strerror(errno));
    return 1;
  }
  for (;;) {
    pause();
  }
  fprintf(stderr, "pause: the infinite loop ended\n");
  return 42;
}
