"""The labctl subcommands. Each returns the process exit status."""

from __future__ import annotations

import re
import sys
from dataclasses import asdict
from pathlib import Path

import yaml

from ..lifecycle import (
    PushError,
    down,
    known_state_labs,
    lab_health,
    lab_lock,
    plan_down,
    plan_push,
    plan_up,
    push_node,
    summarize,
    up,
)
from ..naming import (
    LAB_NAME_PATTERN,
    LAB_NAME_RULE,
    LabNameError,
    check_lab_name,
    lab_from_fabric_netns,
)
from ..progress import Progress
from ..runtime import DockerRuntime, docker_client
from ..state import collect, shows_for
from ..topology import TopologyError, load_lab
from ..wiring import list_named_netns
from .context import CliError, load_lab_as, open_lab_for_push, open_running_lab, pick_lab_name
from .main import print_json


def cmd_validate(args) -> int:
    status = 0
    for file in args.files:
        try:
            lab = load_lab(file)
        except TopologyError as exc:
            print(str(exc), file=sys.stderr)
            status = 1
            continue
        if getattr(args, "expand", False):
            sys.stdout.write(expanded_text(lab))
            continue
        print(f"{file}: ok: lab {lab.name}, {len(lab.nodes)} nodes, {len(lab.segments)} links")
    return status


def expanded_text(lab) -> str:
    """The topology as labctl sees it: patterns and inheritance expanded, secrets masked,
    defaults left out; expect/scenarios are not repeated (a `set` may hold a secret)."""
    import yaml

    model = lab.spec.model_dump(
        mode="json", by_alias=True, exclude_defaults=True, exclude={"expect", "scenarios"}
    )
    header = f"# {lab.source}: expanded ({len(lab.nodes)} nodes, {len(lab.segments)} links)\n"
    return header + yaml.safe_dump(model, sort_keys=False, width=100)


def cmd_schema(args) -> int:
    from ..topology.schema import topology_schema_text

    sys.stdout.write(topology_schema_text())
    return 0


def cmd_up(args) -> int:
    lab = load_lab_as(args.file, args.name)
    progress = Progress(quiet=args.quiet)
    runtime = DockerRuntime()
    if args.dry_run:
        plan = plan_up(lab, runtime, recreate=args.recreate)
        print("\n".join(plan.describe()))
        print("(dry run: nothing was changed)")
        return 1 if plan.action == "refuse" else 0
    with up(
        lab, runtime, progress, keep_on_failure=args.keep_on_failure, recreate=args.recreate
    ) as handle:
        _print_status_table([(lab.name, info) for info in handle.nodes.values()])
    return 0


def cmd_down(args) -> int:
    names = None if args.all or args.target is None else [_down_target(args.target)]
    runtime = DockerRuntime()
    progress = Progress(quiet=args.quiet)
    if args.all:
        names = _all_lab_names(runtime)
    elif names is None:
        names = [pick_lab_name(runtime, None)]
    if args.dry_run:
        for name in names:
            found = plan_down(name, runtime)
            print(f"lab {name}: " + ("would remove:" if found else "nothing to remove"))
            for item in found:
                print(f"  {item}")
        print("(dry run: nothing was changed)")
        return 0
    for name in names:
        removed = down(name, runtime, progress)
        if not removed:
            progress.say(f"lab {name}: nothing to remove")
        for item in removed:
            progress.say(f"  removed {item}")
    return 0


def _down_target(target: str) -> str:
    """The lab a `down TARGET` is about: a topology file's lab, or a lab name."""
    if target.endswith((".yaml", ".yml")) or Path(target).is_file():
        return load_lab(target).name
    # Not a file: it must be a lab name. A path ('/some/dir', '..', '') never is one.
    try:
        return check_lab_name(target)
    except LabNameError:
        raise CliError(
            f"down {target!r}: neither a topology file nor a lab name ({LAB_NAME_RULE})",
            status=2,
        ) from None


def _all_lab_names(runtime, named_netns: list[str] | None = None) -> list[str]:
    names = set(runtime.labs()) | known_state_labs()
    for netns_name in list_named_netns() if named_netns is None else named_netns:
        lab = lab_from_fabric_netns(netns_name)
        if lab:
            names.add(lab)
    # A label someone else set on a container is not a lab name to turn into paths.
    return sorted(name for name in names if re.fullmatch(LAB_NAME_PATTERN, name))


def cmd_status(args) -> int:
    runtime = DockerRuntime()
    nodes = [n for n in runtime.nodes(args.lab) if n.lab]
    netns = list_named_netns()
    # Labs with containers, and labs of which only leftovers remain (netns, state dir).
    labs = [lab for lab in _all_lab_names(runtime, netns) if args.lab in (None, lab)]
    health = {lab: lab_health(lab, [n for n in nodes if n.lab == lab], netns) for lab in labs}
    if args.json:
        rows = [_status_row(n.lab, n, health[n.lab].text()) for n in nodes]
        rows += [
            _status_row(lab, None, state.text())
            for lab, state in health.items()
            if not any(n.lab == lab for n in nodes)
        ]
        print_json(rows)
        return 0
    if not health:
        print("no labs are up" + (f" named {args.lab}" if args.lab else ""))
        return 0
    if nodes:
        _print_status_table([(n.lab, n) for n in nodes])
    for lab, state in health.items():
        count = sum(1 for n in nodes if n.lab == lab)
        print(f"lab {lab}: {state.text()}" + (f" ({count} nodes)" if state.ok else ""))
    return 0


