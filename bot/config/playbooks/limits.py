"""A Jinja2 sandbox that bounds what one render may cost (issue 7, defect 10).

The plain ``SandboxedEnvironment`` stops attribute tricks but not a template such
as ``{{ "x" * 10**9 }}``: operators write playbooks, and one bad edit must not take
the process' memory or CPU. Every render here runs under a budget:

- output: at most ``MAX_OUTPUT_CHARS`` characters per rendered message;
- values: no operator, filter, call or ``{% set %}`` block produces a string,
  list or mapping longer than ``MAX_VALUE_LEN``, and integers stay below
  ``MAX_INT_BITS`` bits; known amplifiers (``center``, ``replace``, ``batch``,
  ``"%9999999s"``, …) are refused before they allocate;
- work: loop iterations plus calls (macros, methods, globals) are counted, at
  most ``MAX_WORK`` per render, and ``range`` gives at most ``MAX_RANGE`` items;
- data is immutable (``ImmutableSandboxedEnvironment``): no ``list.append`` to
  grow state across loop iterations.

A template that breaks a limit raises :class:`TemplateLimitError`, a
``SecurityError`` with a message an operator can act on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

# The longest single WeCom text is 4000 bytes (add_msg_template; webhook and
# appchat texts are 2048 bytes and are split into parts by the channel). A welcome
# or a touch longer than 4000 characters is a mistake, never a message.
MAX_OUTPUT_CHARS = 4000
MAX_VALUE_LEN = 10_000
MAX_INT_BITS = 256
MAX_RANGE = 1000
MAX_WORK = 10_000

_BIG_NUMBER = re.compile(r"\d{6,}")  # a width or precision of 100000 or more


class TemplateLimitError(SecurityError):
    """A template asked for more output, memory or work than a message may take."""


class _Budget:
    def __init__(self) -> None:
        self.work = 0

    def spend(self, units: int = 1) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise TemplateLimitError(
                f"template does too much work (more than {MAX_WORK} loop steps and calls)"
            )


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def render_budget() -> Iterator[None]:
    """A fresh work budget for one render (nested renders share the outer one)."""
    if _budget.get() is not None:
        yield
        return
    token = _budget.set(_Budget())
    try:
        yield
    finally:
        _budget.reset(token)


def _spend(units: int = 1) -> None:
    budget = _budget.get()
    if budget is not None:  # render_text / eval_condition always open one
        budget.spend(units)


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return len(value)
    return 0


def check_value(value: Any, what: str) -> Any:
    """``value`` when it is within the limits; otherwise TemplateLimitError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"{what} gives a number too large for a message")
    if _size(value) > MAX_VALUE_LEN:
        raise TemplateLimitError(f"{what} gives a value longer than {MAX_VALUE_LEN}")
    return value


def _refuse_big_widths(fmt: Any, what: str) -> None:
    if isinstance(fmt, str) and _BIG_NUMBER.search(fmt):
        raise TemplateLimitError(f"{what}: a width or precision that large is not allowed")


