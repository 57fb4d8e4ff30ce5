"""Run every ``benchmarks/bench_*.py`` (or the ones named: ``python -m benchmarks lake``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules(benchmarks.__path__)
        if info.name.startswith("bench_")
    )
    wanted = argv or names
    unknown = [name for name in wanted if name not in names]
    if unknown:
        print(f"benchmarks: unknown {', '.join(unknown)}; have {', '.join(names)}", file=sys.stderr)
        return 2
    for name in wanted:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