def _status_row(lab: str, node, lab_state: str) -> dict:
    return {
        "lab": lab,
        "lab_state": lab_state,
        "node": node.node if node else None,
        "kind": node.kind if node else None,
        "state": node.state if node else None,
        "mgmt_ipv4": str(node.mgmt_ipv4) if node and node.mgmt_ipv4 else None,
        "container": node.name if node else None,
        "image": node.image if node else None,
    }


def _print_status_table(rows) -> None:
    header = ("LAB", "NODE", "KIND", "STATE", "MGMT IPV4", "CONTAINER")
    table = [header] + [
        (lab, n.node, n.kind, n.state, str(n.mgmt_ipv4 or "-"), n.name) for lab, n in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def cmd_exec(args) -> int:
    argv = args.argv[1:] if args.argv and args.argv[0] == "--" else args.argv
    if not argv:
        raise CliError("usage: labctl exec NODE -- COMMAND [ARGS...]", status=2)
    import shlex

    with open_running_lab(DockerRuntime(), args.lab) as handle:
        session = handle.session(args.node)
        return session.stream(
            shlex.join(argv) if len(argv) > 1 else argv[0],
            sys.stdout.buffer,
            sys.stderr.buffer,
            get_pty=args.tty,
        )


def cmd_show(args) -> int:
    with open_running_lab(DockerRuntime(), args.lab) as handle:
        if args.what is None:
            for name, show in sorted(shows_for(handle.lab.node(args.node)).items()):
                print(f"{name:12} {show.help}")
            return 0
        records, text = collect(handle, args.node, args.what, args.verbose)
    if args.json:
        print_json(records)
    else:
        sys.stdout.write(text)
    return 0


def cmd_push(args) -> int:
    progress = Progress(quiet=args.quiet)
    runtime = DockerRuntime()
    name = pick_lab_name(runtime, args.lab)
    failures: list[str] = []
    if args.dry_run:
        return _push_dry_run(runtime, name, args.nodes)
    # One lock for reading the file, pushing and recording: no up/down in between.
    with lab_lock(name, "labctl push"):
        handle, differences = open_lab_for_push(runtime, name)
        with handle:
            if differences:
                print(
                    f"labctl: note: the topology's structure changed since up "
                    f"({summarize(differences)}); push applies configuration only "
                    f"(labctl up {handle.lab.source} --name {name} --recreate applies the rest)",
                    file=sys.stderr,
                )
            for node in args.nodes:  # every name checked before the first push
                handle.lab.node(node)
            for node in args.nodes:
                try:
                    with progress.stage(f"push {node}"):
                        for item in push_node(handle, node):
                            progress.say(f"  {item}")
                except PushError as exc:
                    failures.append(str(exc))
    for failure in failures:
        print(f"labctl: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _push_dry_run(runtime, name: str, nodes: list[str]) -> int:
    handle, differences = open_lab_for_push(runtime, name)
    with handle:
        for node in nodes:  # every name checked before the first is planned
            handle.lab.node(node)
        if differences:
            print(f"note: the topology's structure changed since up ({summarize(differences)})")
        for node in nodes:
            print(f"push {node}:")
            for line in plan_push(handle, node):
                print(f"  {line}")
    print("(dry run: nothing was changed)")
    return 0


def cmd_inspect(args) -> int:
    from .inspect import inspect_labs, render_inspection

    runtime = DockerRuntime()
    labs = inspect_labs(runtime, _all_lab_names(runtime), args.lab)
    if args.json:
        print_json(labs)
    else:
        sys.stdout.write(render_inspection(labs))
    return 0


def cmd_capture(args) -> int:
    from .capture import run_capture

    return run_capture(args)


def cmd_ui(args) -> int:
    from ..ui.server import serve

    return serve(
        host=args.host,
        port=args.port,
        reports=args.reports,
        token=args.token,
        stop_after=args.stop_after,
        quiet=args.quiet,
    )


def cmd_junit_merge(args) -> int:
    from ..checks.junit import JunitMergeError, merge_junit

    try:
        tests, failed = merge_junit(args.files, args.output)
    except JunitMergeError as exc:
        raise CliError(str(exc)) from None
    print(f"{args.output}: {tests} tests, {failed} failed, from {len(args.files)} files")
    return 0


def cmd_completion(args) -> int:
    from .complete import script

    sys.stdout.write(script(args.shell))
    return 0


def cmd_graph(args) -> int:
    from .. import graph

    lab = load_lab(args.file)
    render = {"dot": graph.to_dot, "svg": graph.to_svg, "mermaid": graph.to_mermaid}
    try:
        text = render[args.format](lab)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_test(args) -> int:
    from ..checks import TopologyRun, discover, summary_table, write_junit
    from ..checks.events import EVENTS_FILE, RunEvents
    from ..checks.shard import ShardError, parse_shard, shard_of

    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ShardError as exc:
        raise CliError(str(exc), status=2) from None
    files = discover(args.paths)
    if not files:
        raise CliError(
            "no topology with 'expect' or 'scenarios' found in " + ", ".join(map(str, args.paths))
        )
    if args.keep and args.lab and len(files) > 1:
        raise CliError("--lab names one running lab; give one topology file with it")
    if args.matrix and args.keep:
        raise CliError("--matrix brings up a lab per combination; it cannot use --keep")
    progress = Progress(quiet=args.quiet)
    runtime = DockerRuntime()
    events = RunEvents(args.report_dir / EVENTS_FILE)

    def make_run(file: Path, lab=None, label: str = "") -> TopologyRun:
        return TopologyRun(
            file,
            runtime,
            args.report_dir,
            progress,
            keep=args.keep,
            lab_name=args.lab,
            only=args.scenario,
            lab_prefix=args.lab_prefix,
            events=events,
            lab=lab,
            label=label,
        )

    not_applicable = []
    if args.matrix:
        runs, not_applicable = _matrix_runs(files, make_run, args.scenario)
    else:
        runs = [make_run(file) for file in files]
    planned = [(run, case) for run in runs for case in run.cases()]
    if shard is not None:
        try:
            chosen = shard_of(planned, [case.id for _, case in planned], *shard)
        except ShardError as exc:
            raise CliError(str(exc)) from None
        progress.say(f"shard {shard[0]}/{shard[1]}: {len(chosen)} of {len(planned)} cases")
        planned = chosen
    events.emit(
        "run",
        cases=[case.id for _, case in planned],
        repeat=args.repeat,
        shard=args.shard,
        keep=args.keep,
    )
    results = list(not_applicable)
    for run in runs:
        selected = [case for owner, case in planned if owner is run]
        if selected:
            results += run.run(selected, repeat=args.repeat)
    junit = args.junit or args.report_dir / "junit.xml"
    write_junit(results, junit)
    events.emit(
        "run-done", passed=sum(r.ok for r in results), failed=sum(not r.ok for r in results)
    )
    sys.stdout.write(summary_table(results))
    print(f"JUnit XML: {junit}")
    ran = [case for _, case in planned if case.not_applicable is None]
    if not ran and shard is None:
        # Every combination not applicable: nothing was shown to work, so the run fails
        # (a shard with nothing to run is fine: the other shards have the cases).
        print("nothing ran: every case is not applicable (see the reasons above)")
        return 1
    if not ran:
        print(f"shard {args.shard}: nothing to run (no cases, or only not applicable ones)")
        return 0
    return 0 if results and all(r.ok for r in results) else 1


def _matrix_runs(files, make_run, only):
    """One run per applicable combination; a result per case of each one that is not."""
    from ..checks import CaseResult
    from ..checks.matrix import case_names, variants

    runs, not_applicable = [], []
    for file in files:
        try:
            found = variants(file)
        except (TopologyError, OSError, ValueError, yaml.YAMLError) as exc:
            runs.append(make_run(file))  # its own case reports why the file cannot run
            print(f"{file}: no matrix ({exc})", file=sys.stderr)
            continue
        for variant in found:
            run = make_run(file, variant.lab, variant.label)
            if variant.lab is not None:
                runs.append(run)
                continue
            for name in case_names(file, only):
                not_applicable.append(
                    CaseResult(
                        str(file),
                        run.case_name(name),
                        True,
                        0.0,
                        not_applicable=variant.not_applicable,
                    )
                )
    return runs, not_applicable


def cmd_images(args) -> int:
    from .. import images

    if args.action == "build":
        reporter = None if args.quiet else images.ConsoleProgress()
        roles = args.roles or images.DEFAULT_ROLES
        image_set = images.ensure_images(
            images.project_root(), progress=reporter, force=args.force, roles=roles
        )
        for role, tag in image_set.tags.items():
            print(f"{role:10} {tag}")
    elif args.action == "list":
        found = images.list_images()
        if args.json:
            print_json([asdict(i) for i in found])
        else:
            print(f"{'ROLE':6} {'TAG':28} {'SIZE':>8}  {'CURRENT':7}  IN USE BY")
            for info in found:
                print(
                    f"{info.role:6} {info.tag or info.image_id[:19]:28} "
                    f"{info.size / 2**20:7.0f}M  {'yes' if info.current else 'no':7}  "
                    f"{', '.join(info.in_use_by) or '-'}"
                )
    else:
        for removed in images.prune():
            print(f"removed {removed}")
        # the shared /usr and /opt volumes of the images just removed (and any older ones)
        from ..runtime.shared_files import remove_unused

        for removed in remove_unused(docker_client()):
            print(f"removed {removed}")
    return 0
