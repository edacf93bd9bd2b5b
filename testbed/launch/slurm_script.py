"""The two scripts a Slurm run is: the batch script and the node step, as pure text.

``job.sbatch`` asks for the nodes and devices and runs one job step per suite entry, in the
suite's order: a single-device entry on the first node, a multi-rank entry on every node at
once (torchrun's c10d rendezvous on the first node), a per-node entry on every node
separately. ``node.sh`` is what each task of a step runs: the same ``python -m bench run``,
natively or in the vendor's image, writing into ``nodes/<node>/<entry>/`` of the shared run
directory. Both are written into the run directory before submission and kept, so an auditor
reads exactly what ran.

Every value that reaches a script is checked first (``script_problems``): no control
character anywhere (a newline would end a ``#SBATCH`` line or a comment and start a command),
strict patterns for what stands unquoted on an ``#SBATCH`` line (sbatch reads those itself),
and everything else shell-quoted.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from testbed.launch.base import RunRequest

CONTAINERS = ("none", "docker", "apptainer")
PLACEMENTS = ("single", "multi", "per_node")
SLURM_DIR = "slurm"
BATCH_SCRIPT = "job.sbatch"
NODE_SCRIPT = "node.sh"
STEPS_LOG = "steps.tsv"
# The rendezvous port: this base plus the job id modulo the spread, so two jobs that share a
# node do not collide (--rdzv-port fixes it).
RDZV_PORT_BASE = 29400
RDZV_PORT_SPREAD = 1000

# What may stand on an #SBATCH line, where nothing is quoted (Slurm's own names and formats).
SLURM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SBATCH_VALUES: dict[str, tuple[re.Pattern[str], str]] = {
    "partition": (re.compile(r"[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64}){0,15}"),
                  "a partition name, or several separated by commas (letters, digits, _.-)"),
    "account": (SLURM_NAME, "an account name (letters, digits, _.-)"),
    "time": (re.compile(r"\d{1,6}(-\d{1,2})?(:\d{1,2}){0,2}|UNLIMITED|INFINITE"),
             "Slurm's time format: MINUTES, H:MM:SS, D-HH or D-HH:MM:SS"),
    "gres": (re.compile(r"[A-Za-z0-9_.-]{1,64}(:[A-Za-z0-9_.-]{1,64}){0,2}"),
             "a generic resource: NAME or NAME:TYPE (letters, digits, _.-)"),
}
# The run directory appears unquoted in --output: a plain absolute path (no '%', which Slurm
# expands, no space, no quote or shell character).
RUN_DIR = re.compile(r"/[A-Za-z0-9_./+@=,~-]{0,4000}")
EXTRA_SBATCH = re.compile(r"--[a-z][a-z-]{0,40}(=[A-Za-z0-9_.:,/=+-]{1,200})?")
CONTROL = re.compile(r"[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029]")


@dataclass(frozen=True)
class StepPlan:
    """One suite entry as one job step."""

    entry: str
    placement: str  # single | multi | per_node

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")


@dataclass(frozen=True)
class SlurmJob:
    """Everything the two scripts say: the run's request, and what the command line and the
    vendor spec add for the scheduler."""

    # What to run, as every launcher gets it, with the run id, the run directory (absolute,
    # on a filesystem every node shares) and the suite as every node names it (a bundled
    # suite's name, or the absolute path of a suite file).
    request: RunRequest
    bench_device: str
    nodes: int
    steps: tuple[StepPlan, ...]
    devices_per_node: int | None = None  # None: every device of the node
    gres: str | None = None  # the vendor's generic resource name (gpu, mlu)
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    container: str = "none"
    # native: the interpreter and the checkout (the same paths on every node)
    python: str = "python3"
    repo_dir: str = "."
    # container: the image (a tag every node's engine holds, or a .sif file) and how the
    # container is started (docker run options from the vendor spec, or apptainer flags)
    image: str | None = None
    container_options: tuple[str, ...] = ()
    rdzv_port: int | None = None
    extra_sbatch: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.request.run_id is None or self.request.out is None:
            raise ValueError("the request needs its run id and run directory")
        if self.nodes < 1:
            raise ValueError(f"nodes must be at least 1, got {self.nodes}")
        if self.container not in CONTAINERS:
            raise ValueError(f"container must be one of {CONTAINERS}, got {self.container!r}")
        if self.container != "none" and not self.image:
            raise ValueError(f"a {self.container} run needs an image")
        if self.devices_per_node is not None and self.devices_per_node < 1:
            raise ValueError(f"devices per node must be at least 1, got {self.devices_per_node}")
        problems = script_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def run_id(self) -> str:
        return str(self.request.run_id)

    @property
    def run_dir(self) -> str:
        return str(self.request.out)

    @property
    def suite(self) -> str:
        return self.request.suite

    @property
    def vendor(self) -> str:
        return self.request.vendor

    def to_dict(self) -> dict[str, Any]:
        """The plan as ``slurm/plan.json`` keeps it (``from_dict`` reads it back)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["request"] = self.request.to_dict()
        out["steps"] = [{"entry": s.entry, "placement": s.placement} for s in self.steps]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlurmJob:
        """A plan as ``to_dict`` wrote it, or as runs planned before the job held its request
        wrote it (the request's fields at the top level), so ``invoke gather`` reads both."""
        data = dict(data)
        if "request" in data:
            request = RunRequest.from_dict(data.pop("request"))
        else:
            request = RunRequest(
                suite=data.pop("suite"), vendor=data.pop("vendor"),
                out=Path(data.pop("run_dir")), run_id=data.pop("run_id"),
                label=data.pop("label", None), overrides=tuple(data.pop("overrides", ()) or ()),
                require_quiet=bool(data.pop("require_quiet", False)), launcher="slurm")
        data["steps"] = tuple(StepPlan(**s) for s in data["steps"])
        for key in ("container_options", "extra_sbatch"):
            data[key] = tuple(data.get(key) or ())
        return cls(request=request, **data)


