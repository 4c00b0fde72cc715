/* The disk's durable small-file limit: how many files per second can be made durable the way the
 * receiver does it (write 2 KB to a temporary file, fsync it, rename it into place, fsync the
 * directory), with 1, 4 and 16 threads writing into one directory. The best rate is "the limit".
 *
 *   fsync_limit DIR [SECONDS_PER_STEP=3] [BYTES=2048] [THREADS...=1 4 16]
 *
 * With NO_FSYNC=1 in the environment the two fsyncs are left out: the same loop as FSYNC=off,
 * which shows what the file system's create and rename cost alone.
 *
 * Prints one JSON line. Each step writes into its own new subdirectory of DIR, and the files are
 * left there: on ext4, creating files where thousands were just removed is several times slower
 * (inode allocation skips recently deleted inodes), so removing them here would charge this
 * program's cleanup to the next step, or to the next benchmark. Remove DIR when done. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[4096];
static size_t bytes = 2048;
static double seconds = 3;
static atomic_int stop_flag;
static int no_fsync;

struct worker {
  pthread_t thread;
  int id;
  long done;
  int failed;
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg) {
  struct worker *w = arg;
  char *buf = malloc(bytes);
  char tmp[4096], final[4096];
  memset(buf, 'x', bytes);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (!buf || dfd < 0) {
    w->failed = errno ? errno : ENOMEM;
    free(buf);
    return NULL;
  }
  while (!atomic_load(&stop_flag)) {
    snprintf(tmp, sizeof tmp, "%s/.fsync-limit-%d-%ld.tmp", dir, w->id, w->done);
    snprintf(final, sizeof final, "%s/fsync-limit-%d-%ld", dir, w->id, w->done);
    int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, buf, bytes) != (ssize_t)bytes || (!no_fsync && fsync(fd) != 0) || close(fd) != 0 ||
        rename(tmp, final) != 0 || (!no_fsync && fsync(dfd) != 0)) {
      w->failed = errno;
      break;
    }
    w->done++;
  }
  close(dfd);
  free(buf);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR [SECONDS_PER_STEP=3] [BYTES=2048] [THREADS...=1 4 16]\n", argv[0]);
    return 2;
  }
  const char *base = argv[1];
  no_fsync = getenv("NO_FSYNC") && strcmp(getenv("NO_FSYNC"), "1") == 0;
  if (argc > 2) seconds = atof(argv[2]);
  if (argc > 3) bytes = (size_t)atol(argv[3]);
  int counts[16] = {1, 4, 16}, ncounts = 3;
  if (argc > 4) {
    ncounts = 0;
    for (int i = 4; i < argc && ncounts < 16; i++) counts[ncounts++] = atoi(argv[i]);
  }
  double best = 0;
  int best_threads = 0;
  printf("{\"dir\":\"%s\",\"fsync\":%s,\"bytes\":%zu,\"seconds_per_step\":%.1f,\"steps\":[", base,
         no_fsync ? "false" : "true", bytes, seconds);
  for (int c = 0; c < ncounts; c++) {
    int n = counts[c];
    snprintf(dir, sizeof dir, "%s/step-%d-%ld-%d", base, (int)getpid(), (long)time(NULL), c);
    if (mkdir(dir, 0755) != 0) {
      fprintf(stderr, "fsync_limit: cannot create %s: %s\n", dir, strerror(errno));
      return 1;
    }
    struct worker *ws = calloc((size_t)n, sizeof *ws);
    atomic_store(&stop_flag, 0);
    double t0 = now();
    for (int t = 0; t < n; t++) {
      ws[t].id = c * 1000 + t;
      pthread_create(&ws[t].thread, NULL, run, &ws[t]);
    }
    while (now() - t0 < seconds) usleep(10000);
    atomic_store(&stop_flag, 1);
    long total = 0;
    int failed = 0;
    for (int t = 0; t < n; t++) {
      pthread_join(ws[t].thread, NULL);
      total += ws[t].done;
      if (ws[t].failed) failed = ws[t].failed;
    }
    double rate = (double)total / (now() - t0);
    free(ws);
    if (failed) {
      fprintf(stderr, "fsync_limit: %s: %s\n", dir, strerror(failed));
      return 1;
    }
    if (rate > best) {
      best = rate;
      best_threads = n;
    }
    printf("%s{\"threads\":%d,\"files\":%ld,\"files_per_s\":%.1f}", c ? "," : "", n, total, rate);
  }
  printf("],\"limit_files_per_s\":%.1f,\"limit_threads\":%d}\n", best, best_threads);
  return 0;
}
