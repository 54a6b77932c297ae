"""A small evaluator for the Bicep expressions infra/ uses, over pycep's parse tree.

There is no Bicep compiler offline, so the tests evaluate the templates themselves: pycep
(the parser checkov uses) turns a .bicep file into a lark tree, and this module computes the
value of an expression in that tree for given parameter values and loop variables.

It knows only the forms infra/ uses, and refuses anything else with `Unsupported`, so a template
change that uses a new construct makes the test fail loudly instead of passing by accident:
literals and string interpolation, object and array literals, identifiers (parameters,
variables, loop variables, resource and module symbols), property and index access (plain
and safe `.?` / `[?]` alike: a missing member is null), `==`, `!=`, `!`, `&&`, `||`, `??`,
`cond ? a : b` (only the chosen branch is evaluated, as in ARM), and the functions
loadJsonContent, empty, contains, indexOf, length, take, toLower, replace, string (of objects
too, as compact JSON), union (of objects), uniqueString, guid, resourceGroup,
subscriptionResourceId, environment and tenant.

Resources are not deployed, so a resource symbol evaluates to a `ResourceRef`: its `name`
is the evaluated `name` property, its `id` is a stand-in id built from its type, parent and
name (so two symbols for the same resource, e.g. one `existing` in a module, have the same
id), and any other member (`identity.principalId`, `properties.endpoint`) is an opaque
`Opaque` value that remembers its path. Module symbols work the same way (`Opaque` outputs).

pycep's grammar parses `a.b == c` as `a.(b == c)` (the right operand of `.` is greedy); the
evaluator re-associates: the leftmost leaf of the right operand is the member name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lark import Token, Tree
from pycep import BicepParser
from pycep.validator import BicepValidator

_PARSER: BicepParser | None = None


def parser() -> BicepParser:
    global _PARSER
    if _PARSER is None:
        _PARSER = BicepParser()
    return _PARSER


def parse_text(text: str) -> Tree:
    """Parse Bicep source into pycep's lark tree (raises on a syntax error)."""
    if not BicepValidator.is_valid(text):
        raise ValueError("invalid Bicep: unbalanced ''' multi-line string")
    return parser().lark_parser.parse(text)


class Unsupported(Exception):
    """The template uses an expression form this evaluator does not implement."""


@dataclass(frozen=True)
class Opaque:
    """A value known only at deployment time (a principal id, an endpoint, an output)."""

    path: str

    def __str__(self) -> str:
        return f"<{self.path}>"


# --- the parsed file ------------------------------------------------------------------------


@dataclass
class Element:
    kind: str  # param | var | resource | module | output
    name: str
    tree: Tree

    @property
    def value(self) -> Any:
        """The element's value subtree (resource/module body, var value, param default)."""
        children = self.tree.children
        if self.kind == "param":
            return children[3]
        if self.kind == "resource":
            return children[4]
        return children[-1]

    @property
    def type_api(self) -> str:
        assert self.kind == "resource"
        return _literal_text(self.tree.children[2].children[0])

    @property
    def resource_type(self) -> str:
        return self.type_api.split("@", 1)[0]

    @property
    def existing(self) -> bool:
        return self.tree.children[3] is not None

    @property
    def module_path(self) -> str:
        assert self.kind == "module"
        return _literal_text(self.tree.children[2].children[0])

    @property
    def decorators(self) -> list[str]:
        deco = self.tree.children[0]
        if deco is None:
            return []
        return [c.data for c in deco.children if isinstance(c, Tree)]