def text_problem(what: str, value: str) -> str | None:
    """Why ``value`` cannot go into a script at all (a control character), or None."""
    found = CONTROL.search(value)
    if found:
        return (f"{what} {value!r} holds a control character ({found.group()!r}): it would "
                "end a line of the batch script")
    return None


def sbatch_problem(key: str, value: str) -> str | None:
    """Why ``value`` cannot be the ``--key`` of an ``#SBATCH`` line, or None."""
    pattern, what = SBATCH_VALUES[key]
    if not pattern.fullmatch(value):
        return f"--{key} {value!r} is not {what}"
    return None


def run_dir_problem(value: str) -> str | None:
    if not RUN_DIR.fullmatch(value):
        return (f"the run directory {value!r} is not a plain absolute path (letters, digits "
                "and _./+@=,~- only: it is written unquoted into #SBATCH --output)")
    return None


def script_problems(job: SlurmJob) -> list[str]:
    """Every value of ``job`` that cannot go into the scripts safely (empty: all can)."""
    out: list[str] = []
    request = job.request
    texts = [("run id", job.run_id), ("suite", job.suite), ("vendor", job.vendor),
             ("bench device", job.bench_device), ("python", job.python),
             ("checkout", job.repo_dir), ("image", job.image or ""),
             ("label", request.label or ""), *(("--set", o) for o in request.overrides),
             *(("--only", o) for o in request.only),
             *(("container option", o) for o in job.container_options),
             *(("step", s.entry) for s in job.steps)]
    out += [p for what, value in texts if (p := text_problem(what, value))]
    for key in SBATCH_VALUES:
        value = getattr(job, key)
        if value is not None and (p := sbatch_problem(key, value)):
            out.append(p)
    if p := run_dir_problem(job.run_dir):
        out.append(p)
    out += [f"extra #SBATCH line {x!r} is not --option[=plain value]" for x in job.extra_sbatch
            if not EXTRA_SBATCH.fullmatch(x)]
    if not SLURM_NAME.fullmatch(job.run_id[:64]) or not all(
            SLURM_NAME.fullmatch(s.entry[:64]) for s in job.steps):
        out.append("run and entry ids must be letters, digits and _.- (they name the job)")
    return out


