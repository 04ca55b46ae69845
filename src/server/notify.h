/*
 * notify — systemd's readiness protocol (sd_notify(3)) spoken directly:
 * one datagram of "KEY=VALUE" lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@').
 * Without the variable every call does nothing and returns 0, so parleyd
 * run by hand or by the tests is unaffected. No libsystemd.
 */
#ifndef PARLEY_SERVER_NOTIFY_H
#define PARLEY_SERVER_NOTIFY_H

#include <stddef.h>

/* Sends state (e.g. "READY=1\nSTATUS=serving") as one datagram. 0 when
 * sent or when $NOTIFY_SOCKET is unset; -EINVAL for a socket name that is
 * neither absolute nor abstract or too long for sun_path, -EAFNOSUPPORT
 * for the vsock form, else the negative errno of socket(2)/sendto(2):
 * -EAGAIN when the receiver's queue is full (it never blocks). */
int notify_send(const char *state);

/* "RELOADING=1" with MONOTONIC_USEC=<CLOCK_MONOTONIC in µs>, which
 * systemd's Type=notify-reload requires to tell this reload from an older
 * one; status (may be NULL) becomes STATUS=. Send "READY=1" when done. */
int notify_reloading(const char *status);

/* The variable's value formatted into buf for the given state, without
 * sending: what notify_reloading sends, for its test. */
int notify_format_reloading(char *buf, size_t len, const char *status);

#endif
