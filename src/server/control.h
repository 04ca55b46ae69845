/*
 * control — parleyd's control socket: a Unix socket in the state directory
 * (mode 0600, so only the server's user and root reach it) that parleyctl
 * uses for runtime state. One request per connection: a line of JSON
 * {"command": "status"} answered by one JSON document and a newline.
 */
#ifndef PARLEY_SERVER_CONTROL_H
#define PARLEY_SERVER_CONTROL_H

#include <stddef.h>

struct runtime;
struct control;

#define CONTROL_SOCKET_NAME "parleyd.sock"

int control_open(struct runtime *rt, struct control **out, char *err, size_t errlen);
void control_close(struct control *ctl);

#endif
