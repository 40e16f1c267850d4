"""Every performance figure of the issue, in one run: `python -m bench [--quick]`.

    python -m bench --quick            # under 5 minutes on 2 CPU cores: smaller sizes, same figures
    python -m bench                    # the full sizes (P6 at 100k with both Qdrant engines, P7/P8 at 10k)
    python -m bench --device cuda      # model figures on a GPU (P1–P5; the rest do not use the model)
    python -m bench --only P1-P5,P6    # some parts: P1-P5 (model), P6 (queries), P7-P8 (scale), Q1 (CLI start-up),
                                       # scale-out (one process against a local Ray; memory on Neo4j)
    python -m bench --profile          # also a pyinstrument profile of one fast-path ingest

Prints every figure and writes them, with the command and the machine, to BENCHMARKS.md
(section "bench", or "bench-quick" / "bench-cuda"), and the raw numbers to bench/.cache/last-run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench.common import REPO, Section, git_revision, machine, write_section

PARTS = ("P1-P5", "P6", "P7-P8", "Q1", "SCALE-OUT")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; the whole run stays under 5 minutes")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--profile", action="store_true", help="profile one fast-path ingest with pyinstrument")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    opts = parser.parse_args(argv)
    parts = [p.strip().upper() for p in opts.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    started = time.perf_counter()
    sections: list[Section] = []
    if "P1-P5" in parts:
        from bench import speed

        sections += speed.run(opts.quick, opts.device, profile=opts.profile)
        print_now(sections)
    if "P6" in parts:
        from bench import queries

        sections.append(queries.run(opts.quick))
        print_now(sections[-1:])
    if "P7-P8" in parts:
        from bench import scale

        sections += scale.run(opts.quick)
        print_now(sections[-2:])
    if "Q1" in parts:
        from bench import cli_latency

        sections.append(cli_latency.run(opts.quick))
        print_now(sections[-1:])
    if "SCALE-OUT" in parts:
        from bench import scale_out

        sections.append(scale_out.run(chunks=80 if opts.quick else scale_out.CHUNKS, memory=not opts.quick))
        print_now(sections[-1:])
    elapsed = time.perf_counter() - started

    command = "python -m bench" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    summary = [(d, met) for s in sections for d, met in s.targets]
    body = "\n".join(
        [
            f"## Performance ({'quick run' if opts.quick else 'full run'}{', ' + opts.device if opts.device != 'cpu' else ''}"
            f"{'' if set(parts) == set(PARTS) else ', ' + ', '.join(p.lower() for p in parts)})",
            "",
            f"Command: `{command}` (git {git_revision()}, {time.strftime('%Y-%m-%d')}, {elapsed / 60:.1f} min)  ",
            f"Machine: {machine()}{gpu_name(opts.device)}",
            "",
            "| target | |",
            "|---|---|",
            *[f"| {d} | {'met' if met else '**not met**'} |" for d, met in summary],
            "",
            *[s.markdown() for s in sections],
        ]
    )
    print(f"\n{len([m for _, m in summary if m])} of {len(summary)} targets met; {elapsed / 60:.1f} min")
    if not opts.no_write:
        name = "bench" + ("-quick" if opts.quick else "") + ("-cuda" if opts.device == "cuda" else "")
        if set(parts) != set(PARTS):  # a run of some parts leaves the whole run's section as it was
            name += "-" + "-".join(p.lower() for p in parts)
        write_section(name, body)
        cache = REPO / "bench" / ".cache"
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "last-run.json").write_text(json.dumps({s.key: s.figures for s in sections}, indent=1, default=str))
    return 0


def print_now(sections: list[Section]) -> None:
    for section in sections:
        print(section.markdown(), flush=True)


def gpu_name(device: str) -> str:
    if device != "cuda":
        return ""
    import torch

    return f"; GPU: {torch.cuda.get_device_name(0)}"


if __name__ == "__main__":
    raise SystemExit(main())