def _q(text: str) -> str:
    return shlex.quote(text)


def _comment(text: str) -> str:
    """Text for a ``#`` comment: one line whatever it holds (the values are checked before,
    this keeps a comment a comment even so)."""
    return CONTROL.sub("?", text)


def sbatch_directives(job: SlurmJob) -> list[str]:
    """The ``#SBATCH`` lines: nodes, one task per node, the devices, where output goes."""
    lines = [f"--job-name=bench-{job.run_id.split('-', 2)[-1][:40]}",
             f"--nodes={job.nodes}", "--ntasks-per-node=1", "--exclusive"]
    if job.gres and job.devices_per_node:
        lines.append(f"--gres={job.gres}:{job.devices_per_node}")
    elif job.gres:
        lines.append(f"--gres={job.gres}")  # one device per node unless G is given
    for key, value in (("partition", job.partition), ("account", job.account),
                       ("time", job.time)):
        if value:
            lines.append(f"--{key}={value}")
    lines += [f"--output={job.run_dir}/{SLURM_DIR}/job-%j.out", "--open-mode=append",
              *job.extra_sbatch]
    return [f"#SBATCH {line}" for line in lines]


def step_command(step: StepPlan, nodes: int, index: int, total: int) -> list[str]:
    """The ``srun`` lines of one entry: a comment, the step, its exit status recorded."""
    node_script = f'"$RUN_DIR/{SLURM_DIR}/{NODE_SCRIPT}"'
    if step.placement == "single" or nodes == 1:
        where = "single device, first node" if step.placement == "single" else "first node"
        srun = f'srun --nodes=1 --ntasks=1 --nodelist="$FIRST" --job-name={_q(step.entry)}'
        nnodes = 1
    elif step.placement == "multi":
        where = f"{nodes} nodes together, torchrun c10d rendezvous on the first node"
        srun = f"srun --nodes={nodes} --ntasks-per-node=1 --job-name={_q(step.entry)}"
        nnodes = nodes
    else:
        where = f"every node separately ({nodes} results)"
        srun = f"srun --nodes={nodes} --ntasks-per-node=1 --job-name={_q(step.entry)}"
        nnodes = 1
    return [f"# [{index}/{total}] {step.entry}: {where}",
            f"{srun} bash {node_script} {_q(step.entry)} {nnodes} {step.placement}",
            f'record {_q(step.entry)} "$?"']


def batch_script(job: SlurmJob) -> str:
    """``job.sbatch``: submitted with ``sbatch --parsable`` and kept in the run directory."""
    port = (str(job.rdzv_port) if job.rdzv_port else
            f"$(({RDZV_PORT_BASE} + SLURM_JOB_ID % {RDZV_PORT_SPREAD}))")
    devices = (f"{job.devices_per_node} {job.vendor} device(s)" if job.devices_per_node
               else f"every {job.vendor} device")
    lines = [
        "#!/bin/bash",
        f"# accel-testbed run {job.run_id}: suite {_comment(job.suite)} on {job.nodes} node(s) x "
        f"{devices} per node ({'natively' if job.container == 'none' else job.container}).",
        "# Written by `invoke bench --slurm` and kept in the run directory: this is what ran.",
        *sbatch_directives(job),
        "set -uo pipefail",
        f"export RUN_DIR={_q(job.run_dir)}",
        "# The first node of the allocation hosts the rendezvous of the multi-rank entries.",
        'FIRST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        'ADDR=$(scontrol show node "$FIRST" | grep -o "NodeAddr=[^ ]*" | cut -d= -f2)',
        f'export BENCH_RDZV_ENDPOINT="${{ADDR:-$FIRST}}:{port}"',
        "failed=0",
        f'record() {{ printf "%s\\t%s\\t%s\\n" "$1" "$2" "$(date -u +%FT%TZ)" '
        f'>> "$RUN_DIR/{SLURM_DIR}/{STEPS_LOG}"; [ "$2" = 0 ] || failed=1; }}',
    ]
    for i, step in enumerate(job.steps, 1):
        lines += step_command(step, job.nodes, i, len(job.steps))
    lines.append('exit "$failed"')
    return "\n".join(lines) + "\n"


