#!/usr/bin/env python3
"""The resilience report (run by scripts/resilience, which builds the binaries).

Each scenario runs the real daemon on loopback with test sources, does something bad
to it during a hearing, closes the hearing and reads what is left with tools nobody
here wrote (ffprobe) and with `courtrec verify`. Per scenario it prints:
  seconds lost   per track, the time of the hearing (open to close, less recesses)
                 that no segment covers: the longest stretch and all of it (the track
                 that lost most); gaps explained by an event (a recovery, a device
                 fault) are still counted here: it is what is lost
  files corrupt  segment files ffprobe cannot read (must be 0)
  events logged  the events the hearing got besides its lifecycle (kind x count)
  verify         courtrec verify's exit code and verdict
Usage: resilience.py COURTREC RTSP_CAMERA [SCENARIO ...]   (default: all)
"""

import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BIN, CAM = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
ONLY = sys.argv[3:]
WORK = tempfile.mkdtemp(prefix="courtrec-resilience.")
LIFECYCLE = {"created", "open", "close", "recess", "resume", "export"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def users_toml():
    h = subprocess.run([BIN, "hash-password"], input=b"demo\n", capture_output=True, check=True)
    hash_ = h.stdout.decode().strip()
    return "".join(
        f'[[user]]\nname = "{u}"\nrole = "{u}"\npassword_hash = "{hash_}"\n' for u in ("clerk", "judge", "admin")
    )


class Daemon:
    def __init__(self, data, config=None, env=None):
        self.data, self.config = data, config
        self.env = dict(os.environ, COURTREC_TEST_CLOCK_SYNC="synchronised", **(env or {}))
        self.env.pop("JOURNAL_STREAM", None)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(WORK, f"daemon-{self.port}.log"), "ab")
        self.proc = None
        self.start()

    def start(self):
        cmd = [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data]
        if self.config:
            cmd += ["--config", self.config]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"courtrec exited at start-up ({self.proc.returncode}); see {self.log.name}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        self.token = self.login("clerk")
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError("courtrec did not come up")

    def call(self, method, path, body=None, token=None):
        req = urllib.request.Request(self.base + "/api/v1" + path, method=method)
        if body is not None:
            req.data = json.dumps(body).encode()
            req.add_header("content-type", "application/json")
        if token or getattr(self, "token", None):
            req.add_header("authorization", "Bearer " + (token or self.token))
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ok(self, method, path, body=None):
        st, v = self.call(method, path, body)
        if st >= 300:
            raise RuntimeError(f"{method} {path}: {st} {v}")
        return v

    def login(self, user):
        st, v = self.call("POST", "/login", {"username": user, "password": "demo"}, token="-")
        if st != 200:
            raise RuntimeError(f"login: {st} {v}")
        return v["token"]

    def open_hearing(self, title):
        """Creates a public hearing and opens it; returns its id."""
        h = self.ok("POST", "/hearings", {"case_number": f"(2026)X0101民初{random.randint(100, 999)}号",
                                           "title": title, "visibility": "public"})
        self.ok("POST", f"/hearings/{h['id']}/open")
        return h["id"]

    def close_and_stop(self, hid):
        self.ok("POST", f"/hearings/{hid}/close")
        self.stop()

    def signal(self, sig, wait_s=30):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=wait_s)

    def alarms(self):
        return [a["key"] for a in self.ok("GET", "/status")["alarms"]]

    def wait_alarm(self, pred, timeout_s):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if pred(self.alarms()):
                return True
            time.sleep(0.3)
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.signal(signal.SIGTERM)