@dataclass
class BicepFile:
    path: Path
    tree: Tree
    elements: dict[str, Element] = field(default_factory=dict)
    # Outputs have their own namespace (`output x string = x` is common Bicep).
    outputs: dict[str, Element] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "BicepFile":
        tree = parse_text(path.read_text())
        f = cls(path=path, tree=tree)
        for el in tree.children:
            if isinstance(el, Tree) and el.data in ("param", "var", "resource", "module", "output"):
                name = str(el.children[1])
                if el.data == "output":
                    if name in f.outputs:
                        raise ValueError(f"{path}: duplicate output {name}")
                    f.outputs[name] = Element(el.data, name, el)
                    continue
                if name in f.elements:
                    raise ValueError(f"{path}: duplicate symbol {name}")
                f.elements[name] = Element(el.data, name, el)
        return f

    def of_kind(self, kind: str) -> dict[str, Element]:
        if kind == "output":
            return dict(self.outputs)
        return {n: e for n, e in self.elements.items() if e.kind == kind}

    def resources_of_type(self, resource_type: str) -> list[Element]:
        return [e for e in self.of_kind("resource").values() if e.resource_type == resource_type]


# --- loops and conditions in element values ---------------------------------------------------


@dataclass
class Loop:
    item: str
    iterable: Any  # tree
    condition: Any  # tree or None
    body: Any  # tree


def split_value(value: Any) -> tuple[Loop | None, Any, Any]:
    """Split a resource/module value into (loop, condition, body)."""
    if isinstance(value, Tree) and value.data == "loop":
        head, condition, body = value.children
        if head.data != "loop_array":
            raise Unsupported(f"loop form {head.data}")
        item, iterable = head.children
        return Loop(str(item), iterable, condition, body), condition, body
    if isinstance(value, Tree) and value.data == "deploy_condition":
        condition, body = value.children
        return None, condition, body
    return None, None, value


# --- values of resources and modules --------------------------------------------------------


class ResourceRef:
    """A resource symbol's value: name and id evaluated, everything else opaque."""

    def __init__(self, scope: "Scope", element: Element, bindings: dict[str, Any] | None = None):
        self._scope = scope
        self.element = element
        self._bindings = bindings or {}

    def _body_value(self, key: str) -> Any:
        _, _, body = split_value(self.element.value)
        node = _object_pair(body, key)
        if node is None:
            return None
        return self._scope.with_bindings(self._bindings).eval(node)

    @property
    def name(self) -> Any:
        return self._body_value("name")

    @property
    def parent(self) -> "ResourceRef | None":
        return self._body_value("parent")

    @property
    def id(self) -> str:
        parent = self.parent
        rtype = self.element.resource_type
        if parent is not None:
            return f"{parent.id}/{rtype.rsplit('/', 1)[1]}/{self.name}"
        return f"/{rtype}/{self.name}"

    def member(self, name: str) -> Any:
        if name == "name":
            return self.name
        if name == "id":
            return self.id
        return Opaque(f"{self.element.name}.{name}")

    def __repr__(self) -> str:
        return f"ResourceRef({self.id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


class ModuleRef:
    def __init__(self, name: str, index: Any = None):
        self.name = name
        self.index = index

    def member(self, name: str) -> Any:
        where = self.name if self.index is None else f"{self.name}[{self.index}]"
        return Opaque(f"{where}.{name}")


def _member(base: Any, name: str) -> Any:
    if base is None:
        return None  # safe dereference (and plain access on a missing member)
    if isinstance(base, dict):
        return base.get(name)
    if isinstance(base, (ResourceRef, ModuleRef)):
        return base.member(name)
    if isinstance(base, Opaque):
        return Opaque(f"{base.path}.{name}")
    raise Unsupported(f"member {name!r} of {type(base).__name__}")


def _index(base: Any, key: Any) -> Any:
    if base is None:
        return None
    if isinstance(base, dict):
        return base.get(key)
    if isinstance(base, list):
        if not isinstance(key, int) or isinstance(key, bool):
            raise Unsupported(f"array index {key!r}")
        return base[key] if 0 <= key < len(base) else None
    if isinstance(base, ModuleRef) and base.index is None:
        return ModuleRef(base.name, key)
    raise Unsupported(f"index [{key!r}] of {type(base).__name__}")


