/* A Modbus TCP server on libmodbus (an independent implementation, the one mbpoll and many devices
 * use), for the tests of several requests in flight: libmodbus reads one frame at a time from the
 * socket and answers in order, so pipelined requests are all answered (pymodbus's server is not
 * used there: it answers only the last of several requests that arrive in one TCP segment).
 *
 *   libmodbus_server PORT UNITS
 *
 * Units 1..UNITS each hold holding registers 0..0x40FF; register pair (2*i, 2*i+1) of block 0x2000
 * holds the float32 value UNIT*100 + i + 0.5, of block 0x4000 UNIT*100 + 50 + i + 0.5 (high word
 * first), for i in 0..7. Other unit ids
 * get exception 0x0B (gateway target failed to respond). Prints "ready" once listening; on SIGTERM
 * prints the number of requests served per unit ("unit N: M") and exits. */
#include <errno.h>
#include <modbus/modbus.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_UNITS 32
#include <sys/socket.h>

static volatile sig_atomic_t stop = 0;
static volatile int current = -1;
/* libmodbus retries select() on EINTR: shut the connection down so its read returns. */
static void on_term(int sig) {
    (void)sig;
    stop = 1;
    if (current >= 0) shutdown(current, SHUT_RDWR);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s PORT UNITS\n", argv[0]); return 2; }
    int port = atoi(argv[1]), units = atoi(argv[2]);
    if (units < 1 || units > MAX_UNITS) return 2;
    modbus_mapping_t *maps[MAX_UNITS + 1] = {0};
    long served[MAX_UNITS + 1] = {0};
    for (int u = 1; u <= units; u++) {
        maps[u] = modbus_mapping_new(0, 0, 0x4100, 0);
        for (int i = 0; i < 8; i++) {
            for (int b = 0; b < 2; b++) {
                float value = (float)(u * 100 + 50 * b + i + 0.5);
                uint32_t bits;
                memcpy(&bits, &value, sizeof bits);
                int at = (b ? 0x4000 : 0x2000) + 2 * i;
                maps[u]->tab_registers[at] = (uint16_t)(bits >> 16);
                maps[u]->tab_registers[at + 1] = (uint16_t)(bits & 0xFFFF);
            }
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term; /* no SA_RESTART: a blocking read returns EINTR and the loop ends */
    sigaction(SIGTERM, &sa, NULL);
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    int listener = modbus_tcp_listen(ctx, 1);
    if (listener < 0) { perror("listen"); return 1; }
    printf("ready\n");
    fflush(stdout);
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!stop) {
        int client = modbus_tcp_accept(ctx, &listener);
        if (client < 0) continue;
        current = client;
        while (!stop) {
            int rc = modbus_receive(ctx, query);
            if (rc == 0) continue;
            if (rc < 0) break; /* the client closed the connection */
            int unit = query[6];
            if (unit >= 1 && unit <= units) {
                served[unit]++;
                modbus_reply(ctx, query, rc, maps[unit]);
            } else {
                modbus_reply_exception(ctx, query, MODBUS_EXCEPTION_GATEWAY_TARGET);
            }
        }
        current = -1;
        close(client);
    }
    for (int u = 1; u <= units; u++) printf("unit %d: %ld\n", u, served[u]);
    fflush(stdout);
    return 0;
}
