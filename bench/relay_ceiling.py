"""bench/run --only relay-ceiling: the relay's highest packet rate on one
core, Parley against coturn, with parley-bench's own relay load
(`--scenario relay`) where turnutils_uclient tops out near 80,000
packets/s.

Each relay runs on the server core with one relay thread (Parley:
relay.workers = 1; coturn: --relay-threads=1); parley-bench on the load
core holds ALLOCATIONS allocations in loop mode (each channel bound to a
socket of the generator that counts: every packet crosses the relay once,
client -> relay -> peer) and sends 172-byte ChannelData at a fixed rate
for each step. The server's CPU is every thread's (schedstat) plus the
server core's softirq thread (the loopback deliveries its sends start),
from the generator's set-up done to its exit, divided by the packets the
generator received.

The rates step up until more than 0.1 % is lost or the generator cannot
keep the rate (then the figure is a floor, "≥"). Figures per server: the
highest clean rate, CPU per packet at that rate, and CPU per packet at
COMMON_RATE (equal load: the ratio `cpu_relay_packet_vs_coturn`).

Imported by bench/run, which passes itself as `b`.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

ALLOCATIONS = 500
RATES = (50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 350_000, 400_000, 500_000)
COMMON_RATE = 100_000
STEP_S = 5
LOSS_LIMIT = 0.001


def step(b, kind: str, pids: list[int], port: int, secret: str, rate: int, results: Path, n: int) -> dict:
    cmd = ["taskset", "-c", b.LOAD_CORE, str(b.BINS["bench"]), "--scenario", "relay", "--server",
           f"127.0.0.1:{port}", "--secret", secret, "--user", "bench", "--allocations", str(ALLOCATIONS),
           "--peer-mode", "loop", "--rate", str(rate), "--duration", str(STEP_S), "--json", "--quiet"]
    soft = b.ksoftirqd(b.SERVER_CORE)
    before = b.cpu_ns(pids)
    out, marks = b.watch_generator(cmd, STEP_S + 300,
                                   lambda m: m.update(t0=b.cpu_ns(pids), soft0=b.cpu_ns(soft), wall0=time.time()))
    after, soft1 = b.cpu_ns(pids), b.cpu_ns(soft)
    try:
        res = json.loads(out)
    except json.JSONDecodeError:
        res = {"error": "no JSON", "stdout": out[-1500:], "stderr": marks.get("stderr", "")[-1500:]}
    softirq_s = (soft1 - marks.get("soft0", soft1)) / 1e9
    res.update(server=kind, rate=rate, server_softirq_s=softirq_s,
               server_cpu_s=(after - marks.get("t0", before)) / 1e9 + softirq_s)
    got = res.get("received") or 0
    sent = res.get("sent") or 0
    res["loss_ratio"] = (sent - got) / sent if sent else None
    res["server_cpu_us_per_packet"] = 1e6 * res["server_cpu_s"] / got if got else None
    (results / "runs").mkdir(exist_ok=True)
    (results / "runs" / f"{n:03d}-{kind}-relay-ceiling-{rate}.json").write_text(json.dumps(res, indent=1))
    cpu = res["server_cpu_us_per_packet"]
    b.log(f"  relay-ceiling {kind:7} rate={rate:<7} received/s={res.get('received_per_s', 0):9.0f} "
          f"loss={res['loss_ratio'] if res['loss_ratio'] is not None else float('nan'):.5f} "
          f"server_cpu/packet={'-' if cpu is None else f'{cpu:.2f}us'} "
          f"gen_cpu={res.get('generator_cpu', {}).get('percent_of_one_core', 0):.0f}%"
          + (" GENERATOR-LIMITED" if res.get("generator_limited") else "")
          + (f" ERROR {res.get('error')} {res.get('stderr', '')[-300:]}" if res.get("error") else ""))
    return res


def one_step(b, work: Path, bins, secret: str, kind: str, rate: int, results: Path, n: int) -> dict:
    """One rate against a relay started for it: a fresh server per step, as
    coturn answers a new Allocate from a 5-tuple it saw in the step before
    (the kernel hands the generator the same ports again) with 437."""
    cmd, port, sec = b.relay_server(kind, work, bins, secret)
    srv = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    try:
        if srv.poll() is not None:
            return {"rate": rate, "error": f"{kind} exited at start"}
        return step(b, kind, [srv.pid] + b.descendants(srv.pid), port, sec, rate, results, n)
    finally:
        srv.terminate()
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def one_round(b, work: Path, bins, secret: str, kind: str, results: Path, n0: int) -> dict:
    out: dict = {"steps": [], "highest": 0, "highest_floor": False, "cpu_at_highest": None, "cpu_at_common": None}
    for i, rate in enumerate(RATES):
        res = one_step(b, work, bins, secret, kind, rate, results, n0 + i)
        out["steps"].append({k: res.get(k) for k in ("rate", "received_per_s", "loss_ratio", "generator_limited",
                                                     "server_cpu_us_per_packet", "error")})
        if res.get("loss_ratio") is None or res["loss_ratio"] > LOSS_LIMIT:
            # the generator at its limit loses packets itself: say so
            out["stopped_by_generator"] = bool(res.get("generator_limited"))
            break
        if rate == COMMON_RATE:
            out["cpu_at_common"] = res["server_cpu_us_per_packet"]
        out["highest"] = res.get("received_per_s") or rate
        out["cpu_at_highest"] = res["server_cpu_us_per_packet"]
        if res.get("generator_limited"):
            out["highest_floor"] = True  # past here the generator, not the relay, is measured
            break
    return out


def bench(b, work: Path, bins, results: Path, rounds: int) -> dict:
    b.BINS = bins
    secret = b.hashlib.sha256(b.os.urandom(16)).hexdigest()[:32]
    out: dict = {"parley": [], "coturn": [], "allocations": ALLOCATIONS, "rates": RATES, "common_rate": COMMON_RATE}
    n = 800
    for rnd in range(rounds):
        for kind in (["parley", "coturn"] if rnd % 2 == 0 else ["coturn", "parley"]):
            b.log(f"relay ceiling round {rnd + 1}/{rounds}: {kind}")
            out[kind].append(one_round(b, work, bins, secret, kind, results, n))
            n += len(RATES)
    return out


def figures(rc: dict) -> tuple[list[str], list[str]]:
    """(RATIO and PARLEY lines, a markdown table)."""
    def med(kind: str, key: str) -> float | None:
        v = [r[key] for r in rc.get(kind, []) if r.get(key)]
        return statistics.median(v) if v else None

    lines, table = [], ["| figure | Parley | coturn | Parley / coturn |", "|---|---|---|---|"]
    hp, hc = med("parley", "highest"), med("coturn", "highest")
    # a floor when the generator, not the relay, ended the search
    fp = any(r.get("highest_floor") or r.get("stopped_by_generator") for r in rc.get("parley", []))
    fc = any(r.get("highest_floor") or r.get("stopped_by_generator") for r in rc.get("coturn", []))
    table.append(f"| highest rate with ≤ 0.1 % lost, one core, packets/s | {'≥ ' if fp else ''}{hp or 0:,.0f} | "
                 f"{'≥ ' if fc else ''}{hc or 0:,.0f} | {hp / hc:.2f} |" if hp and hc else
                 f"| highest rate | {hp} | {hc} | |")
    for rate in (50_000, COMMON_RATE):
        per = {k: [st["server_cpu_us_per_packet"] for r in rc.get(k, []) for st in r.get("steps", [])
                   if st.get("rate") == rate and st.get("server_cpu_us_per_packet")
                   and (st.get("loss_ratio") or 0) <= LOSS_LIMIT] for k in ("parley", "coturn")}
        if per["parley"] and per["coturn"] and rate != COMMON_RATE:
            p50, c50 = statistics.median(per["parley"]), statistics.median(per["coturn"])
            table.append(f"| CPU per relayed packet at {rate:,}/s | {p50:.2f} µs | {c50:.2f} µs | {p50 / c50:.3f} |")
    cp, cc = med("parley", "cpu_at_common"), med("coturn", "cpu_at_common")
    if cp and cc:
        table.append(f"| CPU per relayed packet at {COMMON_RATE:,}/s | {cp:.2f} µs | {cc:.2f} µs | {cp / cc:.3f} |")
        lines.append(f"RATIO cpu_relay_packet_vs_coturn {cp / cc:.3f}")
    ap, ac = med("parley", "cpu_at_highest"), med("coturn", "cpu_at_highest")
    if ap and ac:
        table.append(f"| CPU per relayed packet at each one's highest rate | {ap:.2f} µs | {ac:.2f} µs | |")
    if hp and hc:
        lines.append(f"RATIO maxrate_relay_ceiling {hp / hc:.3f}")
    if ap:
        lines.append(f"PARLEY relay_packets_per_cpu_s {1e6 / ap:,.0f}")
    return lines, table