# --- the evaluator ----------------------------------------------------------------------------


def _literal_text(token: Token) -> str:
    """The text of a quoted literal WITHOUT interpolation (paths, types)."""
    raw = str(token)
    assert raw.startswith("'") and raw.endswith("'"), raw
    if "${" in raw:
        raise Unsupported(f"interpolation in {raw}")
    return _unescape(raw[1:-1])


_ESCAPES = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "$": "$"}


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _split_interpolation(body: str) -> list[tuple[str, str]]:
    """Split the inside of '...' into [("text", s) | ("expr", source)] parts."""
    parts: list[tuple[str, str]] = []
    text, i = [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            text.append(body[i : i + 2])
            i += 2
            continue
        if body.startswith("${", i):
            if text:
                parts.append(("text", _unescape("".join(text))))
                text = []
            depth, j, quoted = 1, i + 2, False
            while j < len(body) and depth:
                c = body[j]
                if c == "'":
                    quoted = not quoted
                elif not quoted and c == "{":
                    depth += 1
                elif not quoted and c == "}":
                    depth -= 1
                j += 1
            if depth:
                raise Unsupported(f"unterminated interpolation in '{body}'")
            parts.append(("expr", body[i + 2 : j - 1]))
            i = j
            continue
        text.append(body[i])
        i += 1
    if text:
        parts.append(("text", _unescape("".join(text))))
    return parts


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, Opaque)):
        return str(value)
    raise Unsupported(f"interpolating a {type(value).__name__}")


def _object_pair(node: Any, key: str) -> Any:
    if not (isinstance(node, Tree) and node.data == "object"):
        raise Unsupported(f"expected an object literal, got {getattr(node, 'data', node)!r}")
    for pair in node.children:
        if isinstance(pair, Tree) and pair.data == "pair" and str(pair.children[0].children[0]) == key:
            return pair.children[1]
    return None