def analyse(data, hid):
    """(seconds lost, files corrupt, events, verify) for a closed hearing."""
    folder = os.path.join(data, "hearings", hid)
    events, segs = [], collections.defaultdict(list)
    with open(os.path.join(folder, "manifest.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)["record"]
            if r["type"] == "event":
                events.append(r)
            else:
                segs[r["track"]].append(r)
    ms = lambda ns: ns / 1e6  # noqa: E731
    open_ms = next(ms(e["media_time_ns"]) for e in events if e["kind"] == "open")
    close_ms = next(ms(e["media_time_ns"]) for e in events if e["kind"] == "close")
    # The hearing's time to cover: open to close less recesses.
    spans, start = [], open_ms
    for e in events:
        if e["kind"] == "recess":
            spans.append((start, ms(e["media_time_ns"])))
            start = None
        elif e["kind"] == "resume":
            start = ms(e["media_time_ns"])
    if start is not None:
        spans.append((start, close_ms))
    lost_ms, total_ms = 0.0, 0.0
    for track, ss in segs.items():
        track_total = 0.0
        cover = sorted((ms(s["media_start_ns"]), ms(s["media_start_ns"]) + s["media_duration_ns"] / 1e6) for s in ss)
        for a, b in spans:
            t, longest = a, 0.0
            for c0, c1 in cover:
                if c1 <= t or c0 >= b:
                    continue
                # Tolerate the frame or two between segments and at the ends.
                if c0 > t + 100:
                    longest = max(longest, c0 - t)
                    track_total += c0 - t
                t = max(t, c1)
            if b > t + 100:
                longest = max(longest, b - t)
                track_total += b - t
            lost_ms = max(lost_ms, longest)
        total_ms = max(total_ms, track_total)
    corrupt = 0
    for ss in segs.values():
        for s in ss:
            p = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                os.path.join(folder, s["file"])], capture_output=True, text=True)
            try:
                ok = p.returncode == 0 and float(p.stdout.strip()) > 0
            except ValueError:
                ok = False
            corrupt += 0 if ok else 1
    kinds = collections.Counter(e["kind"] for e in events if e["kind"] not in LIFECYCLE)
    logged = ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())) or "none"
    v = subprocess.run([BIN, "verify", "--json", folder], capture_output=True, text=True)
    try:
        verdict = json.loads(v.stdout)["result"].split(":")[0]
    except (ValueError, KeyError):
        verdict = "?"
    n_files = sum(len(s) for s in segs.values())
    return {"lost_s": lost_ms / 1000, "lost_total_s": total_ms / 1000, "corrupt": corrupt, "files": n_files, "events": logged,
            "verify": f"{v.returncode} {verdict}"}


def kills(n=20):
    data = os.path.join(WORK, "kills")
    d = Daemon(data)
    hid = d.open_hearing("20 SIGKILLs")
    for _ in range(n):
        time.sleep(random.uniform(1.0, 6.0))
        d.signal(signal.SIGKILL)
        d.start()
    time.sleep(3)
    d.close_and_stop(hid)
    return data, hid, f"{n} SIGKILLs at random moments"


def sigterm():
    data = os.path.join(WORK, "sigterm")
    d = Daemon(data)
    hid = d.open_hearing("SIGTERM")
    time.sleep(5)
    d.signal(signal.SIGTERM)
    d.start()
    time.sleep(5)
    d.close_and_stop(hid)
    return data, hid, "SIGTERM during a hearing, restarted"


def disk_full():
    if os.geteuid() != 0:
        return None
    mnt = os.path.join(WORK, "disk")
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", mnt], check=True)
    try:
        data = os.path.join(mnt, "data")
        cfg = os.path.join(WORK, "disk.toml")
        with open(cfg, "w") as f:
            f.write('[courtroom]\nid = "t1"\nname = "Disk"\n[recording]\ndisk_reserve_bytes = 4000000\n'
                    '[alarms]\ndisk_free_min_bytes = 20000000\n'
                    '[[camera]]\nid = "cam1"\nkind = "test"\nrole = "judge"\nbitrate_kbps = 2000\n'
                    '[[camera]]\nid = "cam2"\nkind = "test"\nrole = "witness"\npattern = "snow"\nbitrate_kbps = 2000\n'
                    '[[microphone]]\nid = "mic1"\nkind = "test"\nrole = "judge"\n' + users_toml())
        d = Daemon(data, cfg)
        hid = d.open_hearing("disk full")
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - 12_000_000))
        full = d.wait_alarm(lambda a: any(k.startswith("recording_failed:") for k in a), 60)
        time.sleep(2)
        os.remove(filler)
        back = d.wait_alarm(lambda a: not any(k.startswith("recording_failed:") for k in a), 30)
        time.sleep(3)
        d.close_and_stop(hid)
        out = analyse(data, hid)
        out["note"] = ("reserve reached" if full else "reserve NOT reached") + (", resumed" if back else ", NOT resumed")
        return out, "disk filled to the reserve, then freed"
    finally:
        subprocess.run(["umount", "-l", mnt])


def make_video(path, seconds):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=480x270:rate=15", "-t",
                    str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-bf", "0",
                    "-pix_fmt", "yuv420p", path], check=True)