def _predicted_replace(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    hits = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _predicted_join(items: Any, sep: Any) -> int:
    if not isinstance(items, list | tuple):
        return 0
    joined = sum(_size(item) if isinstance(item, str) else 20 for item in items)
    return joined + max(len(items) - 1, 0) * _size(sep)


def _first_int(args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str) -> int:
    value = args[0] if args else kwargs.get(name, 0)
    return value if isinstance(value, int) else 0


def _precheck_str_method(
    text: str, method: str, args: tuple[Any, ...], kw: Mapping[str, Any]
) -> None:
    """Refuse the string methods whose result size comes from an argument."""
    what = f"'…'.{method}()"
    if method in ("center", "ljust", "rjust", "zfill"):
        if _first_int(args, kw, "width") > MAX_VALUE_LEN:
            raise TemplateLimitError(f"{what}: width larger than {MAX_VALUE_LEN}")
    elif method == "expandtabs":
        if text.count("\t") * _first_int(args, kw, "tabsize") > MAX_VALUE_LEN:
            raise TemplateLimitError(f"{what}: result longer than {MAX_VALUE_LEN}")
    elif method == "replace" and len(args) >= 2:
        if _predicted_replace(text, args[0], args[1], *args[2:3]) > MAX_VALUE_LEN:
            raise TemplateLimitError(f"{what}: result longer than {MAX_VALUE_LEN}")
    elif method == "join" and args:
        if _predicted_join(args[0], text) > MAX_VALUE_LEN:
            raise TemplateLimitError(f"{what}: result longer than {MAX_VALUE_LEN}")
    elif method in ("format", "format_map"):
        _refuse_big_widths(text, what)


def _precheck_filter(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse the filters whose result size comes from an argument, before they run."""
    what = f"filter '{name}'"
    value, rest = (args[0] if args else None), args[1:]
    if name == "center":
        if _first_int(rest, kwargs, "width") > MAX_VALUE_LEN:
            raise TemplateLimitError(f"{what}: width larger than {MAX_VALUE_LEN}")
    elif name == "indent":
        width = rest[0] if rest else kwargs.get("width", 4)
        per_line = width if isinstance(width, int) else _size(width)
        lines = value.count("\n") + 1 if isinstance(value, str) else 1
        if per_line * lines > MAX_VALUE_LEN:
            raise TemplateLimitError(f"{what}: result longer than {MAX_VALUE_LEN}")
    elif name == "replace" and len(rest) >= 2:
        if _predicted_replace(value, rest[0], rest[1], *rest[2:3]) > MAX_VALUE_LEN:
            raise TemplateLimitError(f"{what}: result longer than {MAX_VALUE_LEN}")
    elif name in ("batch", "slice"):
        if _first_int(rest, kwargs, "linecount" if name == "batch" else "slices") > MAX_RANGE:
            raise TemplateLimitError(f"{what}: more than {MAX_RANGE} parts")
    elif name == "format":
        _refuse_big_widths(value, what)
    elif name == "join":
        sep = rest[0] if rest else kwargs.get("d", "")
        if _predicted_join(value, sep) > MAX_VALUE_LEN:
            raise TemplateLimitError(f"{what}: result longer than {MAX_VALUE_LEN}")
    elif name == "wordwrap" and _first_int(rest, kwargs, "width") > MAX_VALUE_LEN:
        raise TemplateLimitError(f"{what}: width larger than {MAX_VALUE_LEN}")


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    # Filters take (value, …), or (context|eval_ctx|environment, value, …) when marked
    # with pass_*; functools.wraps keeps that mark (jinja_pass_arg) on the wrapper.
    passes = getattr(func, "jinja_pass_arg", None) is not None

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _precheck_filter(name, args[1:] if passes else args, kwargs)
        return check_value(func(*args, **kwargs), f"filter '{name}'")

    return bounded


def _int_pair(left: Any, right: Any) -> bool:
    return isinstance(left, int) and isinstance(right, int)


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateLimitError(f"range() gives more than {MAX_RANGE} items")
    return rng


class _Bound(NodeTransformer):
    """Route what the sandbox cannot intercept (loops, ``~``, ``{% set %}`` blocks)
    through the environment's checks."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _env_call("bounded_iter", [cast(nodes.Expr, node.iter)], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _env_call("bounded_concat", list(node.nodes), node.lineno)

    def visit_AssignBlock(self, node: nodes.AssignBlock) -> nodes.Node:
        self.generic_visit(node)
        node.filter = nodes.Filter(node.filter, "_bounded_block", [], [], None, None)
        node.filter.set_lineno(node.lineno)
        return node


def _env_call(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None)
    call.set_lineno(lineno)
    return call


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The environment playbook texts render in; see the module docstring."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # lipsum(n=10**6): no use in a message
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}
        self.filters["_bounded_block"] = lambda value: check_value(value, "{% set %} block")

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        bounded = _Bound().visit(source)
        assert isinstance(bounded, nodes.Template)
        return super()._generate(bounded, name, filename, defer_init=defer_init)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        what = f"'{operator}'"
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _size(seq) and isinstance(times, int) and _size(seq) * times > MAX_VALUE_LEN:
                    raise TemplateLimitError(f"{what}: result longer than {MAX_VALUE_LEN}")
            if _int_pair(left, right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise TemplateLimitError(f"{what} gives a number too large for a message")
        elif operator == "**":
            # Checked before computing: 10**10**10 would spin the CPU, not just allocate.
            if (
                _int_pair(left, right)
                and abs(left) > 1
                and (right > MAX_INT_BITS or left.bit_length() * right > MAX_INT_BITS)
            ):
                raise TemplateLimitError(f"{what} gives a number too large for a message")
        elif operator == "+":
            if _size(left) + _size(right) > MAX_VALUE_LEN:
                raise TemplateLimitError(f"{what}: result longer than {MAX_VALUE_LEN}")
        elif operator == "%":
            _refuse_big_widths(left, what)
        return check_value(super().call_binop(context, operator, left, right), what)

    def call(
        __self,  # the sandbox's own signature: keeps `self` free for keyword arguments
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _spend()
        # str.format / format_map arrive wrapped by the sandbox (its safe formatter).
        method = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            _precheck_str_method(owner, getattr(method, "__name__", ""), args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        return check_value(result, f"{getattr(__obj, '__name__', 'call')}()")

    def bounded_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            _spend()
            yield item

    def bounded_concat(self, *parts: Any) -> str:
        text = "".join(str(part) for part in parts)
        return check_value(text, "'~'")  # type: ignore[no-any-return]
