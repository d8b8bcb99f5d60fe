"""utils.tools.prefetch: the full-mode file list is complete and holds nothing unused; prefetch fills the cache
with verified files against a local server, and failures leave nothing corrupt."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from utils import datasets, models
from utils.cases import MEDSEGBENCH_SETS
from utils.download import file_hash
from utils.lessons import domain
from utils.machine import repo_root
from utils.tools import prefetch

from fakes import medsegbench_npz, npz_bytes  # the mirror fixture: tests/conftest.py


@pytest.fixture
def full_mode_mirror(mirror, monkeypatch):
    """Synthetic stand-ins for SAM ViT-B, two MedSegBench sets and one MedMNIST set at their real paths."""
    mirror.checkpoint("sam_vit_b", b"pretend checkpoint " * 1000)
    for flag in ("busi", "polypgen"):
        mirror.medsegbench(flag, 256, medsegbench_npz()[0])
    images = (np.arange(2 * 28 * 28) % 255).astype("uint8").reshape(2, 28, 28)
    mirror.medmnist("breastmnist", 224, npz_bytes(test_images=images, test_labels=images[:, :1, 0]))
    return mirror


def _items():
    return prefetch.full_mode_items(medsegbench_sets=("busi", "polypgen"), medmnist_sets=("breastmnist",))


def test_full_mode_items_come_from_the_registries():
    names = [item.name for item in prefetch.full_mode_items()]
    assert names[0] == "model sam_vit_b"
    assert "MedSegBench busi 256px" in names and "MedMNIST+ breastmnist 224px" in names
    assert len(names) == 1 + len(MEDSEGBENCH_SETS) + len(domain.MEDMNIST_FLAGS) == 9
    # sets no notebook loads (1.5 GB of dermamnist, drive, cellnuclei) are not fetched
    assert not any(word in name for name in names for word in ("dermamnist", "drive", "cellnuclei"))


def test_full_mode_files_give_url_path_hash_size_and_label(course_cache):
    files = prefetch.full_mode_files()
    assert len(files) == len(prefetch.full_mode_items())
    url, path, known_hash, size, label = files[0]  # a plain tuple for callers that unpack it
    spec = models.REGISTRY["sam_vit_b"]
    assert (url, path, known_hash, size, label) == (
        spec.url,
        course_cache / "models" / "sam_vit_b_01ec64.pth",
        f"sha256:{spec.sha256}",
        375_042_383,
        "model sam_vit_b",
    )
    busi = next(f for f in files if f.label == "MedSegBench busi 256px")
    assert busi.url == datasets.medsegbench_info("busi")["files"][256]["url"]
    assert busi.path == datasets.medsegbench_path("busi", 256) and busi.path.is_relative_to(course_cache)
    assert busi.known_hash == "md5:" + datasets.medsegbench_info("busi")["files"][256]["md5"] and busi.size is None
    breast = next(f for f in files if f.label == "MedMNIST+ breastmnist 224px")
    assert (breast.url, breast.known_hash) == (
        datasets.medmnist_info("breastmnist", 224)["url"],
        "md5:" + datasets.medmnist_info("breastmnist", 224)["md5"],
    )
    for file in files:
        assert re.fullmatch(r"(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})", file.known_hash), file
        assert file.url.startswith("https://") and file.path.is_absolute()
    assert len({f.path for f in files}) == len({urlsplit(f.url).path for f in files}) == len(files)
    everything = prefetch.full_mode_files(models=prefetch.ALL_MODELS)
    assert [f.label for f in everything[:3]] == ["model sam_vit_b", "model sam_vit_l", "model sam_vit_h"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"models": ("litemedsam",)}, "no file to download"),
        ({"models": ("sam_vit_x",)}, "Unknown model"),
        ({"medsegbench_sets": ("nope",)}, "nope"),
        ({"medmnist_sets": ("nope",)}, "nope"),
    ],
)
def test_full_mode_files_refuse_what_cannot_be_fetched(kwargs, match):
    with pytest.raises(ValueError, match=match):
        prefetch.full_mode_files(**kwargs)


def test_prefetch_fills_the_cache_with_verified_files(full_mode_mirror):
    rows = prefetch.prefetch(_items(), progress=False)
    assert [r["status"] for r in rows] == ["ok"] * 4, rows
    checkpoint = models.REGISTRY["sam_vit_b"].checkpoint_path()
    assert file_hash(checkpoint) == models.REGISTRY["sam_vit_b"].sha256
    hits = sum(full_mode_mirror.server.hits.values())
    again = prefetch.prefetch(_items(), progress=False)  # second run: everything is already cached
    assert [r["status"] for r in again] == ["ok"] * 4
    assert sum(full_mode_mirror.server.hits.values()) == hits


def test_interrupted_prefetch_leaves_nothing_corrupt_and_resumes(full_mode_mirror, list_files):
    full_mode_mirror.server.set_fault("truncate")
    rows = prefetch.prefetch(_items(), progress=False)
    assert all(r["status"] == "failed" for r in rows)
    assert list_files(full_mode_mirror.cache) == []  # no partial or temporary files anywhere
    full_mode_mirror.server.set_fault(None)
    rows = prefetch.prefetch(_items(), progress=False)
    assert all(r["status"] == "ok" for r in rows)
    table = prefetch.format_rows(rows)
    assert "MedSegBench polypgen 256px" in table and "ok" in table


def test_prefetch_main_lists_without_downloading(course_cache, capsys, monkeypatch):
    monkeypatch.setattr(prefetch, "fetch", lambda *a, **k: pytest.fail("--list must not download"))
    assert prefetch.main(["--list", "--all-models"]) == 0
    out = capsys.readouterr().out
    assert "model sam_vit_h" in out and "busi_256.npz" in out and "breastmnist_224.npz" in out
    assert str(course_cache) in out and "dermamnist" not in out


# --------------------------------------------------------------------------------------------------
# The list is exactly what the notebooks and modules load: read their sources and resolve what
# each loader call asks for (literal names, loops over literal tuples, module constants, defaults).
# --------------------------------------------------------------------------------------------------

#: loader -> (kind, position of its ``size`` argument). The loaders themselves live in utils/datasets.py.
LOADERS = {
    "medsegbench": ("medsegbench", 2),
    "download_medsegbench": ("medsegbench", 1),
    "medmnist_images": ("medmnist", 2),
    "download_medmnist": ("medmnist", 1),
}
#: Functions that pass a caller's choice of sets on to a loader: name -> (kind, keyword, position).
CHOOSERS = {"zero_shot_cases": ("medsegbench", "sets", 4)}  # utils.cases.zero_shot_cases(..., sets=...)
#: Modules that define or pass on the loaders without choosing a set themselves.
NOT_CALLERS = {"utils/datasets.py", "utils/tools/prefetch.py"}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass
class Use:
    where: str
    kind: str
    flags: frozenset[str] | None  # None: the scanner could not tell
    size: int | None


def _names_of(value) -> frozenset[str] | None:
    """The set names a runtime value stands for: a name, a tuple/list/set of names, a dict's keys."""
    if isinstance(value, str):
        return frozenset([value])
    items = list(value) if isinstance(value, (Mapping, tuple, list, set, frozenset)) else None
    return frozenset(items) if items is not None and all(isinstance(v, str) for v in items) else None