def ip_config(name, url):
    cfg = os.path.join(WORK, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(f'[courtroom]\nid = "t1"\nname = "IP"\n[alarms]\nsource_lost_ms = 1000\n'
                '[[camera]]\nid = "cam1"\nkind = "test"\nrole = "judge"\n'
                f'[[camera]]\nid = "ip1"\nkind = "rtsp"\nrole = "witness"\nurl = "{url}"\n'
                '[[microphone]]\nid = "mic1"\nkind = "test"\nrole = "judge"\n' + users_toml())
    return cfg


def flapping_camera(period_s=3, total_s=60):
    video = os.path.join(WORK, "ipcam.mp4")
    make_video(video, total_s + 60)
    port = free_port()
    start_cam = lambda: subprocess.Popen([CAM, str(port), f"cam={video}"], stdout=subprocess.DEVNULL,  # noqa: E731
                                         stderr=subprocess.DEVNULL)
    cam = start_cam()
    data = os.path.join(WORK, "flap")
    d = Daemon(data, ip_config("flap", f"rtsp://127.0.0.1:{port}/cam"))
    hid = d.open_hearing("flapping camera")
    t_end = time.time() + total_s
    while time.time() < t_end:
        time.sleep(period_s)
        if cam.poll() is None:
            cam.kill()
            cam.wait()
        else:
            cam = start_cam()
    cam.kill()
    d.close_and_stop(hid)
    return data, hid, f"an RTSP camera unplugged and back every {period_s} s for {total_s} s"


def garbage_camera(total_s=15):
    """A camera that answers RTSP with random bytes, and one that sends a valid answer
    and then noise."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        srv.settimeout(0.5)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            try:
                c.settimeout(2)
                c.recv(4096)
                c.sendall(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 64\r\n\r\n" + os.urandom(4096))
                for _ in range(20):
                    c.sendall(os.urandom(1400))
            except OSError:
                pass
            finally:
                c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    data = os.path.join(WORK, "garbage")
    d = Daemon(data, ip_config("garbage", f"rtsp://127.0.0.1:{port}/cam"))
    hid = d.open_hearing("garbage camera")
    time.sleep(total_s)
    d.close_and_stop(hid)
    stop.set()
    srv.close()
    return data, hid, "an RTSP camera that sends garbage"


def index_deleted():
    data = os.path.join(WORK, "index")
    d = Daemon(data)
    hid = d.open_hearing("index deleted")
    time.sleep(5)
    d.close_and_stop(hid)
    subprocess.run(["rm", "-rf", os.path.join(data, "index")], check=True)
    rep = subprocess.run([BIN, "check", "--repair", "--data-dir", data], capture_output=True, text=True)
    d.start()
    listed = any(h["id"] == hid for h in d.ok("GET", "/hearings")["hearings"])
    d.stop()
    out = analyse(data, hid)
    out["note"] = f"check --repair exit {rep.returncode}; " + ("listed again" if listed else "NOT listed")
    return out, "the index deleted while stopped, check --repair"


def clock_steps():
    off = os.path.join(WORK, "clock-offset-ms")
    with open(off, "w") as f:
        f.write("0")
    data = os.path.join(WORK, "clock")
    d = Daemon(data, env={"COURTREC_TEST_CLOCK_OFFSET_FILE": off})
    hid = d.open_hearing("clock steps")
    for ms in ("3600000", "3000000"):  # +1 h, then -10 min
        time.sleep(5)
        with open(off, "w") as f:
            f.write(ms)
    time.sleep(5)
    d.close_and_stop(hid)
    return data, hid, "the clock stepped +1 h, then -10 min"


SCENARIOS = [("kills", kills), ("sigterm", sigterm), ("disk", disk_full), ("flap", flapping_camera),
             ("garbage", garbage_camera), ("index", index_deleted), ("clock", clock_steps)]


def main():
    rows = []
    for name, fn in SCENARIOS:
        if ONLY and name not in ONLY:
            continue
        t0 = time.time()
        print(f"... {name}", file=sys.stderr, flush=True)
        try:
            got = fn()
            if got is None:
                rows.append((name, "skipped (needs root)", "", "", "", "", ""))
                continue
            if len(got) == 3:
                data, hid, what = got
                out = analyse(data, hid)
            else:
                out, what = got
        except Exception as e:  # a scenario that breaks is a row, not the end
            rows.append((name, f"FAILED: {e}", "", "", "", "", ""))
            continue
        rows.append((name, what, f"{out['lost_s']:.1f} / {out['lost_total_s']:.1f}",
                     f"{out['corrupt']} of {out['files']}", out["events"],
                     out["verify"] + (f" ({out['note']})" if out.get("note") else ""), f"{time.time() - t0:.0f}"))
    head = ("scenario", "what", "seconds lost (longest / in all)", "files corrupt", "events logged", "verify",
            "took s")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\n(logs and data: {WORK})", file=sys.stderr)
    bad = [r for r in rows if r[1].startswith("FAILED") or (r[3] and not r[3].startswith("0 of"))]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
