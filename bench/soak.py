"""bench/run --soak MINUTES: registrations, MESSAGEs, calls, presence and
relayed media through one parleyd together, at a steady fraction of the
maxima measured by bench/run, for MINUTES; every 10 s a row of what the
server holds (RSS, open descriptors, threads, CPU) and of what each load
saw (operations, failures, latency percentiles).

Each load runs in windows of 10 s: parley-bench (register, message, call)
and turnutils_uclient (relay) are started anew for each window, so their
connections and allocations come and go as a real population's would, and
each window's figures are their own. Presence is this file's own loop over
the test suite's SIP client: a registered publisher changes its status
every second, and each of the watchers subscribed to it must get a NOTIFY
showing that change within 5 s; the delay from PUBLISH to NOTIFY is the
latency.

--soak-asan runs the same against an AddressSanitizer +
UndefinedBehaviorSanitizer build of parleyd (at a third of the rates) and
fails if LeakSanitizer or either sanitizer reports anything when the
server stops.

Verdict: no failed operation in any window; RSS and descriptors flat after
the warm-up (the first quarter of the run, at least a minute): the last
tenth of the run under load (its median) no more than 5 % (and 4 MiB)
above the median RSS after the warm-up, and its descriptors no more than
10 % (and 20) above theirs.
One more sample, once the loads have stopped, shows what the server keeps
when idle again.

`python3 bench/soak.py --report DIR` writes DIR's soak.md and soak.png
again from its soak.json.

Imported by bench/run, which passes itself as `b` (its Parley class, its
helpers and constants).
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

WINDOW_S = 10

# Steady loads: about 5 % of the maxima in docs/BENCHMARKS.md (31,000
# registrations/s, 32,000 MESSAGEs/s, ~1,400 calls/s of one core; the
# relay past 80,000 packets/s), which together keep the server's core
# about a quarter busy. Users: 0-99 register, 100-199 message, 200-299
# call, 300-309 presence.
RATES = {"register": 1500, "message": 1500, "call": 50}
RELAY_CLIENTS = 25  # x 50 packets/s each way, through turnutils_peer
PRESENCE_WATCHERS = 8


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Soak:
    def __init__(self, b, bins: dict, work: Path, results: Path, minutes: float, scale: float, asan: bool):
        self.b, self.bins, self.work, self.results = b, bins, work, results
        self.minutes, self.scale, self.asan = minutes, scale, asan
        self.end = 0.0
        self.rows: list[dict] = []  # one per window and load
        self.samples: list[dict] = []  # the server, every WINDOW_S
        self.lock = threading.Lock()
        self.errors: list[str] = []

    # -- the server ---------------------------------------------------------

    def prepare(self) -> None:
        b = self.b
        self.parley = b.Parley(self.work, self.bins)
        extra = [("relay.allowed_peers", "127.0.0.0/8"), ("relay.workers", "1"),
                 ("relay.max_allocations_per_user", "100000"), ("relay.max_allocations", "100000"),
                 ("relay.max_bandwidth", "0"), ("presence.min_notify_interval", "0"),
                 # turnutils_uclient leaves its allocations to expire: a minute
                 # (not an hour) keeps their number steady after the first
                 ("relay.allocation_lifetime", "60"),
                 ("presence.min_expires", "1"), ("registrar.min_expires", "10")]
        self.parley.prepare(310, name="parley-soak", extra=extra)
        ctl, conf = str(self.bins["parleyctl"]), self.parley.conf
        self.relay_port = int(b.run([ctl, "-c", conf, "config", "get", "relay.listen"]).stdout.strip()
                              .split(":")[-1])

    def start(self) -> None:
        env = os.environ.copy()
        if self.asan:
            # leaks are reported when parleyd exits; the log keeps them
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=0"
            env["UBSAN_OPTIONS"] = "print_stacktrace=1"
        lf = open(self.parley.logfile, "ab")
        p = self.parley
        p.proc = subprocess.Popen(["taskset", "-c", self.b.SERVER_CORE, str(self.bins["parleyd"]), "-c", p.conf],
                                  stdout=lf, stderr=subprocess.STDOUT, cwd=p.dir, env=env)
        p.wait_port(timeout=60)
        p.pids = [p.proc.pid]
        ctl = str(self.bins["parleyctl"])
        got = self.b.run([ctl, "-c", p.conf, "--json", "relay", "secret"])
        self.secret = json.loads(got.stdout)["secret"]

    def sample(self, t: float) -> dict:
        pid = self.parley.proc.pid
        row: dict = {"t": round(t, 1)}
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith(("VmRSS:", "Threads:")):
                    k, v = line.split(":", 1)
                    row["rss_kb" if k == "VmRSS" else "threads"] = int(v.split()[0])
            row["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
            row["cpu_s"] = self.b.cpu_ticks([pid]) / self.b.CLK_TCK
        except OSError:
            row["dead"] = True
        return row

    # -- loads ----------------------------------------------------------------

    def record(self, load: str, t: float, ok: int, failed: int, p50: float | None, p99: float | None,
               extra: dict | None = None) -> None:
        with self.lock:
            self.rows.append({"load": load, "t": round(t, 1), "ok": ok, "failed": failed, "p50_ms": p50,
                              "p99_ms": p99, **(extra or {})})

    def sip_load(self, kind: str, first: int) -> None:
        rate = max(1, int(RATES[kind] * self.scale))
        p = self.parley
        users = ["--users", "100", "--first-user", str(first)]
        conns = ["--connections", "4"] if kind != "register" else ["--connections", "10"]
        while time.monotonic() < self.end:
            t = time.monotonic() - self.t0
            cmd = ["taskset", "-c", self.b.LOAD_CORE, str(self.bins["bench"]), "--server", f"127.0.0.1:{p.port}",
                   "--domain", self.b.DOMAIN, "--cafile", str(p.dir / "pki/ca.pem"), "--json", "--quiet",
                   "--scenario", kind, *users, *conns, "--rate", str(rate), "--duration", str(WINDOW_S)]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=WINDOW_S + 120)
            try:
                res = json.loads(r.stdout)
            except json.JSONDecodeError:
                self.record(kind, t, 0, 1, None, None, {"error": (r.stdout + r.stderr)[-500:]})
                continue
            ops = res.get("operations", {})
            lat = res.get("latency_ms") or {}
            failed = ops.get("failed", 0) + (0 if ops.get("started") else 1)
            self.record(kind, t, ops.get("ok", 0), failed, lat.get("p50"), lat.get("p99"),
                        {"rate": res.get("throughput_per_s")})

    def relay_load(self) -> None:
        peer_port = self.b.free_port()
        peer = subprocess.Popen(["taskset", "-c", self.b.LOAD_CORE, "turnutils_peer", "-L", "127.0.0.1", "-p",
                                 str(peer_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        clients = max(1, int(RELAY_CLIENTS * self.scale))
        try:
            while time.monotonic() < self.end:
                t = time.monotonic() - self.t0
                cmd = ["taskset", "-c", self.b.LOAD_CORE, "turnutils_uclient", "-W", self.secret, "-e", "127.0.0.1",
                       "-r", str(peer_port), "-p", str(self.relay_port), "-m", str(clients),
                       "-n", str(WINDOW_S * 50), "-l", "172", "-z", "20", "-c", "127.0.0.1"]
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=WINDOW_S + 120)
                out = r.stdout + r.stderr
                lost = re.search(r"Total lost packets (\d+)", out)
                sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
                rtt = re.search(r"Average round trip delay ([\d.]+) ms", out)
                if r.returncode != 0 or not lost or not sent:
                    self.record("relay", t, 0, 1, None, None, {"error": out[-500:]})
                    continue
                s, got = map(int, sent[-1])
                # turnutils_uclient gives a mean round trip, not percentiles
                self.record("relay", t, got, int(lost.group(1)), None, None,
                            {"sent": s, "rtt_mean_ms": float(rtt.group(1)) if rtt else None})
        finally:
            peer.kill()
            peer.wait()

    def presence_load(self) -> None:
        sys.path.insert(0, str(self.b.ROOT / "tests/lib"))
        import sipclient  # noqa: E402  (the test suite's client)

        p = self.parley
        ca = str(p.dir / "pki/ca.pem")
        dom = self.b.DOMAIN
        ct = "application/pidf+xml"

        def client(i: int):
            return sipclient.SipClient.connect("127.0.0.1", p.port, cafile=ca, server_hostname=dom,
                                               user=f"user{i}", domain=dom, password=f"pw{i}")

        def pidf(user: str, basic: str, note: str) -> str:
            return ('<?xml version="1.0" encoding="UTF-8"?>\r\n<presence xmlns="urn:ietf:params:xml:ns:pidf" '
                    f'entity="sip:{user}@{dom}"><tuple id="t1"><status><basic>{basic}</basic></status>'
                    f'<note>{note}</note></tuple></presence>\r\n')

        def notify_of(w, cid: str, timeout: float):
            n = w._wait(lambda m: m.is_request and m.method == "NOTIFY" and m.call_id == cid, timeout, "NOTIFY")
            w.respond(n, 200)
            return n

        window = 0
        while time.monotonic() < self.end:
            window += 1
            t = time.monotonic() - self.t0
            ok = failed = 0
            lat: list[float] = []
            err = ""
            clients = []
            try:
                # a presentity is offline until one of its devices registers
                pub = client(300)
                clients.append(pub)
                if pub.register(expires=WINDOW_S + 20).status != 200:
                    raise RuntimeError("the publisher's REGISTER failed")
                subs = []
                for k in range(PRESENCE_WATCHERS):
                    w = client(301 + k)
                    clients.append(w)
                    r = w.request_with_auth("SUBSCRIBE", f"sip:user300@{dom}", expires=WINDOW_S + 20,
                                            headers={"Event": "presence", "Accept": ct})
                    if not (200 <= (r.status or 0) < 300):
                        failed += 1
                        continue
                    notify_of(w, r.request.call_id, 5)
                    subs.append((w, r))
                for step in range(WINDOW_S - 2):
                    note = f"window {window} step {step}"
                    sent = time.monotonic()
                    r = pub.request_with_auth("PUBLISH", pub.aor, expires=WINDOW_S + 20,
                                              headers={"Event": "presence"},
                                              body=pidf("user300", "open" if step % 2 else "closed", note),
                                              content_type=ct, contact=False)
                    if not (200 <= (r.status or 0) < 300):
                        failed += 1
                        continue
                    ok += 1
                    missed = []
                    for w, sr in subs:
                        try:
                            while note not in (notify_of(w, sr.request.call_id, 5).body or b"").decode(
                                    "utf-8", "replace"):
                                pass
                            lat.append(1000 * (time.monotonic() - sent))
                            ok += 1
                        except sipclient.SipTimeout:
                            failed += 1
                            missed.append((w, sr))
                    for m in missed:  # counted once; not waited for again in this window
                        subs.remove(m)
                    time.sleep(max(0.0, 1.0 - (time.monotonic() - sent)))
                for w, sr in subs:
                    d = sipclient.Dialog.from_uac(sr.request, sr)
                    w.request_in_dialog(d, "SUBSCRIBE", contact=True,
                                        headers={"Event": "presence", "Expires": "0", "Accept": ct})
                pub.unregister()
            except Exception as e:  # a failure of the window, recorded, and the soak goes on
                failed += 1
                err = f"{type(e).__name__}: {e}"[:500]
            finally:
                for c in clients:
                    try:
                        c.close()
                    except Exception:
                        pass
            self.record("presence", t, ok, failed, pct(lat, 50), pct(lat, 99), {"error": err} if err else None)

    # -- the run ----------------------------------------------------------------

    def run(self) -> dict:
        self.prepare()
        self.start()
        self.t0 = time.monotonic()
        self.end = self.t0 + 60 * self.minutes
        loads = [threading.Thread(target=self.sip_load, args=("register", 0), daemon=True),
                 threading.Thread(target=self.sip_load, args=("message", 100), daemon=True),
                 threading.Thread(target=self.sip_load, args=("call", 200), daemon=True),
                 threading.Thread(target=self.relay_load, daemon=True),
                 threading.Thread(target=self.presence_load, daemon=True)]
        for th in loads:
            th.start()
        next_t = self.t0
        while time.monotonic() < self.end:
            s = self.sample(time.monotonic() - self.t0)
            self.samples.append(s)
            self.b.log(f"  soak {s['t']:7.0f}s rss={s.get('rss_kb', 0) / 1024:7.1f}MiB fds={s.get('fds', '-')} "
                       f"threads={s.get('threads', '-')} cpu={s.get('cpu_s', 0):.1f}s "
                       f"failed_so_far={sum(r['failed'] for r in self.rows)}")
            if s.get("dead"):
                self.errors.append("parleyd died")
                break
            next_t += WINDOW_S
            time.sleep(max(0.0, next_t - time.monotonic()))
        for th in loads:
            th.join(WINDOW_S + 180)
        # once every load has stopped: what the server keeps when idle again
        self.samples.append({**self.sample(time.monotonic() - self.t0), "after_loads": True})
        alive = self.parley.alive()
        proc = self.parley.proc
        self.parley.stop()
        # LeakSanitizer reports at exit, and then exits non-zero
        exit_code = proc.returncode if proc else None
        sanitizer = []
        if self.asan:
            text = Path(self.parley.logfile).read_text(errors="replace")
            sanitizer = [l for l in text.splitlines()
                         if re.search(r"ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:|SUMMARY: ", l)]
        out = {"minutes": self.minutes, "asan": self.asan, "scale": self.scale, "rates": RATES,
               "relay_clients": RELAY_CLIENTS, "presence_watchers": PRESENCE_WATCHERS, "alive": alive,
               "errors": self.errors, "sanitizer_lines": sanitizer[:50], "exit_code": exit_code,
               "samples": self.samples,
               "rows": self.rows}
        return verdict(out)


def verdict(out: dict) -> dict:
    """The figures and the pass/fail of a run (also for a saved soak.json):
    growth is judged on the samples taken under load, after the warm-up;
    the last sample, once the loads have stopped, is shown, not judged."""
    loaded = [s for s in out["samples"] if "rss_kb" in s and not s.get("after_loads")]
    warm = max(60.0, 0.25 * 60 * out["minutes"])
    after = [s for s in loaded if s["t"] >= warm] or loaded[-1:]
    med_rss = statistics.median(s["rss_kb"] for s in after)
    med_fds = statistics.median(s["fds"] for s in after)
    # the end of the run: its last tenth (at least 5 samples), as a median,
    # since descriptors rise and fall with each window's allocations
    tail = after[-max(5, len(after) // 10):]
    last = {"rss_kb": statistics.median(s["rss_kb"] for s in tail),
            "fds": statistics.median(s["fds"] for s in tail)}
    idle = [s for s in out["samples"] if s.get("after_loads") and "rss_kb" in s]
    rss_flat = last["rss_kb"] - med_rss <= max(0.05 * med_rss, 4096)
    fds_flat = last["fds"] - med_fds <= max(0.10 * med_fds, 20)
    by_load: dict = {}
    for r in out["rows"]:
        d = by_load.setdefault(r["load"], {"windows": 0, "ok": 0, "failed": 0, "p50": [], "p99": []})
        d["windows"] += 1
        d["ok"] += r["ok"]
        d["failed"] += r["failed"]
        if r.get("p50_ms") is not None:
            d["p50"].append(r["p50_ms"])
        if r.get("p99_ms") is not None:
            d["p99"].append(r["p99_ms"])
    failures = sum(d["failed"] for d in by_load.values())
    ok = (out["alive"] and not out["errors"] and failures == 0 and rss_flat and fds_flat
          and not out["sanitizer_lines"] and out.get("exit_code") in (0, None))
    out.update(warmup_s=warm, failures=failures, by_load=by_load, rss_median_after_warmup_kb=med_rss,
               rss_last_kb=last["rss_kb"], rss_flat=rss_flat, fds_median_after_warmup=med_fds,
               fds_last=last["fds"], fds_flat=fds_flat, passed=ok,
               idle_after=({"rss_kb": idle[-1]["rss_kb"], "fds": idle[-1]["fds"]} if idle else None))
    return out


def write_report(out: dict, results: Path) -> None:
    (results / "soak.json").write_text(json.dumps(out, indent=1))
    lines = [f"# Soak: {out['minutes']} min{' under ASan + UBSan' if out['asan'] else ''}", "",
             f"passed: **{out['passed']}**; failures {out['failures']}; parleyd alive at the end: {out['alive']}"
             + (f"; its exit status after SIGTERM {out['exit_code']}" if out.get("exit_code") is not None else ""),
             f"RSS after warm-up (median) {out['rss_median_after_warmup_kb'] / 1024:.1f} MiB, in the last "
             f"tenth under load {out['rss_last_kb'] / 1024:.1f} MiB (flat: {out['rss_flat']}); descriptors "
             f"{out['fds_median_after_warmup']:.0f} and {out['fds_last']:.0f} (flat: {out['fds_flat']})"
             + (f"; once the loads stopped {out['idle_after']['rss_kb'] / 1024:.1f} MiB and "
                f"{out['idle_after']['fds']} descriptors" if out.get("idle_after") else ""), "",
             "| load | windows | ok | failed | p50 ms (median of windows) | p99 ms (worst window) |",
             "|---|---|---|---|---|---|"]
    for k, d in sorted(out["by_load"].items()):
        p50 = statistics.median(d["p50"]) if d["p50"] else None
        p99 = max(d["p99"]) if d["p99"] else None
        lines.append(f"| {k} | {d['windows']} | {d['ok']} | {d['failed']} | "
                     f"{'-' if p50 is None else f'{p50:.2f}'} | {'-' if p99 is None else f'{p99:.2f}'} |")
    rtt = [r["rtt_mean_ms"] for r in out["rows"] if r.get("rtt_mean_ms") is not None]
    if rtt:
        lines += ["", f"relay: turnutils_uclient's mean round trip (client, relay, peer, relay, client) "
                      f"{statistics.median(rtt):.2f} ms at the median window, {max(rtt):.2f} ms at the worst"]
    lines += ["", "| t (s) | RSS (MiB) | descriptors | threads | CPU (s) |", "|---|---|---|---|---|"]
    step = max(1, len(out["samples"]) // 20)
    shown = out["samples"][::step]
    for s in shown + [x for x in out["samples"][-1:] if x not in shown]:
        if "rss_kb" in s:
            lines.append(f"| {s['t']:.0f} | {s['rss_kb'] / 1024:.1f} | {s['fds']} | {s['threads']} | {s['cpu_s']:.1f} |")
    if out["sanitizer_lines"]:
        lines += ["", "Sanitizer reports:", "", *[f"    {l}" for l in out["sanitizer_lines"]]]
    (results / "soak.md").write_text("\n".join(lines) + "\n")
    plot(out, results / "soak.png")


def plot(out: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    s = [x for x in out["samples"] if "rss_kb" in x]
    fig, ax = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    ax[0].plot([x["t"] / 60 for x in s], [x["rss_kb"] / 1024 for x in s])
    ax[0].set_ylabel("RSS (MiB)")
    ax[1].plot([x["t"] / 60 for x in s], [x["fds"] for x in s])
    ax[1].set_ylabel("descriptors")
    for load in sorted({r["load"] for r in out["rows"]}):
        rows = [r for r in out["rows"] if r["load"] == load and r.get("p99_ms") is not None]
        if rows:
            ax[2].plot([r["t"] / 60 for r in rows], [r["p99_ms"] for r in rows], label=load)
    ax[2].set_ylabel("p99 latency (ms)")
    ax[2].set_xlabel("minutes")
    ax[2].legend(fontsize="small")
    fig.suptitle(f"parleyd, {out['minutes']} min soak{' (ASan)' if out['asan'] else ''}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(b, args, results: Path, work: Path) -> int:
    asan = bool(args.soak_asan)
    minutes = args.soak if args.soak else 3.0
    if asan:
        build = Path(args.build + "-asan")
        if not (build / "build.ninja").exists():
            b.run(["meson", "setup", str(build), "--buildtype=debug", "-Db_sanitize=address,undefined",
                   "-Db_lundef=false"], cwd=b.ROOT, capture_output=False)
        b.run(["ninja", "-C", str(build)], cwd=b.ROOT, capture_output=False)
        bins = {"parleyd": build / "src/daemon/parleyd", "parleyctl": build / "src/ctl/parleyctl",
                # the generator itself need not be instrumented
                "bench": b.ensure_build(Path(args.build))["bench"]}
    else:
        bins = b.ensure_build(Path(args.build))
    b.log(f"soak: {minutes} min{' under ASan + UBSan' if asan else ''}; results in {results}")
    out = Soak(b, bins, work, results, minutes, 1 / 3 if asan else 1.0, asan).run()
    write_report(out, results)
    print((results / "soak.md").read_text())
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    # --report DIR: the report again from a saved run (a run made before the
    # idle sample was marked had it last)
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True, type=Path)
    a = ap.parse_args()
    saved = json.loads((a.report / "soak.json").read_text())
    if saved["samples"] and not any(x.get("after_loads") for x in saved["samples"]):
        saved["samples"][-1]["after_loads"] = True
    saved = verdict(saved)
    write_report(saved, a.report)
    print((a.report / "soak.md").read_text())
    sys.exit(0 if saved["passed"] else 1)