class _Source:
    """One parsed module or notebook, with just enough name resolution to read the loaders' arguments."""

    def __init__(self, name: str, code: str, package: str = "utils"):
        self.name, self.package = name, package
        self.tree = ast.parse(code)
        self.parent = {child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)}

    def scopes(self, node: ast.AST) -> list[ast.AST]:
        chain = []
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, _SCOPES):
                chain.append(node)
        return [*chain, self.tree]

    def _walk_scope(self, scope: ast.AST):
        todo = list(ast.iter_child_nodes(scope))
        while todo:
            node = todo.pop()
            yield node
            if not isinstance(node, (*_SCOPES, ast.ClassDef)):
                todo.extend(ast.iter_child_nodes(node))

    def bindings(self, scope: ast.AST, name: str) -> list[tuple]:
        found = []
        if isinstance(scope, _SCOPES):
            args = scope.args
            positional = args.posonlyargs + args.args
            defaults = dict(zip([a.arg for a in positional][::-1], args.defaults[::-1]))
            defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
            for arg in [*positional, *args.kwonlyargs]:
                if arg.arg == name:
                    found.append(("default", defaults[name]) if name in defaults else ("unknown",))
        for node in self._walk_scope(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == name:
                        found.append(("value", node.value))
                    elif any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(target)):
                        found.append(("unknown",))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
                found.append(("value", node.value) if node.value is not None else ("unknown",))
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                target = node.target
                if isinstance(target, ast.Name) and target.id == name:
                    found.append(("iter", node.iter))
                elif isinstance(target, ast.Tuple):
                    for index, element in enumerate(target.elts):
                        if isinstance(element, ast.Name) and element.id == name:
                            found.append(("item", node.iter, index))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if (alias.asname or alias.name.split(".")[0]) == name:
                        found.append(("import", node, alias))
            elif isinstance(node, (ast.AugAssign, ast.NamedExpr)) and getattr(node.target, "id", None) == name:
                found.append(("unknown",))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                found.append(("unknown",))
        return found

    def _imported(self, node: ast.AST, alias: ast.alias):
        if isinstance(node, ast.Import):
            return importlib.import_module(alias.name if alias.asname else alias.name.split(".")[0])
        base = importlib.util.resolve_name("." * node.level + (node.module or ""), self.package)
        try:
            return importlib.import_module(f"{base}.{alias.name}")
        except ImportError:
            return getattr(importlib.import_module(base), alias.name)

    def value(self, name: str, chain: list[ast.AST]):
        """The runtime object ``name`` is imported as (for ``cases.MEDSEGBENCH_SETS``), else None."""
        for scope in chain:
            found = self.bindings(scope, name)
            if found:
                imports = [b for b in found if b[0] == "import"]
                return self._imported(*imports[0][1:]) if len(found) == len(imports) == 1 else None
        return None

    def names(self, node: ast.AST | None, chain: list[ast.AST], seen: frozenset = frozenset()):
        """The string names ``node`` can evaluate to, or None when that cannot be read from the source."""
        if node is None or id(node) in seen:
            return None
        seen = seen | {id(node)}
        if isinstance(node, ast.Constant):
            return frozenset([node.value]) if isinstance(node.value, str) else frozenset()
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            parts = [self.names(e.value if isinstance(e, ast.Starred) else e, chain, seen) for e in node.elts]
        elif isinstance(node, ast.Dict):
            parts = [self.names(k, chain, seen) for k in node.keys]
        elif isinstance(node, ast.IfExp):
            parts = [self.names(node.body, chain, seen), self.names(node.orelse, chain, seen)]
        elif isinstance(node, ast.BoolOp):
            parts = [self.names(v, chain, seen) for v in node.values]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            parts = [self.names(node.left, chain, seen), self.names(node.right, chain, seen)]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = self.value(node.value.id, chain)
            return _names_of(getattr(module, node.attr, None)) if module is not None else None
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("keys", "items")
            and not node.args
        ):
            return self.names(node.func.value, chain, seen)  # a dict's keys (``items``: see _binding)
        elif isinstance(node, ast.Name):
            loop = self.enclosing_loop(node)
            if loop is not None:  # the loop around the call binds it: that loop alone says what it is
                return self._binding(loop, chain, seen)
            return self.name_names(node.id, chain, seen)
        else:
            return None
        return None if any(p is None for p in parts) else frozenset().union(*parts)

    def enclosing_loop(self, name: ast.Name) -> tuple | None:
        """The binding of the innermost ``for`` loop or comprehension around ``name`` that binds it."""
        node = name
        while node in self.parent and not isinstance(node, _SCOPES):
            child, node = node, self.parent[node]
            if isinstance(node, (ast.For, ast.AsyncFor)) and child is not node.iter:
                generators = [node]
            elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                generators = node.generators
            else:
                continue
            for generator in generators:
                target = generator.target
                if isinstance(target, ast.Name) and target.id == name.id:
                    return ("iter", generator.iter)
                if isinstance(target, ast.Tuple):
                    for index, element in enumerate(target.elts):
                        if isinstance(element, ast.Name) and element.id == name.id:
                            return ("item", generator.iter, index)
        return None

    def name_names(self, name: str, chain: list[ast.AST], seen: frozenset):
        for index, scope in enumerate(chain):
            found = self.bindings(scope, name)
            if not found:
                continue
            parts = [self._binding(b, chain[index:], seen) for b in found]
            return None if any(p is None for p in parts) else frozenset().union(*parts)
        return None

    def _binding(self, binding: tuple, chain: list[ast.AST], seen: frozenset):
        kind = binding[0]
        if kind in ("value", "iter"):
            return self.names(binding[1], chain, seen)
        if kind == "default":  # a parameter's default is evaluated where the function is defined
            return self.names(binding[1], chain[1:], seen)
        if kind == "item":  # ``for flag, modality in FLAGS.items()``: the keys
            iterator, index = binding[1], binding[2]
            is_items = isinstance(iterator, ast.Call) and getattr(iterator.func, "attr", None) == "items"
            return self.names(iterator, chain, seen) if is_items and index == 0 else None
        if kind == "import":
            return _names_of(self._imported(binding[1], binding[2]))
        return None

    def loader_uses(self) -> list[Use]:
        uses = []
        for node in sorted((n for n in ast.walk(self.tree) if isinstance(n, ast.Call)), key=lambda n: n.lineno):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            chain = self.scopes(node)
            keywords = {k.arg: k.value for k in node.keywords}
            if func in CHOOSERS:
                kind, keyword, at = CHOOSERS[func]
                chosen = keywords.get(keyword, node.args[at] if len(node.args) > at else None)
                if chosen is not None:  # left out, it is the module's default: the loader call below sees that
                    where = f"{self.name}:{node.lineno} {ast.unparse(node)}"
                    uses.append(Use(where, kind, self.names(chosen, chain), prefetch.MEDSEGBENCH_SIZE))
                continue
            if func not in LOADERS:
                continue
            kind, size_at = LOADERS[func]
            flag = node.args[0] if node.args else keywords.get("flag")
            size_node = keywords.get("size", node.args[size_at] if len(node.args) > size_at else None)
            if size_node is None:
                size = inspect.signature(getattr(datasets, func)).parameters["size"].default
            else:
                size = size_node.value if isinstance(size_node, ast.Constant) else None
            uses.append(Use(f"{self.name}:{node.lineno} {ast.unparse(node)}", kind, self.names(flag, chain), size))
        return uses


