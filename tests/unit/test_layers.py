"""The package's layers, as docs/architecture.md draws them: every import (type-checking and
function-level ones included) goes down or sideways, never up, and no modules or packages
import each other in a loop."""

import ast
from pathlib import Path

import stamp_suite

PKG = Path(stamp_suite.__file__).parent
# Bottom first.  A module takes the rank of the longest prefix listed for it.
LAYERS = [
    ("wire",),
    ("tlvs",),
    ("reflector", "reflector.engine", "reflector.sessions", "reflector.counters", "reflector.loop_guard",
     "reflector.tlv_procedure", "sender.engine", "sender.events", "sender.stats", "sender.distribution"),
    ("net",),
    ("say", "files", "keys", "units", "config"),
    ("reflector.server", "reflector.service", "reflector.auth_log", "sender", "observability"),
    ("monitor",),
    ("assembly",),
    ("commands", "api", "args"),
    ("completion", "manpage"),
    ("cli", "entry", "__main__"),
]
RANK = {prefix: rank for rank, prefixes in enumerate(LAYERS) for prefix in prefixes}


def _name(path: Path) -> str:
    parts = path.relative_to(PKG).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in PKG.rglob("*.py")}


def rank(module: str) -> int:
    if not module:  # the package itself: its version, nothing else
        return 0
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in RANK:
            return RANK[".".join(parts[:i])]
    raise AssertionError(f"stamp_suite.{module} is in no layer: add it to LAYERS (and docs/architecture.md)")


def imports(module: str, source: str | None = None) -> set[str]:
    """The package's modules that ``module`` imports (its file, or ``source`` as if it were
    its text), by their names below stamp_suite."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            names = [a.name.removeprefix("stamp_suite.") for a in node.names if a.name.startswith("stamp_suite.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] + ([node.module] if node.module else [])
            elif node.module == "stamp_suite" or (node.module or "").startswith("stamp_suite."):
                base = node.module.split(".")[1:]
            else:
                continue
            # "from .x import y" names the module x, or the module x.y
            names = [".".join(base + [a.name]) if ".".join(base + [a.name]) in MODULES else ".".join(base)
                     for a in node.names]
        else:
            continue
        out.update(name for name in names if name in MODULES and name != module)
    return out


GRAPH = {m: imports(m) for m in MODULES}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None
    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_import_goes_down_or_sideways():
    up = [f"{a} ({rank(a)}) imports {b} ({rank(b)})" for a, bs in GRAPH.items() for b in bs if rank(b) > rank(a)]
    assert not up, "\n".join(up)


def test_no_modules_import_each_other_in_a_loop():
    # a package's __init__ hands on its modules' names: its edges are its modules'
    assert _cycle(GRAPH) is None, " -> ".join(_cycle(GRAPH))


def test_no_packages_import_each_other_in_a_loop():
    def package(m: str) -> str:
        return m.split(".")[0]
    graph: dict[str, set[str]] = {}
    for a, bs in GRAPH.items():
        graph.setdefault(package(a), set()).update(package(b) for b in bs if package(b) != package(a))
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_engines_and_below_touch_no_operating_system():
    """The protocol core reads no socket, clock, file or thread (sans-I/O): time and bytes
    are arguments."""
    forbidden = {"socket", "asyncio", "time", "threading", "selectors", "os", "pathlib", "mmap", "subprocess",
                 "multiprocessing", "io", "shutil", "tempfile", "signal", "ctypes", "psutil", "importlib",
                 "sys", "datetime", "random"}  # (secrets only draws a reflector's loop-tag key, once)
    for module, path in MODULES.items():
        if rank(module) > RANK["reflector.engine"]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{module} imports {name}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("open", "__import__", "print", "input"), f"{module} calls {node.func.id}"


def test_the_import_graph_sees_relative_and_function_level_imports():
    """The checks above are only as good as the graph: known edges of each kind are in it."""
    assert "tlvs.base" in GRAPH["reflector.engine"]  # from ..tlvs.base import HostAddresses
    assert "tlvs.cos" in GRAPH["tlvs"]  # from .cos import ClassOfService (in a package's __init__)
    assert "commands.monitor" in GRAPH["cli"]  # from .commands import monitor, inside a function
    for form in ("from stamp_suite import assembly", "import stamp_suite.assembly", "from ..assembly import x",
                 "def f():\n    from stamp_suite.assembly import x"):
        assert imports("reflector.engine", form) == {"assembly"}, form


def test_no_platform_constants_outside_net():
    """Socket options and their platform differences live in net/ alone."""
    for module, path in MODULES.items():
        if module.startswith("net"):
            continue
        text = path.read_text()
        for name in ("IP_RECVTTL", "IP_PKTINFO", "SO_TIMESTAMPNS", "IPV6_RECVPKTINFO", "MSG_ERRQUEUE"):
            assert name not in text, f"{name} used in {module}"
