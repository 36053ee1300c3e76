"""Run every benchmark module under bench/ that defines ``main()`` (``make bench``)."""

import importlib
import pkgutil
import sys

import bench


def run_all(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    only = set(argv)
    for name in names:
        if only and name not in only:
            continue
        mod = importlib.import_module(f"bench.{name}")
        if getattr(mod, "RUN_BY_NAME_ONLY", False) and name not in only:
            continue
        if hasattr(mod, "main"):
            print(f"\n== bench.{name} ==", flush=True)
            mod.main([])
    return 0


if __name__ == "__main__":
    sys.exit(run_all(sys.argv[1:]))