def bench_args(job: SlurmJob) -> list[str]:
    """The fixed part of ``python -m bench run`` on every node: the job's request's arguments
    (``RunRequest.bench_args``, as every launcher builds them); the node script adds the
    entry (each step runs one, so the request's ``--only`` is its steps), the node's paths
    and its placement."""
    extra = ["--launcher", "slurm", "--quiet"]
    if job.devices_per_node:
        # The devices are the job's (Slurm sets CUDA_VISIBLE_DEVICES for gres/gpu; the job
        # owns whole nodes): the ranks of a multi-rank entry are G per node.
        extra += ["--nproc-per-node", str(job.devices_per_node)]
    return replace(job.request, only=()).bench_args(job.bench_device, job.run_id,
                                                    extra=tuple(extra))


def _launch_line(job: SlurmJob) -> list[str]:
    """How the node starts ``python -m bench`` with "${args[@]}": natively, or through the
    image's entrypoint (``python -m bench``), which ``docker run`` and ``apptainer run`` both
    use."""
    if job.container == "none":
        return [f"cd {_q(job.repo_dir)}",
                f'exec {_q(job.python)} -m bench "${{args[@]}}"']
    binds = ['"$node_dir"']
    if job.suite.startswith("/"):
        binds.append(_q(job.suite))
    options = " ".join(_q(o) for o in job.container_options)
    if job.container == "docker":
        mounts = " ".join(f"-v {b}:{b}" + (":ro" if b != '"$node_dir"' else "") for b in binds)
        opts = list(job.container_options)
        user = opts[opts.index("--user") + 1] if "--user" in opts else None
        # root on the node runs the image's own user: give it the node's directory
        own = [f'[ "$(id -u)" != 0 ] || chown {_q(user)} "$node_dir"'] if user else []
        return [*own, f'exec docker run --rm --name "bench-$SLURM_JOB_ID-$node-$entry" {options} '
                f'--network host {mounts} {_q(str(job.image))} "${{args[@]}}"']
    return [" ".join(["exec apptainer run", options, "--bind", ",".join(binds),
                      _q(str(job.image)), '"${args[@]}"']).replace("  ", " ")]


def node_script(job: SlurmJob) -> str:
    """``node.sh ENTRY NNODES PLACEMENT``: what every task of a step runs on its node."""
    args = " ".join(_q(a) for a in bench_args(job))
    lines = [
        "#!/bin/bash",
        f"# accel-testbed run {job.run_id}: one suite entry on this node (a task of a job",
        "# step of job.sbatch). Results go to nodes/<node>/<entry>/ of the run directory; the",
        "# node's idle telemetry is measured by its first step and read by the later ones.",
        "set -euo pipefail",
        'entry=$1 nnodes=$2 placement=$3',
        'node=${SLURMD_NODENAME:-$(hostname -s)}',
        'node_dir="$RUN_DIR/nodes/$node"',
        'mkdir -p "$node_dir"',
        f"args=({args} --only \"$entry\" --out \"$node_dir/$entry\" "
        '--idle-file "$node_dir/idle.json" --node "$node" --job-id "$SLURM_JOB_ID")',
        'if [ "$nnodes" -gt 1 ]; then',
        '  args+=(--nnodes "$nnodes" --node-rank "$SLURM_NODEID" '
        '--rdzv-endpoint "$BENCH_RDZV_ENDPOINT" --rdzv-id "$SLURM_JOB_ID-$entry")',
        "fi",
        '[ "$placement" != per_node ] || args+=(--per-node)',
        *_launch_line(job),
    ]
    return "\n".join(lines) + "\n"
