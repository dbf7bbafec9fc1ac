"""A Ray cluster of a head and N worker nodes on this machine, for trying multi-node searches.

    python -m cluster.local start --workers 2 --cpus 2     # a head and 2 worker nodes
    python -m search.run spaces/lens_finding.yaml --address 127.0.0.1:PORT
    python -m cluster.local status
    python -m cluster.local kill-worker 1                  # lose a node mid-search (SIGKILL)
    python -m cluster.local stop

Every node is a real ``ray start`` (its own raylet, object store and workers) on 127.0.0.1, the
dashboard on http://127.0.0.1:PORT, with Ray's token authentication on: the token is
``~/.ray/auth_token`` (created if missing), and a shell that connects sets ``RAY_AUTH_MODE=token``.
Each node runs in its own process session (and worker nodes in their own temp folder, as on
machines of their own), recorded in a state file, so ``stop`` and ``kill-worker`` end exactly
that cluster's processes and leave any other Ray on the machine alone (``ray stop`` would end
them all). Ports are picked free, so two clusters can run side by side with different ``--state``
files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_STATE = Path(tempfile.gettempdir()) / "lens-search-local-cluster.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """The live processes of session ``sid`` (a node's ``ray start`` and all it started)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # after "pid (comm)": state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


def end_session(sid: int, grace_s: float = 3.0) -> None:
    """End every process of session ``sid``: SIGTERM, and SIGKILL after ``grace_s`` (at once with
    0); return once they are all gone."""
    deadline = time.monotonic() + grace_s
    while pids := session_pids(sid):
        late = time.monotonic() >= deadline
        if late and time.monotonic() > deadline + 30:
            raise RuntimeError(f"processes of session {sid} did not end: {pids}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL if late else signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def node_id(sid: int) -> str | None:
    """The Ray node id of the node whose processes form session ``sid`` (from its raylet)."""
    for pid in session_pids(sid):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"/raylet"):
            for arg in args:
                if arg.startswith(b"--node_id="):
                    return arg.split(b"=", 1)[1].decode()
    return None


def ray_command() -> list[str]:
    return [sys.executable, "-m", "ray.scripts.scripts"]


def auth_env() -> dict[str, str]:
    """Ray's token authentication for every node: the token of ``~/.ray/auth_token`` (created if
    missing), which drivers and ``ray job submit`` on this machine find by themselves."""
    subprocess.run(ray_command() + ["get-auth-token", "--generate"], check=True, capture_output=True)
    return {**os.environ, "RAY_AUTH_MODE": "token"}


def start_node(args: list[str], log: Path, env: dict[str, str]) -> int:
    """Run ``ray start ARGS`` in a new session; return the session id (its processes outlive it)."""
    with open(log, "a") as out:
        proc = subprocess.Popen(ray_command() + ["start", *args, "--disable-usage-stats"], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
        code = proc.wait(timeout=180)
    if code != 0:
        end_session(proc.pid, grace_s=0)
        raise RuntimeError(f"ray start {' '.join(args)} failed (exit {code}); see {log}")
    return proc.pid


def node_ports() -> list[str]:
    """Ports a node must not share with another node on the same machine."""
    return [f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"]


def read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def alive(node: dict) -> bool:
    return bool(session_pids(node["session"]))


def start(workers: int, cpus: float, head_cpus: float | None, gpus: float, port: int | None,
          dashboard_port: int | None, state_path: Path) -> dict:
    """Start the head and ``workers`` worker nodes; write and return the state."""
    state = read_state(state_path)
    if state and any(alive(n) for n in state["nodes"]):
        raise SystemExit(f"a local cluster is already running ({state['address']}, state {state_path}): "
                         f"stop it first (python -m cluster.local stop) or pass another --state")
    port = port or free_port()
    dashboard_port = dashboard_port or free_port()
    log = state_path.with_suffix(".log")
    log.write_text("")
    address = f"{HOST}:{port}"
    state = {"address": address, "dashboard": f"http://{HOST}:{dashboard_port}", "log": str(log), "nodes": []}
    head_cpus = cpus if head_cpus is None else head_cpus
    env = auth_env()
    try:
        sid = start_node(["--head", f"--node-ip-address={HOST}", f"--port={port}", f"--num-cpus={head_cpus:g}",
                          "--num-gpus=0", f"--dashboard-host={HOST}", f"--dashboard-port={dashboard_port}",
                          f"--ray-client-server-port={free_port()}", *node_ports()], log, env)
        state["nodes"].append({"role": "head", "session": sid, "node_id": node_id(sid), "cpus": head_cpus,
                               "gpus": 0})
        for index in range(1, workers + 1):
            # Its own temp folder, as on a machine of its own: nodes sharing one would unpack
            # each job's working_dir into the same folder, pulling it from under the driver.
            # Short: Ray's socket paths inside it must stay under 108 characters.
            temp = Path(tempfile.gettempdir()) / f"ray-{port}-w{index}"
            sid = start_node([f"--address={address}", f"--node-ip-address={HOST}", f"--num-cpus={cpus:g}",
                              f"--num-gpus={gpus:g}", f"--temp-dir={temp}", *node_ports()], log, env)
            state["nodes"].append({"role": "worker", "session": sid, "node_id": node_id(sid), "cpus": cpus,
                                   "gpus": gpus, "temp_dir": str(temp)})
    except BaseException:
        for node in state["nodes"]:
            end_session(node["session"])
        raise
    state_path.write_text(json.dumps(state, indent=2))
    return state


def stop(state_path: Path) -> int:
    """End every node of the cluster (workers first); return how many were running."""
    state = read_state(state_path)
    if not state:
        return 0
    running = [n for n in state["nodes"] if alive(n)]
    for node in sorted(running, key=lambda n: n["role"] == "head"):
        end_session(node["session"])
    for node in state["nodes"]:
        if node.get("temp_dir"):
            shutil.rmtree(node["temp_dir"], ignore_errors=True)
    state_path.unlink(missing_ok=True)
    return len(running)


def kill_worker(state_path: Path, index: int) -> dict:
    """SIGKILL every process of worker node ``index`` (1-based): a node lost without warning."""
    state = read_state(state_path)
    if not state:
        raise SystemExit(f"no local cluster recorded in {state_path}")
    workers = [n for n in state["nodes"] if n["role"] == "worker"]
    if not 1 <= index <= len(workers):
        raise SystemExit(f"worker {index}: the cluster has workers 1..{len(workers)}")
    node = workers[index - 1]
    end_session(node["session"], grace_s=0)
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE,
                        help=f"the cluster's state file (default {DEFAULT_STATE})")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("start", help="start a head and N worker nodes")
    up.add_argument("--workers", type=int, default=1, help="worker nodes (default 1)")
    up.add_argument("--cpus", type=float, default=1, help="CPUs of each worker node (default 1)")
    up.add_argument("--head-cpus", type=float, help="CPUs of the head node (default --cpus; 0: no trial on it)")
    up.add_argument("--gpus", type=float, default=0, help="GPUs of each worker node (default 0)")
    up.add_argument("--port", type=int, help="the head's port (default a free one)")
    up.add_argument("--dashboard-port", type=int, help="the dashboard's port (default a free one)")
    commands.add_parser("status", help="the nodes and whether they run")
    kill = commands.add_parser("kill-worker", help="SIGKILL a worker node, as if its machine died")
    kill.add_argument("index", type=int, nargs="?", default=1, help="which worker, from 1 (default 1)")
    commands.add_parser("stop", help="stop every node of the cluster")
    args = parser.parse_args(argv)

    if args.command == "start":
        state = start(args.workers, args.cpus, args.head_cpus, args.gpus, args.port, args.dashboard_port, args.state)
        print(f"Ray cluster on {HOST}: a head and {args.workers} worker node(s) (state {args.state})\n"
              f"  address    {state['address']}\n  dashboard  {state['dashboard']}\n"
              "it takes Ray's token authentication (the token in ~/.ray/auth_token); in the shell that uses it:\n"
              "  export RAY_AUTH_MODE=token\n"
              f"search on it:\n  python -m search.run spaces/lens_finding.yaml --address {state['address']}\n"
              f"  ray job submit --address {state['dashboard']} -- python -m search.run "
              f"spaces/lens_finding.yaml --results {Path.cwd() / 'results'}\n"
              "stop it:\n  python -m cluster.local stop", flush=True)
    elif args.command == "status":
        state = read_state(args.state)
        if not state:
            print(f"no local cluster recorded in {args.state}")
            return 1
        print(f"address {state['address']}, dashboard {state['dashboard']}")
        for node in state["nodes"]:
            print(f"  {node['role']:6s} node {node['node_id'] or '?':.12s}  session {node['session']:7d}  "
                  f"cpus {node['cpus']:g} gpus {node['gpus']:g}  {'running' if alive(node) else 'stopped'}")
    elif args.command == "kill-worker":
        node = kill_worker(args.state, args.index)
        print(f"killed worker {args.index} (session {node['session']})")
    else:
        print(f"stopped {stop(args.state)} node(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
