/*
 * Sends TLSRPT datagrams to a Unix datagram socket in exactly libtlsrpt's wire format (keys in its
 * order, a space after the colon before string values, none before integers; no newline, no NUL).
 * Compiled with `cc -O2` by bench/datagram.ts at bench time.
 *
 *   libtlsrpt-sender SOCKET COUNT DOMAINS FAILURE_PERMILLE RATE [STEP_US [SOCKETS]]
 *
 * RATE 0: blocking sends as fast as the socket takes them (tlsrpt_set_blocking, libtlsrpt's benchmark
 * mode). RATE > 0: that many datagrams per second, non-blocking (MSG_DONTWAIT, as Postfix sends), a
 * full receive queue (EAGAIN) counts as a drop, as Postfix loses it. The sender sleeps whenever it
 * is more than STEP_US ahead of schedule (default 1000): with 1000 it sends 1 ms worth back to back
 * (50 datagrams at 50k/s, more than the kernel's 10-datagram queue), with 50 it is close to evenly
 * spaced, as many Postfix smtp processes each reporting its own delivery are.
 * SOCKETS (RATE > 0 only, default 64): the datagrams leave from that many sockets in turn. Postfix
 * sends each report from a socket of its own (postfix/src/tls/tlsrpt_wrapper.c: tlsrpt_open …
 * tlsrpt_close per report), so no sender's send buffer ever fills and only the receiving socket's
 * queue (max_dgram_qlen) bounds what waits; 64 sockets in turn queue the same way without a socket()
 * and close() per datagram, which held this sender to 45k/s on 2 cores. With 1, that socket's send
 * buffer (net.core.wmem_default, 208 KiB: some 200 of these datagrams) fills after a 4 ms pause of
 * the receiver at 50k/s, long before a receiving queue of 512 or 2048 does.
 * Prints one JSON line. DROP_TRACE=FILE: appends the drops per 10 ms to FILE (when in the run they fell).
 */
#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int build(char *buf, size_t cap, long i, long domains, long permille) {
  long d = i % domains;
  /* Spread failures evenly: datagram i fails when its permille bucket is below the rate. */
  int fail = ((i * 7919) % 1000) < permille;
  if (!fail)
    return snprintf(buf, cap,
      "{\"dpv\": \"1\",\"d\": \"d%ld.example\",\"pr\": \"v=TLSRPTv1; rua=mailto:tlsrpt@d%ld.example\","
      "\"policies\":[{\"policy-type\":2,\"policy-domain\": \"d%ld.example\",\"policy-string\":"
      "[\"version: STSv1\",\"mode: enforce\",\"mx: *.mail.d%ld.example\",\"max_age: 86400\"],"
      "\"mx-host\":[\"*.mail.d%ld.example\"],\"t\":0,\"f\":0}]}",
      d, d, d, d, d);
  return snprintf(buf, cap,
    "{\"dpv\": \"1\",\"d\": \"d%ld.example\",\"pr\": \"v=TLSRPTv1; rua=mailto:tlsrpt@d%ld.example\","
    "\"policies\":[{\"policy-type\":2,\"policy-domain\": \"d%ld.example\",\"policy-string\":"
    "[\"version: STSv1\",\"mode: enforce\",\"mx: *.mail.d%ld.example\",\"max_age: 86400\"],"
    "\"mx-host\":[\"*.mail.d%ld.example\"],\"failure-details\":[{\"c\":202,\"s\": \"192.0.2.1\","
    "\"n\": \"mx1.mail.d%ld.example\",\"h\": \"250-mx1.mail.d%ld.example\\r\\n250 STARTTLS\","
    "\"r\": \"198.51.100.7\",\"f\": \"certificate name mismatch\"}],\"t\":1,\"f\":1}]}",
    d, d, d, d, d, d, d);
}

int main(int argc, char **argv) {
  if (argc < 6 || argc > 8) {
    fprintf(stderr, "usage: %s SOCKET COUNT DOMAINS FAILURE_PERMILLE RATE [STEP_US [SOCKETS]]\n", argv[0]);
    return 2;
  }
  long count = atol(argv[2]), domains = atol(argv[3]), permille = atol(argv[4]), rate = atol(argv[5]);
  double step = (argc >= 7 ? atol(argv[6]) : 1000) / 1e6;
  long sockets = rate > 0 ? (argc == 8 ? atol(argv[7]) : 64) : 1;
  if (sockets < 1 || sockets > 1024) { fprintf(stderr, "SOCKETS: 1 to 1024\n"); return 2; }
  /* Sleeps shorter than the default 50 µs timer slack would overshoot into bursts. */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
  static int fds[1024];
  for (long k = 0; k < sockets; k++) {
    fds[k] = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fds[k] < 0) { perror("socket"); return 1; }
  }
  char buf[2048];
  long drops = 0, errors = 0;
  /* DROP_TRACE: drops per 10 ms bucket of the run (up to 100 s). */
  static long trace[10000];
  const char *tracePath = getenv("DROP_TRACE");
  double start = now();
  for (long i = 0; i < count; i++) {
    if (rate > 0) {
      /* Datagram i is due at start + i / rate. */
      double due = start + (double)i / rate;
      double t = now();
      if (due > t + step) {
        struct timespec ts = { 0, (long)((due - t) * 1e9) };
        nanosleep(&ts, NULL);
      }
    }
    int len = build(buf, sizeof buf, i, domains, permille);
    int fd = fds[i % sockets];
    ssize_t r;
    do r = sendto(fd, buf, len, rate > 0 ? MSG_DONTWAIT : 0, (struct sockaddr *)&addr, sizeof addr);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        drops++;
        long b = (long)((now() - start) * 100);
        if (b >= 0 && b < 10000) trace[b]++;
      } else errors++;
    }
  }
  double secs = now() - start;
  for (long k = 0; k < sockets; k++) close(fds[k]);
  if (tracePath != NULL && rate > 0) {
    FILE *f = fopen(tracePath, "a");
    if (f != NULL) {
      fprintf(f, "rate %ld, %ld sockets, drops per 10 ms:", rate, sockets);
      for (long b = 0; b < 10000 && b <= (long)(secs * 100); b++) fprintf(f, " %ld", trace[b]);
      fprintf(f, "\n");
      fclose(f);
    }
  }
  /* The sender's own CPU: on a machine of few cores it shares them with the collector. */
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  printf("{\"sent\":%ld,\"drops\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"cpuSeconds\":%.3f}\n", count - drops - errors,
         drops, errors, secs, cpu);
  return errors > 0 ? 1 : 0;
}