def _is_truthy(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Unsupported(f"condition of type {type(value).__name__} ({value!r})")
    return value


class Scope:
    """Evaluation context for one file: parameter values, variables, symbols, loop variables."""

    def __init__(
        self,
        file: BicepFile,
        params: dict[str, Any],
        load_json: Callable[[Path], Any] | None = None,
        bindings: dict[str, Any] | None = None,
        _cache: dict[str, Any] | None = None,
    ):
        self.file = file
        self.params = params
        self.load_json = load_json or (lambda p: json.loads(p.read_text()))
        self.bindings = bindings or {}
        self._cache = {} if _cache is None else _cache
        missing = [
            n for n, e in file.of_kind("param").items() if e.value is None and n not in params
        ]
        if missing:
            raise ValueError(f"{file.path.name}: no value for required parameter(s) {missing}")
        unknown = set(params) - set(file.of_kind("param"))
        if unknown:
            raise ValueError(f"{file.path.name}: unknown parameter(s) {sorted(unknown)}")

    def with_bindings(self, extra: dict[str, Any]) -> "Scope":
        if not extra:
            return self
        return Scope(self.file, self.params, self.load_json, {**self.bindings, **extra}, self._cache)

    # -- identifiers ---------------------------------------------------------------------
    def lookup(self, name: str) -> Any:
        if name in self.bindings:
            return self.bindings[name]
        el = self.file.elements.get(name)
        if el is None:
            raise Unsupported(f"unknown identifier {name!r} in {self.file.path.name}")
        if el.kind == "param":
            if name in self.params:
                return self.params[name]
            return self._cached(f"param:{name}", lambda: self.eval(el.value))
        if el.kind == "var":
            return self._cached(f"var:{name}", lambda: self.eval(el.value))
        if el.kind == "resource":
            loop, _, _ = split_value(el.value)
            if loop is not None:
                raise Unsupported(f"reference to resource collection {name}")
            return ResourceRef(self, el)
        if el.kind == "module":
            return ModuleRef(name)
        raise Unsupported(f"identifier {name!r} ({el.kind})")

    def _cached(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # -- expressions ---------------------------------------------------------------------
    def eval(self, node: Any) -> Any:
        if node is None:
            raise Unsupported("missing expression")
        if isinstance(node, Token):
            raise Unsupported(f"bare token {node!r}")
        kind = node.data
        ch = node.children
        if kind in ("operator", "function"):
            return self.eval(ch[0])
        if kind == "string":
            tok = ch[0]
            if tok.type == "STRING":
                return self.lookup(str(tok))
            return self._interpolate(str(tok))
        if kind == "int":
            return int(ch[0])
        if kind == "true":
            return True
        if kind == "false":
            return False
        if kind == "null":
            return None
        if kind == "object":
            out = {}
            for pair in ch:
                if not (isinstance(pair, Tree) and pair.data == "pair"):
                    raise Unsupported(f"object member {getattr(pair, 'data', pair)!r}")
                key = str(pair.children[0].children[0])
                if key.startswith("'"):
                    key = _literal_text(pair.children[0].children[0])
                out[key] = self.eval(pair.children[1])
            return out
        if kind == "array":
            return [self.eval(c) for c in ch]
        if kind == "loop":
            loop, condition, body = split_value(node)
            items = self.eval(loop.iterable)
            if not isinstance(items, list):
                raise Unsupported(f"loop over {type(items).__name__}")
            result = []
            for item in items:
                inner = self.with_bindings({loop.item: item})
                if condition is None or _is_truthy(inner.eval(condition)):
                    result.append(inner.eval(body))
            return result
        if kind == "property_accessor":
            return self._access(self.eval(ch[0]), ch[1])
        if kind == "index_accessor":
            return _index(self.eval(ch[0]), self.eval(ch[1]))
        if kind == "conditional":
            cond, yes, no = ch
            return self.eval(yes) if _is_truthy(self.eval(cond)) else self.eval(no)
        if kind in _BINARY:
            return _BINARY[kind](self.eval(ch[0]), lambda: self.eval(ch[1]))
        if kind == "not_op":
            return not _is_truthy(self.eval(ch[0]))
        return self._function(kind, ch)

    def _access(self, base: Any, rhs: Any) -> Any:
        """base.<rhs>, where pycep nests the rest of the expression into rhs (see module doc)."""
        if isinstance(rhs, Tree) and rhs.data == "string" and rhs.children[0].type == "STRING":
            return _member(base, str(rhs.children[0]))
        if isinstance(rhs, Tree) and rhs.data in ("operator", "function"):
            return self._access(base, rhs.children[0])
        if isinstance(rhs, Tree):
            kind, ch = rhs.data, rhs.children
            if kind == "property_accessor":
                return self._access(self._access(base, ch[0]), ch[1])
            if kind == "index_accessor":
                return _index(self._access(base, ch[0]), self.eval(ch[1]))
            if kind in _BINARY:
                return _BINARY[kind](self._access(base, ch[0]), lambda: self.eval(ch[1]))
            if kind == "conditional":
                cond = self._access(base, ch[0])
                return self.eval(ch[1]) if _is_truthy(cond) else self.eval(ch[2])
        raise Unsupported(f"member access with {getattr(rhs, 'data', rhs)!r}")

    def _interpolate(self, raw: str) -> Any:
        if raw.startswith("'''"):
            raise Unsupported("multi-line string")
        body = raw[1:-1]
        parts = _split_interpolation(body)
        if not any(k == "expr" for k, _ in parts):
            return "".join(t for _, t in parts)
        out = []
        for k, text in parts:
            if k == "text":
                out.append(text)
            else:
                out.append(_to_text(self.eval(_parse_expression(text))))
        return "".join(out)

    def _function(self, kind: str, ch: list[Any]) -> Any:
        args = [c for c in ch if c is not None and not isinstance(c, Token)]
        trailing = [c for c in ch if isinstance(c, Token)]  # e.g. resourceGroup().id
        if kind == "load_json_content":
            if len(args) != 1:
                raise Unsupported("loadJsonContent with a path filter or encoding")
            rel = self.eval(args[0])
            return self.load_json((self.file.path.parent / rel).resolve())
        if kind == "resource_group" and not args:
            value: Any = {"id": "/subscriptions/00000000/resourceGroups/rg", "location": "rg-location"}
        elif kind == "environment":
            value = {"suffixes": {"storage": "core.windows.net"}}
        elif kind == "tenant":
            value = {"tenantId": Opaque("tenant().tenantId")}
        else:
            vals = [self.eval(a) for a in args]
            fn = _FUNCTIONS.get(kind)
            if fn is None:
                raise Unsupported(f"function {kind}")
            value = fn(*vals)
        for tok in trailing:
            value = _member(value, str(tok))
        return value


def _parse_expression(source: str) -> Tree:
    tree = parse_text(f"var __expr = {source}\n")
    return tree.children[0].children[2]


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, Opaque) or isinstance(b, Opaque):
        raise Unsupported(f"comparing a deployment-time value ({a!r} == {b!r})")
    return a == b


def _coalesce(a: Any, b: Callable[[], Any]) -> Any:
    return a if a is not None else b()


_BINARY: dict[str, Callable[[Any, Callable[[], Any]], Any]] = {
    "equals": lambda a, b: _eq(a, b()),
    "not_equals": lambda a, b: not _eq(a, b()),
    "and_op": lambda a, b: _is_truthy(a) and _is_truthy(b()),
    "or_op": lambda a, b: _is_truthy(a) or _is_truthy(b()),
    "coalesce": _coalesce,
}


def _empty(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, Opaque):
        return False  # deployment-time values used here (principal ids) are never empty
    if isinstance(v, (str, list, dict)):
        return len(v) == 0
    raise Unsupported(f"empty() of {type(v).__name__}")


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, (dict, list, str)):
        return item in container
    raise Unsupported(f"contains() on {type(container).__name__}")


