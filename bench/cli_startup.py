"""Benchmark: how long the ``rudi`` command line takes to start.

In the same run, interleaved (one round runs every command once, so a busy machine slows all
of them alike), it times as fresh processes

* the baselines: ``python -c pass`` (the interpreter alone) and ``python -c "import pandas,
  sklearn"`` (what a command that loaded the model libraries up front would pay at least);
* ``rudi --help`` and ``rudi validate --help``;
* ``rudi validate examples/stop_search`` and ``examples/eis`` until it opens its first data file
  (an audit hook ends the process there): the start-up a user waits through before any data
  is read;

and prints the median, minimum and maximum wall-clock seconds of each, its median CPU seconds
(user + system; what the command costs whatever else the machine runs) and the ratios of the
medians to the baselines. The targets (issue 14): ``rudi --help`` under 1 s, ``rudi validate``
reaching its data under 2 s.

``--other-src PATH`` also times the ``rudi`` commands with another source tree first on the
path (e.g. the code before a change, ``--other-src ../baseline/src``), interleaved with ours.

Run: ``.venv/bin/python bench/cli_startup.py [--repeat 7] [--other-src PATH]``. Without the
stop-and-search files under ../shared/data the validate measurement is left out, saying so.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RUDI_DATA_DIR", ROOT.parent / "shared" / "data"))
#: (label, project, the data folder it reads): a case project and a temporal one
VALIDATED = (("stop_search", ROOT / "examples" / "stop_search", SHARED / "stop_and_search"),
             ("eis", ROOT / "examples" / "eis", SHARED / "eis"))
REACHED = 99  # exit code of a validate run stopped by the hook at its first data file

# `rudi validate PROJECT`, stopped (exit 99) when it opens a file under DATA
UNTIL_DATA = f"""
import os, sys
data = os.path.realpath(sys.argv[1]) + os.sep
def stop_at_data(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) \\
            and os.path.realpath(os.fsdecode(args[0])).startswith(data):
        os._exit({REACHED})
sys.addaudithook(stop_at_data)
from rudikit.cli import app
app(["validate", sys.argv[2]], prog_name="rudi")
"""

RUDI = "from rudikit.cli import app; app(prog_name='rudi')"


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str], env: dict[str, str], expect: int) -> tuple[float, float]:
    """(wall-clock, CPU) seconds from start to exit of one fresh process; its exit code must be
    ``expect``."""
    cpu, start = cpu_of_children(), time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    seconds, cpu = time.perf_counter() - start, cpu_of_children() - cpu
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {done.returncode}, expected "
                         f"{expect}:\n{done.stderr.decode(errors='replace')[-2000:]}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="Rounds (default 7).")
    parser.add_argument("--other-src", type=Path, default=None,
                        help="Another source tree to time the rudi commands with, e.g. the "
                             "code before a change.")
    args = parser.parse_args()

    python = sys.executable
    ours = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    trees = [("", ours)]
    if args.other_src is not None:
        trees.append((f" [{args.other_src}]",
                      {**os.environ, "PYTHONPATH": str(args.other_src.resolve())}))
    cases: list[tuple[str, list[str], dict[str, str], int]] = [
        ("python -c pass", [python, "-c", "pass"], ours, 0),
        ("python -c 'import pandas, sklearn'", [python, "-c", "import pandas, sklearn"],
         ours, 0),
    ]
    for suffix, env in trees:
        cases += [
            (f"rudi --help{suffix}", [python, "-c", RUDI, "--help"], env, 0),
            (f"rudi validate --help{suffix}", [python, "-c", RUDI, "validate", "--help"], env,
             0),
        ]
        for label, project, data in VALIDATED:
            if data.is_dir():
                cases.append((f"rudi validate {label}, until its data{suffix}",
                               [python, "-c", UNTIL_DATA, str(data), str(project)], env,
                               REACHED))
    for label, _, data in VALIDATED:
        if not data.is_dir():
            print(f"no files at {data}: `rudi validate` of {label} is not timed")

    times: dict[str, list[float]] = {name: [] for name, *_ in cases}
    cpus: dict[str, list[float]] = {name: [] for name, *_ in cases}
    for _name, argv, env, expect in cases:  # warm the file cache; not counted
        run_once(argv, env, expect)
    for _ in range(args.repeat):
        for name, argv, env, expect in cases:
            seconds, cpu = run_once(argv, env, expect)
            times[name].append(seconds)
            cpus[name].append(cpu)

    median = {name: statistics.median(values) for name, values in times.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    bare = median["python -c pass"]
    heavy = median["python -c 'import pandas, sklearn'"]
    width = max(len(name) for name in times)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.repeat} "
          f"interleaved rounds; wall-clock seconds")
    print(f"{'command':<{width}}  median    min    max    CPU  /python  /pandas+sklearn")
    for name, values in times.items():
        print(f"{name:<{width}}  {median[name]:6.3f} {min(values):6.3f} {max(values):6.3f} "
              f"{cpu[name]:6.3f}  {median[name] / bare:6.1f}x  {median[name] / heavy:14.2f}x")
    for suffix, _ in trees[1:]:
        for command in ("rudi --help", "rudi validate --help",
                        *(f"rudi validate {label}, until its data" for label, *_ in VALIDATED)):
            if command + suffix in median:
                print(f"{command}: {median[command + suffix] / median[command]:.1f}x faster "
                      f"(CPU {cpu[command + suffix] / cpu[command]:.1f}x less) than{suffix}")
    targets = (("rudi --help", 1.0),
               *((f"rudi validate {label}, until its data", 2.0) for label, *_ in VALIDATED))
    for command, limit in targets:
        if command in median:
            verdict = "met" if median[command] < limit else "NOT met"
            print(f"target {command} < {limit:g} s: {verdict} ({median[command]:.2f} s)")


if __name__ == "__main__":
    main()
