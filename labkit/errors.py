"""The exceptions labkit raises, so callers can tell bad input from bad luck,
and the argument checks that raise ConfigError."""

import collections.abc
import functools
import inspect
import numbers
import types
import typing


class ConfigError(ValueError):
    """An argument is outside what the model allows; the message says what is."""


class Unavailable(Exception):
    """The system cannot serve the request now (no quorum, no live node)."""


class InvariantViolation(AssertionError):
    """A safety property of a protocol was broken; the message names the rule."""


class RequestTimeout(TimeoutError):
    """A call got no reply within its timeout (the request may still have run)."""


class UnknownMessage(LookupError):
    """A node received a message kind it has no handler for."""


# Argument checks shared by every public constructor and verb. Each raises
# ConfigError with a message naming the argument, the value and what is allowed.

def _plain(value, kind: str) -> str:
    """A hint for a numpy scalar (a value read from an array or a DataFrame)
    where labkit wants a plain Python number: it keeps params, and with them
    fingerprints, the same whichever way a number was written."""
    if type(value).__module__ == "numpy" and isinstance(value, numbers.Real):
        return (f" (a numpy {type(value).__name__}: labkit takes plain Python "
                f"numbers, {kind}(value))")
    return ""


def require_int(name: str, value, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
    """Return value if it is an int (not a bool) at least minimum and at most
    maximum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an int, got {value!r}{_plain(value, 'int')}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum:,}, got {value:,}")
    return value


def require_number(name: str, value, *, minimum: float | None = None,
                   positive: bool = False) -> float:
    """Return value as a float if it is a finite real number in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}"
                          f"{_plain(value, 'float')}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def require_items(name: str, values, what: str) -> tuple:
    """Return values as a tuple if it is a list, tuple, range or array of at
    least one item (`what` names an item, for the message). A sweep over no
    values would return an empty table and look like a result."""
    if isinstance(values, str | bytes | collections.abc.Mapping) or \
            not isinstance(values, collections.abc.Iterable):
        raise ConfigError(f"{name} must be a list, one {what} per item, got {values!r}")
    values = tuple(values)
    if not values:
        raise ConfigError(f"{name} must list at least one {what}")
    return values


def require_probability(name: str, value) -> float:
    """Return value if it is a probability in [0, 1]."""
    value = require_number(name, value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value}")
    return value


# -- checking a function's arguments against its annotations --------------------
# What each simple annotation admits: (test, "what is allowed"). Integral and
# Real admit numpy's scalars too (so that `checked` never blames one for an
# error it did not cause; require_int and require_number refuse them, with a
# hint); bool is an int to Python, never to labkit.
def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


_SIMPLE = {int: (_is_int, "an int"), float: (_is_number, "a number"),
           bool: (lambda v: isinstance(v, bool), "True or False"),
           str: (lambda v: isinstance(v, str), "a str")}
_SEQUENCES = {collections.abc.Sequence, collections.abc.Iterable, list, tuple}


def _is_list(v) -> bool:
    return (isinstance(v, collections.abc.Iterable)
            and not isinstance(v, str | bytes | dict))


def _allowed(hint) -> tuple | None:
    """(test, words) for an annotation labkit can check, else None (anything
    goes: a class of the model, a callable, a mapping)."""
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    if hint in _SEQUENCES:
        return _is_list, "a list"
    args, origin = typing.get_args(hint), typing.get_origin(hint)
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        return callable, "a function or class"
    if hint is type or origin is type:
        return inspect.isclass, "a class"
    if origin in (typing.Union, types.UnionType):
        none = type(None) in args
        rules = [_allowed(a) for a in args if a is not type(None)]
        if None in rules:
            return None                       # a member we cannot check
        words = " or ".join([w for _, w in rules] + ["None"] * none)
        return (lambda v: (none and v is None) or any(t(v) for t, _ in rules), words)
    if origin is tuple and args and Ellipsis not in args:    # (low, high) and such
        rules = [_allowed(a) for a in args]
        if None in rules:
            return None
        return (lambda v: _is_list(v) and len(v := tuple(v)) == len(rules)
                and all(t(x) for (t, _), x in zip(rules, v, strict=True)),
                f"a tuple of {len(rules)}: ({', '.join(w for _, w in rules)})")
    if origin in _SEQUENCES and len(args) == 1:
        rule = _allowed(args[0])
        if rule is None:
            return _is_list, "a list"         # of things only `fn` can judge
        # The items of a one-shot iterator are left alone: looking at them
        # would use them up.
        return (lambda v: _is_list(v) and (
                    not isinstance(v, collections.abc.Collection)
                    or all(rule[0](x) for x in v)),
                f"a list, each item {rule[1]}")
    return None


def checked(fn):
    """Turn an error that `fn` raises on an argument of the wrong type (a
    TypeError, or e.g. a KeyError from a dict it built from it) into a
    ConfigError naming the argument, the value and what is allowed, judged by
    `fn`'s simple annotations (int, float, bool, str, their unions with None,
    tuples and lists of them, any list). Before, a wrong type surfaced as e.g.
    "'<' not supported between 'float' and 'str'" from deep inside the model.
    It looks only once `fn` has failed: a valid call pays the wrapper alone,
    and `fn`'s own ConfigErrors, and any error that already names the
    argument, pass through unchanged (they say more)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ConfigError, Unavailable):
            raise
        except Exception as error:
            wrong = _wrong_argument(fn, signature, args, kwargs)
            if wrong is None or (wrong[0] and wrong[0] in str(error)):
                raise                   # fine as it is: it names the argument
            raise ConfigError(wrong[1]) from error

    return call


def _wrong_argument(fn, signature: inspect.Signature, args,
                    kwargs) -> tuple[str, str] | None:
    """The first argument that its annotation refuses, and what is wrong
    ("" and the binding error for arguments unknown or missing)."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:                # unknown or missing arguments
        return "", f"{fn.__name__}: {error}"
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):            # a name only type checkers see
        return None
    for name, value in bound.arguments.items():
        rule = _allowed(hints[name]) if name in hints else None
        if rule is not None and not rule[0](value):
            return name, f"{name} must be {rule[1]}, got {value!r}"
    return None