def _index_of(container: Any, item: Any) -> int:
    if isinstance(container, (list, str)):
        try:
            return container.index(item)
        except ValueError:
            return -1
    raise Unsupported(f"indexOf() on {type(container).__name__}")


def _stand_in_hash(*args: Any) -> str:
    text = "|".join(_to_text(a) for a in args)
    return hashlib.sha256(text.encode()).hexdigest()


def _guid_shape(h: str) -> str:
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _string(v: Any) -> str:
    if isinstance(v, (dict, list)):
        # ARM's string() of an object or array is its compact JSON, in declared order; a
        # deployment-time value stands in as its path (<appInsights.properties.ConnectionString>).
        return json.dumps(v, separators=(",", ":"), default=str)
    return _to_text(v)


def _union(*values: Any) -> Any:
    if not all(isinstance(v, dict) for v in values):
        raise Unsupported("union() of anything but objects")
    out: dict[str, Any] = {}
    for v in values:
        out.update(v)
    return out


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "empty": _empty,
    "contains": _contains,
    "index_of": _index_of,
    "length": lambda v: len(v),
    "take": lambda v, n: v[:n],
    "to_lower": lambda s: s.lower(),
    "replace": lambda s, old, new: s.replace(old, new),
    "string_func": _string,
    "union": _union,
    # Stand-ins with the right shape: 13 lowercase characters / a GUID-like string.
    "unique_string": lambda *a: _stand_in_hash(*a)[:13],
    "guid": lambda *a: _guid_shape(_stand_in_hash(*a)),
    "subscription_resource_id": lambda rtype, name: f"/subscriptions/00000000/providers/{rtype}/{name}",
}


def strip_nulls(value: Any) -> Any:
    """Drop null members recursively: ARM treats a null property as one not sent."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value
