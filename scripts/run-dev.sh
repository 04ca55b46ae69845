#!/bin/sh
# `make run`: initialise ./var once for example.test with users alice and
# bob (their passwords are printed this once), then run parleyd in the
# foreground. Stop it with Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
ctl=build/src/ctl/parleyctl
conf=var/parley.conf

if [ ! -f "$conf" ]; then
    "$ctl" init --dir var --domain example.test
    echo
    echo "Demo users (the passwords are shown only now; change one with"
    echo "  $ctl -c $conf user passwd NAME):"
    "$ctl" -c "$conf" user add alice --generate-password
    "$ctl" -c "$conf" user add bob --generate-password
    echo
fi
echo "Starting parleyd (Ctrl-C stops it). In another terminal:"
echo "  $ctl -c $conf status"
echo "  openssl s_client -connect 127.0.0.1:5061 -CAfile var/pki/ca.pem -verify_return_error"
https=$("$ctl" -c "$conf" config get https.listen | cut -d, -f1)
[ -n "$https" ] && echo "  curl --cacert var/pki/ca.pem -u alice -X POST https://$https/auth/ticket"
exec build/src/daemon/parleyd -c "$conf"
