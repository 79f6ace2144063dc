/*
 * The floor for drops: a receiver that does nothing but recv(2) on a Unix datagram socket, in C.
 * Compiled with `cc -O2` by bench/datagram.ts at bench time. With the kernel's queue of
 * net.unix.max_dgram_qlen datagrams (10 by default), what this loses at an offered load no collector
 * can avoid on the same machine (README.md#postfix-libtlsrpt).
 *
 *   bare-receiver SOCKET
 *
 * Binds SOCKET, prints "ready" once bound, receives until 1 s passes without a datagram after the
 * first (or 30 s without any), then prints the count and removes SOCKET.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
    return 2;
  }
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    perror("bind");
    return 1;
  }
  struct timeval idle = { 1, 0 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
  printf("ready\n");
  fflush(stdout);
  static char buf[65536];
  long n = 0;
  int idles = 0;
  for (;;) {
    if (recv(fd, buf, sizeof buf, 0) >= 0) n++;
    else if (n > 0 || ++idles >= 30) break;
  }
  printf("%ld\n", n);
  unlink(argv[1]);
  return 0;
}