def _python_of_cell(source: str) -> str:
    """A code cell as Python: shell (!) and magic (%) lines become ``pass`` at the same indentation."""
    if source.lstrip().startswith("%%"):  # a cell magic: the whole cell is not Python
        return ""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append(line[: len(line) - len(stripped)] + "pass" if stripped.startswith(("!", "%")) else line)
    return "\n".join(lines)


def _course_sources() -> list[_Source]:
    root = repo_root()
    sources = []
    for path in sorted(root.glob("utils/**/*.py")):
        name = path.relative_to(root).as_posix()
        if name not in NOT_CALLERS:
            package = ".".join(path.relative_to(root).parent.parts)
            sources.append(_Source(name, path.read_text(encoding="utf-8"), package=package))
    for path in sorted(root.glob("notebooks/*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "\n".join(_python_of_cell("".join(c["source"])) for c in cells if c["cell_type"] == "code")
        sources.append(_Source(path.relative_to(root).as_posix(), code))
    return sources


def _downloadable_models_named_in(source: _Source) -> set[str]:
    """Checkpoint names a notebook mentions, except inside utils.lessons.anatomy / utils.lessons.landscape calls (those
    build SAM on the meta device: shapes and parameter counts, no weights, nothing downloaded)."""
    downloadable = {name for name, spec in models.REGISTRY.items() if spec.url}
    meta_only = set()
    for node in ast.walk(source.tree):
        func = getattr(node, "func", None)
        if isinstance(func, ast.Attribute) and getattr(func.value, "id", None) in ("anatomy", "landscape"):
            meta_only |= {id(n) for n in ast.walk(node)}
    return {
        node.value
        for node in ast.walk(source.tree)
        if isinstance(node, ast.Constant) and node.value in downloadable and id(node) not in meta_only
    }


@pytest.fixture(scope="module")
def course_uses() -> list[Use]:
    return [use for source in _course_sources() for use in source.loader_uses()]


def test_the_scanner_reads_what_each_loader_call_asks_for():
    source = _Source(
        "demo.py",
        """
from utils import datasets
from utils.lessons import domain
from utils.cases import MEDSEGBENCH_SETS
for flag in ("busi", "drive"):
    datasets.medsegbench(flag, split="test")
def study(sets=MEDSEGBENCH_SETS):
    return [datasets.medsegbench(flag, "test", 512) for flag in sets]
for flag, modality in domain.MEDMNIST_FLAGS.items():
    datasets.medmnist_images(flag, "test", size=224)
datasets.download_medmnist("dermamnist", 224)
datasets.medsegbench(pick_one())
def loader(flag):
    return datasets.medsegbench(flag)
cases.zero_shot_cases("full", 1, 0, sets=("idrib",))
cases.zero_shot_cases("full", 1, 0, 0, ("drive",))
cases.zero_shot_cases("full", 1, 0)
""",
    )
    uses = [(u.kind, u.flags, u.size) for u in source.loader_uses()]
    assert uses == [
        ("medsegbench", frozenset({"busi", "drive"}), 256),
        ("medsegbench", frozenset(MEDSEGBENCH_SETS), 512),
        ("medmnist", frozenset(domain.MEDMNIST_FLAGS), 224),
        ("medmnist", frozenset({"dermamnist"}), 224),
        ("medsegbench", None, 256),  # a call's result: cannot be read
        ("medsegbench", None, 256),  # a parameter without default: cannot be read
        ("medsegbench", frozenset({"idrib"}), 256),  # sets chosen for the zero-shot benchmark
        ("medsegbench", frozenset({"drive"}), 256),  # ... by position
    ]


def test_every_loader_call_in_the_course_names_its_sets_readably(course_uses):
    assert len(course_uses) >= 6  # 01, 02, comparison, cases (zero-shot, autoprompt), domain
    unreadable = [u.where for u in course_uses if u.flags is None or u.size is None]
    assert not unreadable, (
        "These calls load a MedSegBench/MedMNIST set the test cannot name; pass a literal set name, loop "
        f"over a literal tuple or a module constant, so utils.tools.prefetch's list can be checked: {unreadable}"
    )


def test_the_full_mode_list_holds_every_set_the_course_loads_and_nothing_else(course_uses):
    listed = {
        "medsegbench": {(flag, prefetch.MEDSEGBENCH_SIZE) for flag in prefetch.FULL_MODE_MEDSEGBENCH},
        "medmnist": {(flag, prefetch.MEDMNIST_SIZE) for flag in prefetch.FULL_MODE_MEDMNIST},
    }
    used: dict[str, dict[tuple[str, int], list[str]]] = {"medsegbench": {}, "medmnist": {}}
    for use in course_uses:
        for flag in use.flags or ():
            used[use.kind].setdefault((flag, use.size), []).append(use.where)
    for kind in listed:
        missing = {key: where for key, where in used[kind].items() if key not in listed[kind]}
        assert not missing, f"{kind} files the course loads but `make prefetch` does not fetch: {missing}"
        unused = listed[kind] - set(used[kind])
        assert not unused, f"{kind} files `make prefetch` fetches but nothing loads: {sorted(unused)}"
    files = {(f.label, Path(urlsplit(f.url).path).name) for f in prefetch.full_mode_files()}
    assert ("MedSegBench polypgen 256px", "polypgen_256.npz") in files  # notebook 02's second set
    assert ("MedMNIST+ retinamnist 224px", "retinamnist_224.npz") in files


def test_the_full_mode_list_holds_the_checkpoints_the_notebooks_load():
    named = set().union(*(_downloadable_models_named_in(s) for s in _course_sources() if s.name.endswith(".ipynb")))
    assert named == set(prefetch.FULL_MODE_MODELS) == {"sam_vit_b"}
